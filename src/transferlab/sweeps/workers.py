"""Worker processes of a sweep: how many, how many torch threads each, and how they stop.

Each worker runs one template run at a time through papermill, so a run has two processes:
the worker and its notebook kernel. Threads are divided (OMP/MKL variables, inherited by the
kernel, which torch reads when it starts) so that workers x threads = the cores this process
may use.

Stopping: the sweep's parent process decides. A worker ignores SIGINT (Ctrl-C reaches every
process of the terminal's group) and on SIGTERM kills its kernel and raises KeyboardInterrupt,
so the runner records the run as interrupted. A worker also gets SIGTERM when the parent dies
(Linux parent-death signal), so a killed sweep leaves no orphan training on.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Imported here, never in the SIGTERM handler: a handler that imports psutil while the
# interrupted code is itself importing it gets a half-initialised module (AttributeError),
# and the run ended as failed with that error instead of interrupted.
import psutil

from transferlab.errors import TransferlabError

if TYPE_CHECKING:
    from transferlab.parameters import TemplateSignature

# Memory one MiniLM LoRA run needs (worker + kernel + model + training), measured ~1.2-1.5 GB.
MEMORY_PER_WORKER_BYTES = int(1.5 * 2**30)
_PR_SET_PDEATHSIG = 1
_busy = False
_stopping = False
# (resolved notebook path, mtime) -> the signature the sweep inspected (adopt_signature)


def available_cpus() -> int:
    """CPUs this process may use: affinity mask and cgroup quota."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = count or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


def available_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def default_workers() -> int:
    """One worker per core, fewer when memory cannot hold that many runs.

    Why: a small run spends much of its time in single-threaded work (kernel start, imports,
    model loading, plots), so one worker per core keeps the cores busy where one worker with
    every thread leaves them idle; more workers than cores only add contention and memory.
    benchmarks/sweep_scaling.py, 16 small MiniLM runs on 2 cores: 1 worker 303 s, 2 workers
    198 s, 4 workers 197 s.
    """
    workers = available_cpus()
    memory = available_memory_bytes()
    if memory is not None:
        workers = min(workers, max(1, memory // MEMORY_PER_WORKER_BYTES))
    return max(1, workers)


def check_workers(workers: int) -> None:
    """Refuse a worker count below one (0 used to mean the default, quietly)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise TransferlabError(
            f"--workers {workers}: a sweep needs at least one worker process.",
            f"Use --workers 1 or more, or leave it out for one per core ({default_workers()} "
            "here).",
        )


def threads_per_worker(workers: int) -> int:
    return max(1, available_cpus() // max(1, workers))


def init_worker(
    threads: int,
    parent_pid: int,
    gpu_shares: Any = None,
    warm_start: tuple[str, str] | None = None,
) -> None:
    """Runs first in every worker process (before torch is imported anywhere in it).
    `gpu_shares`: a queue of CUDA_VISIBLE_DEVICES values, one taken by each worker.
    `warm_start`: (template, output folder) of the sweep's runs when they start on warm
    kernels: the kernel of the worker's first run (and the zygote it is forked from) starts
    now, its imports done while this worker imports papermill and takes its first job."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    if gpu_shares is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_shares.get(timeout=60)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_terminate)
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if warm_start is not None:
        from transferlab import warm_kernels

        template, folder = warm_start
        Path(folder).mkdir(parents=True, exist_ok=True)  # the kernel's working folder
        warm_kernels.prepare(Path(template), Path(folder), zygote_now=True)


def mark_busy(busy: bool) -> None:
    global _busy
    _busy = busy


def stopping() -> bool:
    """True once the parent asked this worker to stop: it starts no further run (runs the
    pool had already queued for it come back as not started)."""
    return _stopping


def adopt_signature(template: str | Path, signature: TemplateSignature) -> None:
    """Have `transferlab.parameters.signature(template)` answer `signature`, which the sweep
    inspected once: each worker is a fresh (spawned) process, so without this every worker ran
    papermill's inspect_notebook on the template again."""
    from transferlab.parameters import know_signature

    know_signature(Path(template), signature)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _exit_when_orphaned(parent_pid: int) -> None:
    """An idle worker whose parent is gone would wait for work forever: leave instead (a busy
    one first records its run, interrupted by the parent-death signal)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid and not _busy:
            os._exit(0)


def _on_terminate(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True
    if not _busy:
        kill_children()  # a warm kernel waiting for the next run (transferlab.warm_kernels)
        os._exit(0)
    try:
        kill_children()
    finally:
        raise KeyboardInterrupt  # noqa: B012 - the run must end as interrupted whatever happened


def kill_children(grace_s: float = 3.0) -> None:
    """Stop this process's children (the notebook kernel) and theirs."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
