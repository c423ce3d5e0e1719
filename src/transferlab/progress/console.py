"""A run's progress on stdout while the runner waits for papermill.

On a terminal: one line rewritten in place twice a second. Elsewhere (a log file, a pipe): one
plain timestamped line at most every PLAIN_EVERY_S, printed when something changed or, during
a long step, on time even if nothing did (a slow training step still gets its line: the
elapsed time moves), and at least every PLAIN_IDLE_EVERY_S otherwise, so a log is neither a
wall of bars nor silent for minutes.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

from transferlab.progress.channel import Tail
from transferlab.progress.view import RunView

TICK_S = 0.5
PLAIN_EVERY_S = 3.0
# Plain output between long steps (a cell loading a model): a line at least this often.
PLAIN_IDLE_EVERY_S = 15.0


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ConsoleProgress:
    """Tails one run's progress file in a thread and prints it to `stream` until stopped."""

    def __init__(self, path: Path, stream: TextIO | None = None):
        self.tail = Tail(path)
        self.stream = stream or sys.stdout
        self.terminal = is_terminal(self.stream)
        self.view = RunView()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="transferlab-progress", daemon=True)
        self._printed = ""  # the last line printed (on a terminal: the one shown now)
        self._printed_at = 0.0
        self._printed_update = 0.0  # the time of the latest record the printed line shows

    def __enter__(self) -> ConsoleProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._show(final=True)
        if self.terminal and self._printed:
            self._write("\n")

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            self._show()

    def _show(self, final: bool = False) -> None:
        self.view.apply(self.tail.read())
        now = time.time()
        text = self.view.text(now)
        if self.terminal:
            width = max(20, shutil.get_terminal_size().columns - 1)
            line = text[:width]
            if line != self._printed:
                self._write(f"\r{line}\x1b[K")
                self._printed = line
            return
        changed = self.view.updated != self._printed_update
        due = now - self._printed_at >= PLAIN_EVERY_S
        idle = now - self._printed_at >= PLAIN_IDLE_EVERY_S
        if (changed and (due or final)) or (due and self.view.in_step) or idle:
            stamp = datetime.now().strftime("%H:%M:%S")
            self._write(f"[{stamp}] {text}\n")
            self._printed_at, self._printed_update = now, self.view.updated

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stdout closed under us: progress is not worth failing
            self._stop.set()
