"""The evaluation loop: every example once, batches of similar length, no autograd.

Texts are tokenized once, sorted by token count and cut into batches padded to their own
longest row (little padding wasted), run under `torch.inference_mode`, and the outputs are
put back in the original order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.models.logits import softmax
from transferlab.progress import phase

DEFAULT_BATCH_SIZE = 32


@dataclass
class Inference:
    """Class probabilities in the input order, and what producing them cost."""

    probabilities: np.ndarray
    seconds: float
    batch_size: int
    padded_tokens: int
    real_tokens: int

    @property
    def examples_per_s(self) -> float:
        return len(self.probabilities) / self.seconds if self.seconds > 0 else float("nan")


def predict_probabilities(
    loaded: Any,
    texts: Sequence[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    warmup: bool = True,
    label: str | None = None,
) -> Inference:
    """Probabilities of every label (the model's label order) for `texts`.

    `loaded` is a `transferlab.predict.LoadedVersion`; the batches are reported as live
    progress (transferlab.progress), named `label` if given. `seconds` covers tokenization and every
    batch, not the optional warm-up batch (one-off allocations, lazy kernels).
    """
    import torch

    texts = [str(t) for t in texts]
    n_labels = len(loaded.label_names)
    if not texts:
        return Inference(np.zeros((0, n_labels)), 0.0, batch_size, 0, 0)
    if warmup:
        _run_batches(loaded, texts[:batch_size], batch_size, torch, reported=False)
    _synchronize(loaded.device, torch)
    started = time.perf_counter()
    logits, padded, real = _run_batches(loaded, texts, batch_size, torch, label=label)
    _synchronize(loaded.device, torch)
    seconds = time.perf_counter() - started
    return Inference(softmax(logits.astype(np.float64)), seconds, batch_size, padded, real)


def _run_batches(
    loaded: Any,
    texts: list[str],
    batch_size: int,
    torch: Any,
    reported: bool = True,
    label: str | None = None,
) -> tuple[np.ndarray, int, int]:
    tokenizer = loaded.tokenizer
    encoded = tokenizer(texts, truncation=True, max_length=loaded.max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    pads = {
        "input_ids": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        "attention_mask": 0,
        "token_type_ids": getattr(tokenizer, "pad_token_type_id", 0) or 0,
    }
    left = getattr(tokenizer, "padding_side", "right") == "left"
    lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), np.int64, len(texts))
    order = np.argsort(lengths, kind="stable")
    outputs: np.ndarray | None = None
    padded = 0
    batches = -(-len(texts) // batch_size) if reported else 0
    with torch.inference_mode(), phase("evaluate", batches, label=label) as shown:
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            padded += width * len(rows)
            batch = {
                key: torch.from_numpy(
                    _pad([encoded[key][r] for r in rows], width, pads[key], left)
                ).to(loaded.device)
                for key in keys
            }
            logits = loaded.model(**batch).logits.float().cpu().numpy()
            if outputs is None:
                outputs = np.empty((len(texts), logits.shape[1]), dtype=np.float32)
            outputs[rows] = logits
            if reported:
                shown.advance()
    assert outputs is not None
    return outputs, padded, int(lengths.sum())


def _pad(rows: list[list[int]], width: int, value: int, left: bool) -> np.ndarray:
    array = np.full((len(rows), width), value, dtype=np.int64)
    for i, row in enumerate(rows):
        if left:
            array[i, width - len(row) :] = row
        else:
            array[i, : len(row)] = row
    return array


def _synchronize(device: str, torch: Any) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
