"""Forked kernels: a run's kernel forked from a zygote that did the imports once per worker.

Warm kernels (transferlab.warm_kernels) move a run's imports earlier, but each kernel still
pays them in CPU. A process that runs several templates in a row keeps one zygote
(transferlab.kernel_zygote): a child started with the kernel's environment and working folder,
which imports the template's modules once and forks a kernel for each run. A forked kernel
shares the zygote's memory pages copy-on-write and starts with those modules loaded; it is
still a process of its own that serves one run, and it starts from the zygote's pristine state,
so nothing of one run reaches the next.

jupyter_client starts kernels through a provisioner; ForkProvisioner asks the zygote instead of
starting a process, and gives jupyter_client a process handle by pid, so interrupt, shutdown
and kill work as for a started kernel. A kernel is the zygote's child, the worker's grandchild
(a worker's kill_children reaches it); the zygote dies with its worker and kernels with
their zygote.

A zygote that cannot fork safely (a thread running after the imports) or that failed is not
used again for that template: the caller falls back to a warm kernel.
TRANSFERLAB_KERNEL_ZYGOTE=0 turns zygotes off.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.provisioning import LocalProvisioner

log = logging.getLogger(__name__)

# Runs kernel_zygote.py as __main__ with the path as a cold kernel's launcher leaves it (the
# working folder off it while loading; ipykernel puts it back).
_BOOT = (
    "import sys; del sys.path[0]; path = sys.argv[1]; sys.argv = sys.argv[1:]; "
    "exec(compile(open(path, encoding='utf-8').read(), path, 'exec'))"
)
_ZYGOTE_SCRIPT = str(Path(__file__).with_name("kernel_zygote.py"))
ZYGOTE_START_TIMEOUT_S = 300.0
FORK_TIMEOUT_S = 10.0


def enabled() -> bool:
    return os.environ.get("TRANSFERLAB_KERNEL_ZYGOTE", "1") != "0" and hasattr(os, "fork")


def forkable_spec(argv: list[str]) -> bool:
    """Whether a kernelspec starts this Python's ipykernel (which a zygote can fork)."""
    if len(argv) < 3 or argv[1:3] != ["-m", "ipykernel_launcher"]:
        return False
    if argv[0] in ("python", "python3", "{python}"):
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(argv[0], sys.executable)
    return False


class Zygote:
    """The worker's end of one zygote process (see transferlab.kernel_zygote)."""

    def __init__(self, modules: list[str], cwd: str, env: dict[str, str]) -> None:
        self.modules = modules
        self.cwd = cwd
        self.env = env
        self._lock = threading.Lock()
        self._ready_lock = asyncio.Lock()
        self._ready: bool | None = None
        self._why: str | None = None
        read, write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, _ZYGOTE_SCRIPT, str(write)],
                stdin=subprocess.PIPE,
                pass_fds=(write,),
                cwd=cwd,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C is the worker's to handle
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self._replies = os.fdopen(read, "rb", buffering=0)
        self._send(modules)

    def _send(self, message: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def _receive(self) -> dict:
        line = self._replies.readline()
        if not line:
            raise RuntimeError("the kernel zygote exited")
        return json.loads(line)

    async def wait_ready(self) -> None:
        """Wait for the imports (once; later calls return at once); fails if the zygote
        cannot fork safely or died."""
        async with self._ready_lock:
            if self._ready is None:
                try:
                    reply = await asyncio.wait_for(
                        asyncio.to_thread(self._receive), timeout=ZYGOTE_START_TIMEOUT_S
                    )
                    why = None if reply.get("ready") else reply.get("why")
                except Exception as exc:
                    why = str(exc) or type(exc).__name__
                self._ready = why is None
                self._why = why
        if not self._ready:
            raise RuntimeError(f"the kernel zygote cannot fork safely: {self._why}")

    def fork(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        """A new kernel process, forked with these ipykernel arguments; its pid."""
        with self._lock:
            if not self.alive():
                raise RuntimeError("the kernel zygote is not running")
            self._send({"argv": argv, "env": env, "cwd": cwd})
            reply = self._receive()
        if "pid" not in reply:
            raise RuntimeError(f"the kernel zygote could not fork: {reply.get('error')}")
        return int(reply["pid"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def has_kernels(self) -> bool:
        try:
            return any(
                child.status() != psutil.STATUS_ZOMBIE
                for child in psutil.Process(self.process.pid).children()
            )
        except psutil.Error:
            return False

    def close(self) -> None:
        """Stop the zygote (the kernels it forked die with it)."""
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=10)
        for stream in (self.process.stdin, self._replies):
            with contextlib.suppress(Exception):
                stream.close()


class ForkedProcess:
    """A forked kernel seen as a Popen-like handle (what LocalProvisioner and kill_now use).
    The zygote reaps it, so its exit status is unknown: a finished kernel reports 0."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._process = psutil.Process(pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                finished = self._process.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                finished = True
            if finished:
                self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with contextlib.suppress(psutil.NoSuchProcess):
            self._process.wait(timeout)
        self.returncode = 0 if self.returncode is None else self.returncode
        return self.returncode

    def send_signal(self, signum: int) -> None:
        try:
            self._process.send_signal(signum)
        except psutil.NoSuchProcess:
            raise ProcessLookupError(errno.ESRCH, "the kernel has exited") from None

    def kill(self) -> None:
        self.send_signal(9)

    def terminate(self) -> None:
        self.send_signal(15)


class ForkProvisioner(LocalProvisioner):
    """Launches the kernel by asking the kernel manager's zygote to fork it."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        zygote: Zygote = self.parent.zygote
        env = dict(kwargs.get("env") or os.environ)
        cwd = str(kwargs.get("cwd") or Path.cwd())
        pid = await asyncio.wait_for(
            asyncio.to_thread(zygote.fork, cmd[3:], env, cwd), timeout=FORK_TIMEOUT_S
        )
        self.process = ForkedProcess(pid)
        self.pid = pid
        # The kernel makes its own session (setsid): its group is its pid. Until it has,
        # killpg fails and the signal goes to the kernel alone.
        self.pgid = pid
        self.cwd = cwd
        return self.connection_info


_lock = threading.Lock()
_zygote: Zygote | None = None
_retired: list[Zygote] = []  # replaced zygotes whose kernels may still serve runs
_refused: set[tuple] = set()  # (modules, cwd, env) whose zygote could not fork safely


def _identity(modules: list[str], cwd: str, env: dict[str, str]) -> tuple:
    return (tuple(modules), cwd, tuple(sorted(env.items())))


def start_zygote(modules: list[str], cwd: str, env: dict[str, str]) -> Zygote | None:
    """This process's zygote for these modules, folder and environment: its process started
    now (its imports go on there) or the one already there; None when zygotes are off or one
    for them failed before."""
    global _zygote
    if not enabled():
        return None
    identity = _identity(modules, cwd, env)
    with _lock:
        if identity in _refused:
            return None
        _close_idle_retired()
        current = _zygote
        if current is not None and (
            (current.modules, current.cwd, current.env) != (modules, cwd, env)
            or not current.alive()
        ):
            _retired.append(current)  # its kernels die with it: closed once they are gone
            _close_idle_retired()
            current = _zygote = None
        if current is None:
            current = _zygote = Zygote(modules, cwd, env)
    return current


async def zygote_for(modules: list[str], cwd: str, env: dict[str, str]) -> Zygote | None:
    """This process's zygote for these modules, folder and environment (started, or the one
    already there), once its imports are done; None when zygotes are off or one for them
    failed before."""
    global _zygote
    current = start_zygote(modules, cwd, env)
    if current is None:
        return None
    identity = _identity(modules, cwd, env)
    try:
        await current.wait_ready()
    except BaseException as exc:
        with _lock:
            _refused.add(identity)
            if _zygote is current:
                _zygote = None
        current.close()
        if isinstance(exc, Exception):
            log.warning("no forked kernels (%s); using warm kernels", exc)
            return None
        raise
    log.info("kernel zygote ready (%d modules)", len(modules))
    return current


def close() -> None:
    """Stop this process's zygotes."""
    global _zygote
    with _lock:
        stopping = [z for z in [_zygote, *_retired] if z is not None]
        _zygote = None
        _retired.clear()
    for zygote in stopping:
        zygote.close()


def _close_idle_retired() -> None:
    for zygote in list(_retired):
        if not zygote.has_kernels():
            zygote.close()
            _retired.remove(zygote)
