"""Frozen pooled embeddings of texts: AutoModel + tokenizer + the folder's pooling.

Texts are embedded once (the probe's cross-validation reuses the matrix), sorted by length so
each batch is padded only to its own longest text, then put back in the caller's order.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.models.pooling import Pooling, pool, pooling_or_default
from transferlab.progress import phase
from transferlab.quiet import quiet_transformers

MAX_LENGTH = 128
BATCH_SIZE = 32


@dataclass
class Encoder:
    """A loaded encoder (eval mode), its tokenizer, how it pools and the token limit used."""

    model: Any
    tokenizer: Any
    pooling: Pooling
    max_length: int

    @classmethod
    def wrap(
        cls, model: Any, tokenizer: Any, pooling: Pooling, max_length: int = MAX_LENGTH
    ) -> Encoder:
        """An already loaded model; max_length is capped by its positions and tokenizer."""
        return cls(
            model.eval(), tokenizer, pooling, fitted_max_length(model, tokenizer, max_length)
        )


@dataclass
class Embeddings:
    """One row per text, in the order given; `pooling.source` says whether the pooling was read
    from the folder or assumed (mean pooling for an encoder without a sentence-transformers
    config: `pooling.is_fallback`)."""

    vectors: np.ndarray
    pooling: Pooling
    max_length: int
    seconds: float


def load_encoder(
    location: str | Path,
    *,
    device: str = "cpu",
    max_length: int = MAX_LENGTH,
    pooling: Pooling | None = None,
    **options: Any,
) -> Encoder:
    """AutoModel + AutoTokenizer from a folder (or Hub id); `options` go to from_pretrained."""
    from transformers import AutoModel, AutoTokenizer

    options.setdefault("trust_remote_code", False)
    tokenizer = AutoTokenizer.from_pretrained(str(location), **options)
    with quiet_transformers():
        model = AutoModel.from_pretrained(str(location), **options)
    align_pad_token(model, tokenizer)
    pooling = pooling or pooling_or_default(location)
    return Encoder.wrap(model.to(device), tokenizer, pooling, max_length)


def align_pad_token(model: Any, tokenizer: Any) -> None:
    """Decoder-only tokenizers (GPT-2 ...) have no pad token: pad with end-of-text instead."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


def length_sorted_batches(
    tokenizer: Any, texts: list[str], max_length: int, batch_size: int, device: Any
) -> Iterator[tuple[np.ndarray, Any]]:
    """(indices into `texts`, tokenized batch on `device`) with texts of similar length batched
    together, so little is padded; callers put each batch's rows back at its indices."""
    lengths = [
        len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    ]
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(texts), batch_size):
        chosen = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in chosen],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        yield chosen, batch


def embed(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    batch_size: int = BATCH_SIZE,
    threads: int | None = None,
    label: str | None = None,
) -> np.ndarray:
    """(len(texts), width) float32 pooled vectors under torch.inference_mode; the batches are
    reported as live progress (transferlab.progress), named `label` (the model) if given."""
    import torch

    model, tokenizer = encoder.model, encoder.tokenizer
    texts = [str(t) for t in texts]
    if not texts:
        return np.empty((0, 0), dtype=np.float32)
    device = next(model.parameters()).device
    keys = forward_keys(model)
    rows: np.ndarray | None = None
    batches = -(-len(texts) // batch_size)
    with (
        torch_threads(threads),
        torch.inference_mode(),
        phase("embed", batches, label=label) as reported,
    ):
        for chosen, batch in length_sorted_batches(
            tokenizer, texts, encoder.max_length, batch_size, device
        ):
            accepted = {k: v for k, v in batch.items() if keys is None or k in keys}
            hidden = model(**accepted).last_hidden_state
            values = pool(hidden, batch["attention_mask"], encoder.pooling).float().cpu().numpy()
            if rows is None:
                rows = np.empty((len(texts), values.shape[1]), dtype=np.float32)
            rows[chosen] = values
            reported.advance()
    assert rows is not None
    return rows


def embed_folder(
    location: str | Path,
    texts: Sequence[str],
    *,
    max_length: int = MAX_LENGTH,
    batch_size: int = BATCH_SIZE,
    threads: int | None = None,
    device: str = "cpu",
) -> Embeddings:
    """Load the folder's encoder, embed the texts once, and free the model."""
    started = time.perf_counter()
    with torch_threads(threads):
        encoder = load_encoder(location, device=device, max_length=max_length)
        vectors = embed(encoder, texts, batch_size=batch_size)
    return Embeddings(vectors, encoder.pooling, encoder.max_length, time.perf_counter() - started)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set for a block and restored afterwards (None: as is)."""
    import torch

    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def forward_keys(model: Any) -> set[str] | None:
    """The inputs the model's forward takes (None: it takes any keyword)."""
    accepted = inspect.signature(model.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return None
    return set(accepted)


def fitted_max_length(model: Any, tokenizer: Any, limit: int = MAX_LENGTH) -> int:
    """`limit`, capped by the model's position embeddings and the tokenizer's own maximum."""
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = 2 if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta") else 0
        limit = min(limit, positions - offset)
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < limit:
        limit = model_max
    return limit
