"""Expected calibration error: how far the model's confidence is from its accuracy."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Expected calibration error (Guo et al., 2017): the predictions are put in `n_bins` equal-width
bins of confidence (the top class probability; bins are (lower, upper], the first also holds
0), and ECE = sum over bins of (examples in bin / all examples) * |accuracy - mean confidence|.
0 is perfectly calibrated. The default of 15 bins follows the paper. transferlab ships this
metric so that it loads offline.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): class probabilities per example (rows sum to 1).
    references (`list` of `int`): true label ids.
    n_bins (`int`): number of equal-width confidence bins (default 15).
Returns:
    ece (`float`): between 0 and 1 (nan for no examples).
Examples:
    >>> metric = evaluate.load("src/transferlab/metrics/ece")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 0])
    {'ece': 0.45}
"""


def score(predictions, references, n_bins=15):
    """The metric itself, on arrays: the module's compute() and bootstrap resamples share it."""
    probabilities = np.asarray(predictions, dtype=np.float64)
    references = np.asarray(references, dtype=np.int64)
    if probabilities.ndim != 2:
        raise ValueError("predictions must be one row of class probabilities per example")
    if probabilities.shape[0] != references.shape[0]:
        raise ValueError(
            f"{probabilities.shape[0]} predictions for {references.shape[0]} references"
        )
    if int(n_bins) < 1:
        raise ValueError(f"n_bins={n_bins}: use at least one bin")
    if references.size == 0:
        return {"ece": float("nan")}
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == references).astype(np.float64)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    bins = np.clip(np.searchsorted(edges[1:-1], confidence, side="left"), 0, int(n_bins) - 1)
    gap = np.bincount(bins, weights=correct - confidence, minlength=int(n_bins))
    return {"ece": float(np.abs(gap).sum() / references.size)}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ECE(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Guo et al.: On Calibration of Modern Neural Networks (2017)",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/1706.04599"],
        )

    def _compute(self, predictions, references, n_bins=15):
        return score(predictions, references, n_bins=n_bins)
