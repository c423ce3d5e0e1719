"""A run's progress as its records say it, and as one line of text."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# What a phase's units are called on screen.
UNITS = {"train": "step", "embed": "embedding batch", "evaluate": "evaluation batch"}


def clock(seconds: float) -> str:
    """0:07, 1:05:09."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@dataclass
class RunView:
    """The notebook cell running and the latest long step (training, embedding, evaluation)."""

    cell: tuple[int, int] | None = None
    cell_started: float = 0.0
    step: dict[str, Any] | None = None
    updated: float = field(default=0.0)  # when the latest record was written

    def apply(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.updated = float(record.get("t", self.updated))
            if record.get("phase") == "cell":
                self.cell = (int(record["done"]), int(record["total"]))
                self.cell_started = self.updated
                if self.step is not None and self.step.get("end"):
                    self.step = None  # a finished step is shown until the next cell starts
            else:
                self.step = record

    @property
    def in_step(self) -> bool:
        """A long step is going on (started and not ended)."""
        return self.step is not None and not self.step.get("end")

    def step_text(self, now: float | None = None) -> str:
        """'step 40/120 (33%), loss 0.830, eval accuracy 0.710, 0:25 elapsed, ~0:50 left';
        '' without a step."""
        step = self.step
        if step is None:
            return ""
        done, total = int(step["done"]), int(step["total"])
        unit = UNITS.get(step["phase"], str(step["phase"]))
        parts = [f"{unit} {done}/{total}" + (f" ({done / total:.0%})" if total else "")]
        if step.get("label"):
            parts[0] = f"{step['label']}: {parts[0]}"
        if step.get("loss") is not None:
            parts.append(f"loss {float(step['loss']):.3f}")
        for name, value in (step.get("eval") or {}).items():
            parts.append(f"eval {name} {float(value):.3f}")
        ended = bool(step.get("end"))
        finished_at = float(step.get("t", 0.0)) if ended else (now or time.time())
        elapsed = max(0.0, finished_at - float(step.get("started", finished_at)))
        if ended:
            parts.append(f"done in {clock(elapsed)}")
        else:
            parts.append(f"{clock(elapsed)} elapsed")
            if 0 < done < total:
                parts.append(f"~{clock(elapsed * (total - done) / done)} left")
        return ", ".join(parts)

    def text(self, now: float | None = None) -> str:
        """The cell, then the step: 'cell 6/16 | step 40/120 (33%), loss 0.830, ...'; without
        a step, how long the cell has run: 'cell 4/16, 0:13 in this cell'."""
        now = time.time() if now is None else now
        if self.cell is None:
            return "starting the kernel"
        cell = f"cell {self.cell[0]}/{self.cell[1]}"
        step = self.step_text(now)
        if step:
            return f"{cell} | {step}"
        return f"{cell}, {clock(now - self.cell_started)} in this cell"
