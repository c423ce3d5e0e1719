"""The kernel manager the runner gives papermill: kernels on Unix-domain sockets.

ipykernel 7 warns on every start that a TCP kernel's traffic is unencrypted (it is on loopback,
HMAC-signed): noise in every `transferlab run`, sweep and demo. Unix-domain sockets (IPC) in a
private temporary folder per kernel are the transport the warning recommends and need no TCP
ports. Socket paths are limited to about 100 bytes, so a temp folder too deep for them (or a
platform without them) keeps TCP.

Ctrl-C during a run kills the kernel at once (interrupts_stop_kernel): the usual graceful
shutdown interrupts the running cell and asks the kernel to stop, and the kernel, still
sending the interrupted cell's reply on sockets it had just closed, printed a ZMQError
traceback under the CLI's "interrupted".
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type, default

# The longest socket path the kernel binds: <temp>/transferlab-kernel-<8 chars>/kernel-<n>.
_LONGEST_SOCKET_NAME = "transferlab-kernel-00000000/kernel-65535"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_interrupted = False  # Ctrl-C arrived during a run: its kernel is killed, not shut down
_started: weakref.WeakSet[LocalKernelManager] = weakref.WeakSet()


def ipc_possible() -> bool:
    if sys.platform == "win32":
        return False
    return len(os.path.join(tempfile.gettempdir(), _LONGEST_SOCKET_NAME)) <= _MAX_SOCKET_PATH


class PromptKernelClient(AsyncKernelClient):
    """A kernel client whose `wait_for_ready` returns once the kernel has answered.

    jupyter_client's waits for the kernel_info reply and one IOPub message (proof that the
    IOPub subscription is connected), then reads IOPub until it has been quiet for 0.2 s:
    0.2 s of nothing in every run (nbclient waits on the kernel papermill starts or is handed)
    and in every spare's start. This one stops at the IOPub message that ends the kernel_info
    request (its `idle` status), which proves the same connection; nothing of it is left to
    read.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except queue.Empty:
                reply = None
            if (
                reply is not None
                and reply["msg_type"] == "kernel_info_reply"
                and reply["parent_header"].get("msg_id") == request
                and await self._iopub_ends(request)
            ):
                self._handle_kernel_info_reply(reply)
                return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    async def _iopub_ends(self, request: str) -> bool:
        """Read IOPub up to `request`'s idle status: False if IOPub stays silent for 0.2 s
        (not connected yet: the caller asks again), as jupyter_client's first check."""
        while True:
            try:
                message = await self.iopub_channel.get_msg(timeout=0.2)
            except queue.Empty:
                return False
            if (
                message["parent_header"].get("msg_id") == request
                and message["msg_type"] == "status"
                and message["content"].get("execution_state") == "idle"
            ):
                return True


class LocalKernelManager(AsyncKernelManager):
    """Starts kernels over IPC where the socket paths fit, else over TCP.

    Each kernel's sockets go in a folder of their own: jupyter_client's default names them
    `kernel-ipc-<n>` in the current folder and picks n by probing which files exist, so
    parallel sweep workers (one folder) raced to the same names and cross-connected kernels.
    """

    _socket_folder: str | None = None

    client_factory = Type(PromptKernelClient, klass=AsyncKernelClient, config=True)

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc" if ipc_possible() else "tcp"

    def _ip_default(self) -> str:
        if self.transport != "ipc":
            return super()._ip_default()
        self._socket_folder = tempfile.mkdtemp(prefix="transferlab-kernel-")
        return os.path.join(self._socket_folder, "kernel")

    async def start_kernel(self, **kwargs: object) -> None:
        _started.add(self)
        await super().start_kernel(**kwargs)

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        await super().shutdown_kernel(now=now or _interrupted, restart=restart)
        if not restart:
            _started.discard(self)

    def kill_now(self) -> None:
        """Kill the kernel process and remove its files, without the event loop (a run
        interrupted while its kernel was starting: papermill does not stop it then)."""
        process = getattr(self.provisioner, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self.cleanup_connection_file()
        if self._socket_folder:
            shutil.rmtree(self._socket_folder, ignore_errors=True)
        _started.discard(self)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._socket_folder:
            shutil.rmtree(self._socket_folder, ignore_errors=True)


@contextmanager
def interrupts_stop_kernel() -> Iterator[None]:
    """Ctrl-C inside this block raises KeyboardInterrupt as usual and marks the run as
    interrupted, so that papermill's clean-up kills the kernel instead of asking it to stop.

    Only where Ctrl-C raises KeyboardInterrupt (Python's own handler, main thread): a sweep
    worker ignores SIGINT and stops its kernel itself.
    """
    global _interrupted
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def on_interrupt(signum: int, frame: object) -> None:
        global _interrupted
        _interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if _interrupted:
            for manager in list(_started):
                manager.kill_now()
        _interrupted = False
