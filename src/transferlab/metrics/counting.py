"""What the metric scripts over integer label ids share: their MetricInfo, and the label
counts of f1 and per_class (imported by package path, since evaluate copies each script on its
own)."""

import datasets
import evaluate
import numpy as np


def label_metric_info(description, inputs_description, reference_url):
    """The MetricInfo of a metric whose inputs are predicted and true label ids."""
    return evaluate.MetricInfo(
        description=description,
        citation="",
        inputs_description=inputs_description,
        features=datasets.Features(
            {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
        ),
        reference_urls=[reference_url],
    )


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


def ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (zero_division=0)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)
