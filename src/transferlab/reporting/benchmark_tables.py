"""The benchmark report's tables below the first screen, for a reader: one row per
comparison with the difference and its interval in one unit, rounded to what the interval
supports, the direction of each metric said."""

from __future__ import annotations

from typing import Any

import pandas as pd

from transferlab.reporting.answer import (
    RELATIONS,
    difference_text,
    established_text,
    interval_digits,
)
from transferlab.reporting.tables import metric_column, number, styled


def comparison_table(report: Any, metrics: tuple[str, ...] | None = None):
    """Each version against each reference, one row per metric (all scalar metrics unless
    `metrics` names some)."""
    rows = report.comparisons
    if metrics:
        rows = rows[rows["metric"].isin(metrics)]
    shown = []
    for _, row in rows.iterrows():
        column = metric_column(str(row["metric"]))
        digits = interval_digits(row, column)
        difference, interval = difference_text(row, column, digits)
        verdict = established_text(row)
        shown.append(
            {
                "Version": row["version"],
                "Compared with": row["reference"],
                "Role": RELATIONS.get(row["relation"], (row["relation"],))[0],
                "Metric": column.header(),
                "Version's score": number(float(row["value"]) * column.scale, digits),
                "Their score": number(float(row["reference_value"]) * column.scale, digits),
                "Difference": difference,
                "95 % interval": interval,
                "Established?": verdict,
            }
        )
    caption = (
        "Difference = version − the model compared with (points for a % metric); "
        "better/worse take each metric's direction into account"
    )
    return styled(pd.DataFrame(shown), caption=caption)
