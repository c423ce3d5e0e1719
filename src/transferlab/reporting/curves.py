"""The curves report's first screen: how many labelled examples does each method need? The
threshold sentences the analysis already writes, the thresholds as a small table, and the
"how this was measured" box."""

from __future__ import annotations

from typing import Any

import pandas as pd

from transferlab.efficiency.curves import level_column
from transferlab.reporting.answer import Answer
from transferlab.reporting.measured import Measured
from transferlab.reporting.tables import metric_column, number


def curves_answer(efficiency: Any) -> Answer:
    """From a DataEfficiency (transferlab.efficiency.data_efficiency)."""
    column = metric_column(efficiency.metric)
    sentences = efficiency.sentences() if efficiency.has_curve else [efficiency.shortage()]
    found = efficiency.thresholds if efficiency.has_curve else pd.DataFrame()
    rows = [
        {
            "Model": row["model"],
            "Data set": row["dataset"],
            "Method": row["method"],
            f"Reference {column.header()}": number(
                float(row["reference_score"]) * column.scale, column.decimals
            ),
            "Reference size": "all data" if row["full_data"] else f"{row['reference']} per class",
            **{
                f"{level:.0%} reached at (per class)": str(row[level_column(level)] or "never")
                for level in efficiency.levels
            },
        }
        for row in found.to_dict("records")
    ]
    caption = "the smallest examples per class whose mean over seeds reaches that share"
    return Answer(sentences + [""], pd.DataFrame(rows), _measured(efficiency), caption)


def _measured(efficiency: Any) -> Measured:
    points = efficiency.points
    items = [("Scores", f"{efficiency.split} {efficiency.metric} of each fine-tune run")]
    if len(points):
        datasets = ", ".join(sorted({str(d) for d in points["dataset"]}))
        sizes = ", ".join(str(s) for s in dict.fromkeys(points["n_per_class"]))
        seeds = ", ".join(str(s) for s in sorted({int(s) for s in points["seed"] if s == s}))
        items += [
            ("Data", datasets),
            (
                "Runs",
                f"{len(points)} ({efficiency.source})" if efficiency.source else str(len(points)),
            ),
            ("Sizes (per class)", sizes),
            ("Seeds", seeds or "—"),
        ]
    items.append(("Hardware", "each fine-tune run's own (recorded with the run: transferlab runs)"))
    return Measured(items)
