"""A table of plug-ins by name, shared by the fine-tuning methods and the sweep executors:
the built-ins registered in code, then those other packages declare in an entry-point group,
loaded once, on the first look-up.

A plug-in that fails to load is set aside with its error: every other one keeps working, and
asking for that one (or listing the table) names the entry point and the error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from transferlab.errors import TransferlabError

BUILT_IN = "built-in"
IN_CODE = "registered in code"

T = TypeVar("T")


class PluginTable(Generic[T]):
    """`what` names an entry in messages ("fine-tuning method"); `built_ins` gives the
    built-in entries in listing order; `adopt` turns what a package declares (a class, an
    instance) into the table's entry, raising TransferlabError when it does not fit the
    interface. Entries have a `name`."""

    def __init__(
        self,
        *,
        group: str,
        what: str,
        built_ins: Callable[[], Iterable[Any]],
        adopt: Callable[[Any], T],
        hint: str = "",
    ):
        self.group = group
        self.what = what
        self._built_ins = built_ins
        self._adopt = adopt
        self.hint = hint  # said after the known names when a name is unknown
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._broken: dict[str, str] = {}  # entry point name -> why it could not be loaded
        self._lock = threading.RLock()
        self._loaded = {"built_ins": False, "entry_points": False}

    # -- look-ups ----------------------------------------------------------------------------

    def get(self, name: str) -> T:
        """The entry called `name`; an unknown or broken one is refused with what to use."""
        self._ensure_loaded()
        entry = self._entries.get(name)
        if entry is not None:
            return entry
        known = ", ".join(self._entries)
        if name in self._broken:
            raise TransferlabError(
                f"{self.what[0].upper()}{self.what[1:]} {name!r} could not be loaded: "
                f"{self._broken[name]}",
                f"Fix or reinstall the package that declares it, or use one of: {known}.",
            )
        raise TransferlabError(f"Unknown {self.what} {name!r}.", f"Use one of: {known}{self.hint}.")

    def names(self) -> tuple[str, ...]:
        """Names of the usable entries, built-ins first, in the order they were registered."""
        self._ensure_loaded()
        return tuple(self._entries)

    def entries(self) -> tuple[T, ...]:
        self._ensure_loaded()
        return tuple(self._entries.values())

    def origin(self, name: str) -> str:
        """'built-in', 'registered in code', or the entry point (and package) it came from."""
        self._ensure_loaded()
        return self._origins[name]

    def broken(self) -> dict[str, str]:
        """Entry points of the group that failed to load: name -> the reason."""
        self._ensure_loaded()
        return dict(self._broken)

    # -- changes -----------------------------------------------------------------------------

    def register(self, declared: Any, *, origin: str = IN_CODE) -> T:
        """Add an entry under its `name`; a name already taken is refused."""
        with self._lock:
            self._load_built_ins()
            return self._register(declared, origin)

    def snapshot(self) -> tuple[dict, dict, dict]:
        """The table as it is now (for tests that register entries and take them back)."""
        self._ensure_loaded()
        return dict(self._entries), dict(self._origins), dict(self._broken)

    def restore(self, snapshot: tuple[dict, dict, dict]) -> None:
        with self._lock:
            for current, before in zip(
                (self._entries, self._origins, self._broken), snapshot, strict=True
            ):
                current.clear()
                current.update(before)

    # -- loading -----------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._loaded["entry_points"]:
            return
        with self._lock:
            self._load_built_ins()
            if not self._loaded["entry_points"]:
                self._loaded["entry_points"] = True
                self._load_entry_points()

    def _load_built_ins(self) -> None:
        if self._loaded["built_ins"]:
            return
        self._loaded["built_ins"] = True
        for declared in self._built_ins():
            self._register(declared, BUILT_IN)

    def _load_entry_points(self) -> None:
        for point in entry_points(group=self.group):
            declared = f"'{point.name} = {point.value}'"
            package = f" of {point.dist.name}" if point.dist is not None else ""
            where = f"entry point {declared}{package} (group {self.group})"
            try:
                entry = self._adopt(point.load())
                name = getattr(entry, "name", None)
                if name != point.name:
                    raise TransferlabError(
                        f"it is named {name!r}, not {point.name!r} like its entry point"
                    )
                self._register(entry, f"entry point {declared}{package}")
            except Exception as exc:  # a plug-in's bug must not break every other entry
                reason = exc.problem if isinstance(exc, TransferlabError) else f"{exc}"
                self._broken[point.name] = f"{where}: {type(exc).__name__}: {reason}"

    def _register(self, declared: Any, origin: str) -> T:
        entry = self._adopt(declared)
        name = entry.name  # type: ignore[attr-defined]
        if name in self._entries:
            raise TransferlabError(
                f"A {self.what} named {name!r} is already registered ({self._origins[name]}).",
                f"Give the new {self.what} another name.",
            )
        self._entries[name] = entry
        self._origins[name] = origin
        self._broken.pop(name, None)
        return entry
