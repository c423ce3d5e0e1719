"""A template run in a background thread, with its progress shown per notebook cell.

papermill saves the output notebook when each cell starts and ends, with the cell's status in its
metadata; a watcher thread reads that file twice a second, so the kernel (and the browser) stay
responsive while the run goes on, and nothing in the runner needs a callback.
"""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from transferlab.registry import Registry
from transferlab.registry.api import new_run_id
from transferlab.runner import RunOutcome, default_output_dir, run_template, template_path

POLL_SECONDS = 0.5


def cells_done(notebook: Path) -> tuple[int, int] | None:
    """(cells completed, cells in all) of a notebook papermill is writing; None if unreadable."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None  # not written yet, or caught half-written: read it again next time
    done = sum(
        1
        for cell in cells
        if cell.get("metadata", {}).get("papermill", {}).get("status") == "completed"
    )
    return done, len(cells)


class RunProgress:
    """An IntProgress over the run's cells, a status line, and the outcome when it ends."""

    def __init__(self) -> None:
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="cells")
        self.status = widgets.HTML("")
        self.widget = widgets.VBox([self.bar, self.status])
        self.outcome: RunOutcome | None = None
        self.error: BaseException | None = None
        self.run_id: str | None = None
        self.output_notebook: Path | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        template: str,
        parameters: dict[str, Any],
        registry: Registry,
        output_dir: str | Path | None = None,
    ) -> threading.Thread:
        """Start `run_template(template, parameters)` in a daemon thread; returns the thread."""
        if self.running:
            raise RuntimeError("A run is still going; wait for it to finish.")
        folder = Path(output_dir) if output_dir else default_output_dir() / "runs"
        self.run_id = new_run_id(Path(template).stem)
        self.output_notebook = (folder / f"{self.run_id}.ipynb").resolve()
        self.outcome, self.error = None, None
        cells = json.loads(template_path(template).read_text(encoding="utf-8"))["cells"]
        self.bar.max, self.bar.value, self.bar.bar_style = len(cells) + 1, 0, "info"
        self.status.value = f"Starting {html.escape(template)} run <code>{self.run_id}</code>…"
        self._thread = threading.Thread(
            target=self._run,
            args=(template, dict(parameters), registry, folder),
            name=f"transferlab-{self.run_id}",
            daemon=True,
        )
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> RunOutcome | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.outcome

    def _run(self, template: str, parameters: dict, registry: Registry, folder: Path) -> None:
        finished = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(finished,), daemon=True)
        watcher.start()
        try:
            self.outcome = run_template(
                template,
                parameters,
                registry=registry,
                output_dir=folder,
                run_id=self.run_id,
                progress_bar=False,
            )
        except BaseException as error:  # shown in the widget: a thread has no one to raise to
            self.error = error
        finally:
            finished.set()
            watcher.join()
            self._show_end()

    def _watch(self, finished: threading.Event) -> None:
        while not finished.wait(POLL_SECONDS):
            self._show_cells()

    def _show_cells(self) -> None:
        counts = cells_done(self.output_notebook) if self.output_notebook else None
        if counts is None:
            return
        done, total = counts
        self.bar.max = max(total, 1)
        self.bar.value = min(done, total)
        self.status.value = f"Running <code>{self.run_id}</code>: cell {done + 1} of {total}"

    def _show_end(self) -> None:
        self._show_cells()
        outcome = self.outcome
        if outcome is not None and outcome.succeeded:
            self.bar.value = self.bar.max
            self.bar.bar_style = "success"
            versions = ", ".join(outcome.versions) or "none"
            self.status.value = (
                f"<b>succeeded</b>: run <code>{outcome.run_id}</code>, new version "
                f"<code>{html.escape(versions)}</code>, notebook "
                f"<code>{html.escape(str(outcome.output_notebook))}</code>"
            )
            return
        self.bar.bar_style = "danger"
        error = (
            outcome.error if outcome is not None else f"{type(self.error).__name__}: {self.error}"
        )
        where = f", notebook <code>{self.output_notebook}</code>" if self.output_notebook else ""
        self.status.value = (
            f"<b>failed</b>: run <code>{self.run_id}</code>: {html.escape(str(error))}{where}"
        )
