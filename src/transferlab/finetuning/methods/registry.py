"""The table of fine-tuning methods: the built-ins, then those other packages declare in the
entry-point group `transferlab.methods` (`bitfit = my_package:BitFit`), loaded once, on the
first look-up.

A plug-in that fails to load is set aside with its error: every other method keeps working,
and asking for that one (or `transferlab methods`) names the entry point and the error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.errors import TransferlabError
from transferlab.finetuning.methods.base import VERSION_KINDS, FinetuneMethod
from transferlab.plugins import PluginTable

if TYPE_CHECKING:
    from transferlab.registry import VersionRecord

ENTRY_POINT_GROUP = "transferlab.methods"
DEFAULT_METHOD = "auto"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _built_ins() -> tuple[type[FinetuneMethod], ...]:
    from transferlab.finetuning.methods.auto import AutoMethod
    from transferlab.finetuning.methods.full import FullFinetuning
    from transferlab.finetuning.methods.linear_probe import LinearProbe
    from transferlab.finetuning.methods.lora import LoRA
    from transferlab.finetuning.methods.lp_ft import LPFT
    from transferlab.finetuning.methods.qlora import QLoRA
    from transferlab.finetuning.methods.setfit import SetFit, SetFitLoRA

    # This order is the order of every listing and of "Use one of: ..." messages; the default
    # first ('auto' names no weights: config resolution replaces it by the method it chooses).
    return (AutoMethod, LoRA, FullFinetuning, LinearProbe, QLoRA, LPFT, SetFit, SetFitLoRA)


def _instantiate(method: Any) -> FinetuneMethod:
    if isinstance(method, type):
        try:
            method = method()
        except TypeError as exc:  # an abstract call left out, or required arguments
            raise TransferlabError(
                f"The fine-tuning method {method.__module__}.{method.__qualname__} cannot be "
                f"created: {exc}.",
                "Implement prepare, save and load; the class is created without arguments.",
            ) from exc
    _check(method)
    return method


TABLE: PluginTable[FinetuneMethod] = PluginTable(
    group=ENTRY_POINT_GROUP, what="fine-tuning method", built_ins=_built_ins, adopt=_instantiate
)


def register_method(method: type[FinetuneMethod] | FinetuneMethod) -> FinetuneMethod:
    """Add a method (a class or an instance) to the table under its `name`."""
    return TABLE.register(method)


def get_method(name: str) -> FinetuneMethod:
    """The method called `name`; an unknown or broken one is refused with what to use."""
    return TABLE.get(name)


def method_names() -> tuple[str, ...]:
    """Names of the usable methods, built-ins first, in the order they were registered."""
    return TABLE.names()


def all_methods() -> tuple[FinetuneMethod, ...]:
    return TABLE.entries()


def method_origin(name: str) -> str:
    """'built-in', or the entry point (and package) a plug-in came from."""
    return TABLE.origin(name)


def broken_methods() -> dict[str, str]:
    """Entry points of the group that failed to load: name -> the reason."""
    return TABLE.broken()


def method_for_version(version: VersionRecord) -> FinetuneMethod:
    """The method that loads a registered version: the one its metadata names, else the owner
    of its layout (versions written before methods were plug-ins, merged and imported models
    are complete models or have an `adapter_format`)."""
    methods = {method.name: method for method in TABLE.entries()}
    named = version.metadata.get("method")
    if version.kind in VERSION_KINDS and named:
        if named in methods and methods[named].version_kind == version.kind:
            return methods[named]
        if named in TABLE.broken():
            get_method(named)  # raises with the entry point and its error
    layout = _layout(version)
    for method in methods.values():
        complete = method.version_kind == "full" if layout is None else True
        if method.adapter_format == layout and complete:
            return method
    raise TransferlabError(
        f"{version.ref} was written by fine-tuning method {named!r} (layout {layout!r}), which "
        "is not installed here.",
        f"Install the package that provides it (entry point group {ENTRY_POINT_GROUP}); "
        f"known methods: {', '.join(methods)}.",
    )


def _layout(version: VersionRecord) -> str | None:
    if version.kind != "adapter":
        return None
    recorded = version.metadata.get("adapter_format")
    if recorded:
        return str(recorded)
    # Adapters registered before transferlab recorded the layout: a PEFT folder or a head file.
    folder = Path(version.uri or "").expanduser()
    return "peft" if version.uri and (folder / "adapter_config.json").is_file() else "head"


def _check(method: Any) -> None:
    """The attributes and calls of the interface, with the values `transferlab` relies on."""
    what = f"fine-tuning method {type(method).__module__}.{type(method).__qualname__}"
    name = getattr(method, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise TransferlabError(
            f"The {what} has no valid name ({name!r}).",
            "Set name to a lower-case identifier, e.g. name = 'bitfit'.",
        )
    problems = [
        f"{attribute} must be a non-empty string"
        for attribute in ("display_name", "description", "catalog_learning_rate_key")
        if not isinstance(getattr(method, attribute, None), str) or not getattr(method, attribute)
    ]
    rate = getattr(method, "default_learning_rate", None)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        problems.append(f"default_learning_rate must be a number > 0, got {rate!r}")
    if getattr(method, "version_kind", None) not in VERSION_KINDS:
        problems.append(f"version_kind must be one of {', '.join(VERSION_KINDS)}")
    for call in ("check_environment", "prepare", "train", "save", "load"):
        if not callable(getattr(method, call, None)):
            problems.append(f"{call}() is missing")
    if problems:
        raise TransferlabError(
            f"The {what} ({name!r}) does not fit the interface: {'; '.join(problems)}.",
            "Subclass transferlab.finetuning.methods.FinetuneMethod and set its attributes.",
        )
