"""A papermill engine that saves the output notebook every few seconds, not after every cell.

papermill writes the whole output notebook when each cell starts and ends; a finetune notebook
carries ~5 MB of plotly.js, ~0.18 s a save, 1.5-2.5 s a run. Sweep runs use this engine: it
saves when the run starts, then at most every SAVE_EVERY_S seconds (at a cell's start or end,
or on kernel output: papermill's autosave), and always when the run ends, however it ends
(papermill also writes the notebook of a failed run before raising). A run killed with its
worker keeps the notebook as of its last save, at most SAVE_EVERY_S old.

papermill's own `request_save_on_cell_execute=False` is not that: it writes nothing until the
run ends, so a killed run would keep no notebook.
"""

from __future__ import annotations

from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

ENGINE_NAME = "transferlab-sparse-saves"
SAVE_EVERY_S = 10


class SparseSaveManager(NotebookExecutionManager):
    """Saves only when SAVE_EVERY_S have passed since the last save, or when forced (the
    run's start and end)."""

    _forced = False

    def save(self, **kwargs: object) -> None:
        due = (self.now() - self.last_save_time).total_seconds() >= self.autosave_cell_every
        if self._forced or due or not self.autosave_cell_every:
            super().save(**kwargs)

    def _forced_save(self, step, **kwargs: object) -> None:
        self._forced = True
        try:
            step(**kwargs)
        finally:
            self._forced = False

    def notebook_start(self, **kwargs: object) -> None:
        self._forced_save(super().notebook_start, **kwargs)

    def notebook_complete(self, **kwargs: object) -> None:
        self._forced_save(super().notebook_complete, **kwargs)


class SparseSaveEngine(NBClientEngine):
    """nbclient's engine with SparseSaveManager (Engine.execute_notebook, its manager
    swapped)."""

    @classmethod
    def execute_notebook(
        cls,
        nb,
        kernel_name,
        output_path=None,
        progress_bar=True,
        log_output=False,
        autosave_cell_every=SAVE_EVERY_S,
        **kwargs,
    ):
        nb_man = SparseSaveManager(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb


def engine_name() -> str:
    """The engine's papermill name (registered again: harmless)."""
    papermill_engines.register(ENGINE_NAME, SparseSaveEngine)
    return ENGINE_NAME
