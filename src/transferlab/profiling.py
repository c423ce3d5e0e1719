"""Measure what a local text model costs to run: load time, latency, throughput, memory."""

from __future__ import annotations

import gc
import inspect
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transferlab.catalog.local import folder_size_bytes
from transferlab.errors import ModelSourceError, TransferlabError
from transferlab.quiet import quiet_transformers

# Files any AutoTokenizer backend loads from; a folder with none of them has no text tokenizer.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
_SAMPLE_SENTENCES = (
    "The delivery arrived two days late and the box was damaged.",
    "I would happily recommend this laptop to anyone who travels a lot.",
    "Can you tell me when the museum opens on Sunday mornings?",
    "The committee approved the new budget after a long debate.",
    "Heavy rain is expected across the northern region tomorrow.",
    "Her second novel is darker and funnier than the first one.",
    "Please reset my password, the link in the email has expired.",
    "The striker scored twice in the final ten minutes of the match.",
)
_WARMUP_RUNS = 3


class RssPeak:
    """Peak resident memory of this process, sampled by a thread (psutil) or from getrusage."""

    def __init__(self, interval_s: float = 0.005):
        try:
            import psutil

            self._process: Any = psutil.Process()
        except ImportError:
            self._process = None
        self.interval_s = interval_s
        self.baseline = self.peak = self._rss()
        self._stop = threading.Event()
        self._maxrss_start = _maxrss_bytes()
        self._thread = threading.Thread(target=self._sample, name="rss-peak", daemon=True)

    def _rss(self) -> int:
        return int(self._process.memory_info().rss) if self._process is not None else 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def growth_bytes(self) -> int:
        # ru_maxrss only moves once the process exceeds its lifetime peak, so it is a fallback.
        sampled = self.peak - self.baseline if self.baseline else 0
        return max(sampled, _maxrss_bytes() - self._maxrss_start, 0)


def _maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def _check_text_model_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ModelSourceError(
            f"Model folder {folder} does not exist.",
            "Pass a local Hugging Face model folder (config.json, weights and tokenizer files).",
        )
    if not (folder / "config.json").is_file():
        raise ModelSourceError(
            f"No config.json in {folder}: not a Hugging Face model folder.",
            "Pass the folder written by `model.save_pretrained(DIR)` (config.json + weights).",
        )
    if not has_text_tokenizer(folder):
        raise ModelSourceError(
            f"No tokenizer in {folder}: profiling measures text models on tokenized sentences.",
            "Save the tokenizer next to the model (`tokenizer.save_pretrained(DIR)`); image and "
            "audio models are not profiled by this function.",
        )


def has_text_tokenizer(folder: Path) -> bool:
    """Whether a model folder holds tokenizer files (image and audio models have none)."""
    return any((Path(folder) / f).is_file() for f in _TOKENIZER_FILES)


def _import_model_class(folder: Path) -> None:
    """Import the model's module now, so load_seconds times the load, not a one-off import.

    The first BERT load in a process spends about 2 s importing modeling code, 20x the load.
    """
    from transformers import MODEL_MAPPING, AutoConfig

    # On failure AutoModel.from_pretrained reports the problem, where the load is timed.
    with suppress(OSError, ValueError, KeyError):
        MODEL_MAPPING[type(AutoConfig.from_pretrained(folder, local_files_only=True))]


def model_inputs(
    tokenizer: Any, model: Any, rows: int, seq_len: int, device: str
) -> dict[str, Any]:
    """Real tokenizer output of `rows` different texts, each truncated to exactly seq_len tokens.

    Texts are longer than seq_len, so every row is full length and no pad token is needed
    (decoder-only tokenizers often have none).
    """
    repeats = seq_len // 4 + 1
    texts = []
    for row in range(rows):
        start = row % len(_SAMPLE_SENTENCES)
        rotated = _SAMPLE_SENTENCES[start:] + _SAMPLE_SENTENCES[:start]
        texts.append(" ".join(rotated * (repeats // len(rotated) + 1)))
    encoded = tokenizer(texts, truncation=True, max_length=seq_len, return_tensors="pt")
    accepted = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    inputs = {k: v.to(device) for k, v in encoded.items() if takes_any or k in accepted}
    if getattr(model.config, "is_encoder_decoder", False):
        start_id = model.config.decoder_start_token_id
        if start_id is None:
            start_id = model.config.pad_token_id or 0
        inputs["decoder_input_ids"] = inputs["input_ids"][:, :1].clone().fill_(start_id)
    return inputs


def timed_runs(
    model: Any, inputs: dict[str, Any], count: int, sync: Callable[[], None]
) -> list[float]:
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        model(**inputs)
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def profile_model(
    path: str | Path,
    *,
    batch_size: int = 32,
    seq_len: int = 64,
    repeats: int = 20,
    device: str = "cpu",
) -> dict[str, Any]:
    """Load a local text model with AutoModel and time its forward pass.

    Latency is per call at batch 1 (p50/p95 over `repeats` timed calls after warm-up);
    throughput is samples per second at `batch_size`; inputs are real tokenizer output
    `seq_len` tokens long. Peak memory is RSS growth on CPU, max allocated memory on CUDA.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = Path(path).expanduser().resolve()
    _check_text_model_folder(folder)
    if repeats < 1 or batch_size < 1 or seq_len < 2:
        raise TransferlabError(
            f"Invalid profile settings: repeats={repeats}, batch_size={batch_size}, "
            f"seq_len={seq_len}.",
            "Use repeats >= 1, batch_size >= 1 and seq_len >= 2.",
        )
    on_cuda = device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        raise TransferlabError(
            f"Device {device!r} was asked for but CUDA is not available here.",
            "Profile with device='cpu', or run on a machine with a CUDA GPU.",
        )

    def sync() -> None:
        if on_cuda:
            torch.cuda.synchronize(device)

    _import_model_class(folder)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    gc.collect()
    with RssPeak() as rss:
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelSourceError(
                f"Cannot load a tokenizer from {folder}: {exc}",
                "Save a working tokenizer next to the model (`tokenizer.save_pretrained(DIR)`).",
            ) from exc
        start = time.perf_counter()
        try:
            with quiet_transformers():
                model = AutoModel.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # damaged weights raise SafetensorError, refused pickles ...
            raise ModelSourceError(
                f"AutoModel cannot load {folder}: {type(exc).__name__}: {_first_line(exc)}",
                "Profiling loads models with transformers' AutoModel; models that need "
                "custom code (trust_remote_code) are not supported.",
            ) from exc
        model = model.to(device).eval()
        sync()
        load_seconds = time.perf_counter() - start

        max_positions = getattr(model.config, "max_position_embeddings", None)
        if isinstance(max_positions, int) and max_positions > 0:
            seq_len = min(seq_len, max_positions)
        single = model_inputs(tokenizer, model, 1, seq_len, device)
        batch = model_inputs(tokenizer, model, batch_size, seq_len, device)

        with torch.inference_mode():
            timed_runs(model, single, _WARMUP_RUNS, sync)
            latencies = timed_runs(model, single, repeats, sync)
            timed_runs(model, batch, 1, sync)
            batch_runs = max(2, repeats // 4)
            batch_seconds = timed_runs(model, batch, batch_runs, sync)

    parameters = sum(p.numel() for p in model.parameters())
    peak_bytes = torch.cuda.max_memory_allocated(device) if on_cuda else rss.growth_bytes()
    del model
    gc.collect()

    return {
        "path": str(folder),
        "parameters": int(parameters),
        "size_bytes": folder_size_bytes(folder),
        "load_seconds": round(load_seconds, 4),
        "latency_ms_p50": round(percentile(latencies, 0.50) * 1000, 3),
        "latency_ms_p95": round(percentile(latencies, 0.95) * 1000, 3),
        "throughput_per_s": round(batch_size * batch_runs / sum(batch_seconds), 2),
        "peak_memory_mb": round(peak_bytes / 2**20, 1),
        "batch_size": batch_size,
        "seq_len": seq_len,
        "repeats": repeats,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cpu_count": os.cpu_count(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
