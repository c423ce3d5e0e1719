"""Precision, recall, F1 and support for every label, in label order."""

import evaluate

from transferlab.metrics.counting import label_counts, label_metric_info, ratio

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


def score(predictions, references, labels=None):
    """The metric itself, on arrays: the module's compute() and bootstrap resamples share it."""
    labels, hits, predicted, true = label_counts(predictions, references, labels)
    return {
        "labels": labels.tolist(),
        "precision": ratio(hits, predicted).tolist(),
        "recall": ratio(hits, true).tolist(),
        "f1": ratio(2 * hits, predicted + true).tolist(),
        "support": true.astype(int).tolist(),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PerClass(evaluate.Metric):
    def _info(self):
        return label_metric_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/model_evaluation.html",
        )

    def _compute(self, predictions, references, labels=None):
        return score(predictions, references, labels=labels)
