"""The table of sweep executors: the built-ins `process` and `ray`, then those other packages
declare in the entry-point group `transferlab.executors` (`slurm = my_package:SlurmExecutor`),
loaded once, on the first look-up.

Entries are classes (a sweep creates its own executor with its settings). A plug-in that
fails to load is set aside with its error: every other executor keeps working, and asking
for that one (or `transferlab executors`) names the entry point and the error.
"""

from __future__ import annotations

import re
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.plugins import PluginTable
from transferlab.sweeps.executors.base import ExecutorSettings, SweepExecutor

ENTRY_POINT_GROUP = "transferlab.executors"
DEFAULT_EXECUTOR = "process"
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")
_CALLS = ("submit", "wait", "stop", "close", "as_finished")


def _built_ins() -> tuple[type[SweepExecutor], ...]:
    from transferlab.sweeps.executors.process import ProcessExecutor
    from transferlab.sweeps.executors.ray_executor import RayExecutor  # imports ray lazily

    return (ProcessExecutor, RayExecutor)


def _adopt(executor: Any) -> type[SweepExecutor]:
    _check(executor)
    return executor


TABLE: PluginTable[type[SweepExecutor]] = PluginTable(
    group=ENTRY_POINT_GROUP,
    what="sweep executor",
    built_ins=_built_ins,
    adopt=_adopt,
    hint=f" (packages add executors through the entry-point group {ENTRY_POINT_GROUP})",
)


def register_executor(executor: type[SweepExecutor]) -> type[SweepExecutor]:
    """Add an executor class to the table under its `name` (usable as a class decorator)."""
    return TABLE.register(executor)


def get_executor(name: str) -> type[SweepExecutor]:
    """The executor class called `name`; an unknown or broken one is refused with the names
    that can be used."""
    return TABLE.get(name)


def create_executor(name: str, settings: ExecutorSettings) -> SweepExecutor:
    return get_executor(name)(settings)


def executor_names() -> tuple[str, ...]:
    """Names of the usable executors, the built-in first, in the order they were registered."""
    return TABLE.names()


def all_executors() -> tuple[type[SweepExecutor], ...]:
    return TABLE.entries()


def executor_origin(name: str) -> str:
    """'built-in', or the entry point (and package) a plug-in came from."""
    return TABLE.origin(name)


def broken_executors() -> dict[str, str]:
    """Entry points of the group that failed to load: name -> the reason."""
    return TABLE.broken()


def _check(executor: Any) -> None:
    """A class with the attributes and calls of the interface, none of them left abstract."""
    if not isinstance(executor, type):
        raise TransferlabError(
            f"The sweep executor {executor!r} is not a class.",
            "Declare a subclass of transferlab.sweeps.executors.SweepExecutor.",
        )
    what = f"sweep executor {executor.__module__}.{executor.__qualname__}"
    name = getattr(executor, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise TransferlabError(
            f"The {what} has no valid name ({name!r}).",
            "Set name to a lower-case identifier, e.g. name = 'slurm'.",
        )
    problems = []
    description = getattr(executor, "description", None)
    if not isinstance(description, str) or not description.strip():
        problems.append("description must be a non-empty string")
    for call in _CALLS:
        if not callable(getattr(executor, call, None)):
            problems.append(f"{call}() is missing")
    abstract = sorted(getattr(executor, "__abstractmethods__", ()))
    if abstract:
        problems.append(f"{', '.join(abstract)} not implemented")
    if problems:
        raise TransferlabError(
            f"The {what} ({name!r}) does not fit the interface: {'; '.join(problems)}.",
            "Subclass transferlab.sweeps.executors.SweepExecutor and implement submit, wait "
            "and stop.",
        )
