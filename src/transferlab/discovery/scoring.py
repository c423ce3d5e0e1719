"""Cheap scores of a candidate on the user's own examples: frozen pooled embeddings (the
encoder's own pooling, transferlab.models.embedding), the standard probe cross-validated on
them (transferlab.models.probe, the probe linear_probe trains), and the batch-1 latency here.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.errors import DataError
from transferlab.models import embedding, sources
from transferlab.models.embedding import Encoder
from transferlab.models.probe import MAX_FOLDS, fit_probe
from transferlab.profiling import model_inputs, percentile, timed_runs
from transferlab.registry import Registry

LATENCY_CALLS = 10
LATENCY_WARMUP = 2
LATENCY_SEQ_LEN = 64  # what `transferlab profile` measures, so both sources compare


@dataclass
class Score:
    """Cross-validated scores of one candidate and what they cost to get."""

    cv_accuracy: float
    cv_accuracy_std: float
    cv_macro_f1: float
    cv_macro_f1_std: float
    folds: int
    latency_p50_ms: float
    latency_source: str  # 'profile' (registry) or 'measured'
    load_s: float
    embed_s: float
    cv_s: float
    pooling: str = ""  # e.g. "mean pooling + L2 (sentence-transformers)"
    probe_c: float | None = None  # the median C the probe chose over the training folds

    def metrics(self) -> dict[str, float]:
        """The numbers written to the registry's results table."""
        return {
            "cv_accuracy": self.cv_accuracy,
            "cv_accuracy_std": self.cv_accuracy_std,
            "cv_macro_f1": self.cv_macro_f1,
            "cv_macro_f1_std": self.cv_macro_f1_std,
            "latency_p50_ms": self.latency_p50_ms,
        }


def cv_folds(labels: Sequence[int]) -> int:
    """min(5, the smallest class's count): every fold holds each class at least once."""
    counts = np.bincount(np.asarray(labels))
    counts = counts[counts > 0]
    if len(counts) < 2:
        raise DataError(
            "The examples to score with have only one class.",
            "Discovery ranks models by how well their embeddings separate classes: give "
            "labelled data with at least two classes.",
        )
    folds = min(MAX_FOLDS, int(counts.min()))
    if folds < 2:
        raise DataError(
            "A class has a single example; cross-validation needs two of each.",
            "Raise n_per_class to 2 or more, or add examples of that class.",
        )
    return folds


def cross_validate_probe(
    embeddings: np.ndarray, labels: Sequence[int], seed: int = 0
) -> dict[str, float]:
    """Stratified k-fold accuracy and macro-F1 (mean and sample std over folds) of the standard
    probe (transferlab.models.probe, as linear_probe fine-tunes it): its C is chosen inside each
    training fold, so the held-out fold never helps pick it."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    folds = cv_folds(y)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accuracy, macro_f1, chosen = [], [], []
    for train, held in splitter.split(embeddings, y):
        probe = fit_probe(embeddings[train], y[train], seed=seed)
        predicted = probe.predict(embeddings[held])
        accuracy.append(accuracy_score(y[held], predicted))
        macro_f1.append(f1_score(y[held], predicted, average="macro"))
        chosen.append(probe.C)
    return {
        "cv_accuracy": float(np.mean(accuracy)),
        "cv_accuracy_std": float(np.std(accuracy, ddof=1)),
        "cv_macro_f1": float(np.mean(macro_f1)),
        "cv_macro_f1_std": float(np.std(macro_f1, ddof=1)),
        "folds": folds,
        "probe_c": float(np.median(chosen)),
    }


def load_encoder(uri: str, what: str, device: str = "cpu") -> Encoder:
    """The bare encoder (AutoModel) of a version in eval mode, with its tokenizer and pooling
    (the folder's sentence-transformers pooling, else mean pooling, said in pooling.source)."""
    source = sources.source_from_uri(uri, what)
    options = sources.pretrained_options(source)
    with sources.loading_errors(source, "model"):
        return embedding.load_encoder(source.location, device=device, **options)


def measure_latency_p50(model: Any, tokenizer: Any, calls: int = LATENCY_CALLS) -> float:
    """Milliseconds per forward pass of one text of 64 tokens (p50 of a few timed calls),
    measured the way `transferlab profile` does."""
    import torch

    device = str(next(model.parameters()).device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    seq_len = min(LATENCY_SEQ_LEN, embedding.fitted_max_length(model, tokenizer))
    inputs = model_inputs(tokenizer, model, 1, seq_len, device)
    with torch.inference_mode():
        timed_runs(model, inputs, LATENCY_WARMUP, sync)
        seconds = timed_runs(model, inputs, calls, sync)
    return percentile(seconds, 0.5) * 1000


def profiled_latency(registry: Registry, version_id: str, device: str) -> float | None:
    """The batch-1 p50 of the version's stored profile on this device, if there is one."""
    for profile in registry.profiles(version_id):
        if profile["device"] == device and profile["latency_ms_p50"] is not None:
            return float(profile["latency_ms_p50"])
    return None


def score_candidate(
    registry: Registry,
    version_id: str,
    uri: str,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    seed: int = 0,
    device: str = "cpu",
) -> Score:
    """Load the version's encoder, embed the examples, cross-validate a probe, time it."""
    started = time.perf_counter()
    encoder = load_encoder(uri, version_id, device)
    model, tokenizer = encoder.model, encoder.tokenizer
    encoder_pooling = encoder.pooling.describe()
    load_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        embeddings = embedding.embed(encoder, texts, label=version_id)
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        cv = cross_validate_probe(embeddings, labels, seed)
        cv_s = time.perf_counter() - started
        latency = profiled_latency(registry, version_id, device)
        source = "profile"
        if latency is None:
            latency, source = measure_latency_p50(model, tokenizer), "measured"
    finally:
        del model, encoder
        gc.collect()
    return Score(
        cv_accuracy=cv["cv_accuracy"],
        cv_accuracy_std=cv["cv_accuracy_std"],
        cv_macro_f1=cv["cv_macro_f1"],
        cv_macro_f1_std=cv["cv_macro_f1_std"],
        folds=cv["folds"],
        latency_p50_ms=latency,
        latency_source=source,
        load_s=load_s,
        embed_s=embed_s,
        cv_s=cv_s,
        pooling=encoder_pooling,
        probe_c=cv["probe_c"],
    )
