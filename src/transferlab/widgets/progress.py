"""A template run in a background thread, with its progress shown live: a bar over the
notebook's cells and one over the long step inside the current cell (training steps with the
loss and validation score, embedding or evaluation batches).

Both come from the run's progress file (transferlab.progress: the runner writes each cell's
start, the kernel's library code its steps); a watcher thread tails it twice a second, so the
kernel (and the browser) stay responsive while the run goes on.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from transferlab.progress import RunView, channel_path
from transferlab.progress.channel import Tail
from transferlab.progress.view import UNITS
from transferlab.registry import Registry
from transferlab.registry.api import new_run_id
from transferlab.runner import (
    RunOutcome,
    default_output_dir,
    executed_cells,
    run_template,
    template_path,
)

POLL_SECONDS = 0.5


class RunProgress:
    """An IntProgress over the run's cells, one over the current long step, a status line,
    and the outcome when it ends."""

    def __init__(self) -> None:
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="cells")
        self.step_bar = widgets.IntProgress(value=0, min=0, max=1, description="")
        self.step_bar.layout.visibility = "hidden"
        self.status = widgets.HTML("")
        self.widget = widgets.VBox([self.bar, self.step_bar, self.status])
        self.view = RunView()
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
        cells = executed_cells(template_path(template))
        self.bar.max, self.bar.value, self.bar.bar_style = cells, 0, "info"
        self.view = RunView()
        self.step_bar.layout.visibility = "hidden"
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
        tail = Tail(channel_path(self.run_id or ""))
        while not finished.wait(POLL_SECONDS):
            self._show_progress(tail)
        self._show_progress(tail)

    def _show_progress(self, tail: Tail) -> None:
        records = tail.read()
        for record in records:  # one by one: a short step between two reads still shows
            self.view.apply([record])
            if self.view.cell is not None:
                done, total = self.view.cell
                self.bar.max = max(total, 1)
                self.bar.value = min(max(done - 1, 0), total)  # cells before this one
            step = self.view.step
            if step is not None:
                self.step_bar.description = UNITS.get(step["phase"], str(step["phase"]))
                self.step_bar.max = max(int(step["total"]), 1)
                self.step_bar.value = min(int(step["done"]), self.step_bar.max)
                self.step_bar.layout.visibility = "visible"
        if records or self.view.in_step:
            text = html.escape(self.view.text())
            self.status.value = f"Running <code>{self.run_id}</code>: {text}"

    def _show_end(self) -> None:
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
