"""Former home of the sweep orchestration, now transferlab.sweeps.run (executors: the
transferlab.sweeps.executors package). Kept for the imports that still name it."""

from transferlab.sweeps.run import INTERRUPTED_ERROR, RunRow, SweepResult

__all__ = ["INTERRUPTED_ERROR", "RunRow", "SweepResult"]
