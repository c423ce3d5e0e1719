"""Sweep scaling: the same 16 small MiniLM LoRA runs through `transferlab sweep` with 1, 2 and
4 worker processes, and as one plain Python loop calling `transferlab.finetune` (no papermill).

    .venv/bin/python benchmarks/sweep_scaling.py [--workers 1 2 4] [--max-steps 15]
        [--out benchmarks/results/sweep_scaling.json]
    .venv/bin/python benchmarks/sweep_scaling.py --quick     # 2 runs, 1 and 2 workers, smoke

The runs: the project's sample data (5 intents), n_per_class 8, 16, 32 and all (about 58) x
seeds 0-3, batch 16, max_length 64, max_steps 15, early stopping off. Each way starts from a
copy of one initialized registry (catalog + installed MiniLM), so every way trains all runs
(nothing is reused) and none pays for initialization.

    loop     one process, torch threads = the cores, `finetune(FinetuneConfig(...))` per run:
             what the runs cost without notebooks or worker processes.
    sweep-N  `transferlab.sweeps.run_sweep` with N workers (torch threads = cores // N each):
             a papermill run (kernel start, imports, model load, plots) per run.

Ratios: sweep-N / loop (the cost of notebooks and processes at that parallelism) and
sweep-1 / sweep-N (what parallelism gains). The machine may be shared: the JSON keeps the CPU
time other processes took during each way ("other%"), and a busy machine slows every way.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common as bc

SIZES = (8, 16, 32, None)
QUICK_SIZES = (8,)
SEEDS = (0, 1, 2, 3)
QUICK_SEEDS = (0, 1)
BATCH_SIZE = 16
MAX_LENGTH = 64


def run_parameters(sizes, seeds, max_steps: int) -> list[dict[str, Any]]:
    return [
        {
            "base": "all-MiniLM-L6-v2",
            "n_per_class": size,
            "seed": seed,
            "max_steps": max_steps,
            "batch_size": BATCH_SIZE,
            "max_length": MAX_LENGTH,
            "early_stopping_patience": None,
        }
        for size in sizes
        for seed in seeds
    ]


def initialized_registry(folder: Path) -> Path:
    from transferlab.initialize import initialize
    from transferlab.registry import Registry

    path = folder / "template.duckdb"
    initialize(Registry(path), profile=False)
    return path


def fresh_registry(template: Path, folder: Path, name: str):
    from transferlab.registry import Registry

    target = folder / name / "registry.duckdb"
    target.parent.mkdir(parents=True)
    shutil.copyfile(template, target)
    return Registry(target)


def plain_loop(registry, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """The same runs in this process, without papermill."""
    from transferlab.data import sample_data_path
    from transferlab.finetune import FinetuneConfig, finetune

    accuracy = []
    for params in parameters:
        config = FinetuneConfig(
            train=sample_data_path("train"),
            test=sample_data_path("test"),
            registry=registry.path,
            **params,
        )
        result = finetune(config, registry, progress=False)
        accuracy.append(result.metrics["test"]["accuracy"])
    return {"runs": len(parameters), "failed": 0, "test_accuracy": accuracy}


def sweep_way(registry, parameters: list[dict[str, Any]], workers: int, folder: Path):
    from transferlab.sweeps import parse_sweep, run_sweep

    spec = parse_sweep({"name": f"scaling-{workers}", "runs": parameters})
    result = run_sweep(
        spec, registry, workers=workers, output_dir=folder / "notebooks", progress=False
    )
    return {
        "runs": len(result.rows),
        "failed": sum(row.status != "succeeded" for row in result.rows),
        "test_accuracy": [row.test_accuracy for row in result.rows],
        "threads_per_worker": result.threads_per_worker,
        "errors": sorted({row.error for row in result.rows if row.error}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--max-steps", type=int, default=15)
    parser.add_argument("--no-loop", action="store_true", help="skip the plain-loop way")
    parser.add_argument("--quick", action="store_true", help="2 runs, 1 and 2 workers, 5 steps")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sizes, seeds, workers = SIZES, SEEDS, args.workers
    if args.quick:
        sizes, seeds, workers, args.max_steps = QUICK_SIZES, QUICK_SEEDS, [1, 2], 5
    out = args.out or bc.RESULTS_DIR / (
        "sweep_scaling_quick.json" if args.quick else "sweep_scaling.json"
    )
    parameters = run_parameters(sizes, seeds, args.max_steps)
    from transferlab.sweeps.workers import available_cpus

    cpus = available_cpus()
    bc.set_threads(cpus)  # the loop's torch threads; workers divide the cores themselves
    print(f"{len(parameters)} runs, max_steps {args.max_steps}, {cpus} cpus", flush=True)
    ways: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        folder = Path(tmp)
        template = initialized_registry(folder)
        plan = [] if args.no_loop else [("loop", None)]
        plan += [(f"sweep-{n}", n) for n in workers]
        for name, count in plan:
            registry = fresh_registry(template, folder, name)
            print(f"-- {name}", flush=True)
            with bc.cpu_share() as share:
                if count is None:
                    outcome = plain_loop(registry, parameters)
                else:
                    outcome = sweep_way(registry, parameters, count, folder / name)
            ways.append({"way": name, "workers": count, **outcome, "cpu": share.as_dict()})
            print(
                f"   {share.wall_s:.1f} s, failed {outcome['failed']}, "
                f"other {share.other_share:.0%}",
                flush=True,
            )
    by_name = {w["way"]: w["cpu"]["wall_s"] for w in ways}
    loop_s = by_name.get("loop")
    one_s = by_name.get("sweep-1")
    rows = []
    for way in ways:
        wall = way["cpu"]["wall_s"]
        way["s_per_run"] = wall / way["runs"]
        way["ratio_to_loop"] = wall / loop_s if loop_s else None
        way["speedup_vs_1_worker"] = one_s / wall if one_s and way["workers"] else None
        accuracy = [a for a in way["test_accuracy"] if a is not None]
        rows.append(
            [
                way["way"],
                way["runs"],
                way["failed"],
                wall,
                way["s_per_run"],
                way["ratio_to_loop"],
                way["speedup_vs_1_worker"],
                sum(accuracy) / len(accuracy) if accuracy else None,
                f"{way['cpu']['other_share_of_cpus']:.0%}",
            ]
        )
    headers = ["way", "runs", "failed", "wall_s", "s/run", "x loop", "x vs 1", "mean acc", "other%"]
    print(bc.format_table(headers, rows))
    bc.write_json(
        out,
        {
            "benchmark": "sweep_scaling",
            "quick": args.quick,
            "settings": {
                "runs": len(parameters),
                "n_per_class": [s if s is not None else "all" for s in sizes],
                "seeds": list(seeds),
                "max_steps": args.max_steps,
                "batch_size": BATCH_SIZE,
                "max_length": MAX_LENGTH,
                "method": "lora",
                "base": "all-MiniLM-L6-v2",
            },
            "machine": bc.machine_info(cpus),
            "ways": ways,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    print(f"wrote {out}")
    return 0 if all(way["failed"] == 0 for way in ways) else 1


if __name__ == "__main__":
    sys.exit(main())
