"""Area under the ROC curve for a binary task, from predicted probabilities."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
ROC-AUC for two classes: the probability that a random positive example scores higher than a
random negative one (ties count one half), computed from average ranks (Mann-Whitney U), as
scikit-learn's roc_auc_score does for binary labels. Predictions are the positive class's
probability, or one probability row per example (column `pos_label` is used).
transferlab ships this metric so that it loads offline.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`, or `list` of `list` of `float`): P(positive) per example,
        or class probabilities per example.
    references (`list` of `int`): true labels, 0 or 1 (or `pos_label` and anything else).
    pos_label (`int`): the positive label (default 1).
Returns:
    roc_auc (`float`): between 0 and 1. Raises ValueError when only one class is present.
Examples:
    >>> metric = evaluate.load("src/transferlab/metrics/roc_auc")
    >>> metric.compute(predictions=[0.1, 0.4, 0.35, 0.8], references=[0, 0, 1, 1])
    {'roc_auc': 0.75}
"""


def _average_ranks(values):
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[group]
    return ranks


def score(predictions, references, pos_label=1):
    """The metric itself, on arrays: the module's compute() and bootstrap resamples share it."""
    scores = np.asarray(predictions, dtype=np.float64)
    if scores.ndim == 2:
        if scores.shape[1] <= pos_label:
            raise ValueError(
                f"probability rows have {scores.shape[1]} columns, pos_label={pos_label}"
            )
        scores = scores[:, pos_label]
    positive = np.asarray(references) == pos_label
    if scores.shape != positive.shape:
        raise ValueError(f"{scores.shape[0]} predictions for {positive.shape[0]} references")
    n_positive = int(positive.sum())
    n_negative = positive.size - n_positive
    if n_positive == 0 or n_negative == 0:
        raise ValueError("ROC-AUC needs both classes in the references; only one is present")
    ranks = _average_ranks(scores)
    u = ranks[positive].sum() - n_positive * (n_positive + 1) / 2.0
    return {"roc_auc": float(u / (n_positive * n_negative))}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RocAuc(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("float64"),
                        "references": datasets.Value("int64"),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float64")),
                        "references": datasets.Value("int64"),
                    }
                ),
            ],
            reference_urls=["https://en.wikipedia.org/wiki/Receiver_operating_characteristic"],
        )

    def _compute(self, predictions, references, pos_label=1):
        return score(predictions, references, pos_label=pos_label)
