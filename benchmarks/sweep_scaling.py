"""Sweep scaling: the same 16 small MiniLM LoRA runs as one plain Python loop calling
`transferlab.finetune` (no papermill) and through `transferlab.sweeps.run_sweep` on the process
executor, with 1 and 2 worker processes, each with cold and with forked (or warm) kernels.

    .venv/bin/python benchmarks/sweep_scaling.py [--workers 1 2] [--kernels cold warm forked]
        [--ray 2] [--rounds 3]
        [--max-steps 15] [--out benchmarks/results/sweep_scaling.json]
    .venv/bin/python benchmarks/sweep_scaling.py --quick     # 4 runs, 5 steps: a smoke run

The runs: the project's sample data (5 intents), n_per_class 8, 16, 32 and all (about 58) x
seeds 0-3, batch 16, max_length 64, max_steps 15, early stopping off. Each way starts from a
copy of one initialized registry (catalog + installed MiniLM), so every way trains all runs
(nothing is reused) and none pays for initialization.

    loop             one process, torch threads = the cores, `finetune(FinetuneConfig(...))` per
                     run: what the runs cost without notebooks or worker processes.
    process-N-cold   run_sweep with N workers (torch threads = cores // N each), `--cold-kernels`:
                     a papermill run per run, its kernel started (and its imports done) by it.
    process-N-warm   the same with warm kernels, zygotes off (TRANSFERLAB_KERNEL_ZYGOTE=0): each
                     worker starts the next run's kernel and its imports during a run.
    process-N-forked the default (transferlab.forked_kernels): each worker's next kernel is
                     forked during a run from a zygote that did the imports once.
    ray-N-forked     run_sweep on the Ray executor, a real local cluster (tests/ray_cluster.py):
                     a head running no task and N worker nodes of 1 CPU each (N runs at once,
                     one thread each); the cluster's start is not timed. `--ray` (none: skip).

A way is an entry of the list `ways()` builds (name, workers, a function of the
registry, the runs and a folder): a Ray way is one more entry. Columns: wall seconds, seconds a
run, the ratio to the loop (the cost of notebooks and processes at that parallelism), and the
time to the first result (seconds from the way's start until its first run finished). The
machine may be shared: the JSON keeps the CPU time other processes took during each way
("other%"), and a busy machine slows every way. The same runs' wall time also drifts by 10-20 %
between quiet minutes here, so `--rounds N` runs all the ways N times, interleaved: each way's
ratio is the median of its ratios to the loop of the same round, its times the medians.

The runs use the finetune template's default method (auto: LP-FT here), as a user's would.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import bench_common as bc

SIZES = (8, 16, 32, None)
QUICK_SIZES = (8,)
SEEDS = (0, 1, 2, 3)
QUICK_SEEDS = SEEDS  # 4 runs: at 2 workers, 2 of them warm
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


def utc_now() -> datetime:
    """The registry's clock: naive UTC (transferlab.registry.rows)."""
    return datetime.now(UTC).replace(tzinfo=None)


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


def loop_way(registry, parameters: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """The same runs in this process, without papermill."""
    from transferlab.data import sample_data_path
    from transferlab.finetune import FinetuneConfig, finetune

    accuracy, first = [], None
    for params in parameters:
        config = FinetuneConfig(
            train=sample_data_path("train"),
            test=sample_data_path("test"),
            registry=registry.path,
            **params,
        )
        result = finetune(config, registry, progress=False)
        accuracy.append(result.metrics["test"]["accuracy"])
        first = first or utc_now()
    return {"runs": len(parameters), "failed": 0, "test_accuracy": accuracy, "first": first}


def sweep_way(
    registry,
    parameters: list[dict[str, Any]],
    folder: Path,
    *,
    workers: int,
    kernels: str,
    executor: str = "process",
    executor_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`kernels`: cold (each run starts its kernel), warm (a spare started and warmed during
    the previous run) or forked (the spare forked from a zygote: transferlab.forked_kernels)."""
    import os

    from transferlab.sweeps import parse_sweep, run_sweep

    spec = parse_sweep({"name": folder.name, "runs": parameters})
    zygotes = os.environ.get("TRANSFERLAB_KERNEL_ZYGOTE")
    os.environ["TRANSFERLAB_KERNEL_ZYGOTE"] = "1" if kernels == "forked" else "0"
    try:
        result = run_sweep(
            spec,
            registry,
            workers=workers,
            output_dir=folder / "notebooks",
            progress=False,
            cold_kernels=kernels == "cold",
            executor=executor,
            executor_options=executor_options,
        )
    finally:
        if zygotes is None:
            os.environ.pop("TRANSFERLAB_KERNEL_ZYGOTE")
        else:
            os.environ["TRANSFERLAB_KERNEL_ZYGOTE"] = zygotes
    finished = [r["finished_at"] for r in registry.sweep_runs(result.sweep_id) if r["finished_at"]]
    return {
        "runs": len(result.rows),
        "failed": sum(row.status != "succeeded" for row in result.rows),
        "test_accuracy": [row.test_accuracy for row in result.rows],
        "threads_per_worker": result.threads_per_worker,
        "errors": sorted({row.error for row in result.rows if row.error}),
        "first": min(finished) if finished else None,
    }


@dataclass(frozen=True)
class Way:
    """One way of running the runs: `run(registry, parameters, folder)` returns its outcome."""

    name: str
    workers: int | None  # None: the loop
    run: Callable[..., dict[str, Any]]
    # Entered before the way's clock starts, left after it stops; what it yields are more
    # keyword arguments of `run` (the Ray way's cluster address).
    around: Callable[[], AbstractContextManager[dict[str, Any]]] = contextlib.nullcontext


@contextlib.contextmanager
def local_ray_cluster(workers: int) -> Iterator[dict[str, Any]]:
    """A real local Ray cluster (tests/ray_cluster.py): a head that runs no task and `workers`
    worker nodes of one CPU each, so `workers` runs at once with one torch thread each, as
    process-N; its start (tens of seconds) is outside the way's time."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.ray_cluster import RayCluster

    cluster = RayCluster(workers=workers, cpus=1, head_cpus=0).start()
    try:
        yield {"executor_options": {"address": cluster.address}}
    finally:
        cluster.stop()


def ways(workers: list[int], kernels: list[str], loop: bool, ray: list[int]) -> list[Way]:
    """The ways to compare, in order: the loop, the process executor per worker count and
    kernel kind, then the Ray executor on a local cluster of N worker nodes (forked kernels)."""
    table = [Way("loop", None, loop_way)] if loop else []
    for kind in kernels:
        for count in workers:
            table.append(
                Way(
                    f"process-{count}-{kind}",
                    count,
                    partial(sweep_way, workers=count, kernels=kind),
                )
            )
    for count in ray:
        table.append(
            Way(
                f"ray-{count}-forked",
                count,
                partial(sweep_way, workers=count, kernels="forked", executor="ray"),
                partial(local_ray_cluster, count),
            )
        )
    return table


def run_way(way: Way, template: Path, folder: Path, parameters: list[dict[str, Any]]) -> dict:
    """One way once, from a fresh copy of the initialized registry: its outcome and CPU."""
    registry = fresh_registry(template, folder, way.name)
    print(f"-- {way.name} ({folder.name})", flush=True)
    with way.around() as extra:
        started = utc_now()
        with bc.cpu_share() as share:
            outcome = way.run(registry, parameters, folder / way.name, **(extra or {}))
    first = outcome.pop("first")
    outcome["first_result_s"] = (first - started).total_seconds() if first else None
    print(
        f"   {share.wall_s:.1f} s, failed {outcome['failed']}, other {share.other_share:.0%}",
        flush=True,
    )
    return {"way": way.name, "workers": way.workers, **outcome, "cpu": share.as_dict()}


def summarize(rounds: list[list[dict]]) -> list[dict]:
    """Per way: the median of its rounds (wall, first result), each round's wall, and the
    ratio to the loop of the same round (the machine's speed drifts between rounds, so a
    way is compared with the loop it ran beside); `ratio_to_loop` is the median of those."""
    from statistics import median

    loop_walls = [{w["way"]: w["cpu"]["wall_s"] for w in r}.get("loop") for r in rounds]
    summary = []
    for index, first in enumerate(rounds[0]):
        runs = [r[index] for r in rounds]
        walls = [w["cpu"]["wall_s"] for w in runs]
        ratios = [w / loop for w, loop in zip(walls, loop_walls, strict=True) if loop]
        accuracy = [a for w in runs for a in w["test_accuracy"] if a is not None]
        firsts = [w["first_result_s"] for w in runs if w["first_result_s"] is not None]
        summary.append(
            {
                **{k: v for k, v in first.items() if k not in ("cpu", "first_result_s")},
                "failed": sum(w["failed"] for w in runs),
                "wall_s": median(walls),
                "s_per_run": median(walls) / first["runs"],
                "ratio_to_loop": median(ratios) if ratios else None,
                "round_walls_s": walls,
                "round_ratios_to_loop": ratios,
                "first_result_s": median(firsts) if firsts else None,
                "mean_test_accuracy": sum(accuracy) / len(accuracy) if accuracy else None,
                "other_share_of_cpus": max(w["cpu"]["other_share_of_cpus"] for w in runs),
                "rounds": [w["cpu"] | {"first_result_s": w["first_result_s"]} for w in runs],
            }
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--kernels", nargs="+", choices=["cold", "warm", "forked"], default=["cold", "forked"]
    )
    parser.add_argument(
        "--ray", type=int, nargs="*", default=[2], help="worker nodes of each Ray way (none: skip)"
    )
    parser.add_argument("--max-steps", type=int, default=15)
    parser.add_argument("--no-loop", action="store_true", help="skip the plain-loop way")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every way this many times, interleaved"
    )
    parser.add_argument("--quick", action="store_true", help="4 runs, 5 steps: a smoke run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sizes, seeds = SIZES, SEEDS
    if args.quick:
        sizes, seeds, args.max_steps = QUICK_SIZES, QUICK_SEEDS, 5
    out = args.out or bc.RESULTS_DIR / (
        "sweep_scaling_quick.json" if args.quick else "sweep_scaling.json"
    )
    parameters = run_parameters(sizes, seeds, args.max_steps)
    from transferlab.sweeps.workers import available_cpus

    cpus = available_cpus()
    bc.set_threads(cpus)  # the loop's torch threads; workers divide the cores themselves
    print(f"{len(parameters)} runs, max_steps {args.max_steps}, {cpus} cpus", flush=True)
    rounds: list[list[dict]] = []
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        template = initialized_registry(Path(tmp))
        for number in range(args.rounds):
            folder = Path(tmp) / f"round-{number + 1}"
            folder.mkdir()
            table = ways(args.workers, args.kernels, not args.no_loop, args.ray)
            rounds.append([run_way(way, template, folder, parameters) for way in table])
    results = summarize(rounds)
    rows = [
        [
            way["way"],
            way["runs"],
            way["failed"],
            way["wall_s"],
            way["s_per_run"],
            way["ratio_to_loop"],
            way["first_result_s"],
            way["mean_test_accuracy"],
            f"{way['other_share_of_cpus']:.0%}",
        ]
        for way in results
    ]
    headers = ["way", "runs", "failed", "wall_s", "s/run", "x loop", "first s", "mean acc"]
    headers.append("other%")
    print(bc.format_table(headers, rows))
    if args.rounds > 1:
        print("per round, x loop: " + "; ".join(
            f"{w['way']} " + " ".join(f"{r:.2f}" for r in w["round_ratios_to_loop"])
            for w in results if w["way"] != "loop"
        ))  # fmt: skip
    bc.write_json(
        out,
        {
            "benchmark": "sweep_scaling",
            "quick": args.quick,
            "settings": {
                "runs": len(parameters),
                "rounds": args.rounds,
                "n_per_class": [s if s is not None else "all" for s in sizes],
                "seeds": list(seeds),
                "max_steps": args.max_steps,
                "batch_size": BATCH_SIZE,
                "max_length": MAX_LENGTH,
                "method": "auto (lp_ft)",
                "base": "all-MiniLM-L6-v2",
            },
            "machine": bc.machine_info(cpus),
            "ways": results,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    print(f"wrote {out}")
    return 0 if all(way["failed"] == 0 for way in results) else 1


if __name__ == "__main__":
    sys.exit(main())
