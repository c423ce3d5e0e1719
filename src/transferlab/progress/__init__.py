"""Live progress inside a run's long steps (training, embedding batches, evaluation batches).

The library code in the kernel writes a few records a second to a per-run JSON-lines file
(`channel`); whoever shows the run tails it: the runner's console (`console`), the picker's
widget, a sweep's driver. Nothing goes to the registry and the file is removed with the run.
"""

from transferlab.progress.channel import channel_path
from transferlab.progress.emit import Phase, for_run, phase
from transferlab.progress.view import RunView

__all__ = ["Phase", "RunView", "channel_path", "for_run", "phase"]
