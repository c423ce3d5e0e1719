"""Warm kernels: the next run's notebook kernel, started and its imports done during a run.

A small run spends most of its fixed cost before its first line of work: kernel start (~1.5 s)
and imports (~8 s for the finetune template: pandas, plotly and transferlab in its first cell,
then torch, transformers, peft, datasets and accelerate, which transferlab imports lazily).
A process that runs several templates in a row (a sweep worker, any executor's long-lived
worker) keeps one *spare*: while a run executes, a background thread starts the next kernel
and imports those modules in it, so the next run begins with them loaded.

Each kernel still serves exactly one run: the spare is handed to one run and shut down after
it. The warm-up leaves nothing a run could see but the imported modules: it runs silently,
without history or an execution count, inside a function it deletes afterwards. The spare is
only handed to a run whose template, kernel name, working folder and environment (thread
settings included) are those it was started with, so its kernel sees what a cold one would;
otherwise, and when the spare died or its warm-up failed, the run starts a cold kernel as
before. Known difference: what the imports print (warnings) is not in the run's notebook.

The spare is shut down when it does not fit, when the process stops (`close`, also run at
exit; a sweep worker's SIGTERM kills its children) and, as a last resort, by ipykernel itself,
which exits when its parent process is gone (JPY_PARENT_PID).
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import contextlib
import logging
import multiprocessing.util
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import nbformat

from transferlab import forked_kernels
from transferlab.kernels import LocalKernelManager

log = logging.getLogger(__name__)

# Imported lazily by transferlab's code (inside functions) during a run: warmed for templates
# that import transferlab. `transformers` alone is a lazy module; its trainer is the cost.
# transferlab.kernel_warmup: transferlab's own lazy imports and the caches libraries build on
# first use.
LAZY_LIBRARIES = (
    "torch",
    "transformers",
    "transformers.trainer",
    "peft",
    "datasets",
    "accelerate",
    "transferlab.kernel_warmup",
)
STARTUP_TIMEOUT_S = 60.0  # as papermill's start_timeout
WARM_UP_TIMEOUT_S = 300.0  # a run waits at most this long for a spare still warming
SHUTDOWN_TIMEOUT_S = 10.0
# What nbclient passes to an IPython kernel it starts (NotebookClient.ipython_hist_file).
_HISTORY_ARGUMENT = "--HistoryManager.hist_file=:memory:"
# Runs in the spare: imports each module (one that fails is left for the run to meet), binds
# no name in the run's namespace.
_WARM_UP_CODE = """\
def __transferlab_warm_up(names):
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            pass
__transferlab_warm_up({names!r})
del __transferlab_warm_up
"""


@dataclass(frozen=True)
class KernelKey:
    """What makes a kernel fit a run: the template (its imports were warmed), the kernel,
    where it runs and the environment it inherited (thread settings, paths)."""

    template: str
    kernel_name: str
    cwd: str
    environment: tuple[tuple[str, str], ...]


def kernel_key(template: Path, cwd: Path) -> KernelKey:
    nb = nbformat.read(template, as_version=4)
    name = nb.metadata.get("kernelspec", {}).get("name") or "python3"
    return KernelKey(
        str(template.resolve()), name, str(cwd.resolve()), tuple(sorted(os.environ.items()))
    )


def warm_modules(template: Path) -> list[str]:
    """The modules the template's code cells import at top level, in order, then (for a
    template that imports transferlab) the libraries transferlab imports lazily."""
    names: list[str] = []
    for cell in nbformat.read(template, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics, a broken cell: the run will say
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    if any(name.split(".")[0] == "transferlab" for name in names):
        names += LAZY_LIBRARIES
    return list(dict.fromkeys(names))


class SpareKernelManager(LocalKernelManager):
    """A kernel manager that remembers the clients made for it: nbclient stops the channels
    (a heartbeat thread, a ZMQ context) only of kernels it started itself, so `release` stops
    those of a handed kernel; otherwise a long-lived worker gains threads with every run."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.clients: list = []

    def client(self, **kwargs: object):
        made = super().client(**kwargs)
        self.clients.append(made)
        return made

    def stop_clients(self) -> None:
        for made in self.clients:
            with contextlib.suppress(Exception):
                made.stop_channels()
        self.clients.clear()


class ForkedKernelManager(SpareKernelManager):
    """A spare forked from a zygote (transferlab.forked_kernels) instead of started."""

    def __init__(self, zygote: forked_kernels.Zygote, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.zygote = zygote

    async def _async_pre_start_kernel(self, **kwargs: object):
        if self.provisioner is None:
            self.provisioner = forked_kernels.ForkProvisioner(
                kernel_id=self.kernel_id or "", kernel_spec=self.kernel_spec, parent=self
            )
        return await super()._async_pre_start_kernel(**kwargs)


@dataclass
class _Spare:
    key: KernelKey
    ready: Future  # the started, warmed kernel manager, or the exception that stopped it


class _KernelThread:
    """One daemon thread with an event loop, on which spares start, warm up and shut down
    (jupyter_client's managers are asyncio objects; the run's own thread is busy in
    papermill)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="warm-kernels", daemon=True).start()

    def submit(self, coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


_lock = threading.Lock()
_thread: _KernelThread | None = None
_spare: _Spare | None = None
_closed = False  # the process is stopping: no further spare
_ending: set[Future] = set()  # shutdowns of released kernels still going on


def prepare(template: Path, cwd: Path, *, zygote_now: bool = False) -> None:
    """Start a spare kernel for a following run of `template` in `cwd` (in the background;
    any spare already there is shut down first). `zygote_now`: start the zygote's process
    before returning, when the spare will be forked from one (a worker starting: its first
    run then surely finds the zygote's imports under way)."""
    global _thread, _spare
    key = kernel_key(template, cwd)
    modules = warm_modules(template)
    if zygote_now and forked_kernels.enabled() and _forkable(key.kernel_name):
        forked_kernels.start_zygote(modules, key.cwd, dict(key.environment))
    with _lock:
        if _closed:
            return
        old, _spare = _spare, None
        if _thread is None:
            _thread = _KernelThread()
            _register_exit()
        _spare = _Spare(key, _thread.submit(_start_and_warm(key, modules)))
    if old is not None:
        _shut_down_spare(old)


# Per template run in this process: the index of the cell that took longest in its last run.
_longest_cell: dict[str, int] = {}


class NextSpare:
    """Starts the spare for the run after this one (`prepare`) at the best moment of this run.

    With `late` (this run's kernel was forked, so a zygote is ready and forking the next takes
    a fraction of a second) that is when the cell that took longest in the previous run of
    the template ends: a small sweep run trains with every core in that cell, and the kernel
    start (~0.3 s of CPU) taken from it slowed training by as much, while the cells after it
    (tables, figures) leave a core idle. Otherwise (no run of the template yet, a warm kernel
    whose imports take seconds) at once. A run that ends before that cell still starts it
    at its end; an interrupted run starts none.
    """

    def __init__(self, template: Path, cwd: Path, *, late: bool) -> None:
        self.template, self.cwd = template, cwd
        self.trigger = _longest_cell.get(str(template)) if late else None
        self.started = False
        self._starts: dict[int, float] = {}
        self._durations: dict[int, float] = {}
        if self.trigger is None:
            self.start()

    def start(self) -> None:
        if not self.started:
            self.started = True
            prepare(self.template, self.cwd)

    def cell_started(self, cell_index: int) -> None:
        """nbclient's on_cell_start (every cell, markdown too)."""
        self._starts[cell_index] = time.monotonic()

    def cell_executed(self, cell_index: int) -> None:
        """nbclient's on_cell_executed (code cells, after their reply)."""
        started = self._starts.get(cell_index)
        if started is not None:
            self._durations[cell_index] = time.monotonic() - started
        if cell_index == self.trigger:
            self.start()

    def run_ended(self, *, interrupted: bool) -> None:
        if interrupted:
            return
        if self._durations:
            _longest_cell[str(self.template)] = max(self._durations, key=self._durations.get)
        self.start()


def take(template: Path, cwd: Path) -> SpareKernelManager | None:
    """The spare's kernel for a run of `template` in `cwd`, if there is one that fits, is
    alive and warmed (waiting for a warm-up still going on); None: start a cold kernel.
    The caller owns the kernel and gives it back to `release` after the run."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is None:
        return None
    if spare.key != kernel_key(template, cwd):
        _shut_down_spare(spare)
        return None
    try:
        manager = spare.ready.result(timeout=WARM_UP_TIMEOUT_S)
    except Exception as exc:  # its start or warm-up failed, or is stuck
        log.warning("warm kernel not used (%s: %s); starting a cold one", type(exc).__name__, exc)
        _shut_down_spare(spare)
        return None
    except BaseException:  # interrupted while waiting: the spare goes too
        _shut_down_spare(spare)
        raise
    if not _alive(manager):
        log.warning("warm kernel died before its run; starting a cold one")
        manager.kill_now()
        return None
    return manager


def release(manager: SpareKernelManager, *, kill: bool = False) -> None:
    """Shut down a kernel that served its run, and the clients that talked to it. The shutdown
    goes on in the background (the next run need not wait the ~0.1 s the kernel takes to
    exit); a kernel still there after SHUTDOWN_TIMEOUT_S is killed, and with `kill` it is
    killed at once."""
    manager.stop_clients()
    if kill or _thread is None:
        manager.kill_now()
        return
    ending = _thread.submit(_shut_down_or_kill(manager))
    _ending.add(ending)  # a set's add and discard are atomic; close() reads a copy
    ending.add_done_callback(_ending.discard)


def discard() -> None:
    """Kill the spare now (a following run starts a cold kernel)."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is not None:
        _shut_down_spare(spare)


def close() -> None:
    """Kill the spare and start no further one, and let the kernels released last finish
    their shutdown: the process is stopping."""
    global _closed
    _closed = True
    discard()
    for ending in list(_ending):
        with contextlib.suppress(BaseException):
            ending.result(timeout=SHUTDOWN_TIMEOUT_S + 1)
    forked_kernels.close()


def spare_ready(timeout: float) -> bool:
    """Whether a spare is there and warmed within `timeout` seconds (for tests, benchmarks)."""
    spare = _spare
    if spare is None:
        return False
    try:
        spare.ready.result(timeout=timeout)
    except Exception:
        return False
    return True


async def _start_and_warm(key: KernelKey, modules: list[str]) -> SpareKernelManager:
    """A kernel forked from this process's zygote when one can serve, else a kernel started
    and warmed up here."""
    forked = await _fork(key, modules)
    if forked is not None:
        return forked
    started = time.monotonic()
    manager = SpareKernelManager(kernel_name=key.kernel_name)
    try:
        arguments = [_HISTORY_ARGUMENT] if manager.ipykernel else []
        await manager.start_kernel(
            extra_arguments=arguments, cwd=key.cwd, env=dict(key.environment)
        )
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=STARTUP_TIMEOUT_S)
            request = client.execute(
                _WARM_UP_CODE.format(names=modules), silent=True, store_history=False
            )
            reply = await _reply(manager, client, request)
        finally:
            manager.stop_clients()
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"warm-up failed: {reply['content'].get('evalue')}")
        if _closed:
            raise RuntimeError("the process is stopping")
    except BaseException:
        manager.kill_now()
        raise
    log.info("warm kernel ready in %.1f s (%d modules)", time.monotonic() - started, len(modules))
    return manager


async def _fork(key: KernelKey, modules: list[str]) -> ForkedKernelManager | None:
    """A kernel forked from the zygote for `key` (its modules imported there once); None
    where no zygote can serve (off, not an ipykernel of this Python, cannot fork safely)."""
    if not _forkable(key.kernel_name):
        return None
    zygote = await forked_kernels.zygote_for(modules, key.cwd, dict(key.environment))
    if zygote is None or _closed:
        return None
    started = time.monotonic()
    manager = ForkedKernelManager(zygote, kernel_name=key.kernel_name)
    try:
        await manager.start_kernel(
            extra_arguments=[_HISTORY_ARGUMENT], cwd=key.cwd, env=dict(key.environment)
        )
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=STARTUP_TIMEOUT_S)
        finally:
            manager.stop_clients()
    except Exception as exc:
        manager.kill_now()
        log.warning("forked kernel failed (%s: %s); warming one instead", type(exc).__name__, exc)
        return None
    except BaseException:
        manager.kill_now()
        raise
    log.info("forked kernel ready in %.2f s", time.monotonic() - started)
    return manager


def _forkable(kernel_name: str) -> bool:
    """Whether this kernel is this Python's ipykernel, which a zygote can fork."""
    probe = SpareKernelManager(kernel_name=kernel_name)
    return probe.ipykernel and forked_kernels.forkable_spec(list(probe.kernel_spec.argv))


async def _reply(manager: LocalKernelManager, client, request: str) -> dict:
    """The kernel's reply to `request`; fails at once if the kernel dies (killed, out of
    memory) rather than at the timeout."""
    deadline = time.monotonic() + WARM_UP_TIMEOUT_S
    while True:
        try:
            reply = await client.get_shell_msg(timeout=1.0)
        except queue.Empty:
            if not _alive(manager):
                raise RuntimeError("the kernel died during its warm-up") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"warm-up took over {WARM_UP_TIMEOUT_S:.0f} s") from None
            continue
        if reply["parent_header"].get("msg_id") == request:
            return reply


def _alive(manager: LocalKernelManager) -> bool:
    process = getattr(manager.provisioner, "process", None)
    return process is not None and process.poll() is None


async def _shut_down_or_kill(manager: LocalKernelManager) -> None:
    try:
        if manager.has_kernel:
            await asyncio.wait_for(manager.shutdown_kernel(), timeout=SHUTDOWN_TIMEOUT_S)
    except BaseException:  # stuck, or the loop is stopping
        manager.kill_now()
        raise


def _shut_down_spare(spare: _Spare) -> None:
    """Kill a spare that will not be used, whether it is ready, failed or still starting
    (then when its start ends)."""

    def kill(ready: Future) -> None:
        with contextlib.suppress(BaseException):
            ready.result(timeout=0).kill_now()

    if spare.ready.done():
        kill(spare.ready)
    else:
        spare.ready.add_done_callback(kill)


_exit_registered = False


def _register_exit() -> None:
    """Kill the spare when this process ends normally: atexit, and multiprocessing's own exit
    hook, since a pool's worker process leaves through os._exit without atexit handlers."""
    global _exit_registered
    if _exit_registered:
        return
    _exit_registered = True
    atexit.register(_kill_spare_at_exit)
    multiprocessing.util.Finalize(None, _kill_spare_at_exit, exitpriority=100)


def _kill_spare_at_exit() -> None:
    """A spare still starting is left to ipykernel, which exits with its parent."""
    with contextlib.suppress(BaseException):
        close()
