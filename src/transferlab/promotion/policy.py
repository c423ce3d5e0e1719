"""The promotion policy: which suite and key metrics each model task needs, margins, options.

The format is the packaged promotion_policy.yaml (beside this package); `load_policy` reads an
explicit path, else $TRANSFERLAB_PROMOTION_POLICY, else that default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transferlab.errors import TransferlabError

POLICY_ENV = "TRANSFERLAB_PROMOTION_POLICY"
DEFAULT_POLICY_PATH = Path(__file__).parent.parent / "promotion_policy.yaml"
_POLICY_KEYS = {"default_margin", "require_staging_before_production", "lower_is_better", "tasks"}
_TASK_KEYS = {"suite", "metrics", "margins", "split"}


class PolicyError(TransferlabError):
    """A promotion policy file that cannot be used as written."""


@dataclass(frozen=True)
class TaskPolicy:
    """What promoting a model of one task requires."""

    task: str
    suite: str
    metrics: tuple[str, ...]
    margins: dict[str, float] = field(default_factory=dict)
    split: str | None = None


@dataclass(frozen=True)
class Policy:
    source: str
    default_margin: float = 0.01
    require_staging_before_production: bool = True
    lower_is_better: frozenset[str] = frozenset()
    tasks: dict[str, TaskPolicy] = field(default_factory=dict)

    def margin(self, task: TaskPolicy, metric: str) -> float:
        return task.margins.get(metric, self.default_margin)

    def higher_is_better(self, metric: str) -> bool:
        """A slice of a metric (`ece[text_length=0-70]`, as the suite runner names them) goes
        the way the metric goes."""
        return metric.split("[", 1)[0] not in self.lower_is_better

    def key_metrics_for_suite(self, suite: str) -> list[str]:
        """The key metrics of every task that requires `suite`, in policy order."""
        found: list[str] = []
        for task in self.tasks.values():
            if task.suite == suite:
                found += [m for m in task.metrics if m not in found]
        return found


def policy_path(path: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The policy file to use and where that choice came from: argument, environment, package."""
    if path:
        return Path(path).expanduser(), "--policy"
    if os.environ.get(POLICY_ENV):
        return Path(os.environ[POLICY_ENV]).expanduser(), POLICY_ENV
    return DEFAULT_POLICY_PATH, "the packaged default"


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read and check a policy: explicit path, else $TRANSFERLAB_PROMOTION_POLICY, else default."""
    file, origin = policy_path(path)
    if not file.is_file():
        raise PolicyError(
            f"The promotion policy {file} (from {origin}) does not exist.",
            f"Point {'--policy' if origin == '--policy' else POLICY_ENV} at a policy YAML file, "
            f"e.g. a copy of {DEFAULT_POLICY_PATH}.",
        )
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PolicyError(
            f"The promotion policy {file} is not valid YAML: {error}.",
            "Fix the file's syntax.",
        ) from error
    return parse_policy(data, str(file))


def parse_policy(data: Any, source: str) -> Policy:
    def fail(key: str, expected: str, got: Any) -> PolicyError:
        return PolicyError(
            f"{source}: `{key}` must be {expected}, not {got!r}.",
            f"Fix {key} in the policy (the packaged default is {DEFAULT_POLICY_PATH}).",
        )

    if not isinstance(data, dict):
        raise fail("(top level)", "a mapping with a `tasks` key", data)
    unknown = sorted(set(data) - _POLICY_KEYS)
    if unknown:
        raise fail(unknown[0], f"one of {', '.join(sorted(_POLICY_KEYS))}", unknown[0])
    default_margin = data.get("default_margin", 0.01)
    if not _is_margin(default_margin):
        raise fail("default_margin", "a number >= 0", default_margin)
    staging_first = data.get("require_staging_before_production", True)
    if not isinstance(staging_first, bool):
        raise fail("require_staging_before_production", "true or false", staging_first)
    lower = data.get("lower_is_better") or []
    if not _is_name_list(lower):
        raise fail("lower_is_better", "a list of metric names", lower)
    tasks_data = data.get("tasks")
    if not isinstance(tasks_data, dict) or not tasks_data:
        raise fail("tasks", "a mapping of model task -> {suite, metrics}", tasks_data)
    tasks = {}
    for task, entry in tasks_data.items():
        key = f"tasks.{task}"
        if not isinstance(entry, dict):
            raise fail(key, "a mapping with suite and metrics", entry)
        extra = sorted(set(entry) - _TASK_KEYS)
        if extra:
            raise fail(f"{key}.{extra[0]}", f"one of {', '.join(sorted(_TASK_KEYS))}", extra[0])
        suite = entry.get("suite")
        if not isinstance(suite, str) or not suite:
            raise fail(f"{key}.suite", "a suite name", suite)
        metrics = entry.get("metrics")
        if not _is_name_list(metrics) or not metrics:
            raise fail(f"{key}.metrics", "a non-empty list of metric names", metrics)
        margins = entry.get("margins") or {}
        if not isinstance(margins, dict):
            raise fail(f"{key}.margins", "a mapping of metric -> margin", margins)
        for metric, margin in margins.items():
            if not _is_margin(margin):
                raise fail(f"{key}.margins.{metric}", "a number >= 0", margin)
        split = entry.get("split")
        if split is not None and not isinstance(split, str):
            raise fail(f"{key}.split", "a split name", split)
        tasks[str(task)] = TaskPolicy(
            task=str(task),
            suite=suite,
            metrics=tuple(metrics),
            margins={str(m): float(v) for m, v in margins.items()},
            split=split,
        )
    return Policy(
        source=source,
        default_margin=float(default_margin),
        require_staging_before_production=staging_first,
        lower_is_better=frozenset(lower),
        tasks=tasks,
    )


def _is_margin(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
