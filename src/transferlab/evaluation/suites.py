"""Evaluation suites: YAML files that name tasks (data, columns, labels, metrics, slices, latency).

Parsing is strict and happens before any model is loaded: every error names the suite file,
the line, the key (e.g. `tasks[1].metrics[2]`) and what was expected. `load_task_data` then
reads each task's data and checks its columns and labels, still before any model runs.

Where a task's `data` points:
- `package:sample_data/support_intents_test.csv`: a file inside the installed transferlab
  package (how the bundled suites reach the sample data wherever transferlab is installed);
- a path, relative to the suite file's folder (or absolute);
- a Hugging Face dataset id (`org/name`, `org/name:config` or `hf://org/name`), loaded at
  `split` where the Hub is reachable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlab.data import (
    HUB_PREFIX,
    SUFFIX_FORMATS,
    LabelledData,
    dataset_name,
    load_labelled_data,
)
from transferlab.errors import DataError, TransferlabError
from transferlab.metrics import SUITE_METRICS, MetricError, MetricSpec, load_metric, suite_metric
from transferlab.yaml_lines import TOP, closest_line, parse_yaml

SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"
PACKAGE_SCHEME = "package:"
SLICE_KINDS = ("text_length", "column")
DEFAULT_SPLIT = "test"
# A fixed seed for max_examples: every run of a suite scores the same examples.
SAMPLE_SEED = 0

_SUITE_KEYS = ("name", "description", "tasks", "pdf")
_TASK_KEYS = (
    "name",
    "data",
    "split",
    "text_column",
    "label_column",
    "label_names",
    "metrics",
    "slices",
    "latency",
    "max_examples",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?(:[\w.\-]+)?$")


class SuiteError(TransferlabError):
    """A suite file, or a task's data, that cannot be used as written."""


@dataclass(frozen=True)
class SliceSpec:
    """A way to split a task's examples: by text length (characters) or by a column's value."""

    by: str
    bins: tuple[int, ...] = ()
    column: str | None = None

    def assign(self, texts: list[str], values: list[str] | None) -> dict[str, np.ndarray]:
        """Slice name (`text_length=0-40`, `channel=email`) -> example indices.

        Length bins are [lower, upper): a text at or beyond the last edge is in no slice.
        """
        if self.by == "text_length":
            lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
            return {
                f"text_length={low}-{high}": np.flatnonzero((lengths >= low) & (lengths < high))
                for low, high in pairwise(self.bins)
            }
        column_values = np.asarray(values if values is not None else [], dtype=object)
        return {
            f"{self.column}={value}": np.flatnonzero(column_values == value)
            for value in sorted(set(column_values.tolist()))
        }


@dataclass(frozen=True)
class TaskSpec:
    """One task of a suite, validated; `source` is where `data` resolved to."""

    name: str
    data: str
    source: str
    split: str
    text_column: str
    label_column: str
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    slices: tuple[SliceSpec, ...] = ()
    latency: bool = False
    max_examples: int | None = None
    key: str = "tasks[0]"

    @property
    def metric_specs(self) -> list[MetricSpec]:
        return [suite_metric(name) for name in self.metrics]

    @property
    def scalar_metrics(self) -> list[MetricSpec]:
        """Metrics with one number per evaluation (everything but per_class)."""
        return [spec for spec in self.metric_specs if not spec.per_class]

    @property
    def wants_per_class(self) -> bool:
        return any(spec.per_class for spec in self.metric_specs)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tasks: tuple[TaskSpec, ...]
    path: Path | None = None
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    pdf: bool = False  # `pdf: true`: its benchmark report is printed to PDF too

    def task(self, name: str) -> TaskSpec:
        for task in self.tasks:
            if task.name == name:
                return task
        raise SuiteError(
            f"Suite {self.name!r} has no task {name!r}.",
            f"Its tasks: {', '.join(t.name for t in self.tasks)}.",
        )

    def error(self, key: str, problem: str, expected: str) -> SuiteError:
        return _error(self.path, self.lines, key, problem, expected)


# -- finding and reading suite files ---------------------------------------------------------


def bundled_suites() -> list[str]:
    """Names of the suites shipped inside the package (`load_suite(name)` finds them)."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(suite: str | Path) -> Path:
    """A suite file: a path as given, else a bundled suite by name."""
    path = Path(suite).expanduser()
    if path.is_file():
        return path.resolve()
    bundled = SUITES_DIR / f"{suite}.yaml"
    if isinstance(suite, str) and _NAME.match(suite) and bundled.is_file():
        return bundled
    raise SuiteError(
        f"No suite file {path} (and no bundled suite named {str(suite)!r}).",
        f"Pass the path of a suite YAML file, or one of the bundled suites: "
        f"{', '.join(bundled_suites()) or 'none'}.",
    )


def load_suite(suite: str | Path) -> Suite:
    """Read and validate a suite file (or a bundled suite by name)."""
    path = suite_path(suite)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(
            f"Suite file {path} is not UTF-8 text: {exc}.", "Save it as UTF-8."
        ) from exc
    document, lines = parse_yaml(
        text,
        path,
        SuiteError,
        "Suite file",
        "src/transferlab/suites/support_intents.yaml for a working suite",
    )
    return parse_suite(document, path=path, lines=lines)


def parse_suite(
    document: Any, *, path: Path | None = None, lines: dict[str, int] | None = None
) -> Suite:
    """Validate a suite given as a mapping (what the YAML file holds)."""
    lines = lines or {}
    if not isinstance(document, dict):
        raise _error(
            path,
            lines,
            TOP,
            f"the file holds {_kind(document)}",
            "a mapping with name, description and tasks",
        )
    _no_unknown_keys(document, _SUITE_KEYS, "", path, lines)
    name = _required_name(document, "name", "", path, lines)
    description = document.get("description") or ""
    if not isinstance(description, str):
        raise _error(path, lines, "description", f"got {_kind(description)}", "a text")
    tasks = document.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise _error(
            path,
            lines,
            "tasks",
            "missing" if tasks is None else f"got {_kind(tasks)}",
            "a non-empty list of tasks (each with name, data, metrics ...)",
        )
    parsed = [_parse_task(task, f"tasks[{i}]", path, lines) for i, task in enumerate(tasks)]
    seen: set[str] = set()
    for i, task in enumerate(parsed):
        if task.name in seen:
            raise _error(
                path,
                lines,
                f"tasks[{i}].name",
                f"duplicate task name {task.name!r}",
                "unique names",
            )
        seen.add(task.name)
    pdf = document.get("pdf", False)
    if not isinstance(pdf, bool):
        raise _error(path, lines, "pdf", f"got {_kind(pdf)}", "true or false")
    return Suite(name, description.strip(), tuple(parsed), path, dict(lines), pdf=pdf)


def _parse_task(raw: Any, key: str, path: Path | None, lines: dict[str, int]) -> TaskSpec:
    if not isinstance(raw, dict):
        raise _error(path, lines, key, f"got {_kind(raw)}", "a mapping with name, data, metrics")
    _no_unknown_keys(raw, _TASK_KEYS, key, path, lines)
    name = _required_name(raw, "name", key, path, lines)
    data = raw.get("data")
    if not isinstance(data, str) or not data.strip():
        raise _error(
            path,
            lines,
            f"{key}.data",
            "missing" if data is None else f"got {_kind(data)}",
            "a data file path (relative to the suite file), package:<path in transferlab> or a "
            "Hugging Face dataset id",
        )
    source = _resolve_data(data.strip(), f"{key}.data", path, lines)
    strings = {}
    for option, default in (
        ("split", DEFAULT_SPLIT),
        ("text_column", "text"),
        ("label_column", "label"),
    ):
        value = raw.get(option, default)
        if not isinstance(value, str) or not value.strip():
            raise _error(path, lines, f"{key}.{option}", f"got {_kind(value)}", "a non-empty text")
        strings[option] = value.strip()
    label_names = _label_names(raw.get("label_names"), f"{key}.label_names", path, lines)
    metrics = _metrics(raw.get("metrics"), f"{key}.metrics", path, lines)
    if label_names is not None and len(label_names) != 2:
        for i, metric in enumerate(metrics):
            if suite_metric(metric).binary_only:
                raise _error(
                    path,
                    lines,
                    f"{key}.metrics[{i}]",
                    f"{metric} is defined for binary tasks, but this task has "
                    f"{len(label_names)} label names",
                    "a metric for any number of labels (accuracy, macro_f1, mcc ...)",
                )
    slices = _slices(raw.get("slices"), f"{key}.slices", path, lines)
    latency = raw.get("latency", False)
    if not isinstance(latency, bool):
        raise _error(path, lines, f"{key}.latency", f"got {_kind(latency)}", "true or false")
    max_examples = raw.get("max_examples")
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise _error(
            path, lines, f"{key}.max_examples", f"got {max_examples!r}", "a positive whole number"
        )
    return TaskSpec(
        name=name,
        data=data.strip(),
        source=source,
        label_names=label_names,
        metrics=metrics,
        slices=slices,
        latency=latency,
        max_examples=max_examples,
        key=key,
        **strings,
    )


def _resolve_data(data: str, key: str, path: Path | None, lines: dict[str, int]) -> str:
    if data.startswith(PACKAGE_SCHEME):
        relative = data.removeprefix(PACKAGE_SCHEME).lstrip("/")
        target = Path(str(resources.files("transferlab"))) / relative
        if ".." in Path(relative).parts or not target.is_file():
            raise _error(
                path,
                lines,
                key,
                f"{data!r} names no file inside the transferlab package ({target})",
                "package:<path of a file inside the installed package>, e.g. "
                "package:sample_data/support_intents_test.csv",
            )
        return str(target)
    if data.startswith(HUB_PREFIX):
        return data
    base = path.parent if path is not None else Path.cwd()
    candidate = Path(data).expanduser()
    resolved = candidate if candidate.is_absolute() else base / candidate
    if resolved.is_file():
        return str(resolved.resolve())
    looks_like_file = (
        candidate.is_absolute()
        or data.startswith((".", "~"))
        or candidate.suffix.lower() in SUFFIX_FORMATS
    )
    if not looks_like_file and _HUB_ID.match(data):
        return data
    raise _error(
        path,
        lines,
        key,
        f"no data file {resolved}",
        f"an existing file (relative paths start at the suite file's folder {base}), "
        "package:<path in transferlab>, or a Hugging Face dataset id",
    )


def _label_names(
    value: Any, key: str, path: Path | None, lines: dict[str, int]
) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise _error(path, lines, key, f"got {_kind(value)}", "a non-empty list of label names")
    names = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, str | int) or not str(item).strip():
            raise _error(path, lines, f"{key}[{i}]", f"got {_kind(item)}", "a label name (text)")
        names.append(str(item).strip())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _error(
            path, lines, key, f"duplicate label names {duplicates}", "each label named once"
        )
    return tuple(names)


def _metrics(value: Any, key: str, path: Path | None, lines: dict[str, int]) -> tuple[str, ...]:
    expected = f"one of {', '.join(SUITE_METRICS)} (or a Hub metric id where the Hub is reachable)"
    if not isinstance(value, list) or not value:
        raise _error(
            path,
            lines,
            key,
            "missing" if value is None else f"got {_kind(value)}",
            f"a non-empty list of metric names, each {expected}",
        )
    names: list[str] = []
    for i, item in enumerate(value):
        item_key = f"{key}[{i}]"
        if not isinstance(item, str) or not item.strip():
            raise _error(path, lines, item_key, f"got {_kind(item)}", f"a metric name, {expected}")
        name = item.strip()
        if name in names:
            raise _error(path, lines, item_key, f"{name!r} is listed twice", "each metric once")
        if name not in SUITE_METRICS:
            try:
                load_metric(name)
            except MetricError as exc:
                raise _error(
                    path, lines, item_key, f"unknown metric {name!r} ({exc.problem})", expected
                ) from exc
        names.append(name)
    return tuple(names)


def _slices(
    value: Any, key: str, path: Path | None, lines: dict[str, int]
) -> tuple[SliceSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _error(path, lines, key, f"got {_kind(value)}", "a list of slices")
    parsed = []
    for i, item in enumerate(value):
        item_key = f"{key}[{i}]"
        expected = "{by: text_length, bins: [0, 40, 80, 1000]} or {by: column, column: NAME}"
        if not isinstance(item, dict):
            raise _error(path, lines, item_key, f"got {_kind(item)}", expected)
        by = item.get("by")
        if by not in SLICE_KINDS:
            raise _error(path, lines, f"{item_key}.by", f"got {by!r}", f"one of {SLICE_KINDS}")
        if by == "text_length":
            _no_unknown_keys(item, ("by", "bins"), item_key, path, lines)
            bins = item.get("bins")
            valid = (
                isinstance(bins, list)
                and len(bins) >= 2
                and all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in bins)
                and all(low < high for low, high in pairwise(bins))
            )
            if not valid:
                raise _error(
                    path,
                    lines,
                    f"{item_key}.bins",
                    f"got {bins!r}",
                    "at least two increasing whole numbers of characters, e.g. [0, 40, 80, 1000]",
                )
            parsed.append(SliceSpec("text_length", bins=tuple(bins)))
        else:
            _no_unknown_keys(item, ("by", "column"), item_key, path, lines)
            column = item.get("column")
            if not isinstance(column, str) or not column.strip():
                raise _error(
                    path, lines, f"{item_key}.column", f"got {_kind(column)}", "a column name"
                )
            parsed.append(SliceSpec("column", column=column.strip()))
    return tuple(parsed)


def _required_name(
    raw: dict, option: str, parent: str, path: Path | None, lines: dict[str, int]
) -> str:
    key = f"{parent}.{option}" if parent else option
    value = raw.get(option)
    if not isinstance(value, str) or not _NAME.match(value.strip()):
        raise _error(
            path,
            lines,
            key,
            "missing" if value is None else f"got {value!r}",
            "a name of letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value.strip()


def _no_unknown_keys(
    raw: dict, allowed: tuple[str, ...], parent: str, path: Path | None, lines: dict[str, int]
) -> None:
    for option in raw:
        if option not in allowed:
            key = f"{parent}.{option}" if parent else str(option)
            raise _error(
                path, lines, key, f"unknown key {option!r}", f"one of {', '.join(allowed)}"
            )


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _error(
    path: Path | None, lines: dict[str, int], key: str, problem: str, expected: str
) -> SuiteError:
    where = f"Suite file {path}" if path is not None else "Suite"
    line = closest_line(lines, key)
    if line is not None:
        where += f", line {line}"
    return SuiteError(f"{where}, key {key}: {problem}.", f"Expected {expected}.")


# -- a task's data ---------------------------------------------------------------------------


@dataclass
class TaskData:
    """A task's examples (labels numbered in the task's label order) and its slices."""

    task: TaskSpec
    data: LabelledData
    dataset: str
    slices: dict[str, np.ndarray]

    @property
    def label_names(self) -> list[str]:
        return list(self.data.label_names)

    @property
    def references(self) -> np.ndarray:
        return np.asarray(self.data.labels, dtype=np.int64)


def load_task_data(suite: Suite, task: TaskSpec) -> TaskData:
    """Read a task's data and check columns, labels and metrics against it (no model needed)."""
    columns = [s.column for s in task.slices if s.by == "column" and s.column]
    frame = _read_columns(suite, task) if columns or not _is_hub(task.source) else None
    if frame is not None:
        for option in ("text_column", "label_column"):
            _require_column(suite, task, frame, getattr(task, option), f"{task.key}.{option}")
        for i, spec in enumerate(task.slices):
            if spec.by == "column":
                _require_column(suite, task, frame, str(spec.column), f"{task.key}.slices[{i}]")
    try:
        data = load_labelled_data(
            task.source,
            text_column=task.text_column,
            label_column=task.label_column,
            split=task.split,
            label_names=list(task.label_names) if task.label_names else None,
        )
    except DataError as exc:
        raise suite.error(
            f"{task.key}.data", exc.problem.rstrip("."), exc.fix or "usable data"
        ) from exc
    values = {c: frame[c].map(_cell_text).tolist() for c in columns} if frame is not None else {}
    if task.max_examples is not None and len(data) > task.max_examples:
        rng = np.random.default_rng(SAMPLE_SEED)
        chosen = np.sort(rng.choice(len(data), size=task.max_examples, replace=False)).tolist()
        data = data.subset(chosen, f"{data.source} (sample of {task.max_examples})")
        values = {c: [v[i] for i in chosen] for c, v in values.items()}
    for i, spec in enumerate(task.metric_specs):
        if spec.binary_only and len(data.label_names) != 2:
            raise suite.error(
                f"{task.key}.metrics[{i}]",
                f"{spec.name} is defined for binary tasks, but {task.data} has "
                f"{len(data.label_names)} labels ({', '.join(data.label_names)})",
                "a metric for any number of labels (accuracy, macro_f1, mcc ...)",
            )
    slices: dict[str, np.ndarray] = {}
    for spec in task.slices:
        slices.update(spec.assign(data.texts, values.get(spec.column or "")))
    return TaskData(task, data, dataset_name(task.source), slices)


def check_suite_data(suite: Suite) -> list[TaskData]:
    """Every task's data, loaded and checked: what a run needs before it loads a model."""
    return [load_task_data(suite, task) for task in suite.tasks]


def _is_hub(source: str) -> bool:
    return source.startswith(HUB_PREFIX) or not Path(source).exists()


def _read_columns(suite: Suite, task: TaskSpec) -> pd.DataFrame:
    """The raw table behind a task (file or Hub split), for column checks and column slices."""
    if _is_hub(task.source):
        load_labelled_data(  # raises the data module's clear error when the Hub is out of reach
            task.source,
            text_column=task.text_column,
            label_column=task.label_column,
            split=task.split,
        )
        import datasets

        name, _, config = task.source.removeprefix(HUB_PREFIX).partition(":")
        return datasets.load_dataset(name, config or None, split=task.split).to_pandas()
    from transferlab.data import read_parquet, read_text_file

    path = Path(task.source)
    kind = SUFFIX_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise suite.error(
            f"{task.key}.data",
            f"cannot read {path}: unknown file type {path.suffix or '(no suffix)'!r}",
            f"a file ending in one of {', '.join(SUFFIX_FORMATS)}",
        )
    try:
        return read_parquet(path) if kind == "parquet" else read_text_file(path, kind)
    except DataError as exc:
        raise suite.error(
            f"{task.key}.data", exc.problem.rstrip("."), exc.fix or "usable data"
        ) from exc


def _require_column(
    suite: Suite, task: TaskSpec, frame: pd.DataFrame, column: str, key: str
) -> None:
    columns = [str(c) for c in frame.columns]
    if column not in columns:
        raise suite.error(
            key,
            f"the data {task.source} has no column {column!r}; its columns are "
            f"{', '.join(repr(c) for c in columns) or 'none'}",
            "the name of one of the data's columns",
        )


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "(missing)"
    return str(value)
