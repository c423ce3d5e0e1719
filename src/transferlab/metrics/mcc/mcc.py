"""Matthews correlation coefficient (multi-class form), from -1 to 1; 0 is chance level."""

import evaluate
import numpy as np

from transferlab.metrics.counting import label_metric_info

_DESCRIPTION = """
The Matthews correlation coefficient between predicted and true labels, in the multi-class
form of Gorodkin (2004) that scikit-learn's matthews_corrcoef uses:
(c * s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2)), with c correct
predictions, s examples, p_k / t_k the predicted / true counts of label k. 0 when undefined
(one label only). Unlike accuracy it stays informative on imbalanced labels. transferlab ships
this metric so that it loads offline.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): true label ids.
Returns:
    mcc (`float`): between -1 and 1 (nan for no examples).
Examples:
    >>> metric = evaluate.load("src/transferlab/metrics/mcc")
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 1, 0])
    {'mcc': 1.0}
"""


def score(predictions, references):
    """The metric itself, on arrays: the module's compute() and bootstrap resamples share it."""
    predictions = np.asarray(predictions, dtype=np.int64)
    references = np.asarray(references, dtype=np.int64)
    if predictions.shape != references.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {references.shape[0]} references")
    if predictions.size == 0:
        return {"mcc": float("nan")}
    if min(predictions.min(), references.min()) < 0:
        raise ValueError("label ids must be non-negative integers")
    size = int(max(predictions.max(), references.max())) + 1
    predicted = np.bincount(predictions, minlength=size).astype(np.float64)
    true = np.bincount(references, minlength=size).astype(np.float64)
    samples = float(predictions.size)
    correct = float(np.sum(predictions == references))
    covariance = correct * samples - predicted @ true
    spread_predicted = samples**2 - predicted @ predicted
    spread_true = samples**2 - true @ true
    if spread_predicted * spread_true == 0:
        return {"mcc": 0.0}
    return {"mcc": float(covariance / np.sqrt(spread_predicted * spread_true))}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MCC(evaluate.Metric):
    def _info(self):
        return label_metric_info(
            _DESCRIPTION, _KWARGS_DESCRIPTION, "https://doi.org/10.1016/j.compbiolchem.2004.09.006"
        )

    def _compute(self, predictions, references):
        return score(predictions, references)
