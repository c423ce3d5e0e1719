"""Plotly figures shared by the templates and the HTML reports."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

TEMPLATE = "plotly_white"


RENDERER = "transferlab_notebook"


def use_offline_notebook_renderer() -> None:
    """Each figure as the plotly mimetype (JupyterLab draws it) and as HTML that draws it with
    a page's plotly.js (nbconvert keeps it): the report adds plotly.js to its page once
    (transferlab.report.render_html).

    Why not plotly's `notebook` renderer: it puts the whole plotly.js (4.8 MB) in every output
    notebook, which each run then sends, checks and writes (measured: 0.3 s of a small sweep
    run's 1 s of overhead).
    """
    import plotly.io as pio
    from plotly.io.base_renderers import HtmlRenderer

    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = HtmlRenderer(
            connected=False, full_html=False, global_init=False, include_plotlyjs=False
        )
    pio.renderers.default = f"plotly_mimetype+{RENDERER}"


def loss_curve(history: Sequence[dict]) -> go.Figure:
    """Training and validation loss against the optimisation step.

    `history` holds one record per logging step: {"step", "split": "train" | "validation",
    "loss", ...} (transferlab.finetune's FinetuneResult.history).
    """
    fig = go.Figure()
    for split, label in (("train", "training loss"), ("validation", "validation loss")):
        points = [
            (h["step"], h["loss"])
            for h in history
            if h.get("split") == split and h.get("loss") is not None
        ]
        if points:
            fig.add_scatter(
                x=[s for s, _ in points], y=[v for _, v in points], name=label, mode="lines+markers"
            )
    fig.update_layout(title="Loss", xaxis_title="step", yaxis_title="loss", template=TEMPLATE)
    return fig


def has_validation_scores(history: Sequence[dict], metric: str = "accuracy") -> bool:
    return any(h.get("split") == "validation" and h.get(metric) is not None for h in history)


def metric_curve(history: Sequence[dict], metric: str = "accuracy") -> go.Figure:
    """A validation metric against the optimisation step."""
    points = [
        (h["step"], h[metric])
        for h in history
        if h.get("split") == "validation" and h.get(metric) is not None
    ]
    fig = go.Figure(
        go.Scatter(
            x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers", name=metric
        )
    )
    fig.update_layout(
        title=f"Validation {metric}", xaxis_title="step", yaxis_title=metric, template=TEMPLATE
    )
    return fig


def confusion_matrix_figure(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str = "Confusion matrix (test)"
) -> go.Figure:
    """Rows are true labels, columns predicted; counts annotated in each cell."""
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=list(labels),
            y=list(labels),
            colorscale="Blues",
            text=matrix,
            texttemplate="%{text}",
            hovertemplate=("true %{y}<br>predicted %{x}<br>%{z} examples<extra></extra>"),
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis_autorange="reversed",
        template=TEMPLATE,
    )
    return fig


def metrics_by_split(
    metrics: dict[str, dict[str, float]], names: Sequence[str] = ("accuracy", "macro_f1")
) -> go.Figure:
    """Grouped bars: one group per metric, one bar per split."""
    fig = go.Figure()
    for split, values in metrics.items():
        shown = [n for n in names if n in values]
        fig.add_bar(x=shown, y=[values[n] for n in shown], name=split)
    fig.update_layout(
        title="Metrics by split", barmode="group", yaxis_range=[0, 1], template=TEMPLATE
    )
    return fig
