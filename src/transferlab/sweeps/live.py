"""Which runs of a sweep are where, live: each running run's cell and long step (training step
and loss, embedding or evaluation batches), read from its progress file (transferlab.progress).

The driver reads the files of the runs it handed out and has not seen finish. The process
executor's runs are on this machine, so all of them show; a Ray run on another machine writes
its file there, and the driver shows only what reaches it (the run's end). On a terminal the
sweep's bar carries the running runs in its postfix; elsewhere each running run gets a plain
line on stdout at most every PLAIN_EVERY_S (when it changed, or on time during a long step).
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from typing import Any, TextIO

from transferlab.progress import RunView, channel_path
from transferlab.progress.channel import Tail
from transferlab.progress.console import TICK_S, is_terminal
from transferlab.progress.view import UNITS

PLAIN_EVERY_S = 5.0


class SweepProgress:
    """A thread that shows the runs among `rows` (a sweep's RunRows by key) that are out:
    handed to the executor (a run id) and not finished (still `pending`)."""

    def __init__(
        self, rows: dict[str, Any], total: int, bar: Any, stream: TextIO | None = None
    ) -> None:
        self.rows, self.total, self.bar = rows, total, bar
        self.stream = stream or sys.stdout
        self.terminal = is_terminal(self.stream)
        self.runs: dict[str, tuple[Tail, RunView]] = {}
        self.printed: dict[str, tuple[float, float]] = {}  # run id -> (printed at, record time)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="transferlab-sweep", daemon=True)

    def __enter__(self) -> SweepProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(TICK_S):
            self.show()

    def out(self) -> list[tuple[int, str, RunView]]:
        """(position in the sweep, run id, its view) of each run out that has started."""
        rows = list(self.rows.values())
        out = {
            row.run_id: index
            for index, row in enumerate(rows, 1)
            if row.run_id and row.status == "pending"
        }
        for run_id in list(self.runs):
            if run_id not in out:
                del self.runs[run_id]
        started = []
        for run_id, index in out.items():
            tail, view = self.runs.setdefault(run_id, (Tail(channel_path(run_id)), RunView()))
            view.apply(tail.read())
            if view.cell is not None:
                started.append((index, run_id, view))
        return started

    def show(self) -> None:
        started = self.out()
        now = time.time()
        if self.terminal:
            self.bar.set_postfix_str(" | ".join(_short(i, v) for i, _, v in started))
            return
        for index, run_id, view in started:
            printed_at, shown = self.printed.get(run_id, (0.0, 0.0))
            due = now - printed_at >= PLAIN_EVERY_S
            if due and (view.updated != shown or view.in_step):
                stamp = datetime.now().strftime("%H:%M:%S")
                line = f"[{stamp}] run {index}/{self.total} {run_id} {view.text(now)}\n"
                try:
                    self.stream.write(line)
                    self.stream.flush()
                except (OSError, ValueError):
                    self._stop.set()
                    return
                self.printed[run_id] = (now, view.updated)


def _short(index: int, view: RunView) -> str:
    """'run 3 step 40/120 loss 0.830', or 'run 3 cell 5/16' between long steps."""
    step = view.step
    if view.in_step and step is not None:
        unit = UNITS.get(step["phase"], step["phase"])
        text = f"run {index} {unit} {step['done']}/{step['total']}"
        return text + (f" loss {float(step['loss']):.3f}" if step.get("loss") is not None else "")
    cell = view.cell or (0, 0)
    return f"run {index} cell {cell[0]}/{cell[1]}"
