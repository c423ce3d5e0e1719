"""The model picker: filters, a result table, a detail panel and a "use this model" action.

Layout and wiring only; what is shown comes from state.py and render.py. Every refresh opens the
registry briefly and closes it again, so a fine-tuning run (another process) can write to it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from transferlab.errors import TransferlabError
from transferlab.registry import Registry
from transferlab.registry.records import SOURCES
from transferlab.search import LICENSE_POLICIES
from transferlab.widgets import render
from transferlab.widgets.progress import RunProgress
from transferlab.widgets.state import (
    ANY,
    FilterValues,
    ModelDetails,
    SearchOutcome,
    find_models,
    finetune_parameters,
    model_details,
    registry_tasks,
)


class ModelPicker:
    """Find a model, inspect it, and fine-tune it, in one JupyterLab widget.

    `run_parameters` (e.g. data, max_steps, name) are added to the parameters that "Use this
    model" fills in; `output_dir` is where run notebooks go (default outputs/runs).
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        run_parameters: dict[str, Any] | None = None,
        output_dir: str | Path | None = None,
        limit: int = 50,
    ) -> None:
        self.registry = registry or Registry()
        self.run_parameters = dict(run_parameters or {})
        self.output_dir = output_dir
        self.limit = limit
        self.outcome = SearchOutcome()
        self.details: ModelDetails | None = None
        self.finetune_parameters: dict[str, Any] | None = None
        self.message = ""
        self._query: str | None = None
        self._updating = False
        self._build()
        self.refresh()

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        short = widgets.Layout(width="220px")
        tasks = registry_tasks(self.registry)
        self.task = widgets.Dropdown(
            options=[ANY, *tasks], value=ANY, description="task", layout=short
        )
        self.license = widgets.Dropdown(
            options=list(LICENSE_POLICIES), value=ANY, description="licence", layout=short
        )
        self.max_params = widgets.Text(
            value="",
            placeholder="e.g. 150M",
            description="max size",
            continuous_update=False,
            layout=short,
        )
        self.source = widgets.Dropdown(
            options=[ANY, *SOURCES], value=ANY, description="source", layout=short
        )
        self.runnable_here = widgets.Checkbox(
            value=False, description="runnable here", indent=False
        )
        self.query = widgets.Text(
            value="",
            placeholder="describe what you need",
            description="search",
            continuous_update=False,
            layout=widgets.Layout(width="460px"),
        )
        self.search_button = widgets.Button(description="Search", icon="search")
        self.results = widgets.HTML()
        self.selector = widgets.Select(
            options=[], description="model", rows=6, layout=widgets.Layout(width="460px")
        )
        self.details_html = widgets.HTML()
        self.version = widgets.Dropdown(options=[], description="version", layout=short)
        self.use_button = widgets.Button(
            description="Use this model", button_style="primary", disabled=True
        )
        self.parameters_html = widgets.HTML()
        self.run_button = widgets.Button(
            description="Run fine-tune", button_style="success", disabled=True, icon="play"
        )
        self.progress = RunProgress()

        for control in (self.task, self.license, self.max_params, self.source, self.runnable_here):
            control.observe(self._on_filter, names="value")
        self.query.observe(self._on_query_text, names="value")
        self.search_button.on_click(lambda _: self.search())
        self.selector.observe(self._on_select, names="value")
        self.use_button.on_click(lambda _: self.use_selected())
        self.run_button.on_click(lambda _: self.start_finetune())

        filters = widgets.VBox(
            [
                widgets.HBox([self.task, self.license, self.max_params]),
                widgets.HBox([self.source, self.runnable_here]),
                widgets.HBox([self.query, self.search_button]),
            ]
        )
        actions = widgets.VBox(
            [
                widgets.HBox([self.version, self.use_button, self.run_button]),
                self.parameters_html,
                self.progress.widget,
            ]
        )
        self.widget = widgets.VBox(
            [filters, self.results, self.selector, self.details_html, actions]
        )
        self.widget.add_class("transferlab-picker")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- filters and results ----------------------------------------------------------------

    def filter_values(self) -> FilterValues:
        return FilterValues(
            task=self.task.value,
            license=self.license.value,
            max_params=self.max_params.value,
            source=self.source.value,
            runnable_here=self.runnable_here.value,
            query=self._query,
            limit=self.limit,
        )

    def refresh(self) -> SearchOutcome:
        """Search with the current filters and show the rows (or why there are none)."""
        self.outcome = find_models(self.registry, self.filter_values())
        self.message = self.outcome.message or ""
        names = self.outcome.names
        keep = self.selector.value if self.selector.value in names else None
        self._updating = True
        try:
            self.selector.options = names
            self.selector.value = keep or (names[0] if names else None)
        finally:
            self._updating = False
        self._show_selected()
        return self.outcome

    def search(self, text: str | None = None) -> SearchOutcome:
        """Rank by similarity to `text` (default: the search box); empty text is refused."""
        if text is not None:
            self._updating = True
            try:
                self.query.value = text
            finally:
                self._updating = False
        self._query = self.query.value
        outcome = self.refresh()
        if not self._query.strip():
            self._query = None  # said once; the next filter change shows plain results again
        return outcome

    def _on_filter(self, _change: dict) -> None:
        self.refresh()

    def _on_query_text(self, change: dict) -> None:
        if self._updating:
            return
        # Enter in the box searches; clearing it goes back to plain filters (the Search button
        # on an empty box says the text is empty instead).
        self._query = change["new"] if change["new"].strip() else None
        self.refresh()

    # -- selection and details --------------------------------------------------------------

    @property
    def selected(self) -> str | None:
        return self.selector.value

    def select(self, name: str) -> None:
        if name not in self.outcome.names:
            raise TransferlabError(
                f"{name!r} is not among the models shown.",
                f"Pick one of: {', '.join(self.outcome.names) or 'none (loosen the filters)'}.",
            )
        self.selector.value = name

    def _on_select(self, _change: dict) -> None:
        if not self._updating:
            self._show_selected()

    def _show_selected(self) -> None:
        self.results.value = render.results_html(self.outcome, self.selected)
        if self.selected is None:
            self.details = None
            self.details_html.value = ""
            self.version.options = []
            self.use_button.disabled = True
            return
        self.details = model_details(self.registry, self.selected)
        self.details_html.value = render.details_html(self.details)
        self.version.options = self.details.version_ids
        self.version.value = self.details.default_version()
        self.use_button.disabled = self.version.value is None

    # -- use and run ------------------------------------------------------------------------

    def use_selected(self) -> dict[str, Any] | None:
        """Fill `finetune_parameters` from the chosen version and its recommended settings."""
        if self.version.value is None:
            return None
        try:
            params = finetune_parameters(self.registry, self.version.value, self.run_parameters)
        except TransferlabError as error:
            self.finetune_parameters = None
            self.run_button.disabled = True
            self.parameters_html.value = render.message(str(error), is_error=True)
            return None
        warning = None
        chosen = next(v for v in self.details.versions if v["version_id"] == self.version.value)
        if not chosen["local"]:
            warning = (
                f"The weights of {self.version.value} are not on this machine: the run loads "
                "them from the hub, and fails fast offline. Tick 'runnable here' to see local "
                "models."
            )
        self.finetune_parameters = params
        self.parameters_html.value = render.parameters_html(params, warning)
        self.run_button.disabled = False
        return params

    def start_finetune(self) -> threading.Thread | None:
        """Run the finetune template with `finetune_parameters` in the background."""
        if self.finetune_parameters is None or self.progress.running:
            return None
        self.run_button.disabled = True
        thread = self.progress.start(
            "finetune", self.finetune_parameters, self.registry, self.output_dir
        )
        threading.Thread(target=self._enable_run_after, args=(thread,), daemon=True).start()
        return thread

    def _enable_run_after(self, thread: threading.Thread) -> None:
        thread.join()
        self.run_button.disabled = False


def pick_model(registry: Registry | None = None, **options: Any) -> ModelPicker:
    """Show a picker in the notebook and return it (its `finetune_parameters` fill on use)."""
    from IPython.display import display

    picker = ModelPicker(registry, **options)
    display(picker.widget)
    return picker
