"""The kernel manager the runner gives papermill: kernels on Unix-domain sockets.

ipykernel 7 warns on every start that a TCP kernel's traffic is unencrypted (it is on loopback,
HMAC-signed): noise in every `transferlab run`, sweep and demo. Unix-domain sockets (IPC),
named after the kernel's connection file (in the temp folder when papermill starts it, else
Jupyter's runtime folder), are the transport the warning recommends and need no TCP ports.
Socket paths are limited to about 100 bytes, so folders too deep for them (or a platform
without them) keep TCP.
"""

from __future__ import annotations

import os
import sys
import tempfile

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from traitlets import default

# The longest socket name the kernel will bind in those folders: kernel-<uuid>-ipc-<port>.
_LONGEST_SOCKET_NAME = "kernel-00000000-0000-0000-0000-000000000000-ipc-65535"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


def ipc_possible() -> bool:
    if sys.platform == "win32":
        return False
    folders = (jupyter_runtime_dir(), tempfile.gettempdir())
    return all(
        len(os.path.join(folder, _LONGEST_SOCKET_NAME)) <= _MAX_SOCKET_PATH for folder in folders
    )


class LocalKernelManager(AsyncKernelManager):
    """Starts kernels over IPC where the socket paths fit, else over TCP."""

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc" if ipc_possible() else "tcp"
