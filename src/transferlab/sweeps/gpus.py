"""GPUs for the `process` executor: each worker gets its own share of this machine's GPUs.

A sweep file's `resources: {gpus: N}` gives every worker process N GPUs of its own (through
CUDA_VISIBLE_DEVICES, set before torch starts in it, and inherited by its notebook kernels), so
parallel runs never share a GPU, and a run with several GPUs trains on all of them: the
Trainer (through accelerate) spreads each batch over every GPU it sees and the run records how
many it used (`resources.gpus`). The workers are capped at the number of whole shares; asking
for more GPUs than there are is refused before anything is written. The `ray` executor reserves
GPUs through Ray instead (num_gpus per task; Ray sets CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import os
import subprocess

from transferlab.errors import TransferlabError


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (ids or UUIDs)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [name.strip() for name in listed.split(",") if name.strip() and name != "-1"]
    try:  # nvidia-smi answers without importing torch (seconds) in the sweep's process
        found = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in found.splitlines() if line.strip()]


def gpu_shares(gpus_per_run: float, workers: int) -> list[str]:
    """One CUDA_VISIBLE_DEVICES value per worker (at most `workers`, fewer when the GPUs hold
    fewer whole shares); refused when a share cannot be had here."""
    if gpus_per_run != int(gpus_per_run):
        raise TransferlabError(
            f"resources.gpus {gpus_per_run}: the process executor gives each run whole GPUs.",
            "Ask for a whole number of GPUs per run, or use --executor ray for fractions.",
        )
    per_run = int(gpus_per_run)
    gpus = visible_gpus()
    if per_run > len(gpus):
        raise TransferlabError(
            f"resources.gpus {per_run}: each run asks for {per_run} GPU(s) and this machine "
            f"shows {len(gpus)} ({os.environ.get('CUDA_VISIBLE_DEVICES', 'nvidia-smi')}).",
            "Ask for fewer GPUs per run (resources.gpus), or run the sweep where they are.",
        )
    count = min(workers, len(gpus) // per_run)
    return [",".join(gpus[i * per_run : (i + 1) * per_run]) for i in range(count)]
