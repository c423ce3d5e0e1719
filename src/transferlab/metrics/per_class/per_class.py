"""Precision, recall, F1 and support for every label, in label order."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Per-label precision (TP / predicted), recall (TP / true), F1 and support (true count). A ratio
with a zero denominator is 0, as in scikit-learn with zero_division=0. transferlab ships this
metric so that it loads offline.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): true label ids.
    labels (`list` of `int`, optional): the labels to report, in this order; default: every
        label in predictions or references, sorted.
Returns:
    labels, precision, recall, f1, support: lists, one entry per label.
Examples:
    >>> metric = evaluate.load("src/transferlab/metrics/per_class")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])["recall"]
    [0.5, 1.0]
"""


def label_counts(predictions, references, labels=None):
    """(labels, true positives, predicted count, true count) per label, in label order."""
    predictions = np.asarray(predictions, dtype=np.int64)
    references = np.asarray(references, dtype=np.int64)
    if predictions.shape != references.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {references.shape[0]} references")
    if labels is None:
        labels = np.union1d(predictions, references)
    labels = np.asarray(labels, dtype=np.int64)
    size = int(max(labels.max(initial=-1), predictions.max(initial=-1), references.max(initial=-1)))
    size += 1
    if min(predictions.min(initial=0), references.min(initial=0), labels.min(initial=0)) < 0:
        raise ValueError("label ids must be non-negative integers")
    hits = np.bincount(references[predictions == references], minlength=size)
    predicted = np.bincount(predictions, minlength=size)
    true = np.bincount(references, minlength=size)
    return labels, hits[labels], predicted[labels], true[labels]


def _ratio(numerator, denominator):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def score(predictions, references, labels=None):
    """The metric itself, on arrays: the module's compute() and bootstrap resamples share it."""
    labels, hits, predicted, true = label_counts(predictions, references, labels)
    return {
        "labels": labels.tolist(),
        "precision": _ratio(hits, predicted).tolist(),
        "recall": _ratio(hits, true).tolist(),
        "f1": _ratio(2 * hits, predicted + true).tolist(),
        "support": true.astype(int).tolist(),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PerClass(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, labels=None):
        return score(predictions, references, labels=labels)
