"""The table of sweep executors: the built-in `process`, then those other packages declare in
the entry-point group `transferlab.executors` (`slurm = my_package:SlurmExecutor`), loaded
once, on the first look-up.

Entries are classes (a sweep creates its own executor with its settings). A plug-in that
fails to load is set aside with its error: every other executor keeps working, and asking
for that one (or `transferlab executors`) names the entry point and the error.
"""

from __future__ import annotations

import re
import threading
from importlib.metadata import entry_points
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.sweeps.executors.base import ExecutorSettings, SweepExecutor

ENTRY_POINT_GROUP = "transferlab.executors"
DEFAULT_EXECUTOR = "process"
BUILT_IN = "built-in"
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")
_CALLS = ("submit", "wait", "stop", "close", "as_finished")

_executors: dict[str, type[SweepExecutor]] = {}
_origins: dict[str, str] = {}
_broken: dict[str, str] = {}  # entry point name -> why it could not be loaded
_lock = threading.RLock()
_state = {"built_ins": False, "entry_points": False}


def register_executor(executor: type[SweepExecutor]) -> type[SweepExecutor]:
    """Add an executor class to the table under its `name` (usable as a class decorator)."""
    with _lock:
        _load_built_ins()
        return _register(executor, origin="registered in code")


def get_executor(name: str) -> type[SweepExecutor]:
    """The executor class called `name`; an unknown or broken one is refused with the names
    that can be used."""
    _ensure_loaded()
    executor = _executors.get(name)
    if executor is not None:
        return executor
    if name in _broken:
        raise TransferlabError(
            f"Sweep executor {name!r} could not be loaded: {_broken[name]}",
            f"Fix or reinstall the package that declares it, or use one of: "
            f"{', '.join(_executors)}.",
        )
    raise TransferlabError(
        f"Unknown sweep executor {name!r}.",
        f"Use one of: {', '.join(_executors)} (packages add executors through the entry-point "
        f"group {ENTRY_POINT_GROUP}).",
    )


def create_executor(name: str, settings: ExecutorSettings) -> SweepExecutor:
    return get_executor(name)(settings)


def executor_names() -> tuple[str, ...]:
    """Names of the usable executors, the built-in first, in the order they were registered."""
    _ensure_loaded()
    return tuple(_executors)


def all_executors() -> tuple[type[SweepExecutor], ...]:
    _ensure_loaded()
    return tuple(_executors.values())


def executor_origin(name: str) -> str:
    """'built-in', or the entry point (and package) a plug-in came from."""
    _ensure_loaded()
    return _origins[name]


def broken_executors() -> dict[str, str]:
    """Entry points of the group that failed to load: name -> the reason."""
    _ensure_loaded()
    return dict(_broken)


# -- loading ------------------------------------------------------------------------------------


def _ensure_loaded() -> None:
    if _state["entry_points"]:
        return
    with _lock:
        _load_built_ins()
        if not _state["entry_points"]:
            _state["entry_points"] = True
            _load_entry_points()


def _load_built_ins() -> None:
    if _state["built_ins"]:
        return
    _state["built_ins"] = True
    from transferlab.sweeps.executors.process import ProcessExecutor

    _register(ProcessExecutor, origin=BUILT_IN)


def _load_entry_points() -> None:
    for point in entry_points(group=ENTRY_POINT_GROUP):
        declared = f"'{point.name} = {point.value}'"
        package = f" of {point.dist.name}" if point.dist is not None else ""
        where = f"entry point {declared}{package} (group {ENTRY_POINT_GROUP})"
        try:
            executor = point.load()
            _check(executor)
            if executor.name != point.name:
                raise TransferlabError(
                    f"it is named {executor.name!r}, not {point.name!r} like its entry point"
                )
            _register(executor, origin=f"entry point {declared}{package}")
        except Exception as exc:  # a plug-in's bug must not break every other executor
            reason = exc.problem if isinstance(exc, TransferlabError) else f"{exc}"
            _broken[point.name] = f"{where}: {type(exc).__name__}: {reason}"


def _register(executor: type[SweepExecutor], *, origin: str) -> type[SweepExecutor]:
    _check(executor)
    if executor.name in _executors:
        raise TransferlabError(
            f"A sweep executor named {executor.name!r} is already registered "
            f"({_origins[executor.name]}).",
            "Give the new executor another name.",
        )
    _executors[executor.name] = executor
    _origins[executor.name] = origin
    _broken.pop(executor.name, None)
    return executor


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
