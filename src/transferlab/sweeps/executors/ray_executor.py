"""`ray`: each run of a sweep is one Ray task on a cluster (`--ray-address`, or `executor:
{name: ray, address: ...}` in the sweep file), reserving the sweep file's `resources:` (cpus,
default 1; gpus; memory_gb). Ray imports lazily: without the `ray` extra only choosing this
executor fails, with the command that installs it.

Every task is submitted at once and the cluster's free resources decide how many run together
(--workers does not apply). A run whose worker process or node dies (Ray reports it instead of
a result) is run again under a new run id, at most `max_retries` times (default 2): the dead
attempt's row is finished `interrupted` with the reason and the retry's id, and the sweep's
planned run is linked to the retry (`add_sweep_run`), so the history keeps every attempt and
none is left `running`. Past the limit the last attempt is recorded failed.

Stopping (Ctrl-C, SIGTERM): queued tasks are cancelled, running ones get a KeyboardInterrupt
(the run records itself interrupted and stops its kernel); a task still running after 30 s is
killed with its worker, and the sweep marks its run interrupted. A driver killed outright takes
its tasks with it (Ray ends a dead driver's job and kills its workers; each notebook kernel
exits with its worker); the next invocation marks the runs interrupted and resumes
(sweeps/run.py interrupt_stale).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from transferlab.registry.api import new_run_id
from transferlab.sweeps.executors.base import (
    INTERRUPTED_ERROR,
    ExecutorSettings,
    RunJob,
    RunResult,
    SweepExecutor,
    crashed,
    error_line,
)
from transferlab.sweeps.executors.ray_connect import (
    check_registry_reach,
    check_settings,
    connect,
    disconnect,
    import_ray,
    node_hosts,
)
from transferlab.sweeps.executors.ray_tasks import land_notebook, run_on_worker

SETTINGS = ("address", "max_retries")
DEFAULT_RETRIES = 2
STOP_WAIT_S = 30.0
GB = 2**30


class RayExecutor(SweepExecutor):
    name = "ray"
    description = (
        "Ray tasks on a cluster (--ray-address), one run each with the sweep's resources:, "
        "retried when a worker or node dies (needs the ray extra)"
    )

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        check_settings(options, SETTINGS)

    @classmethod
    def prepare(cls, settings: ExecutorSettings, registry_location: str) -> None:
        """Connect (a clear error if ray is missing or the cluster does not answer) and refuse
        a registry some node cannot reach."""
        cls.check_options(settings.options)
        ray = import_ray()
        connect(settings.options.get("address"))
        try:
            check_registry_reach(registry_location, node_hosts(ray))
        except BaseException:
            disconnect()
            raise

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        self.check_options(settings.options)
        self._ray = import_ray()
        connect(settings.options.get("address"))
        resources = settings.resources
        self._cpus = resources.cpus if resources.cpus is not None else 1
        options: dict[str, Any] = {
            "num_cpus": self._cpus,
            "num_gpus": resources.gpus or 0,
            "max_retries": 0,  # retried here, under a new run id (see the module's docstring)
        }
        if resources.memory_gb:
            options["memory"] = int(resources.memory_gb * GB)
        self._remote = self._ray.remote(run_on_worker).options(**options)
        self._threads = max(1, int(self._cpus))
        self._retries = int(settings.options.get("max_retries", DEFAULT_RETRIES))
        self._tasks: dict[Any, RunJob] = {}  # ObjectRef -> the job it runs
        self._attempts: dict[str, int] = {}  # planned run key -> attempts so far
        self._templates: dict[str, Any] = {}  # template path -> its bytes in the object store
        self._registry: Any = None

    def submit(self, job: RunJob) -> None:
        self._attempts[job.key] = self._attempts.get(job.key, 0) + 1
        template = self._templates.get(job.template)
        if template is None:
            template = self._ray.put(Path(job.template).read_bytes())
            self._templates[job.template] = template
        self._tasks[self._remote.remote(job, self._threads, template)] = job

    def wait(self, timeout: float) -> list[RunResult]:
        if not self._tasks:
            return []
        refs = list(self._tasks)
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        results = []
        for ref in ready:
            job = self._tasks.pop(ref)
            result = self._collect(ref, job, retry=True)
            if result is not None:
                results.append(result)
        return results

    def _collect(self, ref: Any, job: RunJob, *, retry: bool) -> RunResult | None:
        """The job's result; None when it was submitted again (its worker died)."""
        exceptions = self._ray.exceptions
        try:
            result, notebook = self._ray.get(ref)
        except exceptions.TaskCancelledError as exc:
            return RunResult(job.key, job.run_id, "interrupted", error_line(exc))
        except exceptions.RayTaskError as exc:  # raised inside run_on_worker: a bug, not a death
            return crashed(job, exc)
        except exceptions.RayError as exc:  # the worker or its node died
            return self._worker_died(job, exc, retry)
        land_notebook(result, notebook)
        return result

    def _worker_died(self, job: RunJob, exc: BaseException, retry: bool) -> RunResult | None:
        reason = error_line(exc)
        registry = self._open_registry(job)
        attempts = self._attempts.get(job.key, 1)
        if retry and attempts <= self._retries:
            again = replace(job, run_id=_next_run_id(job.run_id))
            _finish_if_running(
                registry,
                job.run_id,
                "interrupted",
                f"Interrupted: its Ray worker or node died ({reason}); run again as "
                f"{again.run_id}.",
            )
            registry.add_sweep_run(job.sweep_id, job.key, again.run_id)
            self.submit(again)
            return None
        message = f"Its Ray worker or node died {attempts} time(s); last: {reason}"
        status = "failed" if retry else "interrupted"
        _finish_if_running(registry, job.run_id, status, message)
        return RunResult(job.key, job.run_id, status, message)

    def _open_registry(self, job: RunJob) -> Any:
        if self._registry is None:
            from transferlab.registry import Registry

            self._registry = Registry(job.registry_path)
        return self._registry

    def stop(self) -> list[RunResult]:
        """Cancel every task (queued ones never start; running ones get a KeyboardInterrupt
        and record their run as interrupted); kill the workers of those still running after
        30 s; return the results of the tasks that finished."""
        results: list[RunResult] = []
        try:
            refs = list(self._tasks)
            for ref in refs:
                self._cancel(ref, force=False)
            deadline = time.monotonic() + STOP_WAIT_S
            while self._tasks and time.monotonic() < deadline:
                ready, _ = self._ray.wait(list(self._tasks), num_returns=1, timeout=1.0)
                if ready:
                    ready, _ = self._ray.wait(
                        list(self._tasks), num_returns=len(self._tasks), timeout=0
                    )
                for ref in ready:
                    job = self._tasks.pop(ref)
                    result = self._collect(ref, job, retry=False)
                    if result is not None and result.status != "pending":
                        results.append(result)
            for ref, job in list(self._tasks.items()):
                self._cancel(ref, force=True)  # kills its worker; the kernel exits with it
                _finish_if_running(
                    self._open_registry(job), job.run_id, "interrupted", INTERRUPTED_ERROR
                )
                # under its own run id: a retry's id is not the one the sweep started with
                results.append(RunResult(job.key, job.run_id, "interrupted", INTERRUPTED_ERROR))
            self._tasks.clear()
        except BaseException:  # must not raise: the sweep marks what is left `running`
            pass
        self.close()
        return results

    def _cancel(self, ref: Any, *, force: bool) -> None:
        with contextlib.suppress(Exception):
            self._ray.cancel(ref, force=force)

    def close(self) -> None:
        disconnect()


def _next_run_id(run_id: str) -> str:
    """A fresh id of the same kind (`finetune-20261203-...` -> `finetune-<now>-<hex>`)."""
    kind = run_id.rsplit("-", 3)[0] if run_id.count("-") >= 3 else run_id
    return new_run_id(kind)


def _finish_if_running(registry: Any, run_id: str, status: str, error: str) -> None:
    """Finish the run of a dead attempt, if it got as far as being recorded."""
    try:
        if registry.still_running([run_id]):
            registry.finish_run(run_id, status, error=error)
    except Exception:  # the sweep's end marks what is left `running`
        pass
