"""Search strategies: a 12-run bayes sweep (Optuna TPE) against a 12-run random sweep with the
same budget and search space, over 3 sampler seeds, on the project's sample data with MiniLM.

    .venv/bin/python benchmarks/search_strategies.py [--budget 12] [--seeds 0 1 2]
        [--workers 2] [--max-steps 16] [--out benchmarks/results/search_strategies.json]
    .venv/bin/python benchmarks/search_strategies.py --quick    # budget 3, one seed, smoke

The space: LoRA learning_rate log-uniform [1e-5, 3e-2] and lora_r in {2, 4, 8, 16}; fixed:
8 examples per class, data seed 0, batch 8, max_length 64, max_steps 16, early stopping off.
The objective is the validation loss (minimize): accuracy saturates on this easy set, and the
loss still orders runs that all classify the validation examples right. The validation split
is 20 examples per class drawn (seed 0) from the training file and removed from it; the test
file is never read, so nothing here is chosen by looking at a test split.

Per sampler seed: bayes's best objective, random's best and random's median (of its 12
runs), and whether bayes's best beats random's median. Each sweep runs in its own sweep name
in one registry (copied from an initialized one), through `run_sweep` and the process executor.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common as bc

VALIDATION_PER_CLASS = 20
SPACE = {
    "learning_rate": {"log_uniform": [1.0e-5, 3.0e-2]},
    "lora_r": {"choice": [2, 4, 8, 16]},
}
OBJECTIVE = {"metric": "validation_loss", "direction": "minimize"}


def split_training_file(folder: Path) -> tuple[Path, Path]:
    """The sample training file as a training part and a validation part (per class)."""
    from transferlab.data import sample_data_path

    with open(sample_data_path("train"), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    draw = random.Random(0)
    train, validation = [], []
    for label in sorted(by_label):
        items = list(by_label[label])
        draw.shuffle(items)
        validation += items[:VALIDATION_PER_CLASS]
        train += items[VALIDATION_PER_CLASS:]
    paths = folder / "train.csv", folder / "validation.csv"
    for path, part in zip(paths, (train, validation), strict=True):
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows({"text": r["text"], "label": r["label"]} for r in part)
    return paths


def sweep_document(name: str, strategy: str, budget: int, seed: int, data: tuple, steps: int):
    train, validation = data
    return {
        "name": name,
        "strategy": strategy,
        "budget": budget,
        "seed": seed,
        "fixed": {
            "base": "all-MiniLM-L6-v2",
            "method": "lora",
            "train": str(train),
            "validation": str(validation),
            "n_per_class": 8,
            "seed": 0,
            "batch_size": 8,
            "max_length": 64,
            "max_steps": steps,
            "early_stopping_patience": None,
        },
        "search": SPACE,
        "objective": OBJECTIVE,
    }


def initialized_registry(folder: Path):
    from transferlab.initialize import initialize
    from transferlab.registry import Registry

    registry = Registry(folder / "registry.duckdb")
    initialize(registry, profile=False)
    return registry


def run_one(registry, document: dict[str, Any], workers: int, folder: Path) -> dict[str, Any]:
    from transferlab.sweeps import parse_sweep, run_sweep
    from transferlab.sweeps.search import Objective

    spec = parse_sweep(document)
    started = time.monotonic()
    result = run_sweep(
        spec, registry, workers=workers, output_dir=folder / spec.name, progress=False
    )
    objective = Objective(**OBJECTIVE)
    trials = []
    for row in registry.search_trials(spec.name):
        trials.append(
            {
                "run_id": row["run_id"],
                "status": row["status"],
                "learning_rate": row["requested"].get("learning_rate"),
                "lora_r": row["requested"].get("lora_r"),
                "objective": objective.value_of(row["metrics"]),
            }
        )
    values = [t["objective"] for t in trials if t["objective"] is not None]
    return {
        "name": spec.name,
        "status": result.status,
        "wall_s": time.monotonic() - started,
        "trials": trials,
        "best": min(values) if values else None,
        "median": statistics.median(values) if values else None,
        "failed": sum(t["status"] != "succeeded" for t in trials),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="budget 3, seed 0, 4 steps")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.budget, args.seeds, args.max_steps = 3, [0], 4
    out = args.out or bc.RESULTS_DIR / (
        "search_strategies_quick.json" if args.quick else "search_strategies.json"
    )
    per_seed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="search-strategies-") as tmp:
        folder = Path(tmp)
        data = split_training_file(folder)
        registry = initialized_registry(folder)
        for seed in args.seeds:
            sweeps = {}
            for strategy in ("bayes", "random"):
                name = f"{strategy}-seed{seed}"
                print(f"-- {name}", flush=True)
                document = sweep_document(name, strategy, args.budget, seed, data, args.max_steps)
                with bc.cpu_share() as share:
                    sweeps[strategy] = run_one(registry, document, args.workers, folder)
                sweeps[strategy]["cpu"] = share.as_dict()
                print(
                    f"   {sweeps[strategy]['wall_s']:.0f} s, best {sweeps[strategy]['best']}, "
                    f"failed {sweeps[strategy]['failed']}",
                    flush=True,
                )
            bayes, rand = sweeps["bayes"], sweeps["random"]
            beats = None
            if bayes["best"] is not None and rand["median"] is not None:
                beats = bayes["best"] < rand["median"]
            per_seed.append({"seed": seed, "bayes": bayes, "random": rand, "beats": beats})
    headers = [
        "seed",
        "bayes best",
        "random best",
        "random median",
        "bayes < random median",
        "bayes <= random best",
    ]
    rows = [
        [
            s["seed"],
            s["bayes"]["best"],
            s["random"]["best"],
            s["random"]["median"],
            s["beats"],
            None
            if s["bayes"]["best"] is None or s["random"]["best"] is None
            else s["bayes"]["best"] <= s["random"]["best"],
        ]
        for s in per_seed
    ]
    print(f"objective: {OBJECTIVE['metric']} ({OBJECTIVE['direction']}), budget {args.budget}")
    print(bc.format_table(headers, rows))
    bc.write_json(
        out,
        {
            "benchmark": "search_strategies",
            "quick": args.quick,
            "settings": {
                "budget": args.budget,
                "sampler_seeds": args.seeds,
                "workers": args.workers,
                "max_steps": args.max_steps,
                "space": SPACE,
                "objective": OBJECTIVE,
                "validation_per_class": VALIDATION_PER_CLASS,
                "n_per_class": 8,
                "method": "lora",
                "base": "all-MiniLM-L6-v2",
            },
            "machine": bc.machine_info(args.workers),
            "per_seed": per_seed,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    print(f"wrote {out}")
    failed = sum(s[k]["failed"] for s in per_seed for k in ("bayes", "random"))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
