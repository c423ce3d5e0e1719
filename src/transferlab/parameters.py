"""Template parameters as a user gives them: checked against the template, paths made absolute.

`prepare` runs before a run is recorded (runner.run_template), and a sweep checks each of its
runs the same way before it starts (sweeps.spec):

- names: the ones in the template's `parameters` cell;
- types: the type of the parameter's default there (an int where the default is an int, and a
  bool is not an int; a float also takes an int; None only where the default is None or its
  help comment mentions None; a default of None takes anything). Where the template builds a
  config from its parameters (finetune: FinetuneConfig, discover: DiscoveryConfig), the
  config's annotation says the type instead: finetune's `max_steps = None` takes an int or
  None, `target_modules = "auto"` also a list;
- paths: parameters that name files or folders, decided by name (PATH_PARAMETERS), never by
  guessing from a value. A relative path starts at the folder the user stands in (the kernel
  runs in the output folder), so it is made absolute before the kernel starts and the run
  records it absolute. A value that is not a path there (a Hub dataset id, a registry name, a
  bundled suite's name) is left as it is;
- values: a finetune request is checked as its config resolution checks it (method, sizes,
  data and train not both, ...) without the registry, the data or any weights.
"""

from __future__ import annotations

import ast
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import papermill

from transferlab.data import HUB_PREFIX, SUFFIX_FORMATS
from transferlab.errors import TransferlabError

# Filled in by the runner, never by the user.
RUNNER_PARAMETERS = ("run_id", "registry_path")
# Parameters that name files or folders, by name, in every template that has them:
# data: a data file, else a Hugging Face dataset id; folder: always a path; model: a folder
# when written as one (./x, /x, ~/x), else a registry name; suite: a suite file, else the
# name of a bundled suite.
PATH_PARAMETERS = {
    "data": "data",
    "train": "data",
    "validation": "data",
    "test": "data",
    "output_dir": "folder",
    "base": "model",
    "suite": "suite",
}
# Templates that build a config from their parameters: the config's annotations are the types.
TEMPLATE_CONFIGS = {
    "finetune": ("transferlab.finetuning.config", "FinetuneConfig"),
    "discover": ("transferlab.discovery.config", "DiscoveryConfig"),
}
_HUB_ID = re.compile(
    r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?(:[\w.\-]+)?$"
)  # as data/loading.py reads them
_SUITE_SUFFIXES = (".yaml", ".yml")
_MENTIONS_NONE = re.compile(r"\bNone\b")
_EXAMPLES: dict[type, Any] = {int: 10, float: 0.001, str: "text", bool: True, list: ["a", "b"]}
_PATH_EXAMPLES = {
    "data": "tickets.csv",
    "folder": "path/to/folder",
    "model": "./my-model",
    "suite": "my_suite.yaml",
}


class ParameterError(TransferlabError):
    """A parameter value of the wrong type for its template."""

    def __init__(self, name: str, value: Any, expected: str, example: str):
        self.name, self.value, self.expected, self.example = name, value, expected, example
        super().__init__(
            f"Parameter {name}={value!r} is {describe_value(value)}, but {expected} is expected.",
            f"Give {expected}, e.g. -p {name} {example} (in YAML: `{name}: {example}`).",
        )


# -- the template's signature -------------------------------------------------------------------


@dataclass
class TemplateSignature:
    """What a template's parameters cell says: names, defaults, help, and expected types."""

    template: str
    described: dict[str, dict]
    defaults: dict[str, Any] = field(default_factory=dict)  # the literal ones
    hints: dict[str, Any] = field(default_factory=dict)  # name -> type annotation

    @property
    def names(self) -> list[str]:
        """The parameters a user may give."""
        return [n for n in self.described if n not in RUNNER_PARAMETERS]

    def check_names(self, parameters: dict[str, Any]) -> None:
        unknown = sorted(set(parameters) - set(self.described))
        if unknown:
            raise TransferlabError(
                f"Unknown parameter(s) {', '.join(unknown)} for template {self.template}.",
                f"Its parameters are: {', '.join(self.names)}.",
            )

    def check_type(self, name: str, value: Any) -> None:
        """Raises ParameterError when `value` is not of the type `name` takes."""
        default = self.defaults.get(name)
        if name in self.hints:
            hint = self.hints[name]
            if not _accepts(hint, value):
                example = default
                if example is None and name in PATH_PARAMETERS:
                    example = _PATH_EXAMPLES[PATH_PARAMETERS[name]]
                raise ParameterError(name, value, _describe_hint(hint), _example_for(hint, example))
            return
        described = self.described.get(name)
        if described is None:
            return
        if default is None:
            return  # a default of None takes anything
        none_ok = bool(_MENTIONS_NONE.search(described.get("help") or ""))
        hint = type(default) | None if none_ok else type(default)
        if not _accepts(hint, value):
            raise ParameterError(name, value, _describe_hint(hint), format_value(default))

    def check_types(self, parameters: dict[str, Any]) -> None:
        for name, value in parameters.items():
            self.check_type(name, value)

    def check_values(self, parameters: dict[str, Any]) -> None:
        """What the template would refuse in these (typed, resolved) parameters before doing
        any work: a finetune request as its config resolution checks it."""
        if self.template == "finetune":
            from transferlab.finetuning.config import check_request

            check_request(finetune_config({**self.defaults, **parameters}))

    def prepare(self, parameters: dict[str, Any], start: Path | None = None) -> dict[str, Any]:
        """Names, types, absolute paths, values: the parameters a run is recorded with."""
        self.check_names(parameters)
        self.check_types(parameters)
        resolved = resolve_paths(parameters, start or Path.cwd())
        self.check_values(resolved)
        return resolved


def template_parameters(path: Path) -> dict[str, dict]:
    """The names, defaults and help of a template's `parameters` cell."""
    return signature(path).described


def signature(path: Path) -> TemplateSignature:
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    known = _known_signatures.get(key)
    return known if known is not None else _signature(*key)


def know_signature(path: Path, known: TemplateSignature) -> None:
    """Have `signature(path)` answer `known` (inspected by another process, e.g. the sweep
    that starts this worker) instead of inspecting the notebook again; keyed by the file's
    path and modification time, so a notebook edited since is inspected anew."""
    path = Path(path)
    try:
        _known_signatures[(str(path.resolve()), path.stat().st_mtime_ns)] = known
    except OSError:
        return


_known_signatures: dict[tuple[str, int], TemplateSignature] = {}


@cache
def _signature(path: str, mtime_ns: int) -> TemplateSignature:
    described = papermill.inspect_notebook(path)
    stem = Path(path).stem
    defaults = {}
    for name, described_one in described.items():
        try:
            defaults[name] = ast.literal_eval(described_one["default"])
        except (ValueError, SyntaxError):
            continue
    hints: dict[str, Any] = {}
    if stem in TEMPLATE_CONFIGS:
        import importlib

        module_name, class_name = TEMPLATE_CONFIGS[stem]
        config = getattr(importlib.import_module(module_name), class_name)
        annotations = typing.get_type_hints(config)
        hints = {f.name: annotations[f.name] for f in fields(config) if f.name in described}
    return TemplateSignature(stem, described, defaults, hints)


def finetune_settings(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """FinetuneConfig arguments from finetune-template parameters (other names are ignored;
    no data given: the sample data). The one place a request is built from parameters:
    `finetune_config` wraps it for the template, the run-time checks above and the sweep
    planner."""
    from transferlab.data import sample_data_path
    from transferlab.finetuning.config import FinetuneConfig

    known = {f.name for f in fields(FinetuneConfig)} - {"registry"}
    settings = {k: v for k, v in parameters.items() if k in known}
    if settings.get("data") is None and settings.get("train") is None:
        settings["train"] = sample_data_path("train")
        settings["test"] = sample_data_path("test")
    return settings


def finetune_config(parameters: Mapping[str, Any], registry: Any = None) -> Any:
    """The FinetuneConfig of finetune-template parameters; the template calls it with its
    `globals()`, so the parameter list is written once (its parameters cell)."""
    from transferlab.finetuning.config import FinetuneConfig

    return FinetuneConfig(**finetune_settings(parameters), registry=registry)


# The settings a recommendation spells out (what resolve_config fills from the catalog).
RECOMMENDED_SETTINGS = (
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "learning_rate",
    "epochs",
    "batch_size",
    "max_length",
)


def recommended_parameters(request: Mapping[str, Any], registry: Any) -> dict[str, Any]:
    """finetune-template parameters for `request` (base, method, data, ...), with the settings
    its resolution takes from the catalog spelled out, so a reader sees what the run will use.

    Resolved once, by `resolve_config` (reads configs and data, no weights). Settings `auto`
    derives from the data (the scaled schedule) or the chosen method ignores are left to the
    run, which resolves them again from the data it is given."""
    from transferlab.finetuning.config import resolve_config

    resolved = resolve_config(finetune_config(request), registry)
    parameters = {key: value for key, value in request.items() if value is not None}
    for key in RECOMMENDED_SETTINGS:
        value = getattr(resolved, key)
        source = resolved.setting_sources.get(key, "")
        left_to_the_run = source.startswith("auto") or source.startswith("not used")
        if value is None or left_to_the_run:  # the run decides it again (or ignores it)
            parameters.pop(key, None)
        else:
            parameters[key] = value
    return parameters


# -- paths --------------------------------------------------------------------------------------


def resolve_paths(parameters: dict[str, Any], start: Path) -> dict[str, Any]:
    """The parameters with every relative path among PATH_PARAMETERS made absolute from
    `start`; other values unchanged."""
    return {name: resolve_path(name, value, start) for name, value in parameters.items()}


def resolve_path(name: str, value: Any, start: Path) -> Any:
    """`value` of parameter `name` with a relative path made absolute from `start`.

    Absolute paths come back as given (`~` expanded), so resolving twice changes nothing.
    """
    kind = PATH_PARAMETERS.get(name)
    if kind is None or value is None:
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip() or value.startswith(HUB_PREFIX):
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path) if value.startswith("~") else value
    here = start / path
    return str(here.resolve()) if _names_a_path(kind, value, here) else value


def _names_a_path(kind: str, value: str, here: Path) -> bool:
    """Whether a relative `value` of a parameter of this kind is a path (else a name)."""
    suffix = here.suffix.lower()
    if kind == "data":  # else a Hugging Face dataset id, as data.load_labelled_data reads it
        return here.exists() or suffix in SUFFIX_FORMATS or not _HUB_ID.match(value)
    if kind == "model":  # else a registry name; a folder is written ./name (finetuning.base)
        return value.startswith((".", "~"))
    if kind == "suite":  # else a bundled suite's name
        return here.is_file() or suffix in _SUITE_SUFFIXES or "/" in value
    return True


# -- types --------------------------------------------------------------------------------------


def _accepts(hint: Any, value: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if hint is None or hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_accepts(item, v) for v in value)
    if origin is not None:  # os.PathLike[str] and the like
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe_hint(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe_hint(arg) for arg in typing.get_args(hint)]
        parts = list(dict.fromkeys(parts))
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]
    if hint is None or hint is type(None):
        return "null (None)"
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return "a list" if item is Any else f"a list of {_describe_hint(item).removeprefix('a ')}s"
    if origin is not None:
        return "a path"
    return {
        int: "an int (a whole number)",
        float: "a number",
        str: "a text",
        bool: "true or false",
        list: "a list",
        dict: "a mapping",
    }.get(hint, f"a {getattr(hint, '__name__', hint)}")


def _example_for(hint: Any, default: Any) -> str:
    if default is not None:
        return format_value(default)
    origin = typing.get_origin(hint)
    candidates = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    for candidate in candidates:
        example = _EXAMPLES.get(typing.get_origin(candidate) or candidate)
        if example is not None:
            return format_value(example)
    return "null"


def format_value(value: Any) -> str:
    """A value as it is written after -p (YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        from transferlab.runner import parse_cli_value

        return value if parse_cli_value(value) == value and " " not in value else repr(value)
    return repr(value)


def describe_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    names = {int: "an int", float: "a float", str: "a text", list: "a list", dict: "a mapping"}
    return names.get(type(value), f"a {type(value).__name__}")
