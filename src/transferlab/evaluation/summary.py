"""The run's summary: which version wins the suite's primary metric, by how much, at what cost."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from transferlab.evaluation.compare import BASELINE, paired_difference
from transferlab.evaluation.suites import Suite


def summarise(
    suite: Suite,
    metrics: pd.DataFrame,
    latency: pd.DataFrame,
    distributions: dict[tuple[str, str, str], np.ndarray],
    points: dict[tuple[str, str, str], float],
    versions: pd.DataFrame,
    production: list[str],
    confidence: float,
) -> dict[str, Any]:
    """Which version wins the suite's primary metric (the first task's first scalar metric),
    by how much over the runner-up and the baseline, and at what latency."""
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
    return plain(summary)


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
