"""Evaluation metrics as `evaluate` modules shipped inside the package, loaded by path.

`evaluate.load('accuracy')` fetches its script from the Hub and fails offline; each metric here
is a small script (`<name>/<name>.py`) that `evaluate.load(path)` imports from disk. Every
script defines a plain `score(predictions, references, **options)` used by its module's
`_compute`; `metric_function` returns it so bootstrap resamples run the same code without the
Arrow round trip of `compute()`.

Suites name metrics with `SUITE_METRICS` (e.g. `macro_f1` is the `f1` module with
average='macro'); any other name is taken as a Hub metric id, usable where the Hub is reachable.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "f1", "per_class", "mcc", "roc_auc", "ece")


class MetricError(TransferlabError):
    """A metric that does not exist here, or cannot be loaded."""


@dataclass(frozen=True)
class MetricSpec:
    """How a suite metric name is computed: which module, with which options, from what.

    `inputs` is 'labels' (predicted label ids) or 'probabilities' (one row per example);
    `key` is the entry of the module's result that holds the value.
    """

    name: str
    module: str
    key: str
    inputs: str = "labels"
    options: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = True
    binary_only: bool = False
    per_class: bool = False
    hub: bool = False


SUITE_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("accuracy", "accuracy", "accuracy"),
        MetricSpec("macro_f1", "f1", "f1", options={"average": "macro"}),
        MetricSpec("micro_f1", "f1", "f1", options={"average": "micro"}),
        MetricSpec("weighted_f1", "f1", "f1", options={"average": "weighted"}),
        MetricSpec("mcc", "mcc", "mcc"),
        MetricSpec("roc_auc", "roc_auc", "roc_auc", inputs="probabilities", binary_only=True),
        MetricSpec(
            "ece",
            "ece",
            "ece",
            inputs="probabilities",
            options={"n_bins": 15},
            higher_is_better=False,
        ),
        MetricSpec("per_class", "per_class", "f1", per_class=True),
    )
}


def suite_metric(name: str) -> MetricSpec:
    """The spec of a suite metric name; other names are Hub metric ids (point values only)."""
    spec = SUITE_METRICS.get(name)
    return spec if spec is not None else MetricSpec(name, module=name, key="", hub=True)


def available_metrics() -> list[str]:
    """The metric modules shipped with transferlab (names for `load_metric`)."""
    return [name for name in METRIC_NAMES if metric_path(name).is_file()]


def metric_path(name: str) -> Path:
    return METRICS_DIR / name / f"{name}.py"


def load_metric(name: str, **options: Any) -> Any:
    """An `evaluate` module: one of ours by name (offline), else a Hub metric id.

    A Hub id is tried only where the Hub is reachable; offline it fails at once (no retries)
    with the list of metrics that work here. `options` go to `evaluate.load` (our modules are
    kept in memory by default: no cache files).
    """
    if name in METRIC_NAMES:
        return _load_local(name, **options)
    spec = SUITE_METRICS.get(name)
    if spec is not None:
        options_text = ", ".join(f"{k}={v!r}" for k, v in spec.options.items())
        raise MetricError(
            f"{name!r} is a suite metric name, not a metric module.",
            f"Load the module {spec.module!r} and pass {options_text or 'no options'} to "
            "compute(); suites accept the name as it is.",
        )
    from transferlab.models.sources import hub_status

    known = ", ".join(available_metrics())
    suite_names = ", ".join(SUITE_METRICS)
    if not _looks_like_hub_id(name):
        raise MetricError(
            f"Unknown metric {name!r}.",
            f"Use one of the metrics shipped with transferlab: {known} (in suites: "
            f"{suite_names}), or a Hugging Face Hub metric id where the Hub is reachable.",
        )
    status = hub_status()
    if status != "online":
        raise MetricError(
            f"Unknown metric {name!r}: it is not shipped with transferlab, and the Hugging Face "
            f"Hub, where it would be looked up, is {status}.",
            f"Use one of: {known} (in suites: {suite_names}); Hub metric ids work only where "
            "the Hub is reachable.",
        )
    import evaluate

    try:
        return evaluate.load(name, **options)
    except Exception as exc:  # evaluate raises many types: not found, connection, import ...
        raise MetricError(
            f"Cannot load the Hub metric {name!r}: {type(exc).__name__}: {exc}",
            f"Check the id on huggingface.co/evaluate-metric, or use one of: {known}.",
        ) from exc


def _looks_like_hub_id(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?", name or ""))


def _load_local(name: str, **options: Any) -> Any:
    import evaluate

    options.setdefault("keep_in_memory", True)
    path = metric_path(name)
    if not path.is_file():
        raise MetricError(
            f"The metric script {path} is missing from this installation.",
            "Reinstall transferlab (the metric scripts are package data: metrics/*/*.py).",
        )
    return evaluate.load(str(path.parent), **options)


@functools.cache
def metric_function(name: str) -> Callable[..., dict[str, Any]]:
    """The `score` function of one of our metric scripts, as imported by `evaluate`."""
    if name not in METRIC_NAMES:
        raise MetricError(
            f"{name!r} is not a metric shipped with transferlab.",
            f"Use one of: {', '.join(available_metrics())}.",
        )
    module = load_metric(name)
    return sys.modules[type(module).__module__].score


__all__ = [
    "METRIC_NAMES",
    "SUITE_METRICS",
    "MetricError",
    "MetricSpec",
    "available_metrics",
    "load_metric",
    "metric_function",
    "metric_path",
    "suite_metric",
]
