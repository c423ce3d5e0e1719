"""The kernel side: library code reports the phases of its long steps.

`for_run(run_id)` (entered by finetune, discover and run_suite when the runner gave them a
run id) makes the run's progress file the target; `phase(name, total)` is what a loop
reports through, and is a cheap no-op outside such a block. Writes are throttled to one per
WRITE_EVERY_S (plus a phase's start and end, and evaluation scores), so a training step
pays for a clock read, not a write.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transferlab.progress.channel import append, channel_path

WRITE_EVERY_S = 0.5

_target: Path | None = None


@contextmanager
def for_run(run_id: str | None) -> Iterator[None]:
    """Within the block, phases are written to the run's progress file if the runner opened
    one (an outer block keeps its own target)."""
    global _target
    path = channel_path(run_id) if run_id else None
    if _target is not None or path is None or not path.exists():
        yield
        return
    _target = path
    try:
        yield
    finally:
        _target = None


class Phase:
    """One long step: `done` of `total` units (training steps, batches), started at `started`,
    with the latest values worth showing (`loss`, `eval`)."""

    def __init__(self, name: str, total: int, target: Path | None, **values: Any):
        # a phase with nothing to do (a warm-up batch run unreported) writes nothing
        self.name, self.total = name, int(total)
        self.target = target if self.total > 0 else None
        self.done = 0
        self.started = time.time()
        self.values: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
        self._written = 0.0
        self._write(force=True)

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def update(self, done: int, *, force: bool = False, **values: Any) -> None:
        self.done = int(done)
        self.values.update({k: v for k, v in values.items() if v is not None})
        self._write(force=force)

    def end(self) -> None:
        self._write(force=True, end=True)

    def _write(self, force: bool, end: bool = False) -> None:
        if self.target is None:
            return
        now = time.monotonic()
        if not force and now - self._written < WRITE_EVERY_S:
            return
        self._written = now
        record = {
            "phase": self.name,
            "done": self.done,
            "total": self.total,
            "started": self.started,
            **self.values,
        }
        if end:
            record["end"] = True
        append(self.target, record)


@contextmanager
def phase(name: str, total: int, **values: Any) -> Iterator[Phase]:
    """A phase reported while the block runs, ended when it leaves (however it leaves)."""
    current = Phase(name, total, _target, **values)
    try:
        yield current
    finally:
        current.end()


def start_phase(name: str, total: int, **values: Any) -> Phase:
    """A phase for code that cannot wrap a block (a Trainer callback): end it yourself."""
    return Phase(name, total, _target, **values)


def cell_started(path: Path, index: int, total: int) -> None:
    """The runner's record of the notebook cell starting now (1-based `index`)."""
    append(path, {"phase": "cell", "done": index, "total": total})
