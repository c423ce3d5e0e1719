"""The interface of a sweep executor, and the one call every executor runs for each job.

A sweep (transferlab.sweeps.run) plans its runs, records each in the registry, and hands them
to an executor one `RunJob` at a time. The executor decides where and how many run at once
(worker processes, a cluster, the sweep's own process); wherever a job runs, it runs
`execute_run(job)`, which runs the template, records the run and returns a `RunResult`,
never an exception. The sweep collects results as they finish (`wait`, `as_finished`),
and on Ctrl-C or SIGTERM calls `stop`: queued jobs are dropped and running ones interrupted,
so that their runs are recorded as interrupted (the sweep marks any it finds still `running`).

An executor is a class, created once per sweep with the sweep's `ExecutorSettings`. Its
module should import nothing heavy at import time: `transferlab executors` lists them all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.errors import TransferlabError
from transferlab.sweeps.resources import RunResources

if TYPE_CHECKING:
    from transferlab.parameters import TemplateSignature

INTERRUPTED_ERROR = "Interrupted: the sweep was stopped before this run finished."
# What a job can end as. 'pending': it never started (stopped first); the sweep plans it again.
# 'pruned': its sweep's pruning rule stopped it early (transferlab.finetuning.pruning).
RESULT_STATUSES = ("succeeded", "failed", "interrupted", "pending", "pruned")


@dataclass(frozen=True)
class ExecutorSettings:
    """What the sweep asks of its executor."""

    workers: int  # runs at once (the sweep's --workers, at most its number of runs)
    threads_per_worker: int  # torch / BLAS threads each run may use
    # Each run's share (the sweep file's `resources:`); an executor may ignore it.
    resources: RunResources = field(default_factory=RunResources)
    # The executor's own settings (`executor: {name: ..., KEY: VALUE}`, --ray-address).
    options: Mapping[str, Any] = field(default_factory=dict)
    # (template, output folder) when runs start on warm kernels: a worker process may start
    # the kernel of its first run as it starts (transferlab.sweeps.workers.init_worker).
    warm_start: tuple[str, str] | None = None


@dataclass(frozen=True)
class RunJob:
    """One planned run, recorded in the registry as part of the sweep, ready to execute.
    Plain, picklable values: an executor may send it to another process."""

    key: str  # the planned run's stable key (transferlab.sweeps.plan.run_key)
    run_id: str  # the registry run id the run must be recorded under
    template: str  # path of the template notebook
    parameters: dict[str, Any]
    paths_from: str  # relative paths among the parameters start here
    registry_path: str
    output_dir: str  # where the output notebook goes
    sweep_id: str
    # The template's parameters, inspected once by the sweep: a worker process uses these
    # instead of inspecting the notebook again (transferlab.sweeps.workers.adopt_signature).
    signature: TemplateSignature | None = None
    # Start a warm kernel for a following run while this one executes (transferlab.
    # warm_kernels): the sweep says so when more jobs follow for this job's worker.
    warm_next_kernel: bool = False


@dataclass
class RunResult:
    """How a job ended, as its worker saw it (the registry has the last word)."""

    key: str
    run_id: str | None
    status: str  # one of RESULT_STATUSES
    error: str | None = None
    versions: list[str] = field(default_factory=list)
    output_notebook: str | None = None


class SweepExecutor(ABC):
    """Runs a sweep's jobs. Created once per sweep; `submit` every job, collect each result
    once through `wait` (or `as_finished`), then `close`; or `stop` at any point."""

    name: ClassVar[str]  # what `--executor` and a sweep file's `executor:` take
    description: ClassVar[str]  # one line, for `transferlab executors`

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Refuse settings this executor does not take (TransferlabError); by default, any."""
        if options:
            raise TransferlabError(
                f"The {cls.name} executor takes no settings (got {', '.join(sorted(options))}).",
                f"Write `executor: {cls.name}`.",
            )

    @classmethod  # noqa: B027 - optional: most executors have nothing to check
    def prepare(cls, settings: ExecutorSettings, registry_location: str) -> None:
        """Refuse what cannot work (an unreachable cluster, a registry its runs cannot
        reach) before the sweep writes anything."""

    @abstractmethod
    def submit(self, job: RunJob) -> None:
        """Queue one job; it must end as `execute_run(job)` in some process."""

    @abstractmethod
    def wait(self, timeout: float) -> list[RunResult]:
        """The jobs that finished since the last call, waiting at most `timeout` seconds for
        one (an empty list when none did). A job whose worker crashed comes back as failed."""

    @abstractmethod
    def stop(self) -> list[RunResult]:
        """Drop the queued jobs and interrupt the running ones (each records its run as
        interrupted), and return when they have stopped, with the results not returned yet
        of the jobs that finished. Called from the sweep's main thread, possibly inside
        `submit` or `wait`; must not raise."""

    def close(self) -> None:  # noqa: B027 - optional: most executors have nothing to release
        """Release workers once every result was collected."""

    def as_finished(self, count: int, poll_s: float = 1.0) -> Iterator[RunResult]:
        """Results as jobs finish, until `count` have come back."""
        returned = 0
        while returned < count:
            for result in self.wait(poll_s):
                returned += 1
                yield result


def execute_run(job: RunJob) -> RunResult:
    """Run one job where it stands (a worker process, or this one); every outcome comes
    back as a RunResult, never an exception."""
    from transferlab.registry import Registry
    from transferlab.runner import run_template
    from transferlab.sweeps import workers as worker_setup

    if worker_setup.stopping():
        return RunResult(job.key, job.run_id, "pending")
    if job.signature is not None:
        worker_setup.adopt_signature(job.template, job.signature)
    worker_setup.mark_busy(True)
    registry = Registry(job.registry_path)
    try:
        outcome = run_template(
            job.template,
            job.parameters,
            registry=registry,
            output_dir=job.output_dir,
            run_id=job.run_id,
            sweep_id=job.sweep_id,
            progress_bar=False,
            paths_from=job.paths_from,
            warm_next=job.warm_next_kernel and not worker_setup.stopping(),
            save_every_cell=False,  # saved every few seconds (transferlab.sparse_saves)
        )
        if outcome.status == "failed" and worker_setup.stopping():
            # Stopped inside a registry call, DuckDB reports "Query interrupted": the run was
            # interrupted, not wrong.
            registry.finish_run(job.run_id, "interrupted", error=INTERRUPTED_ERROR)
            return RunResult(job.key, job.run_id, "interrupted", INTERRUPTED_ERROR)
        return RunResult(
            job.key,
            job.run_id,
            outcome.status,
            outcome.error,
            list(outcome.versions),
            str(outcome.output_notebook),
        )
    except KeyboardInterrupt:  # the runner recorded the run as interrupted
        return RunResult(job.key, job.run_id, "interrupted", INTERRUPTED_ERROR)
    except Exception as exc:  # before or after papermill: bad request, registry trouble
        message = error_line(exc)
        status = "failed"
        if worker_setup.stopping():
            status, message = "interrupted", INTERRUPTED_ERROR
        try:
            if registry.run_exists(job.run_id):
                registry.finish_run(job.run_id, status, error=message)
        except Exception:  # keep the first error; the parent marks leftovers
            pass
        return RunResult(job.key, job.run_id, status, message)
    finally:
        worker_setup.mark_busy(False)


def crashed(job: RunJob, exc: BaseException) -> RunResult:
    """The result of a job whose worker raised instead of returning (killed, out of memory,
    stopped): interrupted for a KeyboardInterrupt, else failed."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    return RunResult(job.key, job.run_id, status, error_line(exc))


def error_line(exc: BaseException) -> str:
    if isinstance(exc, TransferlabError):
        return exc.problem
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()
