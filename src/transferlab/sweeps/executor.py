"""Running a planned sweep: worker processes, failure isolation, interrupts, bookkeeping.

Every planned run is either reused (an earlier succeeded run with the same request and data)
or run through `transferlab.runner.run_template` in a worker process, with its own output
notebook and registry run. A failing run is recorded as failed and never stops the others.
Ctrl-C or SIGTERM stops submitting, stops the workers (their runs are recorded as
interrupted), and marks anything this sweep started that is still `running` as interrupted.
A sweep killed outright is cleaned up by the next invocation of the same sweep: its runs and
its sweep row, whose process is gone, are marked interrupted before anything starts.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.registry import Registry
from transferlab.registry.api import new_run_id
from transferlab.sweeps import workers as worker_setup
from transferlab.sweeps.plan import PlannedRun, expand, reusable_run, succeeded_runs
from transferlab.sweeps.spec import SweepSpec

INTERRUPTED_ERROR = "Interrupted: the sweep was stopped before this run finished."
STALE_ERROR = "Interrupted: the process running it is gone (the sweep was killed)."
_STOP_WAIT_S = 30.0


@dataclass
class RunRow:
    """One planned run's outcome, as the summary shows it."""

    key: str
    label: str
    varying: dict[str, Any]
    parameters: dict[str, Any]
    status: str = "pending"  # pending | reused | succeeded | failed | interrupted
    run_id: str | None = None
    version: str | None = None
    test_accuracy: float | None = None
    seconds: float | None = None
    error: str | None = None
    output_notebook: str | None = None


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
    report: str | None = None
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    @property
    def ok(self) -> bool:
        return all(row.status in ("succeeded", "reused") for row in self.rows)


def plan_sweep(
    spec: SweepSpec, registry: Registry, *, rerun: bool = False
) -> list[tuple[PlannedRun, str | None]]:
    """Each planned run with the id of the earlier run it reuses (None: it must run)."""
    planned = expand(spec)
    if rerun:
        return [(run, None) for run in planned]
    candidates = succeeded_runs(registry, spec.template)
    return [(run, reusable_run(run, registry, candidates)) for run in planned]


def run_sweep(
    spec: SweepSpec,
    registry: Registry,
    *,
    workers: int | None = None,
    rerun: bool = False,
    output_dir: str | Path | None = None,
    progress: bool = True,
    on_start: Callable[[str, int, int], None] | None = None,
) -> SweepResult:
    """Run a sweep to the end (or until interrupted) and return its summary rows."""
    started = time.monotonic()
    workers = worker_setup.default_workers() if workers is None else workers
    worker_setup.check_workers(workers)
    threads = worker_setup.threads_per_worker(workers)
    prepare_registry(spec, registry)
    interrupt_stale(registry, spec.name)
    plan = plan_sweep(spec, registry, rerun=rerun)
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
    if on_start:
        on_start(sweep_id, len(todo), len(plan) - len(todo))
    interrupted = False
    bar = _progress_bar(len(plan), spec.name, progress)
    bar.update(len(plan) - len(todo))
    try:
        with _stop_signals():
            notebook = str(spec.template_path)
            paths_from = spec.path.parent if spec.path is not None else Path.cwd()
            _execute(
                todo, notebook, paths_from, rows, registry, sweep_id, folder, workers, threads, bar
            )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    with _ignoring_interrupts():
        started_ids = [row.run_id for row in rows.values() if row.run_id]
        mark_interrupted(registry, started_ids, INTERRUPTED_ERROR)
        _fill_from_registry(registry, list(rows.values()))
        result = SweepResult(
            sweep_id=sweep_id,
            name=spec.name,
            template=spec.template,
            workers=workers,
            threads_per_worker=threads,
            rows=list(rows.values()),
            wall_s=time.monotonic() - started,
            status="succeeded",
            output_dir=str(folder),
        )
        if interrupted or any(r.status in ("interrupted", "pending") for r in result.rows):
            result.status = "interrupted"
        elif not result.ok:
            result.status = "failed"
        registry.finish_sweep(
            sweep_id,
            result.status,
            summary={"counts": result.counts(), "wall_s": round(result.wall_s, 2)},
        )
    if interrupted:
        raise SweepInterrupted(result)
    return result


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the sweep; `result` holds what was recorded."""

    def __init__(self, result: SweepResult):
        super().__init__("sweep interrupted")
        self.result = result


# -- preparation -----------------------------------------------------------------------------


def prepare_registry(spec: SweepSpec, registry: Registry) -> None:
    """What parallel runs would otherwise race to do: load the catalog into a new registry,
    and register each model folder used as a base once (so runs share one base version)."""
    from transferlab.initialize import ensure_initialized
    from transferlab.runner import TEMPLATE_NAMES

    if spec.template in TEMPLATE_NAMES:  # the bundled templates initialize a new registry
        ensure_initialized(registry)
    if spec.template != "finetune":
        return
    from transferlab.catalog.importers import register_local_folder
    from transferlab.finetuning.base import resolve_base

    bases = {str(p["base"]) for p in _all_parameter_sets(spec) if p.get("base")}
    for base in sorted(bases):
        if not Path(base).is_dir():
            continue
        resolved = resolve_base(base, registry)
        if resolved.version_id is None and resolved.record_to_register is not None:
            register_local_folder(registry, resolved.record_to_register, base)


def _all_parameter_sets(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    for run in expand(spec):
        yield run.parameters


def interrupt_stale(registry: Registry, name: str) -> list[str]:
    """Mark runs and sweeps of sweeps called `name` that are still `running` although the
    process that ran them (on this host) is gone, as interrupted. Returns the run ids."""
    host = socket.gethostname()
    stale_runs = [
        row["run_id"]
        for row in registry.query(
            "SELECT r.run_id, r.pid FROM runs r JOIN sweeps s USING (sweep_id) "
            "WHERE s.name = ? AND r.status = 'running' AND r.host = ?",
            [name, host],
        )
        if not _alive(row["pid"])
    ]
    mark_interrupted(registry, stale_runs, STALE_ERROR)
    for row in registry.query(
        "SELECT sweep_id, pid FROM sweeps WHERE name = ? AND status = 'running' AND host = ?",
        [name, host],
    ):
        if not _alive(row["pid"]):
            registry.finish_sweep(row["sweep_id"], "interrupted")
    return stale_runs


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_interrupted(registry: Registry, run_ids: list[str], error: str) -> None:
    """Finish as interrupted every run among `run_ids` that is still `running`."""
    if not run_ids:
        return
    marks = ", ".join("?" for _ in run_ids)
    for row in registry.query(
        f"SELECT run_id FROM runs WHERE status = 'running' AND run_id IN ({marks})", run_ids
    ):
        registry.finish_run(row["run_id"], "interrupted", error=error)


def _default_output_dir(name: str) -> Path:
    from transferlab.runner import default_output_dir

    return default_output_dir() / "sweeps" / name


# -- execution -------------------------------------------------------------------------------


def _execute(
    todo: list[PlannedRun],
    notebook: str,
    paths_from: Path,
    rows: dict[str, RunRow],
    registry: Registry,
    sweep_id: str,
    folder: Path,
    workers: int,
    threads: int,
    bar: Any,
) -> None:
    if not todo:
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(todo)),
        mp_context=context,
        initializer=worker_setup.init_worker,
        initargs=(threads, os.getpid()),
    )
    futures: dict[Future, str] = {}
    try:
        for run in todo:
            run_id = new_run_id(run.template)
            rows[run.key].run_id = run_id
            registry.add_sweep_run(sweep_id, run.key, run_id)
            future = pool.submit(
                execute_run,
                notebook,
                run.parameters,
                str(paths_from),
                str(registry.path),
                str(folder),
                sweep_id,
                run_id,
            )
            futures[future] = run.key
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                row = rows[futures[future]]
                _apply(row, _outcome(future, row.run_id))
                bar.update(1)
                failed = sum(r.status == "failed" for r in rows.values())
                if failed:
                    bar.set_postfix(failed=failed)
    except BaseException:
        _stop_pool(pool)
        for future, key in futures.items():
            if future.done() and not future.cancelled() and rows[key].status == "pending":
                _apply(rows[key], _outcome(future, rows[key].run_id))
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued runs, then stop running ones (SIGTERM: the worker records its run as
    interrupted and stops its kernel), killing any worker that does not stop in time."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + _STOP_WAIT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(5)


def _outcome(future: Future, run_id: str | None) -> dict[str, Any]:
    try:
        return future.result()
    except BaseException as exc:  # the worker died (killed, out of memory) or was stopped
        return {
            "run_id": run_id,
            "status": "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
            "error": _error_line(exc),
        }


def _apply(row: RunRow, outcome: dict[str, Any]) -> None:
    row.status = outcome.get("status", "failed")
    row.error = outcome.get("error")
    row.output_notebook = outcome.get("output_notebook")
    if outcome.get("versions"):
        row.version = outcome["versions"][0]


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, TransferlabError):
        return exc.problem
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def execute_run(
    template: str,
    parameters: dict[str, Any],
    paths_from: str,
    registry_path: str,
    output_dir: str,
    sweep_id: str,
    run_id: str,
) -> dict[str, Any]:
    """One run in a worker process; every outcome comes back as a dict, never an exception."""
    from transferlab.runner import run_template

    if worker_setup.stopping():
        return {"run_id": run_id, "status": "pending"}
    worker_setup.mark_busy(True)
    registry = Registry(registry_path)
    try:
        outcome = run_template(
            template,
            parameters,
            registry=registry,
            output_dir=output_dir,
            run_id=run_id,
            sweep_id=sweep_id,
            progress_bar=False,
            paths_from=paths_from,
        )
        if outcome.status == "failed" and worker_setup.stopping():
            # Stopped inside a registry call, DuckDB reports "Query interrupted": the run was
            # interrupted, not wrong.
            registry.finish_run(run_id, "interrupted", error=INTERRUPTED_ERROR)
            return {"run_id": run_id, "status": "interrupted", "error": INTERRUPTED_ERROR}
        return {
            "run_id": run_id,
            "status": outcome.status,
            "error": outcome.error,
            "versions": outcome.versions,
            "output_notebook": str(outcome.output_notebook),
        }
    except KeyboardInterrupt:  # the runner recorded the run as interrupted
        return {"run_id": run_id, "status": "interrupted", "error": INTERRUPTED_ERROR}
    except Exception as exc:  # before or after papermill: bad request, registry trouble
        message = _error_line(exc)
        status = "failed"
        if worker_setup.stopping():
            status, message = "interrupted", INTERRUPTED_ERROR
        try:
            if registry.query("SELECT 1 FROM runs WHERE run_id = ?", [run_id]):
                registry.finish_run(run_id, status, error=message)
        except Exception:  # keep the first error; the parent marks leftovers
            pass
        return {"run_id": run_id, "status": status, "error": message}
    finally:
        worker_setup.mark_busy(False)


# -- after the runs --------------------------------------------------------------------------


def _fill_from_registry(registry: Registry, rows: list[RunRow]) -> None:
    """Status, error, version, test accuracy and duration as the registry recorded them."""
    ids = [row.run_id for row in rows if row.run_id]
    if not ids:
        return
    marks = ", ".join("?" for _ in ids)
    runs = {
        r["run_id"]: r
        for r in registry.query(
            "SELECT run_id, status, error, output_notebook, "
            "date_diff('millisecond', started_at, finished_at) / 1000.0 AS seconds "
            f"FROM runs WHERE run_id IN ({marks})",
            ids,
        )
    }
    versions: dict[str, str] = {}
    for r in registry.query(
        f"SELECT run_id, version_id FROM model_versions WHERE run_id IN ({marks}) "
        "ORDER BY created_at DESC",
        ids,
    ):
        versions[r["run_id"]] = r["version_id"]
    accuracy = {
        r["run_id"]: r["value"]
        for r in registry.query(
            f"SELECT run_id, value FROM results WHERE run_id IN ({marks}) "
            "AND split = 'test' AND metric = 'accuracy'",
            ids,
        )
    }
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
        row.version = versions.get(row.run_id, row.version)
        row.test_accuracy = accuracy.get(row.run_id)


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
