"""Sweep files: which template, the parameters every run shares, and what varies.

```yaml
name: sample_curve            # optional; default: the file name without .yaml
template: finetune            # optional; default finetune (or a path to a .ipynb)
fixed:                        # parameters every run shares
  max_steps: 20
grid:                         # every combination of these lists is one run
  methods: [lora, linear_probe]     # plural aliases: models, datasets, methods, seeds
  n_per_class: [8, 16, 32, all]     # 'all' = the whole training set (None)
  seeds: [0, 1, 2]
runs:                         # and/or an explicit list of parameter sets (over `fixed`)
  - {method: full, n_per_class: 16}
executor: process             # optional; where the runs execute (`transferlab executors`),
                              # or {name: ray, address: "HOST:PORT"} with its settings
resources: {cpus: 1, gpus: 0, memory_gb: 2}   # optional; each run's share (sweeps/resources.py)
```

Keys are the template's parameter names or the aliases `models` (base), `datasets` (data),
`methods` (method), `seeds` (seed); `examples_per_class` is n_per_class. A list item that is a
mapping sets several parameters together (a data set's `train` and `test` files, say).
Relative paths (`data`, `train`, `validation`, `test`, `output_dir`, a suite file, a model
folder written ./name) start at the sweep file's folder; `package:sample_data/...` names a file
inside transferlab.

Everything is checked before any run starts, and errors name the file, the line and the key:
the names, each value's type as the template takes it, and each run's parameters together as
the template would check them (a finetune run: method, sizes, ...; transferlab.parameters).
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.parameters import (
    PATH_PARAMETERS,
    ParameterError,
    TemplateSignature,
    describe_value,
    resolve_path,
    signature,
)
from transferlab.runner import template_path
from transferlab.sweeps.resources import ChoiceError, RunResources, parse_executor, parse_resources
from transferlab.sweeps.search import SEARCH_KEYS, SearchSpec, parse_search
from transferlab.yaml_lines import TOP, closest_line, parse_yaml

DEFAULT_TEMPLATE = "finetune"
SPEC_KEYS = (
    "name",
    "template",
    "fixed",
    "grid",
    "runs",
    "executor",
    "resources",
    "pdf",
    *SEARCH_KEYS,
)
ALIASES = {
    "models": "base",
    "model": "base",
    "datasets": "data",
    "dataset": "data",
    "methods": "method",
    "seeds": "seed",
    "examples_per_class": "n_per_class",
}
# Parameters that name a data file; relative paths start at the sweep file's folder.
DATA_PARAMETERS = ("data", "train", "validation", "test")
# Parameters where 'all' means "no limit" (None in the template).
ALL_MEANS_NONE = ("n_per_class", "n_train")
PACKAGE_SCHEME = "package:"


class SweepError(TransferlabError):
    """A sweep file that cannot be run as written."""


@dataclass
class SweepSpec:
    """A validated sweep: parameter sets are complete run requests, paths resolved."""

    name: str
    template: str
    template_path: Path
    fixed: dict[str, Any]
    grid: dict[str, list[dict[str, Any]]]  # grid key -> one parameter dict per list item
    runs: list[dict[str, Any]]
    path: Path | None = None
    document: dict[str, Any] = field(default_factory=dict)
    executor: str | None = None  # the file's `executor:`; None: the command's choice
    executor_options: dict[str, Any] = field(default_factory=dict)  # {name: ..., these}
    resources: RunResources | None = None  # the file's `resources:` (each run's share)
    search: SearchSpec | None = None  # strategy, budget, distributions, objective, pruning
    pdf: bool = False  # `pdf: true`: the sweep's report (the curves) is printed to PDF too

    def to_json(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "template": self.template,
            "fixed": self.fixed,
            "grid": self.grid,
            "runs": self.runs,
        }
        if self.executor is not None:
            described["executor"] = self.executor
        if self.executor_options:
            described["executor_options"] = self.executor_options
        if self.resources is not None:
            described["resources"] = self.resources.to_json()
        if self.search is not None:
            described["search"] = self.search.to_json()
        return described


def load_sweep(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SweepError(f"No sweep file {path}.", "Check the path of the YAML file.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"Cannot read sweep file {path}: {exc}.", "Save it as UTF-8.") from exc
    document, lines = parse_yaml(text, path, SweepError, "Sweep file", "sweeps/sample_curve.yaml")
    return parse_sweep(document, path=path.resolve(), lines=lines)


def parse_sweep(
    document: Any, *, path: Path | None = None, lines: dict[str, int] | None = None
) -> SweepSpec:
    """Validate a sweep given as a mapping (what the YAML file holds)."""
    lines = lines or {}
    where = _Where(path, lines)
    if not isinstance(document, dict):
        raise where.error(TOP, f"got {_kind(document)}", "a mapping with fixed, grid and/or runs")
    for key in document:
        if key not in SPEC_KEYS:
            raise where.error(str(key), f"unknown key {key!r}", f"one of {', '.join(SPEC_KEYS)}")
    name = document.get("name") or (path.stem if path is not None else "sweep")
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$", name):
        raise where.error("name", f"got {_kind(name)}", "a name of letters, digits, . _ -")
    template = document.get("template", DEFAULT_TEMPLATE)
    if not isinstance(template, str) or not template:
        raise where.error("template", f"got {_kind(template)}", "a template name or .ipynb path")
    if template.endswith(".ipynb") and path is not None and not Path(template).is_absolute():
        template = str((path.parent / template).resolve())
    try:
        notebook = template_path(template)
    except TransferlabError as exc:
        raise where.error("template", exc.problem, exc.fix or "a template name") from exc
    checker = _Parameters(where, signature(notebook), path.parent if path else Path.cwd())

    fixed_raw = document.get("fixed") or {}
    if not isinstance(fixed_raw, dict):
        raise where.error("fixed", f"got {_kind(fixed_raw)}", "a mapping of parameter: value")
    fixed = checker.parameters(fixed_raw, "fixed")

    grid_raw = document.get("grid")
    grid: dict[str, list[dict[str, Any]]] = {}
    if grid_raw is not None:
        if not isinstance(grid_raw, dict) or not grid_raw:
            raise where.error(
                "grid",
                f"got {_kind(grid_raw)}" + (" (an empty grid has no runs)" if not grid_raw else ""),
                "a mapping of parameter: [values...], e.g. seeds: [0, 1, 2]",
            )
        set_by: dict[str, str] = {}
        for key, values in grid_raw.items():
            grid[str(key)] = checker.grid_values(str(key), values)
            for parameter in grid[str(key)][0]:
                if parameter in set_by:
                    raise where.error(
                        f"grid.{key}",
                        f"{parameter} also varies under grid.{set_by[parameter]}",
                        "each parameter under one grid key",
                    )
                set_by[parameter] = str(key)

    runs_raw = document.get("runs")
    runs: list[dict[str, Any]] = []
    if runs_raw is not None:
        if not isinstance(runs_raw, list) or not runs_raw:
            raise where.error(
                "runs", f"got {_kind(runs_raw)}", "a non-empty list of parameter mappings"
            )
        for i, item in enumerate(runs_raw):
            if not isinstance(item, dict):
                raise where.error(f"runs[{i}]", f"got {_kind(item)}", "a mapping of parameters")
            runs.append(checker.parameters(item, f"runs[{i}]"))
    sampled = document.get("strategy", "grid") != "grid"
    if sampled and runs_raw is not None:
        raise where.error("runs", "runs: lists runs, and strategy draws them", "strategy: grid")
    if grid_raw is None and runs_raw is None and not sampled:
        raise where.error(TOP, "no grid and no runs", "grid: (lists to combine) and/or runs:")
    overlap = sorted(set(fixed) & {p for item in grid.values() for p in item[0]})
    if overlap:
        raise where.error(
            "fixed", f"{', '.join(overlap)} also varies in grid", "each parameter in one place"
        )
    checker.check_runs(fixed, grid, runs)
    search = parse_search(document, where, checker, notebook.stem, grid, fixed)
    executor, options, resources = _placement(document, where)
    pdf = document.get("pdf", False)
    if not isinstance(pdf, bool):
        raise where.error("pdf", f"got {pdf!r}", "true or false")
    return SweepSpec(
        name=name,
        template=notebook.stem,
        template_path=notebook,
        fixed=fixed,
        grid=grid,
        runs=runs,
        path=path,
        document=document,
        executor=executor,
        executor_options=options,
        resources=resources,
        search=search,
        pdf=pdf,
    )


def _placement(
    document: dict, where: _Where
) -> tuple[str | None, dict[str, Any], RunResources | None]:
    """The file's `executor:` (name and settings, checked by the executor) and `resources:`."""
    from transferlab.sweeps.executors import executor_names, get_executor

    raw, resources_raw = document.get("executor"), document.get("resources")
    executor, options, resources = None, {}, None
    try:
        if raw is not None:
            executor, options = parse_executor(raw)
        if resources_raw is not None:
            resources = parse_resources(resources_raw)
    except ChoiceError as exc:
        if exc.key == "executor":
            exc.expected += f" ({', '.join(executor_names())})"
        raise where.error(exc.key, exc.problem, exc.expected) from exc
    if executor is not None:
        try:
            get_executor(executor).check_options(options)
        except TransferlabError as exc:
            raise where.refused("executor", exc.problem, exc.fix) from exc
    return executor, options, resources


class _Where:
    def __init__(self, path: Path | None, lines: dict[str, int]):
        self.path, self.lines = path, lines

    def error(self, key: str, problem: str, expected: str) -> SweepError:
        return self.refused(key, f"{problem}.", f"Expected {expected}.")

    def refused(self, key: str, problem: str, fix: str | None) -> SweepError:
        where = f"Sweep file {self.path}" if self.path is not None else "Sweep"
        line = closest_line(self.lines, key)
        if line is not None:
            where += f", line {line}"
        return SweepError(f"{where}, key {key}: {problem}", fix)


class _Parameters:
    """Checks names and types against the template's, maps aliases, resolves paths; then
    each run's parameters together. Remembers where each value came from (`origins`)."""

    def __init__(self, where: _Where, template: TemplateSignature, folder: Path):
        self.where, self.template, self.folder = where, template, folder
        self.known = template.names
        # a mapping's key path -> {parameter: the key path of its value}
        self.origins: dict[str, dict[str, str]] = {}

    def name(self, key: str, at: str) -> str:
        target = ALIASES.get(key, key)
        if target not in self.known:
            raise self.where.error(
                at,
                f"unknown parameter {key!r} for template {self.template.template}",
                f"one of its parameters: {', '.join(self.known)} (or the aliases "
                f"{', '.join(sorted(ALIASES))})",
            )
        return target

    def parameters(self, raw: dict, at: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        origins = self.origins.setdefault(at, {})
        for key, value in raw.items():
            key_at = f"{at}.{key}" if at else str(key)
            name = self.name(str(key), key_at)
            if name in found:
                raise self.where.error(key_at, f"{name} is given twice (alias)", "it once")
            found[name] = self.value(name, value, key_at)
            origins[name] = key_at
        return found

    def grid_values(self, key: str, values: Any) -> list[dict[str, Any]]:
        at = f"grid.{key}"
        if not isinstance(values, list):
            raise self.where.error(at, f"got {_kind(values)}", "a list of values, e.g. [0, 1]")
        if not values:
            raise self.where.error(
                at, "an empty list (the grid would have no runs)", "at least one value"
            )
        items: list[dict[str, Any]] = []
        for i, value in enumerate(values):
            item_at = f"{at}[{i}]"
            if isinstance(value, dict):  # several parameters set together
                if not value:
                    raise self.where.error(item_at, "an empty mapping", "parameter: value pairs")
                items.append(self.parameters(value, item_at))
            else:
                name = self.name(key, at)
                items.append({name: self.value(name, value, item_at)})
                self.origins[item_at] = {name: item_at}
        shapes = {tuple(sorted(item)) for item in items}
        if len(shapes) > 1:
            raise self.where.error(
                at,
                "its items set different parameters",
                "every item of one grid key to set the same parameters",
            )
        return items

    def value(self, name: str, value: Any, at: str) -> Any:
        if isinstance(value, dict):
            raise self.where.error(at, f"got {_kind(value)}", f"a value for {name}")
        if name in ALL_MEANS_NONE and isinstance(value, str) and value.lower() == "all":
            return None
        try:
            self.template.check_type(name, value)
        except ParameterError as exc:
            raise self.where.error(
                at,
                f"{name}={value!r} is {describe_value(value)}",
                f"{exc.expected}, e.g. {name}: {exc.example}",
            ) from exc
        if name in DATA_PARAMETERS and isinstance(value, str):
            return self.data_path(value, at)
        if name == "base" and isinstance(value, str) and value.startswith((".", "~", "/")):
            folder = Path(value).expanduser()
            folder = folder if folder.is_absolute() else self.folder / folder
            if not folder.is_dir():
                raise self.where.error(
                    at, f"no model folder {folder}", "an existing folder or a registry name"
                )
            return str(folder.resolve())
        if name in PATH_PARAMETERS:
            return resolve_path(name, value, self.folder)
        return value

    def data_path(self, data: str, at: str) -> str:
        if data.startswith(PACKAGE_SCHEME):
            relative = data.removeprefix(PACKAGE_SCHEME).lstrip("/")
            target = Path(str(resources.files("transferlab"))) / relative
            if ".." in Path(relative).parts or not target.is_file():
                raise self.where.error(
                    at,
                    f"{data!r} names no file inside the transferlab package",
                    "package:<file in transferlab>, e.g. package:sample_data/"
                    "support_intents_train.csv",
                )
            return str(target)
        # As every run reads it (transferlab.parameters): a file, else a Hub dataset id.
        resolved = resolve_path("data", data, self.folder)
        if not Path(resolved).is_absolute():
            return resolved  # hf://... or a Hugging Face dataset id
        path = Path(resolved)
        if path.is_file():
            if not os.access(path, os.R_OK):
                raise self.where.error(at, f"data file {path} is not readable", "a file")
            return str(path.resolve())
        raise self.where.error(
            at,
            f"{path} is a folder, not a data file" if path.is_dir() else f"no data file {path}",
            f"an existing file (relative paths start at the sweep file's folder {self.folder}), "
            "package:<file in transferlab>, or a Hugging Face dataset id",
        )

    def check_runs(
        self,
        fixed: dict[str, Any],
        grid: dict[str, list[dict[str, Any]]],
        runs: list[dict[str, Any]],
    ) -> None:
        """Each run's parameters together, as the template checks them before any work (a
        finetune run: method, sizes, data and train not both, ...)."""
        fixed_at = self.origins.get("fixed", {})
        if grid:
            indexed = [
                [(f"grid.{key}[{i}]", item) for i, item in enumerate(items)]
                for key, items in grid.items()
            ]
            for combination in itertools.product(*indexed):
                parameters, origins = dict(fixed), dict(fixed_at)
                for at, item in combination:
                    parameters.update(item)
                    origins.update(self.origins.get(at, {}))
                self.check_run(parameters, origins)
        for i, run in enumerate(runs):
            self.check_run({**fixed, **run}, {**fixed_at, **self.origins.get(f"runs[{i}]", {})})

    def check_run(self, parameters: dict[str, Any], origins: dict[str, str]) -> None:
        try:
            self.template.check_values(parameters)
        except TransferlabError as exc:
            # The value to blame: the first that is refused on its own, else the run's last.
            culprit = next(
                (name for name in parameters if _refused(self.template, {name: parameters[name]})),
                None,
            )
            at = origins.get(culprit or "") or (list(origins.values()) or [TOP])[-1]
            raise self.where.refused(at, exc.problem, exc.fix) from exc


def _refused(template: TemplateSignature, parameters: dict[str, Any]) -> bool:
    try:
        template.check_values(parameters)
    except TransferlabError:
        return True
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return f"{type(value).__name__} {value!r}"
