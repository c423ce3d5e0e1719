"""The standard probe: a multinomial L2-regularised logistic regression on L2-normalised frozen
embeddings, its strength C chosen by stratified cross-validation on the training examples only.

Why L2-normalised and not standardised: sentence-transformers models such as all-MiniLM-L6-v2
already emit unit vectors, which is what benchmarks/method_study.py probes; unit length puts
every encoder on one scale, so one C grid fits them all, while a StandardScaler fitted on 8
examples per class estimates hundreds of means and spreads from a handful of rows. And the
weights apply to the encoder's own (normalised) vector, so a linear head can start from them
unchanged (`probe_head_weights`, for LP-FT), with no scaler to fold in and go stale while the
encoder trains. Accuracy does not decide it: benchmarks/probe_check.py (MiniLM; sst2, emotion,
trec at 8 and 64 per class, 3 seeds) gives .583 normalised + CV, .582 standardised + CV, .584
for C=1 on normalised vectors and .571 for discovery's former standardised C=1. Choosing C pays
where C=1 is far off: 50-class TREC at 8 per class, .406 against .341 (`--datasets trec_fine`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_FOLDS = 5
CS = tuple(float(c) for c in np.logspace(-2, 2, 9))
DEFAULT_C = 1.0
MAX_ITER = 3000


@dataclass
class Probe:
    """A fitted probe: `classifier` (sklearn, on normalised features), the chosen `C`, the mean
    CV accuracy and log-loss per C in the grid, the folds used (0: no CV) and why."""

    classifier: Any
    C: float
    folds: int
    note: str
    cv_accuracy: dict[float, float] = field(default_factory=dict)
    cv_log_loss: dict[float, float] = field(default_factory=dict)

    @property
    def classes(self) -> np.ndarray:
        return self.classifier.classes_

    def features(self, embeddings: np.ndarray) -> np.ndarray:
        return normalize_rows(embeddings)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, classes) logits whose softmax is `predict_proba` (two columns when binary)."""
        weight, bias = _head_arrays(self)
        return self.features(embeddings) @ weight.T + bias

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(self.features(embeddings))

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        return self.classifier.predict(self.features(embeddings))


def normalize_rows(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def probe_folds(labels: Sequence[int]) -> int:
    """min(5, the smallest class's count): 0 when a class has a single example (no CV)."""
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    folds = min(MAX_FOLDS, int(counts.min())) if len(counts) else 0
    return folds if folds >= 2 else 0


def _classifier(c: float, warm_start: bool = False) -> Any:
    from sklearn.linear_model import LogisticRegression

    # lbfgs: multinomial for 3+ classes; the default penalty is L2 (l1_ratio=0).
    return LogisticRegression(C=c, max_iter=MAX_ITER, warm_start=warm_start)


def _fit(classifier: Any, x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return classifier.fit(x, y)


def fit_probe(
    embeddings: np.ndarray,
    labels: Sequence[int],
    *,
    seed: int = 0,
    cs: Sequence[float] = CS,
    threads: int | None = 1,
) -> Probe:
    """Fit the standard probe. C: best mean fold accuracy, ties to the lower mean log-loss
    (accuracy on a few held-out rows ties often); with one example of a class, C=1, no CV.
    Deterministic given the seed (it only shuffles the folds). `threads`: BLAS threads while
    fitting (None: as is); these problems are small, and on a busy 2-core machine two BLAS
    threads made the 225 fits of a nested CV 6x slower (12 s against 2 s)."""
    from threadpoolctl import threadpool_limits

    if threads is None:
        return _fit_probe(embeddings, labels, seed, cs)
    with threadpool_limits(limits=threads):
        return _fit_probe(embeddings, labels, seed, cs)


def _fit_probe(
    embeddings: np.ndarray, labels: Sequence[int], seed: int, cs: Sequence[float]
) -> Probe:
    x, y = normalize_rows(embeddings), np.asarray(labels)
    if len(np.unique(y)) < 2:
        raise ValueError("the probe needs examples of at least two classes")
    folds = probe_folds(y)
    if folds == 0:
        classifier = _fit(_classifier(DEFAULT_C), x, y)
        note = f"a class has a single example: C={DEFAULT_C:g} without cross-validation"
        return Probe(classifier, DEFAULT_C, 0, note)
    accuracy, log_loss = _cross_validate(x, y, folds, seed, sorted(cs))
    best = max(accuracy, key=lambda c: (round(accuracy[c], 12), -log_loss[c]))
    classifier = _fit(_classifier(best), x, y)
    note = f"C={best:g} by {folds}-fold stratified CV over {len(accuracy)} values"
    return Probe(classifier, best, folds, note, accuracy, log_loss)


def _cross_validate(
    x: np.ndarray, y: np.ndarray, folds: int, seed: int, cs: list[float]
) -> tuple[dict[float, float], dict[float, float]]:
    """Mean accuracy and log-loss per C; each fold walks the grid upwards from a warm start."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    classes = np.unique(y)
    accuracy = {c: 0.0 for c in cs}
    losses = {c: 0.0 for c in cs}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held in splitter.split(x, y):
        classifier = _classifier(cs[0], warm_start=True)
        for c in cs:
            classifier.set_params(C=c)
            _fit(classifier, x[train], y[train])
            proba = classifier.predict_proba(x[held])
            predicted = classifier.classes_[proba.argmax(axis=1)]
            accuracy[c] += float(np.mean(predicted == y[held])) / folds
            losses[c] += float(log_loss(y[held], proba, labels=classes)) / folds
    return accuracy, losses


def probe_head_weights(probe: Probe) -> tuple[np.ndarray, np.ndarray]:
    """(weight (classes, dim), bias (classes,)) float32 for a linear head on the L2-normalised
    embedding, rows in `probe.classes` order: softmax(weight @ x + bias) = predict_proba.
    Binary: sklearn keeps one row w; the head gets (-w/2, +w/2), whose softmax is sigmoid(w.x+b).
    """
    weight, bias = _head_arrays(probe)
    return weight.astype(np.float32), bias.astype(np.float32)


def probe_head_rows(probe: Probe, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """`probe_head_weights` with one row per label id 0..num_labels-1: a label the training
    examples lack gets no weight and a bias 10 below every other (never predicted, as by the
    probe, yet within reach of a head that trains on)."""
    weight, bias = probe_head_weights(probe)
    classes = [int(c) for c in probe.classes]
    if classes == list(range(num_labels)):
        return weight, bias
    rows = np.zeros((num_labels, weight.shape[1]), dtype=np.float32)
    biases = np.full(num_labels, float(bias.min()) - 10.0, dtype=np.float32)
    for row, label in enumerate(classes):
        rows[label], biases[label] = weight[row], bias[row]
    return rows, biases


def _head_arrays(probe: Probe) -> tuple[np.ndarray, np.ndarray]:
    coef = np.asarray(probe.classifier.coef_, dtype=np.float64)
    bias = np.asarray(probe.classifier.intercept_, dtype=np.float64)
    if coef.shape[0] == 1 and len(probe.classes) == 2:
        coef = np.vstack([-coef / 2, coef / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2])
    return coef, bias
