"""`process`: the built-in executor, a pool of local worker processes.

Each worker is a fresh (spawned) Python process set up by transferlab.sweeps.workers: torch
threads divided between workers, SIGINT ignored, SIGTERM stops its run as interrupted, and
it dies with the sweep. With `resources: {gpus: N}` each worker has N GPUs of its own
(transferlab.sweeps.gpus). One job at a time per worker; a job whose worker dies comes back
failed and the others go on.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from transferlab.sweeps import workers as worker_setup
from transferlab.sweeps.executors.base import (
    ExecutorSettings,
    RunJob,
    RunResult,
    SweepExecutor,
    crashed,
    execute_run,
)
from transferlab.sweeps.gpus import gpu_shares

STOP_WAIT_S = 30.0


class ProcessExecutor(SweepExecutor):
    """concurrent.futures.ProcessPoolExecutor with the sweep's worker setup; `stop` sends
    SIGTERM to its workers (they record their runs as interrupted and kill their notebook
    kernels) and kills any that has not stopped after 30 s."""

    name = "process"
    description = "local worker processes, one run each at a time (--workers of them)"

    @classmethod
    def prepare(cls, settings: ExecutorSettings, registry_location: str) -> None:
        """Refuse GPUs per run (`resources: {gpus: N}`) this machine cannot give."""
        if settings.resources.gpus:
            gpu_shares(settings.resources.gpus, settings.workers)

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        self._context = _RecordingContext(multiprocessing.get_context("spawn"))
        workers, shares = settings.workers, None
        if settings.resources.gpus:  # each worker takes one share of the GPUs as it starts
            found = gpu_shares(settings.resources.gpus, settings.workers)
            workers, shares = len(found), self._context.Queue()
            for share in found:
                shares.put(share)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=self._context,  # type: ignore[arg-type]  # delegates to a context
            initializer=worker_setup.init_worker,
            initargs=(settings.threads_per_worker, os.getpid(), shares, settings.warm_start),
        )
        self._futures: dict[Future, RunJob] = {}
        self._pending: set[Future] = set()

    def submit(self, job: RunJob) -> None:
        future = self._pool.submit(execute_run, job)
        self._futures[future] = job
        self._pending.add(future)

    def wait(self, timeout: float) -> list[RunResult]:
        if not self._pending:
            return []
        done, self._pending = wait(self._pending, timeout=timeout, return_when=FIRST_COMPLETED)
        return [self._result(future) for future in done]

    def stop(self) -> list[RunResult]:
        """Cancel queued jobs, then stop the running ones (SIGTERM: the worker records its
        run as interrupted and stops its kernel), killing any worker that does not stop in
        time."""
        processes = self._context.processes()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
        finished = [f for f in self._pending if f.done() and not f.cancelled()]
        self._pending.clear()
        return [self._result(future) for future in finished]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _result(self, future: Future) -> RunResult:
        job = self._futures[future]
        try:
            return future.result()
        except BaseException as exc:  # the worker died (killed, out of memory) or was stopped
            return crashed(job, exc)


class _RecordingContext:
    """A multiprocessing context that keeps a record of every process it creates.

    The pool is given this as its `mp_context` (a documented argument) and creates each
    worker through `Process(...)`, so the record holds exactly this pool's workers, from
    whichever thread started them and including one still starting up, without reading the
    pool's private attributes. The alternatives miss cases: pids reported by the workers'
    initializer leave out a worker that has not reached it yet (it would then run a queued
    job after the stop), and the children of this process also include unrelated ones
    (multiprocessing's resource tracker, another pool). Everything else is the wrapped
    context's.
    """

    def __init__(self, context: BaseContext) -> None:
        self._context = context
        self._created: list[BaseProcess] = []
        self._lock = threading.Lock()

    def Process(self, *args: Any, **kwargs: Any) -> BaseProcess:  # noqa: N802 - the context API
        process = self._context.Process(*args, **kwargs)
        with self._lock:
            self._created.append(process)
        return process

    def processes(self) -> list[BaseProcess]:
        """The started processes of the record."""
        with self._lock:
            return [p for p in self._created if p.pid is not None]

    def get_context(self, method: str | None = None) -> Any:
        return self if method is None else self._context.get_context(method)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)
