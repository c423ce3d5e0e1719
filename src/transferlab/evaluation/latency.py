"""What a version costs to serve on this machine: latency at batch 1, peak memory, disk size.

Latency is measured end to end on the task's own texts (tokenize, forward, softmax), one text
per call, since that is what a service answering one request pays; throughput at batch 32
comes from the evaluation pass itself (see inference.py).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.catalog.local import folder_size_bytes
from transferlab.profiling import RssPeak, percentile
from transferlab.registry import Registry, VersionRecord

LATENCY_SAMPLES = 50
WARMUP_CALLS = 3


def measure_latency(
    loaded: Any, texts: Sequence[str], *, samples: int = LATENCY_SAMPLES, seed: int = 0
) -> dict[str, float]:
    """p50 / p95 milliseconds of one text per call, over up to `samples` of the task's texts."""
    import torch

    texts = list(texts)
    if not texts:
        return {"latency_ms_p50": float("nan"), "latency_ms_p95": float("nan")}
    rng = np.random.default_rng(seed)
    chosen = [texts[i] for i in rng.permutation(len(texts))[: max(1, samples)]]
    on_cuda = str(loaded.device).startswith("cuda")
    seconds = []
    with torch.inference_mode():
        for i, text in enumerate([*chosen[:WARMUP_CALLS], *chosen]):
            started = time.perf_counter()
            inputs = loaded.tokenizer(
                [text], truncation=True, max_length=loaded.max_length, return_tensors="pt"
            ).to(loaded.device)
            loaded.model(**inputs).logits.float().softmax(-1).cpu()
            if on_cuda:
                torch.cuda.synchronize(loaded.device)
            if i >= min(WARMUP_CALLS, len(chosen)):
                seconds.append(time.perf_counter() - started)
    return {
        "latency_ms_p50": percentile(seconds, 0.50) * 1000,
        "latency_ms_p95": percentile(seconds, 0.95) * 1000,
    }


class PeakMemory:
    """Peak memory while the block runs: max allocated on CUDA, RSS growth on CPU (MB).

    On Linux the kernel's own peak-RSS counter (VmHWM) is reset at the start and read at the
    end: no sampling thread, which on a machine with as many busy torch threads as cores
    stalls them and slowed the evaluation pass 2-3x. Elsewhere a sampling thread is used.
    """

    def __init__(self, device: str):
        self.device = str(device)
        self.megabytes = float("nan")
        self._sampler: RssPeak | None = None
        self._start_kb: int | None = None

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        elif _reset_peak_rss():
            self._start_kb = _status_kb("VmRSS")
        else:
            self._sampler = RssPeak(interval_s=0.05).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            import torch

            self.megabytes = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._start_kb is not None:
            peak = _status_kb("VmHWM")
            if peak is not None:
                self.megabytes = max(peak - self._start_kb, 0) / 1024
        elif self._sampler is not None:
            self._sampler.__exit__(*exc)
            self.megabytes = self._sampler.growth_bytes() / 2**20


_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux: `5` to clear_refs)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_kb("VmRSS") is not None and _status_kb("VmHWM") is not None


def _status_kb(field: str) -> int | None:
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class DiskSize:
    """Bytes on disk: the complete model a deployment loads, and the adapter part of it."""

    model_bytes: int | None
    adapter_bytes: int | None


def disk_size(registry: Registry, version: VersionRecord) -> DiskSize:
    """For an adapter: base folder + adapter folder, and the adapter alone; otherwise the
    version's folder. None where the weights are not in a local folder (hf:// ids)."""
    own = _folder_bytes(version.uri)
    if version.kind != "adapter":
        return DiskSize(own, None)
    base_uri = None
    if version.parent_version_id:
        base_uri = registry.resolve(version.parent_version_id).uri
    base_uri = base_uri or version.metadata.get("base_uri")
    base = _folder_bytes(base_uri)
    return DiskSize(None if base is None or own is None else base + own, own)


def _folder_bytes(uri: str | None) -> int | None:
    if not uri or "://" in uri:
        return None
    folder = Path(uri).expanduser()
    return folder_size_bytes(folder) if folder.is_dir() else None
