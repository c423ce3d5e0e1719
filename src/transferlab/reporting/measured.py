"""The "how this was measured" box of a report: data set, sizes, seeds, hardware.

The hardware is read where the notebook runs, which is where the run measured its latency.
"""

from __future__ import annotations

import html
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOX_STYLE = (
    "border:1px solid #bbb; border-radius:4px; background:#f7f7f7; padding:0.5em 1em; "
    "margin:0.6em 0 1em 0; max-width:60em; font-size:0.9em; line-height:1.4"
)


@dataclass
class Measured:
    """(label, text) lines shown in a small box."""

    items: list[tuple[str, str]]
    title: str = "How this was measured"

    def html(self) -> str:
        lines = "".join(
            f"<li><b>{html.escape(label)}</b>: {html.escape(text)}</li>"
            for label, text in self.items
        )
        return (
            f'<div class="transferlab-measured" style="{BOX_STYLE}"><b>{html.escape(self.title)}'
            f'</b><ul style="margin:0.3em 0; padding-left:1.2em">{lines}</ul></div>'
        )

    def _repr_html_(self) -> str:
        return self.html()


def hardware(device: str = "cpu") -> str:
    """'cpu: AMD EPYC 7B13, 2 cores, 8 GB RAM (Linux)', with the GPU's name on CUDA."""
    parts = [_cpu_name(), f"{os.cpu_count()} cores"]
    memory = _memory_gb()
    if memory:
        parts.append(f"{memory:.0f} GB RAM")
    text = f"{device}: {', '.join(p for p in parts if p)} ({platform.system()})"
    if device.startswith("cuda"):
        try:
            import torch

            text += f"; GPU {torch.cuda.get_device_name(device)}"
        except Exception:  # no torch or no such device: the CPU line is still true
            pass
    return text


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return None


def benchmark_measured(report: Any, version: str | None) -> Measured:
    from transferlab.evaluation.latency import LATENCY_SAMPLES

    items: list[tuple[str, str]] = []
    for task in report.suite.tasks:
        metrics = report.metrics
        rows = metrics[(metrics["task"] == task.name) & (metrics["slice"] == "")]
        if len(rows):
            row = rows.iloc[0]
            items.append(
                (
                    "Data",
                    f"{row['dataset']}, {row['split']} split, {int(row['n_examples'])} examples "
                    f"(task {task.name} of suite {report.suite.name})",
                )
            )
    training = report.training_data
    if version is not None and len(training) and version in set(training["version"]):
        row = training[training["version"] == version].iloc[0]
        drawn = (
            "drawn again from its run and checked against its fingerprint"
            if row["re_derived"]
            else f"not drawn again: {row['reason']}"
        )
        items.append(("Training", f"{int(row['n_train'])} examples ({drawn}); run {row['run_id']}"))
    items.append(
        (
            "Seeds and intervals",
            f"seed {report.seed}; 95 % intervals from {report.bootstrap} paired bootstrap "
            f"resamples of the test examples",
        )
    )
    items.append(
        ("Latency", f"median (p50) and p95 of {LATENCY_SAMPLES} single texts, batch 1, warm model")
    )
    items.append(("Hardware", hardware(report.device)))
    items.append(("Run", report.run_id))
    return Measured(items)
