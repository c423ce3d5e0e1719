"""What a classifier's logits give: probabilities (softmax), accuracy, macro-F1 and loss, and
confusion matrices. Kept small and under the project's control (no Hub downloads); used by
training, prediction and evaluation. The suites' metrics are `transferlab.metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

if TYPE_CHECKING:
    from transferlab.data import DataSplits


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def classification_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 (over the labels present in truth or prediction) and mean NLL."""
    labels = np.asarray(labels)
    predicted = np.asarray(logits).argmax(axis=-1)
    probabilities = softmax(np.asarray(logits, dtype=np.float64))
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        "loss": float(-np.log(np.clip(picked, 1e-12, None)).mean()) if len(labels) else 0.0,
        "examples": float(len(labels)),
    }


def confusion(labels: np.ndarray, logits: np.ndarray, n_labels: int) -> list[list[int]]:
    """Rows are true labels, columns predicted labels, both in label id order."""
    predicted = np.asarray(logits).argmax(axis=-1)
    matrix = confusion_matrix(labels, predicted, labels=list(range(n_labels)))
    return matrix.astype(int).tolist()


def confusion_on_test(splits: DataSplits, logits: dict[str, np.ndarray]) -> list[list[int]] | None:
    """The test split's confusion matrix (None without a test split)."""
    if splits.test is None:
        return None
    return confusion(np.asarray(splits.test.labels), logits["test"], len(splits.label_names))
