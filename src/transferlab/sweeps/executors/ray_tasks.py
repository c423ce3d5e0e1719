"""What a Ray worker runs for one sweep job (imported on the worker by reference: every node
needs transferlab installed, as the driver has it).

The run's torch/BLAS threads are its CPUs (set before the notebook kernel starts, which
inherits them). The output notebook goes back with the result, so the driver can write it
where it expects it when the worker is on another machine. A template the worker's machine
does not have at the driver's path is written from the copy the driver sent.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from transferlab.sweeps.executors.base import RunJob, RunResult, execute_run

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def run_on_worker(job: RunJob, threads: int, template: bytes) -> tuple[RunResult, bytes | None]:
    """`execute_run(job)` on this worker, with the notebook's bytes (None: no notebook)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if not Path(job.template).is_file():
        job = replace(job, template=str(_template_copy(job.template, template)))
    result = execute_run(job)
    notebook = None
    if result.output_notebook:
        try:
            notebook = Path(result.output_notebook).read_bytes()
        except OSError:
            notebook = None
    return result, notebook


def _template_copy(original: str, content: bytes) -> Path:
    digest = hashlib.sha256(content).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "transferlab-templates" / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(original).name
    if not path.is_file():
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(content)
        partial.replace(path)
    return path


def land_notebook(result: RunResult, notebook: bytes | None) -> None:
    """On the driver: write the run's notebook where the registry says it is, unless it is
    already there (the worker was on this machine, or the folder is shared)."""
    if notebook is None or not result.output_notebook:
        return
    path = Path(result.output_notebook)
    try:
        if path.is_file() and path.stat().st_size == len(notebook):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(notebook)
        partial.replace(path)
    except OSError:
        return  # the registry keeps the path; the run's outcome does not depend on the copy
