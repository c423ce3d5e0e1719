"""Accuracy: the share of predictions equal to their reference label."""

import evaluate
import numpy as np

from transferlab.metrics.counting import label_metric_info

_DESCRIPTION = """
Accuracy is the proportion of correct predictions among all predictions:
(TP + TN) / (TP + TN + FP + FN) for two classes, correct / total for more.
transferlab ships this copy so that it loads offline (evaluate.load(path)).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): true label ids.
Returns:
    accuracy (`float`): between 0 and 1 (nan for no examples).
Examples:
    >>> metric = evaluate.load("src/transferlab/metrics/accuracy")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""


def score(predictions, references):
    """The metric itself, on arrays: the module's compute() and bootstrap resamples share it."""
    predictions = np.asarray(predictions)
    references = np.asarray(references)
    if predictions.shape != references.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {references.shape[0]} references")
    if predictions.size == 0:
        return {"accuracy": float("nan")}
    return {"accuracy": float(np.mean(predictions == references))}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return label_metric_info(
            _DESCRIPTION,
            _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/model_evaluation.html",
        )

    def _compute(self, predictions, references):
        return score(predictions, references)
