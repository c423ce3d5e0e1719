"""Sweep executors: where and how a sweep's runs execute, as plug-ins.

base.py (the interface, the jobs and results, `execute_run`) -> process.py (the built-in
`process`: local worker processes) -> registry.py (the table: built-ins, then the entry-point
group `transferlab.executors`). `transferlab executors` lists them; `transferlab sweep
--executor NAME` (or `executor:` in the sweep file) chooses one.
"""

from transferlab.sweeps.executors.base import (
    INTERRUPTED_ERROR,
    ExecutorSettings,
    RunJob,
    RunResult,
    SweepExecutor,
    execute_run,
)
from transferlab.sweeps.executors.registry import (
    DEFAULT_EXECUTOR,
    ENTRY_POINT_GROUP,
    all_executors,
    broken_executors,
    create_executor,
    executor_names,
    executor_origin,
    get_executor,
    register_executor,
)

__all__ = [
    "DEFAULT_EXECUTOR",
    "ENTRY_POINT_GROUP",
    "INTERRUPTED_ERROR",
    "ExecutorSettings",
    "RunJob",
    "RunResult",
    "SweepExecutor",
    "all_executors",
    "broken_executors",
    "create_executor",
    "execute_run",
    "executor_names",
    "executor_origin",
    "get_executor",
    "register_executor",
]
