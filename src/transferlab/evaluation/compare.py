"""Paired bootstrap comparisons: is a metric difference between two models a gain or noise?

Both models are scored on the same resampled examples (indices drawn with replacement, shared
by every model and metric of a task), so the spread of the difference reflects only what the
models do differently, not which examples happened to be drawn. The confidence interval is the
percentile interval of the resampled differences.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Scorer = Callable[[np.ndarray], float]
BASELINE = "majority-class"


@dataclass(frozen=True)
class Difference:
    """`a - b` on all examples, with the bootstrap interval of that difference."""

    value: float
    ci_low: float
    ci_high: float
    resamples: int
    confidence: float = 0.95
    higher_is_better: bool = True

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (a real difference at this confidence)."""
        return bool(self.resamples) and (self.ci_low > 0 or self.ci_high < 0)

    @property
    def verdict(self) -> str:
        """'better', 'worse' (a relative to b) or 'no clear difference'."""
        if not self.significant:
            return "no clear difference"
        gained = self.value > 0 if self.higher_is_better else self.value < 0
        return "better" if gained else "worse"


def bootstrap_scores(
    scorers: Mapping[Hashable, Scorer], n: int, *, resamples: int = 1000, seed: int = 0
) -> dict[Hashable, np.ndarray]:
    """Every scorer on the same `resamples` bootstrap samples of `n` examples.

    A scorer takes example indices and returns a number; one that raises ValueError on a
    sample (ROC-AUC on a sample with one class) scores NaN there.
    """
    rng = np.random.default_rng(seed)
    scores = {key: np.full(resamples, np.nan) for key in scorers}
    for b in range(resamples):
        indices = rng.integers(0, n, size=n)
        for key, scorer in scorers.items():
            try:
                scores[key][b] = scorer(indices)
            except (ValueError, ZeroDivisionError):
                continue
    return scores


def paired_difference(
    point_a: float,
    point_b: float,
    scores_a: np.ndarray | None,
    scores_b: np.ndarray | None,
    *,
    confidence: float = 0.95,
    higher_is_better: bool = True,
) -> Difference:
    """The difference a - b and the percentile interval of its paired bootstrap samples."""
    value = float(point_a - point_b)
    if scores_a is None or scores_b is None:
        return Difference(value, np.nan, np.nan, 0, confidence, higher_is_better)
    differences = np.asarray(scores_a) - np.asarray(scores_b)
    differences = differences[np.isfinite(differences)]
    if not differences.size:
        return Difference(value, np.nan, np.nan, 0, confidence, higher_is_better)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return Difference(
        value, float(low), float(high), int(differences.size), confidence, higher_is_better
    )


def paired_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    predictions_a: Sequence | np.ndarray,
    predictions_b: Sequence | np.ndarray,
    references: Sequence | np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    higher_is_better: bool = True,
) -> Difference:
    """Compare two models' predictions (labels or probability rows) on one metric.

    `metric(predictions, references)` returns a number; both models see the same resamples.
    """
    a, b, truth = np.asarray(predictions_a), np.asarray(predictions_b), np.asarray(references)
    if not len(a) == len(b) == len(truth):
        raise ValueError(f"{len(a)} and {len(b)} predictions for {len(truth)} references")
    scores = bootstrap_scores(
        {"a": lambda i: metric(a[i], truth[i]), "b": lambda i: metric(b[i], truth[i])},
        len(truth),
        resamples=resamples,
        seed=seed,
    )
    return paired_difference(
        metric(a, truth),
        metric(b, truth),
        scores["a"],
        scores["b"],
        confidence=confidence,
        higher_is_better=higher_is_better,
    )


def majority_baseline(references: np.ndarray, n_labels: int) -> np.ndarray:
    """Probability rows of the trivial model: every example gets the label frequencies, so it
    always predicts the most frequent label (the lowest id on a tie)."""
    references = np.asarray(references, dtype=np.int64)
    counts = np.bincount(references, minlength=n_labels).astype(np.float64)
    frequencies = counts / counts.sum() if counts.sum() else np.full(n_labels, 1 / n_labels)
    return np.tile(frequencies, (len(references), 1))
