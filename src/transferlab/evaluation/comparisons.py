"""Comparing models on a task: every model's metric on all examples and on the same bootstrap
resamples, and the paired difference of each evaluated version with each of its references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from transferlab.evaluation.candidates import Candidate
from transferlab.evaluation.compare import (
    BASELINE,
    bootstrap_scores,
    majority_baseline,
    paired_difference,
)
from transferlab.evaluation.scoring import Scored, metric_inputs
from transferlab.evaluation.suites import TaskData
from transferlab.metrics import MetricSpec, metric_function


def _scorer(spec: MetricSpec, result: Scored, truth: np.ndarray) -> Callable[[Any], float]:
    """The metric script's own `score` function on a subset of example indices."""
    function = metric_function(spec.module)
    data = metric_inputs(spec, result, slice(None))
    return lambda rows: function(data[rows], truth[rows], **spec.options)[spec.key]


COMPARISON_COLUMNS = [
    "version",
    "task",
    "reference",
    "relation",
    "metric",
    "value",
    "reference_value",
    "difference",
    "ci_low",
    "ci_high",
    "higher_is_better",
    "verdict",
    "n_examples",
    "resamples",
]


def compare_versions(
    evaluated: list[Candidate],
    scored: dict[tuple[str, str], Scored],
    tasks: list[TaskData],
    labels: dict[str, list[str]],
    production: list[str],
    *,
    bootstrap: int,
    seed: int,
    confidence: float,
    trained_references: dict[str, list[tuple[str, str]]] | None = None,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], np.ndarray], dict[tuple[str, str, str], float]]:
    """Every evaluated version vs its parent, the references trained on its own training
    examples (`trained_references`: version -> [(reference model, relation)], scored in
    `scored`), the production versions and the baseline.

    Returns the comparisons table, and each model's bootstrap scores and point values per
    (model, task, metric) (the summary compares the leaders with them).
    """
    rows: list[dict[str, Any]] = []
    distributions: dict[tuple[str, str, str], np.ndarray] = {}
    points: dict[tuple[str, str, str], float] = {}
    for td in tasks:
        task, truth = td.task.name, td.references
        baseline = majority_baseline(truth, len(labels[task]))
        scored[(BASELINE, task)] = Scored(baseline, baseline.argmax(axis=1), float("nan"))
        specs = [s for s in td.task.scalar_metrics if not s.hub]
        models = sorted({model for model, t in scored if t == task})
        scorers = {
            (model, spec.name): _scorer(spec, scored[(model, task)], truth)
            for model in models
            for spec in specs
        }
        everything = np.arange(len(truth))
        for (model, metric), scorer in scorers.items():
            points[(model, task, metric)] = _point(scorer, everything)
        if bootstrap:
            samples = bootstrap_scores(scorers, len(truth), resamples=bootstrap, seed=seed)
            for (model, metric), values in samples.items():
                distributions[(model, task, metric)] = values
        for candidate in evaluated:
            vid = candidate.version.version_id
            pairs: list[tuple[str, str]] = []
            parent = candidate.version.parent_version_id
            if parent and (parent, task) in scored:
                pairs.append((parent, "parent"))
            pairs += [
                (name, relation)
                for name, relation in (trained_references or {}).get(vid, [])
                if (name, task) in scored
            ]
            pairs += [(p, "production") for p in production if p not in (vid, parent)]
            pairs.append((BASELINE, "majority_baseline"))
            for other, relation in pairs:
                for spec in specs:
                    difference = paired_difference(
                        points[(vid, task, spec.name)],
                        points[(other, task, spec.name)],
                        distributions.get((vid, task, spec.name)),
                        distributions.get((other, task, spec.name)),
                        confidence=confidence,
                        higher_is_better=spec.higher_is_better,
                    )
                    rows.append(
                        {
                            "version": vid,
                            "task": task,
                            "reference": other,
                            "relation": relation,
                            "metric": spec.name,
                            "value": points[(vid, task, spec.name)],
                            "reference_value": points[(other, task, spec.name)],
                            "difference": difference.value,
                            "ci_low": difference.ci_low,
                            "ci_high": difference.ci_high,
                            "higher_is_better": spec.higher_is_better,
                            "verdict": difference.verdict,
                            "n_examples": len(truth),
                            "resamples": difference.resamples,
                        }
                    )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS), distributions, points


def _point(scorer: Callable[[Any], float], rows: np.ndarray) -> float:
    try:
        return float(scorer(rows))
    except ValueError:
        return float("nan")
