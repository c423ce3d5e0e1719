"""The per-run progress file: where it lives, who creates and removes it, how it is read.

The runner creates the file before the kernel starts and removes it when the run ends; the
kernel's library code writes to it only if it exists, so a template run by hand (or a
library call without a runner) writes nothing. The file sits in a per-user folder of the
temporary directory, named by the run id: the id is all the kernel knows (it is injected as a
parameter), which also holds for a kernel forked from a zygote started before the run, whose
environment no per-run variable can reach. A sweep's driver on the same machine reads the
same path; a Ray run on another machine writes there, out of the driver's sight.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def channel_folder() -> Path:
    return Path(tempfile.gettempdir()) / f"transferlab-progress-{os.getuid()}"


def channel_path(run_id: str) -> Path:
    return channel_folder() / f"{run_id}.jsonl"


# A file untouched this long belongs to a run killed outright (kill -9, SIGTERM to the CLI).
STALE_AFTER_S = 24 * 3600


def open_channel(run_id: str) -> Path:
    """Create the run's (empty) progress file, removing files of runs killed long ago;
    returns its path."""
    folder = channel_folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_stale(folder)
    path = channel_path(run_id)
    path.write_bytes(b"")
    return path


def _remove_stale(folder: Path) -> None:
    cutoff = time.time() - STALE_AFTER_S
    for path in folder.glob("*.jsonl"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:  # removed meanwhile by its own run or another one
            continue


def close_channel(run_id: str) -> None:
    channel_path(run_id).unlink(missing_ok=True)


def append(path: Path, record: dict[str, Any]) -> None:
    """One record, one line, one write (O_APPEND: lines from the runner and the kernel do not
    interleave). A file removed meanwhile (the run ended) is not created again."""
    line = (json.dumps({"t": time.time(), **record}, separators=(",", ":")) + "\n").encode()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        return
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


class Tail:
    """The records appended to a progress file since the last read (complete lines only)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # never expected: each line is one write
        return records
