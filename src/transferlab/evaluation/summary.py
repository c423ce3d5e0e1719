"""The run's summary. Its first sentence answers "better than what it came from?": for the best
fine-tuned version, its gain over its base's standard probe and over TF-IDF trained on the same
examples (points, with the interval), its latency, and its training seconds against the
probe's. Then which version wins the suite's primary metric, by how much over the runner-up and
the baseline, and at what latency.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from transferlab.evaluation.compare import BASELINE, Difference, paired_difference
from transferlab.evaluation.references import PROBE, TFIDF, References
from transferlab.evaluation.suites import Suite

Points = dict[tuple[str, str, str], float]
Distributions = dict[tuple[str, str, str], np.ndarray]


def summarise(
    suite: Suite,
    metrics: pd.DataFrame,
    latency: pd.DataFrame,
    distributions: Distributions,
    points: Points,
    versions: pd.DataFrame,
    production: list[str],
    confidence: float,
    references: References | None = None,
) -> dict[str, Any]:
    """The summary on the suite's primary metric (the first task's first scalar metric)."""
    task = suite.tasks[0]
    specs = [s for s in task.scalar_metrics if not s.hub] or task.scalar_metrics
    summary: dict[str, Any] = {
        "suite": suite.name,
        "task": task.name,
        "metric": None,
        "winner": None,
        "not_evaluable": versions.loc[~versions["evaluable"], "version"].tolist(),
        "production": production,
    }
    if not specs:
        summary["text"] = "No scalar metric to rank the versions by."
        return summary
    spec = specs[0]
    overall = metrics[
        (metrics["task"] == task.name) & (metrics["slice"] == "") & (metrics["metric"] == spec.name)
    ]
    ranked = overall.sort_values("value", ascending=not spec.higher_is_better, kind="stable")
    if ranked.empty:
        summary["text"] = f"No version has a {spec.name} value on {task.name}."
        return summary
    winner = str(ranked.iloc[0]["version"])
    summary.update(metric=spec.name, winner=winner, value=float(ranked.iloc[0]["value"]))
    parts = [f"{winner} wins on {spec.name} ({summary['value']:.3f}, task {task.name})"]
    for other, label in (
        (str(ranked.iloc[1]["version"]) if len(ranked) > 1 else None, "runner_up"),
        (BASELINE, "baseline"),
    ):
        if other is None:
            continue
        difference = paired_difference(
            points[(winner, task.name, spec.name)],
            points[(other, task.name, spec.name)],
            distributions.get((winner, task.name, spec.name)),
            distributions.get((other, task.name, spec.name)),
            confidence=confidence,
            higher_is_better=spec.higher_is_better,
        )
        summary[label] = {
            "version": other,
            "difference": difference.value,
            "ci_low": difference.ci_low,
            "ci_high": difference.ci_high,
            "verdict": difference.verdict,
        }
        interval = (
            f" (95% CI {difference.ci_low:+.3f} to {difference.ci_high:+.3f}, {difference.verdict})"
            if difference.resamples
            else ""
        )
        parts.append(f"{difference.value:+.3f} over {other}{interval}")
    measured = latency[(latency["version"] == winner) & (latency["task"] == task.name)]
    if not measured.empty:
        row = measured.iloc[0]
        summary.update(
            latency_ms_p50=float(row["latency_ms_p50"]),
            latency_ms_p95=float(row["latency_ms_p95"]),
            throughput_per_s=float(row["throughput_per_s"]),
            device=str(row["device"]),
        )
        parts.append(
            f"at {row['latency_ms_p50']:.1f} ms p50 / {row['latency_ms_p95']:.1f} ms p95 per "
            f"text on {row['device']}"
        )
    summary["text"] = ", ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if parts[1:] else "")
    summary["text"] += "."
    if references is not None:
        finetuned = [str(v) for v in ranked["version"] if str(v) in references.training]
        if finetuned:
            block, sentence = _against_references(
                finetuned[0],
                task.name,
                spec.name,
                spec.higher_is_better,
                references,
                latency,
                distributions,
                points,
                confidence,
            )
            summary["best_finetuned"] = block
            summary["text"] = f"{sentence} {summary['text']}"
    return plain(summary)


def _against_references(
    version: str,
    task: str,
    metric: str,
    higher_is_better: bool,
    references: References,
    latency: pd.DataFrame,
    distributions: Distributions,
    points: Points,
    confidence: float,
) -> tuple[dict[str, Any], str]:
    """(summary block, first sentence) for the best fine-tuned version."""
    examples = references.training[version]
    value = points[(version, task, metric)]
    block: dict[str, Any] = {
        "version": version,
        "metric": metric,
        "value": value,
        "n_train": examples.n_train,
        "train_seconds": examples.train_seconds,
        "re_derived": examples.re_derived,
        "reason": examples.reason,
    }
    compared, left_out = [], []
    for relation, what in (
        (PROBE, "its base's standard probe"),
        (TFIDF, "TF-IDF + logistic regression"),
    ):
        model = references.reference_of(version, relation)
        if model is None:
            left_out.append(what)
            continue
        difference = paired_difference(
            value,
            points[(model.name, task, metric)],
            distributions.get((version, task, metric)),
            distributions.get((model.name, task, metric)),
            confidence=confidence,
            higher_is_better=higher_is_better,
        )
        block[relation] = {
            "reference": model.name,
            "value": points[(model.name, task, metric)],
            "difference": difference.value,
            "ci_low": difference.ci_low,
            "ci_high": difference.ci_high,
            "verdict": difference.verdict,
            "train_seconds": model.train_seconds,
            "C": model.C,
        }
        if relation == PROBE:
            what = f"the standard probe of its base {model.base_version_id}"
        reference_value = points[(model.name, task, metric)]
        compared.append(f"{_points(difference)} against {what} ({reference_value:.3f})")
    sentence = f"{version}, the best fine-tuned version, scores {metric} {value:.3f} on {task}"
    if compared:
        sentence += ", " + " and ".join(compared)
        sentence += f", trained on the same {examples.n_train} examples"
    if left_out:
        reasons = references.left_out.get(version, {})
        why = "; ".join(dict.fromkeys(reasons.values())) or "no reference was trained"
        sentence += f" (not compared with {' or '.join(left_out)}: {why})"
    costs = []
    measured = latency[(latency["version"] == version) & (latency["task"] == task)]
    if not measured.empty:
        row = measured.iloc[0]
        block.update(latency_ms_p50=float(row["latency_ms_p50"]), device=str(row["device"]))
        costs.append(f"answers in {row['latency_ms_p50']:.1f} ms (p50) per text on {row['device']}")
    costs.append(_training_cost(examples.train_seconds, references, version))
    return block, f"{sentence}; it {' and '.join(costs)}."


def _points(difference: Difference) -> str:
    """'+5.2 points (95% CI +1.0 to +9.5, better)': metric differences x 100."""
    text = f"{difference.value * 100:+.1f} points"
    if difference.resamples:
        text += (
            f" ({difference.confidence:.0%} CI {difference.ci_low * 100:+.1f} to "
            f"{difference.ci_high * 100:+.1f}, {difference.verdict})"
        )
    return text


def _training_cost(seconds: float | None, references: References, version: str) -> str:
    text = (
        f"took {_duration(seconds)} to train"
        if seconds is not None
        else "has no recorded training time"
    )
    others = [
        f"{_duration(model.train_seconds)} for {'the probe' if relation == PROBE else 'TF-IDF'}"
        for relation in (PROBE, TFIDF)
        if (model := references.reference_of(version, relation)) is not None
    ]
    return text + (f", against {' and '.join(others)}" if others else "")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def plain(value: Any) -> Any:
    """NaN -> None, numpy scalars -> Python: the summary is stored as JSON in the run."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
