"""The data-efficiency figure: score against examples per class (log x), one line per method
(and model), standard deviation as error bars, the 90 % / 95 % levels as dotted and dashed
lines in the method's colour."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from transferlab.efficiency.collect import FULL_DATA
from transferlab.efficiency.curves import (
    GROUP,
    LEVELS,
    METRIC_LABELS,
    method_label,
    thresholds,
)
from transferlab.figures import TEMPLATE

_LEVEL_DASHES = ("dot", "dash", "dashdot", "longdash")
_DASH_WORDS = {"dot": "dotted", "dash": "dashed", "dashdot": "dash-dotted", "longdash": "long"}


def curve_figure(
    table: pd.DataFrame,
    dataset: str | None = None,
    *,
    metric: str = "accuracy",
    split: str = "test",
    levels: Sequence[float] = LEVELS,
) -> go.Figure:
    """One data set's curves (the only one in `table` when `dataset` is None)."""
    if dataset is not None:
        table = table[table["dataset"] == dataset]
    datasets = sorted(table["dataset"].unique())
    several_models = table["model"].nunique() > 1
    metric_label = METRIC_LABELS.get(metric, metric)
    fig = go.Figure()
    found = thresholds(table, levels)
    palette = qualitative.Plotly
    ticks: dict[float, str] = {}
    span = (float(table["examples_per_class"].min()), float(table["examples_per_class"].max()))
    for index, (key, group) in enumerate(table.groupby(["model", "method"], sort=True)):
        model, method = key
        group = group.sort_values("examples_per_class", kind="stable")
        color = palette[index % len(palette)]
        name = method_label(method) + (f" ({model})" if several_models else "")
        labels = [_size_label(row) for row in group.to_dict("records")]
        for x, label in zip(group["examples_per_class"], labels, strict=True):
            ticks[float(x)] = label
        fig.add_scatter(
            x=group["examples_per_class"],
            y=group["mean"],
            error_y={"type": "data", "array": group["std"].fillna(0.0), "visible": True},
            mode="lines+markers",
            name=name,
            legendgroup=name,
            line={"color": color},
            customdata=list(
                zip(labels, group["n_train"], group["runs"], group["std"], strict=True)
            ),
            hovertemplate=(
                f"{name}<br>%{{customdata[0]}} per class, %{{customdata[1]}} examples"
                f"<br>{metric_label} %{{y:.3f}} ± %{{customdata[3]:.3f}} over "
                "%{customdata[2]} run(s)<extra></extra>"
            ),
        )
        rows = found[(found["model"] == model) & (found["method"] == method)]
        _add_levels(fig, rows, levels, span, color, name, metric_label)
    title_data = datasets[0] if len(datasets) == 1 else ", ".join(datasets)
    marks = ", ".join(
        f"{_DASH_WORDS[dash]} {level * 100:g} %"
        for level, dash in zip(levels, _LEVEL_DASHES, strict=False)
    )
    reference = "full-data" if found["full_data"].all() else "reference (full-data or largest)"
    fig.update_layout(
        title={
            "text": f"Data efficiency on {title_data}: {split} {metric_label} "
            f"(mean ± std over seeds)<br><sup>lines: {marks} of each method's {reference} "
            f"{metric_label}</sup>"
        },
        xaxis_title="labelled examples per class (log scale)",
        yaxis_title=metric_label,
        template=TEMPLATE,
        legend_title_text="method",
    )
    fig.update_xaxes(type="log", tickvals=sorted(ticks), ticktext=[ticks[x] for x in sorted(ticks)])
    return fig


def _size_label(row: dict) -> str:
    if row["n_per_class"] == FULL_DATA:
        return f"all (~{row['examples_per_class']:.0f})"
    return str(row["n_per_class"])


def _add_levels(
    fig: go.Figure,
    rows: pd.DataFrame,
    levels: Sequence[float],
    span: tuple[float, float],
    color: str,
    name: str,
    metric_label: str,
) -> None:
    """A line across the plot at each level of the method's reference score, in the method's
    colour and legend group (hiding the method hides its levels), named on hover."""
    for row in rows.to_dict("records"):
        score = row["reference_score"]
        if math.isnan(score) or score <= 0:
            continue
        reference = "full-data" if row["full_data"] else "best measured"
        for level, dash in zip(levels, _LEVEL_DASHES, strict=False):
            label = f"{level * 100:g} % of {name} {reference} {metric_label}"
            fig.add_scatter(
                x=list(span),
                y=[level * score] * 2,
                mode="lines",
                line={"color": color, "dash": dash, "width": 1},
                legendgroup=name,
                showlegend=False,
                name=label,
                hovertemplate=f"{label}: %{{y:.3f}}<extra></extra>",
            )


def figure_groups(table: pd.DataFrame) -> list[str]:
    """The data sets of `table` that have a curve (two sizes or more for some method)."""
    sizes = table.groupby(GROUP)["n_per_class"].nunique()
    return sorted({dataset for (_, dataset, _), n in sizes.items() if n >= 2})
