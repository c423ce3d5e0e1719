"""Plotly charts of a discovery table: score against latency and against size."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from transferlab.figures import TEMPLATE


def _scored(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"].isin(["scored", "too slow"])]


def _scatter(table: pd.DataFrame, x: str, title: str, x_title: str, log_x: bool) -> go.Figure:
    fig = go.Figure()
    scored = _scored(table)
    for status, symbol in (("scored", "circle"), ("too slow", "x")):
        part = scored[scored["status"] == status]
        if part.empty:
            continue
        fig.add_scatter(
            x=part[x].astype(float),
            y=part["cv_accuracy"].astype(float),
            error_y={"type": "data", "array": part["cv_accuracy_std"].astype(float).tolist()},
            mode="markers+text",
            text=part["model"],
            textposition="top center",
            marker={"size": 11, "symbol": symbol},
            name="over max latency" if status == "too slow" else "ranked",
        )
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title="cross-validated accuracy (± std over folds)",
        template=TEMPLATE,
    )
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def score_vs_latency(table: pd.DataFrame) -> go.Figure:
    return _scatter(
        table, "latency_p50_ms", "Score against latency", "latency p50, batch 1 (ms)", False
    )


def score_vs_size(table: pd.DataFrame) -> go.Figure:
    return _scatter(table, "parameters", "Score against size", "parameters (log)", True)
