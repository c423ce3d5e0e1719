"""Data-efficiency curves: a score (mean and spread over seeds) against labelled examples per
class, per model, data set and method, from fine-tune runs in the registry; the fewest examples
per class at which each method reaches 90 % and 95 % of its full-data score; plotly figures;
and the curves report of a sweep (templates/curves.ipynb)."""

from transferlab.efficiency.analysis import DataEfficiency, data_efficiency
from transferlab.efficiency.collect import FULL_DATA, METRICS, collect_points, sweep_run_ids
from transferlab.efficiency.curves import (
    LEVELS,
    curve_table,
    level_column,
    threshold_sentences,
    thresholds,
)
from transferlab.efficiency.figure import curve_figure
from transferlab.efficiency.report import render_sweep_report

__all__ = [
    "FULL_DATA",
    "LEVELS",
    "METRICS",
    "DataEfficiency",
    "collect_points",
    "curve_figure",
    "curve_table",
    "data_efficiency",
    "level_column",
    "render_sweep_report",
    "sweep_run_ids",
    "threshold_sentences",
    "thresholds",
]
