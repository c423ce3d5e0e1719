"""`transferlab sweep SWEEP.yaml`: many template runs from one file, in parallel workers;
`transferlab executors`: where a sweep's runs can execute (built-in and plug-ins)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from transferlab.cli.output import emit_json, format_table
from transferlab.registry import Registry


def cmd_sweep(args: argparse.Namespace) -> int:
    from transferlab.sweeps import (
        SweepInterrupted,
        format_summary,
        load_sweep,
        run_sweep,
        summary_json,
    )
    from transferlab.sweeps.executors import get_executor
    from transferlab.sweeps.workers import check_workers

    if args.workers is not None:
        check_workers(args.workers)
    if args.executor is not None:
        get_executor(args.executor)  # an unknown one is refused before anything is written
    spec = load_sweep(args.sweep_file)
    executor, options = _ray_address(args, spec)
    args.executor = executor
    registry = Registry(args.registry)
    if args.dry_run:
        return _dry_run(spec, registry, args)
    if spec.pdf and not args.no_report:  # refused before a run starts, not after the sweep
        from transferlab.errors import TransferlabError
        from transferlab.reporting.chromium import find_chromium

        if find_chromium() is None:
            raise TransferlabError(
                f"Sweep {spec.name} asks for a PDF report (pdf: true), and no Chromium was "
                "found to print it.",
                "Install it (Debian: apt-get install chromium), set pdf: false, or run with "
                "--no-report.",
            )
    quiet = args.json or args.quiet

    def announce(sweep_id: str, to_run: int, reused: int) -> None:
        if not quiet:
            print(
                f"sweep {spec.name} ({sweep_id}): {to_run} run(s) to do, {reused} reused",
                flush=True,
            )

    # With --json, stdout holds the JSON document alone: whatever the sweep prints on the way
    # (Ray's driver prints cluster events, a dead node, to stdout) goes to stderr.
    aside = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with aside:
            result = run_sweep(
                spec,
                registry,
                workers=args.workers,
                rerun=args.rerun,
                output_dir=args.output_dir,
                progress=not quiet,
                on_start=announce,
                executor=executor,
                executor_options=options,
                cold_kernels=args.cold_kernels,
            )
        code = 0 if result.ok else 1
    except SweepInterrupted as stopped:
        result, code = stopped.result, 130
    if code != 130 and not args.no_report:
        _curve_report(result, registry, pdf=spec.pdf)
    if args.json:
        emit_json(summary_json(result))
    else:
        print(format_summary(result))
    if code == 130:
        print("interrupted: run the same command again to resume", file=sys.stderr)
    return code


def _ray_address(args: argparse.Namespace, spec) -> tuple[str | None, dict[str, Any]]:
    """--ray-address: the ray executor's address; it implies --executor ray and is refused
    with another executor."""
    from transferlab.errors import TransferlabError

    if args.ray_address is None:
        return args.executor, {}
    chosen = args.executor or spec.executor or "ray"
    if chosen != "ray":
        raise TransferlabError(
            f"--ray-address is a setting of the ray executor, but the sweep runs on {chosen!r}.",
            "Add --executor ray, or leave --ray-address out.",
        )
    return "ray", {"address": args.ray_address}


def _curve_report(result, registry: Registry, pdf: bool = False) -> None:
    """A sweep over examples per class ends with the data-efficiency report, where the
    efficiency module is installed (transferlab.efficiency.render_sweep_report)."""
    sizes = {repr(row.parameters.get("n_per_class")) for row in result.rows}
    done = [row for row in result.rows if row.status in ("succeeded", "reused")]
    if result.template != "finetune" or len(sizes) < 2 or not done:
        return
    try:
        from transferlab.efficiency import render_sweep_report
    except ImportError:
        return
    try:
        report = render_sweep_report(
            registry, result.sweep_id, output_dir=result.output_dir, pdf=pdf
        )
        result.report = str(report)
        if pdf:
            result.notes.append(f"the report as PDF: {report.with_suffix('.pdf')}")
    except Exception as exc:  # the sweep's runs stand whatever happens to the report
        result.notes.append(f"the data-efficiency report failed: {type(exc).__name__}: {exc}")


def _dry_run(spec, registry: Registry, args: argparse.Namespace) -> int:
    from transferlab.sweeps import expand, plan_sweep
    from transferlab.sweeps.executors import DEFAULT_EXECUTOR
    from transferlab.sweeps.plan import display_value

    executor = args.executor or spec.executor or DEFAULT_EXECUTOR
    if spec.search is not None and spec.search.samples:
        return _dry_run_search(spec, registry, args, executor)
    planned = expand(spec)
    if registry.exists():
        plan = plan_sweep(spec, registry, rerun=args.rerun, planned=planned)
    else:  # nothing to reuse, and a dry run creates no registry
        plan = [(run, None) for run in planned]
    rows = [
        {
            **{k: display_value(k, v) for k, v in run.varying.items()},
            "key": run.key,
            "action": "reuse" if reused else "run",
            "reuses": reused,
        }
        for run, reused in plan
    ]
    if args.json:
        emit_json(
            {
                "name": spec.name,
                "template": spec.template,
                "executor": executor,
                "runs": [
                    {
                        "key": run.key,
                        "parameters": run.parameters,
                        "action": "reuse" if reused else "run",
                        "reuses": reused,
                    }
                    for run, reused in plan
                ],
            }
        )
        return 0
    varying = list(plan[0][0].varying) if plan else []
    to_run = sum(1 for _, reused in plan if not reused)
    print(
        f"sweep {spec.name}: template {spec.template}, {len(plan)} runs, {to_run} to run "
        f"(executor {executor})"
    )
    print(format_table(rows, [*varying, "key", "action", "reuses"]))
    return 0


def executor_rows() -> list[dict[str, Any]]:
    from transferlab.sweeps.executors import DEFAULT_EXECUTOR, all_executors, executor_origin

    return [
        {
            "name": executor.name,
            "default": executor.name == DEFAULT_EXECUTOR,
            "description": executor.description,
            "origin": executor_origin(executor.name),
        }
        for executor in all_executors()
    ]


def cmd_executors(args: argparse.Namespace) -> int:
    from transferlab.sweeps.executors import broken_executors

    rows = executor_rows()
    for reason in broken_executors().values():
        print(f"warning: not loaded: {reason}", file=sys.stderr)
    if args.json:
        emit_json(rows)
        return 0
    table = [{**row, "default": "yes" if row["default"] else ""} for row in rows]
    print(format_table(table, ["name", "default", "origin", "description"], max_width=80))
    return 0


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sweep = commands.add_parser(
        "sweep",
        parents=[common],
        help="run a grid of template runs from a YAML file, in parallel, resumable",
        description=(
            "Run every run a sweep file describes (grid of models x data sets x methods x "
            "examples per class x seeds, plus explicit runs) through papermill in worker "
            "processes. Runs that already succeeded with the same parameters and data are "
            "reused; failed and interrupted ones run again."
        ),
    )
    sweep.set_defaults(handler=cmd_sweep)
    sweep.add_argument("sweep_file", metavar="SWEEP.yaml")
    sweep.add_argument(
        "--workers",
        type=int,
        help="worker processes (default: one per CPU core, fewer if memory is short; "
        "torch threads are divided between them)",
    )
    sweep.add_argument(
        "--executor",
        metavar="NAME",
        help="where the runs execute (default: the sweep file's executor:, else process, local "
        "worker processes); `transferlab executors` lists them",
    )
    sweep.add_argument(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="the Ray cluster of --executor ray (implies it): auto (one started on this "
        "machine), or its head's HOST:PORT; default: RAY_ADDRESS, else a local Ray",
    )
    sweep.add_argument(
        "--cold-kernels",
        action="store_true",
        help="start each run's notebook kernel when the run starts, instead of a warm one "
        "started (and its imports done) during the previous run",
    )
    sweep.add_argument("--rerun", action="store_true", help="run every run, reuse nothing")
    sweep.add_argument(
        "--dry-run", action="store_true", help="list the planned runs and what would be reused"
    )
    sweep.add_argument(
        "--output-dir", help="where the output notebooks go (default outputs/sweeps/NAME)"
    )
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sweep.add_argument(
        "--no-report", action="store_true", help="skip the data-efficiency report at the end"
    )
    executors = commands.add_parser(
        "executors",
        parents=[common],
        help="list the sweep executors (built-in and from installed packages)",
        description="Where `transferlab sweep --executor NAME` can run a sweep's runs. Packages "
        "add executors through the entry-point group transferlab.executors.",
    )
    executors.set_defaults(handler=cmd_executors)


def _dry_run_search(spec, registry: Registry, args: argparse.Namespace, executor: str) -> int:
    """A random or bayes sweep draws its runs as it goes: the space, the budget, and how much
    of it the sweep's earlier invocations spent (the study in the registry)."""
    from transferlab.sweeps.study import load_study

    finished = load_study(spec, registry).finished if registry.exists() else 0
    described = {
        "name": spec.name,
        "template": spec.template,
        "executor": executor,
        **spec.search.to_json(),
        "recorded": finished,
        "to_run": max(0, spec.search.budget - finished),
    }
    if args.json:
        emit_json(described)
        return 0
    print(
        f"sweep {spec.name}: template {spec.template}, strategy {spec.search.strategy}, "
        f"budget {spec.search.budget}, {finished} recorded, {described['to_run']} to run "
        f"(executor {executor}); objective {spec.search.objective.metric} "
        f"({spec.search.objective.direction})"
    )
    for dimension in spec.search.dimensions:
        print(f"  {dimension.parameter}: {dimension.distribution} {list(dimension.values)}")
    return 0
