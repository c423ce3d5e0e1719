"""Tables a stakeholder reads: no index column, one header row with units, lower-is-better
columns marked, numbers rounded to what their interval supports.

`styled(frame)` turns a plain (long or wide) DataFrame of the evaluation into a pandas Styler;
columns it knows (COLUMNS) get a label, a unit and a format, unknown ones a readable name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

LOWER_MARK = "↓"
LOWER_NOTE = f"{LOWER_MARK} lower is better"


@dataclass(frozen=True)
class Column:
    label: str
    unit: str = ""
    decimals: int = 1
    lower_is_better: bool = False
    scale: float = 1.0  # a fraction shown in percent has scale 100

    def header(self) -> str:
        mark = f" {LOWER_MARK}" if self.lower_is_better else ""
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit}{mark}"


# Scores that are fractions (0..1) are shown in percent; their differences in points.
METRICS = {
    "accuracy": Column("Accuracy", "%", 1, scale=100),
    "macro_f1": Column("Macro-F1", "%", 1, scale=100),
    "micro_f1": Column("Micro-F1", "%", 1, scale=100),
    "roc_auc": Column("ROC AUC", "%", 1, scale=100),
    "mcc": Column("MCC", "", 3),
    "ece": Column("Calibration error (ECE)", "%", 1, lower_is_better=True, scale=100),
    "precision": Column("Precision", "%", 1, scale=100),
    "recall": Column("Recall", "%", 1, scale=100),
    "f1": Column("F1", "%", 1, scale=100),
}
COLUMNS = {
    **METRICS,
    "latency_ms_p50": Column("Latency p50", "ms", 1, lower_is_better=True),
    "latency_ms_p95": Column("Latency p95", "ms", 1, lower_is_better=True),
    "throughput_per_s": Column("Throughput", "texts/s", 0),
    "peak_memory_mb": Column("Peak memory", "MB", 0, lower_is_better=True),
    "model_size_mb": Column("Model size", "MB", 1, lower_is_better=True),
    "adapter_size_mb": Column("Adapter size", "MB", 2, lower_is_better=True),
    "train_seconds": Column("Training time", "s", 1, lower_is_better=True),
    "n_examples": Column("Examples", "", 0),
    "examples": Column("Examples", "", 0),
    "loss": Column("Loss", "", 3, lower_is_better=True),
    "n_train": Column("Training examples", "", 0),
    "support": Column("Support", "examples", 0),
    "n_per_class": Column("Examples per class", "", 0),
    "examples_per_class": Column("Examples per class, as plotted", "", 1),
}


def metric_column(metric: str) -> Column:
    """The column of a result metric name (`accuracy`, `ece[text_length=0-70]`, ...)."""
    return METRICS.get(metric.split("[", 1)[0], Column(readable(metric), "", 3))


def metric_label(metric: str) -> str:
    """'Accuracy (%)', 'Calibration error (ECE) (%) ↓': a metric named for a reader."""
    return metric_column(metric).header()


def readable(name: str) -> str:
    """'reference_value' -> 'Reference value'."""
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def decimals_for(width: float | None, default: int = 1, most: int = 3) -> int:
    """Decimals that show an interval of `width` with two significant digits (so a value is
    not printed more precisely than it is known): 8.3 -> 1, 0.42 -> 2; `default` without one."""
    if width is None or not math.isfinite(width) or width <= 0:
        return default
    return max(0, min(most, 1 - math.floor(math.log10(width))))


def number(value, decimals: int, sign: bool = False) -> str:
    """A rounded number for a table cell; '—' for a missing one."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    text = f"{value:+,.{decimals}f}" if sign else f"{value:,.{decimals}f}"
    return text.replace("-", "−")


def styled(
    frame: pd.DataFrame,
    *,
    labels: dict[str, str] | None = None,
    decimals: dict[str, int] | None = None,
    caption: str | None = None,
):
    """A Styler of `frame` for a report: the index hidden (a named index becomes a column),
    columns renamed with units and marks, numbers formatted, a note when a column is
    lower-is-better. Works on a copy; `frame` is not changed."""
    table = frame.copy()
    if table.index.name is not None or isinstance(table.index, pd.MultiIndex):
        table = table.reset_index()
    if isinstance(table.columns, pd.MultiIndex):
        table.columns = [" ".join(str(p) for p in c if str(p)) for c in table.columns]
    table.columns.name = None
    labels, decimals = labels or {}, decimals or {}
    formats, renamed, lower = {}, {}, False
    taken: set[str] = set()
    for name in table.columns:
        column = COLUMNS.get(str(name)) or (
            metric_column(str(name)) if str(name).split("[", 1)[0] in METRICS else None
        )
        if column is not None:
            renamed[name] = _unique(labels.get(name, column.header()), name, taken)
            lower |= column.lower_is_better
            if pd.api.types.is_numeric_dtype(table[name]):
                table[name] = table[name] * column.scale
                digits = decimals.get(name, column.decimals)
                formats[renamed[name]] = lambda v, d=digits: number(v, d)
        else:
            renamed[name] = _unique(labels.get(name, readable(name)), name, taken)
            if pd.api.types.is_float_dtype(table[name]):
                digits = decimals.get(name, 2)
                formats[renamed[name]] = lambda v, d=digits: number(v, d)
            elif pd.api.types.is_bool_dtype(table[name]):
                formats[renamed[name]] = lambda v: "yes" if v else "no"
    text = [  # names and words read from the left; numbers line up on the right
        i for i, c in enumerate(table.columns) if renamed[c] not in formats and _is_text(table[c])
    ]
    table = table.rename(columns=renamed)
    notes = [caption] if caption else []
    if lower:
        notes.append(LOWER_NOTE)
    styler = table.style.hide(axis="index").format(formats, na_rep="—")
    styler = styler.set_table_attributes('class="transferlab-table"')
    if notes:
        styler = styler.set_caption(" · ".join(notes))
    left = [
        {"selector": f"td.col{i}, th.col_heading.col{i}", "props": "text-align: left;"}
        for i in text
    ]
    return styler.set_table_styles(TABLE_STYLE + left)


def _is_text(values: pd.Series) -> bool:
    """Words, not numbers (shown as text or not): a value that starts with a letter."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    return any(str(v)[:1].isalpha() for v in values if v is not None)


def _unique(label: str, name: object, taken: set[str]) -> str:
    """A header no other column has (a Styler needs them unique): the raw name added if not."""
    if label in taken:
        label = f"{label} [{name}]"
    taken.add(label)
    return label


TABLE_STYLE = [
    {"selector": "", "props": "border-collapse: collapse; margin: 0.4em 0 1em 0;"},
    {
        "selector": "caption",
        "props": "caption-side: bottom; text-align: left; color: #555; font-size: 0.85em;",
    },
    {
        "selector": "th",
        "props": "text-align: right; border-bottom: 1px solid #333; padding: 4px 10px;",
    },
    {"selector": "td", "props": "text-align: right; padding: 3px 10px;"},
    {"selector": "th:first-child, td:first-child", "props": "text-align: left;"},
    {"selector": "tr:nth-child(even) td", "props": "background: #f5f5f5;"},
]
