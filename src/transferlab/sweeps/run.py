"""Running a planned sweep: the plan, its bookkeeping in the registry, interrupts.

Every planned run is either reused (an earlier succeeded run with the same request and data)
or handed as a job to the sweep's executor (transferlab.sweeps.executors; `process`, worker
processes, unless told otherwise), with its own output notebook and registry run. A failing
run is recorded as failed and never stops the others. Ctrl-C or SIGTERM stops submitting,
stops the executor (its running runs are recorded as interrupted), and marks anything this
sweep started that is still `running` as interrupted. A sweep killed outright is cleaned up
by the next invocation of the same sweep: its runs and its sweep row, whose process is gone,
are marked interrupted before anything starts.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from transferlab.parameters import signature
from transferlab.registry import Registry
from transferlab.registry.api import new_run_id
from transferlab.registry.processes import pid_exists
from transferlab.sweeps import search_run
from transferlab.sweeps import workers as worker_setup
from transferlab.sweeps.executors import (
    DEFAULT_EXECUTOR,
    INTERRUPTED_ERROR,
    ExecutorSettings,
    RunJob,
    RunResult,
    SweepExecutor,
    get_executor,
)
from transferlab.sweeps.live import SweepProgress
from transferlab.sweeps.plan import PlannedRun, expand, reusable_run, succeeded_runs
from transferlab.sweeps.resources import RunResources
from transferlab.sweeps.spec import SweepSpec

STALE_ERROR = "Interrupted: the process running it is gone (the sweep was killed)."
__all__ = [
    "INTERRUPTED_ERROR",
    "STALE_ERROR",
    "RunRow",
    "SweepInterrupted",
    "SweepResult",
    "plan_sweep",
    "run_sweep",
]


@dataclass
class RunRow:
    """One planned run's outcome, as the summary shows it."""

    key: str
    label: str
    varying: dict[str, Any]
    parameters: dict[str, Any]
    status: str = "pending"  # pending | reused | succeeded | failed | interrupted | pruned
    run_id: str | None = None
    version: str | None = None
    test_accuracy: float | None = None
    seconds: float | None = None
    error: str | None = None
    output_notebook: str | None = None
    pruned_step: int | None = None  # the training step a pruned run stopped at


@dataclass
class SweepResult:
    sweep_id: str
    name: str
    template: str
    workers: int
    threads_per_worker: int
    rows: list[RunRow]
    wall_s: float
    status: str
    output_dir: str | None = None  # where the runs' notebooks (and the curves report) go
    executor: str = DEFAULT_EXECUTOR
    report: str | None = None
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    @property
    def ok(self) -> bool:
        return all(row.status in ("succeeded", "reused", "pruned") for row in self.rows)


def plan_sweep(
    spec: SweepSpec,
    registry: Registry,
    *,
    rerun: bool = False,
    planned: list[PlannedRun] | None = None,
) -> list[tuple[PlannedRun, str | None]]:
    """Each planned run (`planned`, else `expand(spec)`) with the id of the earlier run it
    reuses (None: it must run)."""
    planned = expand(spec) if planned is None else planned
    if rerun:
        return [(run, None) for run in planned]
    candidates = succeeded_runs(registry, spec.template)
    return [(run, reusable_run(run, candidates)) for run in planned]


def run_sweep(
    spec: SweepSpec,
    registry: Registry,
    *,
    workers: int | None = None,
    rerun: bool = False,
    output_dir: str | Path | None = None,
    progress: bool = True,
    on_start: Callable[[str, int, int], None] | None = None,
    executor: str | None = None,
    executor_options: dict[str, Any] | None = None,
    cold_kernels: bool = False,
) -> SweepResult:
    """Run a sweep to the end (or until interrupted) and return its summary rows.

    `executor`: the name of the executor to run on (default: the sweep file's `executor:`,
    else `process`); `executor_options` its settings over the file's (`--ray-address`). An
    unknown executor, or one that cannot work (executor.prepare), is refused before anything
    is written. Runs start on warm kernels (transferlab.warm_kernels) unless `cold_kernels`."""
    started = time.monotonic()
    executor_name = executor or spec.executor or DEFAULT_EXECUTOR
    executor_class = get_executor(executor_name)
    workers = worker_setup.default_workers() if workers is None else workers
    worker_setup.check_workers(workers)
    threads = worker_setup.threads_per_worker(workers)
    placement = _placement(spec, executor_name, executor_options, workers, threads)
    executor_class.check_options(placement.options)
    executor_class.prepare(placement, str(registry.location))
    sampled = spec.search is not None and spec.search.samples  # random / bayes
    planned = [] if sampled else expand(spec)  # once: the preparation and the plan share it
    prepare_registry(spec, registry, search_run.preparation_runs(spec) if sampled else planned)
    interrupt_stale(registry, spec.name)
    plan = [] if sampled else plan_sweep(spec, registry, rerun=rerun, planned=planned)
    folder = Path(output_dir) if output_dir else _default_output_dir(spec.name)
    folder = folder.resolve()
    sweep_id = registry.start_sweep(
        spec.name,
        spec=spec.to_json(),
        file_path=str(spec.path) if spec.path else None,
        template=spec.template,
        workers=workers,
    )
    rows = {run.key: RunRow(run.key, run.label, run.varying, run.parameters) for run, _ in plan}
    for run, reused in plan:
        if reused:
            rows[run.key].status, rows[run.key].run_id = "reused", reused
            registry.add_sweep_run(sweep_id, run.key, reused, reused=True)
    todo = [run for run, reused in plan if not reused]
    total, done = len(plan), len(plan) - len(todo)
    if sampled:  # the study, rebuilt from the registry: its finished runs count
        study = search_run.load_study(spec, registry)
        rows.update({r.key: r for r in search_run.earlier_rows(spec, study, registry, sweep_id)})
        total, done = spec.search.budget, study.finished
        todo = [None] * study.budget_left
    if on_start:
        on_start(sweep_id, len(todo), done)
    interrupted = False
    broke: Exception | None = None  # the executor (or the registry) raised: recorded, re-raised
    bar = _progress_bar(total, spec.name, progress)
    bar.update(done)
    live = SweepProgress(rows, total, bar) if progress else nullcontext()
    try:
        with _stop_signals(), live:
            warm_for = 0 if cold_kernels else min(workers, len(todo))
            if not cold_kernels:
                placement = replace(placement, warm_start=(str(spec.template_path), str(folder)))
            if sampled:
                search_run.run_search(
                    spec, registry, study, executor_class, placement, rows, sweep_id, folder, bar,
                    warm=not cold_kernels,
                )  # fmt: skip
            elif jobs := _jobs(todo, spec, registry, sweep_id, folder, warm_for):
                settings = replace(placement, workers=min(workers, len(jobs)))
                _execute(jobs, executor_class, settings, rows, registry, sweep_id, bar)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:
        broke = exc
    finally:
        bar.close()
    result = SweepResult(
        sweep_id=sweep_id,
        name=spec.name,
        template=spec.template,
        workers=workers,
        threads_per_worker=threads,
        rows=list(rows.values()),
        wall_s=0.0,
        status="succeeded",
        output_dir=str(folder),
        executor=executor_name,
    )
    if sampled and study.without_objective:
        result.notes.append(
            f"{len(study.without_objective)} run(s) succeeded without recording "
            f"{spec.search.objective.metric}: the study counted them as failed. Check the "
            "objective (a validation split?)."
        )
    try:
        _record_end(result, registry, interrupted, started)
    except Exception as exc:
        if broke is None:
            raise
        broke.add_note(f"Recording the sweep's end failed too: {type(exc).__name__}: {exc}")
    if interrupted:
        raise SweepInterrupted(result)
    if broke is not None:
        raise broke
    return result


def _placement(
    spec: SweepSpec,
    executor: str,
    options: dict[str, Any] | None,
    workers: int,
    threads: int,
) -> ExecutorSettings:
    """The executor's settings: the file's (when it names this executor), then the command's;
    and each run's resources from the file."""
    chosen = dict(spec.executor_options) if executor == spec.executor else {}
    chosen.update(options or {})
    resources = spec.resources if spec.resources is not None else RunResources()
    return ExecutorSettings(workers, threads, resources=resources, options=chosen)


def _record_end(result: SweepResult, registry: Registry, interrupted: bool, started: float) -> None:
    """Runs this sweep started and left `running` become interrupted; the rows take the
    registry's statuses; the sweep is finished with its status."""
    with _ignoring_interrupts():
        started_ids = [row.run_id for row in result.rows if row.run_id]
        mark_interrupted(registry, started_ids, INTERRUPTED_ERROR)
        _fill_from_registry(registry, result.rows)
        result.wall_s = time.monotonic() - started
        if interrupted or any(r.status in ("interrupted", "pending") for r in result.rows):
            result.status = "interrupted"
        elif not result.ok:
            result.status = "failed"
        registry.finish_sweep(
            result.sweep_id,
            result.status,
            summary={
                "counts": result.counts(),
                "wall_s": round(result.wall_s, 2),
                "executor": result.executor,
            },
        )


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the sweep; `result` holds what was recorded."""

    def __init__(self, result: SweepResult):
        super().__init__("sweep interrupted")
        self.result = result


# -- preparation -----------------------------------------------------------------------------


def prepare_registry(
    spec: SweepSpec, registry: Registry, planned: list[PlannedRun] | None = None
) -> None:
    """What parallel runs would otherwise race to do: load the catalog into a new registry,
    and register each model folder used as a base once (so runs share one base version).
    `planned`: the sweep's runs, when already expanded."""
    from transferlab.initialize import ensure_initialized
    from transferlab.runner import TEMPLATE_NAMES

    if spec.template in TEMPLATE_NAMES:  # the bundled templates initialize a new registry
        ensure_initialized(registry)
    if spec.template != "finetune":
        return
    from transferlab.catalog.importers import register_local_folder
    from transferlab.finetuning.base import resolve_base

    planned = expand(spec) if planned is None else planned
    bases = {str(run.parameters["base"]) for run in planned if run.parameters.get("base")}
    for base in sorted(bases):
        if not Path(base).is_dir():
            continue
        resolved = resolve_base(base, registry)
        if resolved.version_id is None and resolved.record_to_register is not None:
            register_local_folder(registry, resolved.record_to_register, base)


def interrupt_stale(registry: Registry, name: str) -> list[str]:
    """Mark runs and sweeps of sweeps called `name` that are still `running` although the
    process that ran them (on this host) is gone, as interrupted. Returns the run ids.

    A sweep whose driver (this host) is gone takes its runs with it wherever they ran: the
    process executor's workers die with their parent, a Ray job's tasks with its driver; so its
    runs still `running` on any host (whose processes cannot be seen from here) are marked too."""
    host = socket.gethostname()
    stale_runs = [
        row["run_id"] for row in registry.running_sweep_runs(name, host) if not _alive(row["pid"])
    ]
    stale_sweeps = [
        row["sweep_id"] for row in registry.running_sweeps(name, host) if not _alive(row["pid"])
    ]
    for sweep_id in stale_sweeps:
        stale_runs += [row["run_id"] for row in registry.runs(sweep_id=sweep_id, status="running")]
    stale_runs = list(dict.fromkeys(stale_runs))
    mark_interrupted(registry, stale_runs, STALE_ERROR)
    for sweep_id in stale_sweeps:
        registry.finish_sweep(sweep_id, "interrupted")
    return stale_runs


def _alive(pid: int | None) -> bool:
    return bool(pid) and pid_exists(pid)


def mark_interrupted(registry: Registry, run_ids: list[str], error: str) -> None:
    """Finish as interrupted every run among `run_ids` that is still `running`."""
    for run_id in registry.still_running(run_ids):
        registry.finish_run(run_id, "interrupted", error=error)


def _default_output_dir(name: str) -> Path:
    from transferlab.runner import default_output_dir

    return default_output_dir() / "sweeps" / name


# -- execution -------------------------------------------------------------------------------


def _jobs(
    todo: list[PlannedRun],
    spec: SweepSpec,
    registry: Registry,
    sweep_id: str,
    folder: Path,
    warm_for: int = 0,
) -> list[RunJob]:
    """The runs to do as executor jobs, each recorded in the registry as part of the sweep.

    `warm_for`: the workers (0: cold kernels). A job warms a kernel for a following run when
    at least that many jobs come after it: the last job on each worker warms none, so that
    no spare kernel takes a core from the sweep's last runs for nothing."""
    if not todo:
        return []
    notebook = str(spec.template_path)
    paths_from = str(spec.path.parent if spec.path is not None else Path.cwd())
    # Inspected once for the whole sweep (cached since the spec was read, unless the
    # notebook changed since); workers adopt it instead of inspecting it again.
    described = signature(spec.template_path)
    return [
        RunJob(
            key=run.key,
            run_id=new_run_id(run.template),
            template=notebook,
            parameters=run.parameters,
            paths_from=paths_from,
            registry_path=str(registry.location),
            output_dir=str(folder),
            sweep_id=sweep_id,
            signature=described,
            warm_next_kernel=bool(warm_for) and len(todo) - 1 - index >= warm_for,
        )
        for index, run in enumerate(todo)
    ]


def _execute(
    jobs: list[RunJob],
    executor_class: type[SweepExecutor],
    settings: ExecutorSettings,
    rows: dict[str, RunRow],
    registry: Registry,
    sweep_id: str,
    bar: Any,
) -> None:
    executor = executor_class(settings)
    with stopped_on_error(executor, rows):
        for job in jobs:
            rows[job.key].run_id = job.run_id
            registry.add_sweep_run(sweep_id, job.key, job.run_id)
            executor.submit(job)
        for result in executor.as_finished(len(jobs)):
            _apply(rows[result.key], result)
            bar.update(1)
            failed = sum(r.status == "failed" for r in rows.values())
            if failed:
                bar.set_postfix(failed=failed)
    executor.close()


@contextmanager
def stopped_on_error(executor: SweepExecutor, rows: dict[str, RunRow]) -> Iterator[None]:
    """Anything raised (Ctrl-C, SIGTERM, a broken executor) stops the executor first; the
    runs it reports finished on the way fill the rows still pending."""
    try:
        yield
    except BaseException:
        for result in executor.stop():
            if rows[result.key].status == "pending":
                _apply(rows[result.key], result)
        raise


def _apply(row: RunRow, result: RunResult) -> None:
    row.run_id = result.run_id or row.run_id  # an executor may retry a run under a new id
    row.status = result.status
    row.error = result.error
    row.output_notebook = result.output_notebook
    if result.versions:
        row.version = result.versions[0]


# -- after the runs --------------------------------------------------------------------------


def _fill_from_registry(registry: Registry, rows: list[RunRow]) -> None:
    """Status, error, version, test accuracy and duration as the registry recorded them."""
    ids = [row.run_id for row in rows if row.run_id]
    if not ids:
        return
    runs = registry.run_outcomes(ids)
    for row in rows:
        found = runs.get(row.run_id or "")
        if found is None:
            if row.status in ("pending", "interrupted"):  # stopped before the run started
                row.status, row.run_id = "pending", None
            continue
        if row.status != "reused":
            row.status = found["status"]
            row.error = found["error"] or row.error
        row.output_notebook = found["output_notebook"] or row.output_notebook
        row.seconds = float(found["seconds"]) if found["seconds"] is not None else None
        row.version = found["version_id"] or row.version
        row.test_accuracy = found["test_accuracy"]
        row.pruned_step = found.get("pruned_step")


def _progress_bar(total: int, name: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"sweep {name}", unit="run", disable=not enabled)


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM (a `kill`, a job scheduler) stop a sweep. SIGINT is set
    explicitly: a process started in the background of a script inherits it ignored."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)


@contextmanager
def _ignoring_interrupts() -> Iterator[None]:
    """The bookkeeping after a stop finishes even if Ctrl-C is pressed again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
