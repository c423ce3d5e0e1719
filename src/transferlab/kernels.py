"""The kernel manager the runner gives papermill: kernels on Unix-domain sockets.

ipykernel 7 warns on every start that a TCP kernel's traffic is unencrypted (it is on loopback,
HMAC-signed): noise in every `transferlab run`, sweep and demo. Unix-domain sockets (IPC) in a
private temporary folder per kernel are the transport the warning recommends and need no TCP
ports. Socket paths are limited to about 100 bytes, so a temp folder too deep for them (or a
platform without them) keeps TCP.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

# The longest socket path the kernel binds: <temp>/transferlab-kernel-<8 chars>/kernel-<n>.
_LONGEST_SOCKET_NAME = "transferlab-kernel-00000000/kernel-65535"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def ipc_possible() -> bool:
    if sys.platform == "win32":
        return False
    return len(os.path.join(tempfile.gettempdir(), _LONGEST_SOCKET_NAME)) <= _MAX_SOCKET_PATH


class LocalKernelManager(AsyncKernelManager):
    """Starts kernels over IPC where the socket paths fit, else over TCP.

    Each kernel's sockets go in a folder of their own: jupyter_client's default names them
    `kernel-ipc-<n>` in the current folder and picks n by probing which files exist, so
    parallel sweep workers (one folder) raced to the same names and cross-connected kernels.
    """

    _socket_folder: str | None = None

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc" if ipc_possible() else "tcp"

    def _ip_default(self) -> str:
        if self.transport != "ipc":
            return super()._ip_default()
        self._socket_folder = tempfile.mkdtemp(prefix="transferlab-kernel-")
        return os.path.join(self._socket_folder, "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._socket_folder:
            shutil.rmtree(self._socket_folder, ignore_errors=True)
