"""The zygote: a process that imports a run's modules once and forks a fresh kernel per run.

Run as a script (not `-m`: importing the transferlab package would load the registry's
libraries) by transferlab.forked_kernels, with the reply fd as argument and the
environment and working folder its kernels need. Protocol, one JSON object a line: the first
line on stdin lists the modules to import; the zygote answers on the reply fd
{"ready": true} or {"ready": false, "why": ...} (it then exits). Each further line is a fork
request {"argv": [...kernel arguments...], "env": {...}, "cwd": ...}; the answer is {"pid": n} or
{"error": ...}. End of stdin: the zygote exits.

Forking is only safe where no thread can hold a lock the child needs, so the zygote refuses to
serve when importing left a Python thread running. Native threads are allowed: the libraries
this project imports start pools that survive fork by design (numpy's OpenBLAS workers and
pyarrow's jemalloc background thread register pthread_atfork handlers; torch starts its pools
on first use, which the zygote never makes). The zygote never runs user code: each kernel
starts from the same pristine state. Kernels are the zygote's children, reaped by it
(on SIGCHLD); each runs in a session of its own as jupyter_client's kernels do, and dies
with the zygote (PR_SET_PDEATHSIG and ipykernel's parent poller), which dies with its worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import signal
import sys
import threading
import traceback

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """SIGKILL this process when its parent process ends (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _import(modules: list[str]) -> None:
    for name in modules:
        with contextlib.suppress(Exception):  # left for the run to meet, as a cold kernel would
            importlib.import_module(name)


def _reap(signum: int, frame: object) -> None:
    """Wait for finished kernels: so they leave no zombie, and their CPU time counts in the
    zygote's children's times (and so in its worker's), as a started kernel's does."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reply(fd: int, message: dict) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


def _become_kernel(request: dict, reply_fd: int, parent: int) -> None:
    """In the forked child: drop the zygote's pipes and signal settings, then run ipykernel
    as `python -m ipykernel_launcher <argv>` would."""
    os.setsid()
    for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _die_with_parent()
    if os.getppid() != parent:  # the zygote died between fork and prctl
        os._exit(1)
    os.close(reply_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["JPY_PARENT_PID"] = str(parent)
    os.chdir(request["cwd"])
    # ipykernel read JPY_PARENT_PID when the zygote imported it: say it again, so that the
    # kernel exits when the zygote does.
    argv = [*request["argv"], f"--IPKernelApp.parent_handle={parent}"]
    sys.argv = ["ipykernel_launcher", *argv]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv)


def serve(reply_fd: int) -> None:
    _die_with_parent()
    modules = json.loads(sys.stdin.readline() or "[]")
    _import(["ipykernel.kernelapp", *modules])
    if threading.active_count() != 1:
        names = ", ".join(thread.name for thread in threading.enumerate())
        _reply(reply_fd, {"ready": False, "why": f"threads running after the imports: {names}"})
        return
    # Move what the imports made out of the collector's reach: a kernel's collections then do
    # not touch (and so copy) the pages it shares with the zygote.
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops the zygote, not Ctrl-C
    _reply(reply_fd, {"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            pid = os.fork()
        except OSError as exc:
            _reply(reply_fd, {"error": str(exc)})
            continue
        if pid == 0:
            code = 0
            try:
                _become_kernel(request, reply_fd, os.getppid())
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os._exit(code)
        _reply(reply_fd, {"pid": pid})


if __name__ == "__main__":
    serve(int(sys.argv[1]))
