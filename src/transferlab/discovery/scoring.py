"""Cheap scores of a candidate on the user's own examples: frozen mean-pooled embeddings, a
logistic regression cross-validated on them, and the batch-1 latency on this machine.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.errors import DataError
from transferlab.finetuning import sources
from transferlab.profiling import model_inputs, percentile, timed_runs
from transferlab.quiet import quiet_transformers
from transferlab.registry import Registry

MAX_FOLDS = 5
EMBED_BATCH = 32
MAX_LENGTH = 128
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
    """Stratified k-fold accuracy and macro-F1 (mean and sample std over folds) of a
    standardised logistic regression on frozen embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels)
    folds = cv_folds(y)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_validate(
        probe, embeddings, y, cv=splitter, scoring=("accuracy", "f1_macro"), n_jobs=1
    )
    accuracy, macro_f1 = scores["test_accuracy"], scores["test_f1_macro"]
    return {
        "cv_accuracy": float(accuracy.mean()),
        "cv_accuracy_std": float(accuracy.std(ddof=1)),
        "cv_macro_f1": float(macro_f1.mean()),
        "cv_macro_f1_std": float(macro_f1.std(ddof=1)),
        "folds": folds,
    }


def load_encoder(uri: str, what: str, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer): the bare encoder (AutoModel) of a version, in eval mode."""
    from transformers import AutoModel

    source = sources.source_from_uri(uri, what)
    tokenizer = sources.load_tokenizer(source)
    with sources.loading_errors(source, "model"), quiet_transformers():
        model = AutoModel.from_pretrained(source.location, **sources.pretrained_options(source))
    sources.align_pad_token(model, tokenizer)
    return model.to(device).eval(), tokenizer


def embed(
    model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = EMBED_BATCH
) -> np.ndarray:
    """Mean-pooled last hidden states; texts sorted by length, each batch padded to its own
    longest text."""
    import torch

    texts = [str(t) for t in texts]
    limit = _max_length(model, tokenizer)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=limit)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    device = next(model.parameters()).device
    keys = _forward_keys(model)
    rows: np.ndarray | None = None
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in chosen],
                padding=True,
                truncation=True,
                max_length=limit,
                return_tensors="pt",
            ).to(device)
            accepted = {k: v for k, v in batch.items() if keys is None or k in keys}
            hidden = model(**accepted).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            values = pooled.float().cpu().numpy()
            if rows is None:
                rows = np.empty((len(texts), values.shape[1]), dtype=np.float32)
            rows[chosen] = values
    assert rows is not None
    return rows


def _forward_keys(model: Any) -> set[str] | None:
    """The inputs the model's forward takes (None: it takes any keyword)."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return None
    return set(accepted)


def _max_length(model: Any, tokenizer: Any) -> int:
    limit = MAX_LENGTH
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = 2 if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta") else 0
        limit = min(limit, positions - offset)
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < limit:
        limit = model_max
    return limit


def measure_latency_p50(model: Any, tokenizer: Any, calls: int = LATENCY_CALLS) -> float:
    """Milliseconds per forward pass of one text of 64 tokens (p50 of a few timed calls),
    measured the way `transferlab profile` does."""
    import torch

    device = str(next(model.parameters()).device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    seq_len = min(LATENCY_SEQ_LEN, _max_length(model, tokenizer))
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
    model, tokenizer = load_encoder(uri, version_id, device)
    load_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        embeddings = embed(model, tokenizer, texts)
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        cv = cross_validate_probe(embeddings, labels, seed)
        cv_s = time.perf_counter() - started
        latency = profiled_latency(registry, version_id, device)
        source = "profile"
        if latency is None:
            latency, source = measure_latency_p50(model, tokenizer), "measured"
    finally:
        del model
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
    )
