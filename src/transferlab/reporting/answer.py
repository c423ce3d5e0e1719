"""The benchmark report's first screen: is the new model better than what we have, by how
much, with what confidence, at what latency and cost? Two sentences, a small table and the
"how this was measured" box, all from the SuiteReport the benchmark computed (nothing is
measured again here).

"What we have" is, in this order, the production version, the version's parent, its base's
standard probe, TF-IDF + logistic regression and the majority class: the first one the
benchmark compared the version with heads the answer; the table lists them all.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from transferlab.reporting.measured import Measured, benchmark_measured
from transferlab.reporting.tables import decimals_for, metric_column, number, styled

# relation -> how the table and the sentence name it (in the order "what we have" is chosen)
RELATIONS = {
    "production": ("Production", "the production version {name}"),
    "parent": ("Its parent", "its parent {name}"),
    "base_probe": ("Base's standard probe", "its base's standard probe (frozen encoder + LR)"),
    "tfidf": ("TF-IDF + LR", "TF-IDF + logistic regression"),
    "majority_baseline": ("Majority class", "always answering the most frequent class"),
}
INTERVAL = "95 % interval"


@dataclass
class Answer:
    """The first screen: `sentences` (two), `table` (display strings), `measured` (the box)."""

    sentences: list[str]
    table: pd.DataFrame
    measured: Measured
    caption: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    def _repr_html_(self) -> str:
        first, *rest = self.sentences
        lead = (
            f'<p class="transferlab-answer" style="font-size:1.2em; line-height:1.45; '
            f'max-width:60em"><b>{html.escape(first)}</b> {html.escape(" ".join(rest))}</p>'
        )
        table = styled(self.table, caption=self.caption).to_html() if len(self.table) else ""
        return f'<div class="transferlab-first-screen">{lead}{table}{self.measured.html()}</div>'


def benchmark_answer(report: Any) -> Answer:
    """The answer for the best fine-tuned version (else the winner) on the primary metric."""
    summary = report.summary
    metric = summary.get("metric")
    best = summary.get("best_finetuned") or {}
    version = best.get("version") or summary.get("winner")
    task = report.suite.tasks[0].name
    measured = benchmark_measured(report, version)
    if not metric or not version:
        text = summary.get("text") or "Nothing was evaluated."
        return Answer([text, ""], pd.DataFrame(), measured)
    column = metric_column(metric)
    rows = report.comparisons[
        (report.comparisons["version"] == version)
        & (report.comparisons["task"] == task)
        & (report.comparisons["metric"] == metric)
    ]
    compared = sorted(
        (row for _, row in rows.iterrows() if row["relation"] in RELATIONS),
        key=lambda row: list(RELATIONS).index(row["relation"]),
    )
    value = _metric_value(report, version, task, metric)
    costs = _costs(report, version, task, best)
    if not compared:
        digits = column.decimals
        first = (
            f"{version} scores {column.label.lower()} {_shown(value, column, digits)} on "
            f"{task}; it was compared with nothing, so whether it is better is not known."
        )
        own = costs.get(version, {})
        table = pd.DataFrame([_row(version, "New model", value, None, column, digits, own)])
        return Answer([first, _cost_sentence(version, costs, best)], table, measured)
    headline = compared[0]
    digits = interval_digits(headline, column)
    first = _verdict_sentence(version, headline, column, digits, task)
    table = pd.DataFrame(
        [_row(version, "New model", value, None, column, digits, costs.get(version, {}))]
        + [
            _row(
                str(row["reference"]),
                RELATIONS[row["relation"]][0],
                row["reference_value"],
                row,
                column,
                interval_digits(row, column),
                costs.get(str(row["reference"]), {}),
            )
            for row in compared
        ]
    )
    table = table.loc[:, (table != "—").any(axis=0)]  # a cost no row has is left out
    unit = "points" if column.unit == "%" else column.unit
    caption = (
        f"Difference = new model − the row's model, in {unit or 'units of the metric'}; "
        f"{INTERVAL}: paired bootstrap over the {int(headline['n_examples'])} test examples"
    )
    return Answer([first, _cost_sentence(version, costs, best)], table, measured, caption)


def _metric_value(report: Any, version: str, task: str, metric: str) -> float | None:
    rows = report.metrics[
        (report.metrics["version"] == version)
        & (report.metrics["task"] == task)
        & (report.metrics["slice"] == "")
        & (report.metrics["metric"] == metric)
    ]
    return float(rows.iloc[0]["value"]) if len(rows) else None


def interval_digits(row: Any, column) -> int:
    """Decimals for a comparison: two significant digits of its interval's half width."""
    if not row["resamples"]:
        return column.decimals
    half = (float(row["ci_high"]) - float(row["ci_low"])) * column.scale / 2
    return decimals_for(half, default=column.decimals)


def _shown(value: float | None, column, digits: int) -> str:
    text = number(None if value is None else value * column.scale, digits)
    return f"{text} %" if column.unit == "%" else text


def difference_text(row: Any, column, digits: int) -> tuple[str, str]:
    """('+1.9 points', '0.0 to +4.8'): the difference and its interval, in points for a %."""
    unit = " points" if column.unit == "%" else ""
    value = number(float(row["difference"]) * column.scale, digits, sign=True)
    if not row["resamples"]:
        return value + unit, "—"
    low = number(float(row["ci_low"]) * column.scale, digits, sign=True)
    high = number(float(row["ci_high"]) * column.scale, digits, sign=True)
    return value + unit, f"{low} to {high}"


def established(row: Any) -> bool:
    """The interval excludes 0: the difference is established at this confidence."""
    return bool(row["resamples"]) and (row["ci_low"] > 0 or row["ci_high"] < 0)


def established_text(row: Any, subject: str = "") -> str:
    """The "Established?" cell: 'yes: <subject>better', 'no (interval includes 0)' or 'not
    tested' (no bootstrap resamples)."""
    if not row["resamples"]:
        return "not tested"
    if established(row):
        return f"yes: {subject}{row['verdict']}"
    return "no (interval includes 0)"


def _verdict_sentence(version: str, row: Any, column, digits: int, task: str) -> str:
    name = RELATIONS[row["relation"]][1].format(name=row["reference"])
    ours = _shown(row["value"], column, digits)
    theirs = _shown(row["reference_value"], column, digits)
    difference, interval = difference_text(row, column, digits)
    label = column.label if column.label.isupper() else column.label.lower()
    scores = f"{label} {ours} against {theirs} on {task}"
    if not row["resamples"]:
        return (
            f"{version} scores {scores} for {name}, a difference of {difference}; with no "
            f"interval (too few examples to resample) the difference is not established."
        )
    if not established(row):
        return (
            f"{version} is not shown to be better than {name}: {scores}, a difference of "
            f"{difference} whose {INTERVAL} ({interval}) includes 0, so the difference is "
            f"not established."
        )
    gained = row["verdict"] == "better"
    return (
        f"{version} is {'better' if gained else 'worse'} than {name}: {scores}, "
        f"{difference} ({INTERVAL} {interval}), so the {'gain' if gained else 'loss'} is "
        f"established."
    )


def _costs(report: Any, version: str, task: str, best: dict) -> dict[str, dict[str, float]]:
    """name -> latency p50 (ms) and training seconds, where the benchmark measured them."""
    costs: dict[str, dict[str, float]] = {}
    for _, row in report.latency[report.latency["task"] == task].iterrows():
        costs.setdefault(str(row["version"]), {})["latency_ms_p50"] = float(row["latency_ms_p50"])
    if best.get("train_seconds") is not None:
        costs.setdefault(version, {})["train_seconds"] = float(best["train_seconds"])
    for _, row in report.reference_models.iterrows():
        costs.setdefault(str(row["reference"]), {})["train_seconds"] = float(row["train_seconds"])
    return costs


def _row(name, role, value, comparison, column, digits, cost) -> dict[str, str]:
    difference, interval, verdict = "—", "—", "—"
    if comparison is not None:
        difference, interval = difference_text(comparison, column, digits)
        difference = difference.replace(" points", "")
        verdict = established_text(comparison, "new model ")
    unit = "points" if column.unit == "%" else ""
    latency, seconds = cost.get("latency_ms_p50"), cost.get("train_seconds")
    return {
        "Model": name,
        "Role": role,
        column.header(): number(None if value is None else float(value) * column.scale, digits),
        f"Difference ({unit})" if unit else "Difference": difference,
        f"{INTERVAL} ({unit})" if unit else INTERVAL: interval,
        "Established?": verdict,
        "Latency p50 (ms) ↓": _ms(latency),
        "Training time ↓": duration(seconds) if seconds is not None else "—",
    }


def _cost_sentence(version: str, costs: dict, best: dict) -> str:
    own = costs.get(version, {})
    parts = []
    if "latency_ms_p50" in own:
        parts.append(f"answers in {_ms(own['latency_ms_p50'])} ms per text (median, batch 1)")
    seconds = best.get("train_seconds")
    if seconds is not None:
        text = f"took {duration(seconds)} to train"
        if best.get("n_train"):
            text += f" on {best['n_train']} examples"
        others = [
            f"{duration(block['train_seconds'])} for {label}"
            for relation, label in (("base_probe", "the probe"), ("tfidf", "TF-IDF"))
            if (block := best.get(relation)) and block.get("train_seconds") is not None
        ]
        if others:
            text += f" (against {' and '.join(others)})"
        parts.append(text)
    if not parts:
        return "Its latency and training cost were not measured in this run."
    return f"It {' and '.join(parts)}."


def _ms(value: float | None) -> str:
    """Milliseconds: one decimal below 100 ms, none above (the run-to-run noise is larger)."""
    return number(value, 1 if value is not None and value < 100 else 0)


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
