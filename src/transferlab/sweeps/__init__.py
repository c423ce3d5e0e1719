"""Sweeps: many template runs (models x data sets x methods x sizes x seeds) from one YAML
file, run in parallel worker processes, resumable, each run recorded in the registry.

spec.py (the YAML file) -> plan.py (concrete runs, stable keys, reuse) -> run.py (bookkeeping,
failures, interrupts) -> executors/ (where the runs execute: `process`, worker processes; `ray`,
a Ray cluster; or a plug-in) -> summary.py (table, JSON). `transferlab sweep FILE` is the command.
"""

from transferlab.sweeps.plan import PlannedRun, expand
from transferlab.sweeps.run import (
    RunRow,
    SweepInterrupted,
    SweepResult,
    plan_sweep,
    run_sweep,
)
from transferlab.sweeps.spec import SweepError, SweepSpec, load_sweep, parse_sweep
from transferlab.sweeps.summary import format_summary, summary_json
from transferlab.sweeps.workers import default_workers

__all__ = [
    "PlannedRun",
    "RunRow",
    "SweepError",
    "SweepInterrupted",
    "SweepResult",
    "SweepSpec",
    "default_workers",
    "expand",
    "format_summary",
    "load_sweep",
    "parse_sweep",
    "plan_sweep",
    "run_sweep",
    "summary_json",
]
