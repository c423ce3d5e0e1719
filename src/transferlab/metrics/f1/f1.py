"""F1: the harmonic mean of precision and recall, averaged over labels (macro, micro, weighted)
or for the positive label of a binary task."""

import evaluate
import numpy as np

from transferlab.metrics.counting import label_counts, label_metric_info, ratio

_DESCRIPTION = """
F1 = 2 * precision * recall / (precision + recall), per label, then averaged:
'macro' (unweighted mean over labels), 'micro' (from the summed counts; equals accuracy for
single-label tasks), 'weighted' (mean weighted by each label's support) or 'binary' (the
`pos_label` only). A label with no predicted and no true examples scores 0, as in scikit-learn
with zero_division=0. transferlab ships this copy so that it loads offline.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): true label ids.
    average (`str`): 'macro' (default), 'micro', 'weighted' or 'binary'.
    labels (`list` of `int`, optional): the labels to average over; default: every label in
        predictions or references.
    pos_label (`int`): the positive label for average='binary' (default 1).
Returns:
    f1 (`float`): between 0 and 1 (nan for no examples).
Examples:
    >>> metric = evaluate.load("src/transferlab/metrics/f1")
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2], average="micro")
    {'f1': 0.75}
"""

AVERAGES = ("macro", "micro", "weighted", "binary")


def score(predictions, references, average="macro", labels=None, pos_label=1):
    """The metric itself, on arrays: the module's compute() and bootstrap resamples share it."""
    if average not in AVERAGES:
        raise ValueError(f"average={average!r}: use one of {', '.join(AVERAGES)}")
    if len(predictions) == 0:
        return {"f1": float("nan")}
    if average == "binary":
        labels = [pos_label]
    labels, hits, predicted, true = label_counts(predictions, references, labels)
    if average == "micro":
        return {"f1": float(ratio(2 * hits.sum(), predicted.sum() + true.sum()))}
    per_label = ratio(2 * hits, predicted + true)
    if average == "weighted":
        return {"f1": float(np.sum(per_label * true) / true.sum()) if true.sum() else 0.0}
    return {"f1": float(per_label.mean()) if per_label.size else 0.0}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return label_metric_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/model_evaluation.html",
        )

    def _compute(self, predictions, references, average="macro", labels=None, pos_label=1):
        return score(predictions, references, average=average, labels=labels, pos_label=pos_label)
