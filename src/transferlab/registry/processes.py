"""Which process runs a run, and whether that process still exists.

A run records the host, the pid and the start of the process that started it. A pid alone is
not enough: once a process has ended the kernel may hand its pid to a new one. On Linux the
start is `<boot id>/<pid namespace>/<start in clock ticks since boot>` (/proc/PID/stat, field
22): a record from before the last reboot names a process that is surely gone, and one from
another pid namespace (another container with the same host name) names a process this one
cannot see, which is left alone. Elsewhere the start is unknown (None) and only the pid is
checked.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

_PROC = Path("/proc")


@functools.cache
def _here() -> str | None:
    """`<boot id>/<pid namespace>` of this process; None without /proc."""
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(_PROC / "self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot else None


def process_start(pid: int) -> str | None:
    """When process `pid` (as this process sees it) started; None where it cannot be read."""
    here = _here()
    if here is None:
        return None
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20:
        return None
    return f"{here}/{fields[19]}"


def this_host() -> str:
    return socket.gethostname()


def this_process() -> tuple[str, int, str | None]:
    """(host, pid, start) of the calling process, as a run records them."""
    pid = os.getpid()
    return this_host(), pid, process_start(pid)


def interrupted_error(pid: int, host: str, note: str) -> str:
    """The error recorded on a run whose process is gone (`note`: gone_reason's)."""
    return f"Interrupted: process {pid} on {host} ended without finishing the run{note}."


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def gone_reason(pid: int | None, start: str | None) -> str | None:
    """Why the process (on this host) that started a run is gone: "" when it has ended, a note
    when its pid now belongs to another process; None when it may still be running or cannot
    be seen from here (another pid namespace).

    A live pid whose start was not recorded (a run from before schema 3) is given the benefit
    of the doubt.
    """
    if not pid:
        return None
    here = _here()
    if start is not None and here is not None and not start.startswith(here + "/"):
        if start.split("/", 1)[0] != here.split("/", 1)[0]:
            return " (the machine has restarted since)"
        return None  # another pid namespace on this host: its processes are not ours to see
    if not pid_exists(pid):
        return ""
    if start is None:
        return None
    now = process_start(pid)
    if now is not None and now != start:
        return f" (pid {pid} now belongs to another process)"
    return None
