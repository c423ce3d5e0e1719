"""`data_efficiency(...)`: the runs, the curve table, the thresholds and the figures at once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from transferlab.efficiency.collect import (
    check_metric,
    collect_points,
    normalise_run_ids,
    sweep_run_ids,
)
from transferlab.efficiency.curves import (
    GROUP,
    LEVELS,
    curve_table,
    threshold_sentences,
    thresholds,
)
from transferlab.efficiency.figure import curve_figure, figure_groups
from transferlab.registry import Registry


@dataclass
class DataEfficiency:
    """Scores of fine-tune runs against labelled examples per class.

    `points` has one row per run, `table` one per (model, data set, method, n_per_class),
    `thresholds` one per (model, data set, method); `notes` says which runs were left out.
    """

    metric: str
    split: str
    points: pd.DataFrame
    table: pd.DataFrame
    levels: Sequence[float] = LEVELS
    notes: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def has_curve(self) -> bool:
        """True when some method was measured at two training sizes or more."""
        return bool(figure_groups(self.table)) if not self.table.empty else False

    @property
    def thresholds(self) -> pd.DataFrame:
        return thresholds(self.table, self.levels)

    def sentences(self) -> list[str]:
        return threshold_sentences(self.table, self.metric, self.levels)

    def figures(self) -> list[go.Figure]:
        """One figure per data set that has a curve."""
        return [
            curve_figure(
                self.table, dataset, metric=self.metric, split=self.split, levels=self.levels
            )
            for dataset in figure_groups(self.table)
        ]

    def summary(self) -> dict:
        """JSON-able: what a curves run records as its metrics in the registry."""
        found = self.thresholds
        return {
            "metric": self.metric,
            "split": self.split,
            "source": self.source,
            "runs": len(self.points),
            "has_curve": self.has_curve,
            "thresholds": [
                {key: _plain(value) for key, value in row.items()}
                for row in found.to_dict("records")
            ],
            "sentences": self.sentences() if self.has_curve else [],
            "notes": list(self.notes),
        }

    def shortage(self) -> str:
        """Why there is no curve, in plain words (empty when there is one)."""
        if self.has_curve:
            return ""
        runs = len(self.points)
        where = f" ({self.source})" if self.source else ""
        if not runs:
            return (
                f"Too little data for a curve: no succeeded fine-tune run with a {self.split} "
                f"{self.metric}{where}. Run a sweep over n_per_class first, e.g. "
                "`transferlab sweep sweeps/sample_curve.yaml`."
            )
        sizes = self.table.groupby(GROUP)["n_per_class"].nunique().max()
        return (
            f"Too little data for a curve: {runs} fine-tune run(s){where}, at most {sizes} "
            "training size per method. A curve needs one method measured at two sizes or more "
            "(n_per_class 8, 16, 32, ... and all), ideally with several seeds: e.g. "
            "`transferlab sweep sweeps/sample_curve.yaml`."
        )


def data_efficiency(
    registry: Registry,
    *,
    sweep: str | None = None,
    runs: str | Sequence[str] | None = None,
    base_models: str | Iterable[str] | None = None,
    dataset: str | None = None,
    fingerprint: str | None = None,
    metric: str = "accuracy",
    split: str = "test",
    levels: Sequence[float] = LEVELS,
) -> DataEfficiency:
    """The data-efficiency curves of a sweep, of explicit runs, or of every succeeded fine-tune
    run of some base models (all models when none of these is given).

    `sweep` (an id or name) and `runs` (run ids) may be combined; `dataset` and `fingerprint`
    narrow any selection (see collect_points).
    """
    check_metric(metric)
    run_ids = normalise_run_ids(runs)
    if sweep:
        run_ids = [*sweep_run_ids(registry, sweep), *run_ids]
    if isinstance(base_models, str):
        base_models = [base_models]
    points, notes = collect_points(
        registry,
        run_ids=run_ids or None,
        base_models=None if run_ids else base_models,
        dataset=dataset,
        fingerprint=fingerprint,
        metric=metric,
        split=split,
    )
    if run_ids and base_models is not None:
        points = points[points["model"].isin(list(base_models))].reset_index(drop=True)
    return DataEfficiency(
        metric=metric,
        split=split,
        points=points,
        table=curve_table(points),
        levels=tuple(levels),
        notes=notes,
        source=_describe(sweep, runs, base_models, dataset),
    )


def _plain(value: object) -> object:
    """numpy scalars as Python ones, NaN as None (JSON has no NaN)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _describe(
    sweep: str | None,
    runs: str | Sequence[str] | None,
    base_models: Iterable[str] | None,
    dataset: str | None,
) -> str:
    parts = []
    if sweep:
        parts.append(f"sweep {sweep}")
    if runs:
        parts.append("runs given by id")
    if not parts:
        models = sorted(base_models) if base_models is not None else []
        parts.append(f"base model {', '.join(models)}" if models else "all base models")
    if dataset:
        parts.append(f"data set {dataset}")
    return ", ".join(parts)
