"""From a sweep spec to concrete runs, and which of them an earlier invocation already did.

Each planned run has a stable key: a digest of its template and its parameters (canonical
JSON), the same on every invocation of the same file. A run is reused (skipped) when the
registry holds a succeeded run of the same template that was requested with exactly these
parameters and, for the finetune template, used data with the same fingerprint (the exact
examples after splitting and sampling, computed by the same code the run uses). Failed and
interrupted runs are planned again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.registry import Registry
from transferlab.sweeps.spec import ALL_MEANS_NONE, SweepSpec

# Parameters shown first in a run's label and the summary, when they vary.
LABEL_ORDER = ("base", "data", "train", "method", "n_per_class", "n_train", "seed")


@dataclass
class PlannedRun:
    key: str
    template: str
    parameters: dict[str, Any]
    varying: dict[str, Any]  # the parameters that differ between the sweep's runs

    @property
    def label(self) -> str:
        return " ".join(f"{k}={display_value(k, v)}" for k, v in self.varying.items()) or self.key


def canonical(parameters: dict[str, Any]) -> str:
    return json.dumps(parameters, sort_keys=True, default=str)


def run_key(template: str, parameters: dict[str, Any]) -> str:
    payload = canonical({"template": template, "parameters": parameters})
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def expand(spec: SweepSpec) -> list[PlannedRun]:
    """Every combination of the grid, then the explicit runs; duplicates once."""
    parameter_sets: list[dict[str, Any]] = []
    if spec.grid:
        for combination in itertools.product(*spec.grid.values()):
            merged = dict(spec.fixed)
            for item in combination:
                merged.update(item)
            parameter_sets.append(merged)
    for run in spec.runs:
        parameter_sets.append({**spec.fixed, **run})
    seen: dict[str, dict[str, Any]] = {}
    for parameters in parameter_sets:
        seen.setdefault(run_key(spec.template, parameters), parameters)
    varying = _varying_names(list(seen.values()))
    return [
        PlannedRun(
            key=key,
            template=spec.template,
            parameters=parameters,
            varying={name: parameters.get(name) for name in varying},
        )
        for key, parameters in seen.items()
    ]


def _varying_names(parameter_sets: list[dict[str, Any]]) -> list[str]:
    names = sorted({name for parameters in parameter_sets for name in parameters})
    varying = [
        name for name in names if len({canonical({"v": p.get(name)}) for p in parameter_sets}) > 1
    ]
    return sorted(varying, key=lambda n: (LABEL_ORDER.index(n) if n in LABEL_ORDER else 99, n))


def display_value(name: str, value: Any) -> str:
    """A parameter value as a table shows it: 'all' for no size limit, paths shortened."""
    if value is None:
        return "all" if name in ALL_MEANS_NONE else "-"
    text = str(value)
    if "/" in text:  # a path: its last two parts say enough
        text = "/".join(text.rstrip("/").split("/")[-2:])
    return text


# -- resume -----------------------------------------------------------------------------------


def succeeded_runs(registry: Registry, template: str) -> dict[str, list[dict]]:
    """Succeeded runs of `template`, newest first, grouped by their canonical request."""
    grouped: dict[str, list[dict]] = {}
    for row in registry.succeeded_runs_of(template):
        grouped.setdefault(canonical(row["requested"] or {}), []).append(row)
    return grouped


def reusable_run(run: PlannedRun, candidates: dict[str, list[dict]]) -> str | None:
    """The id of a succeeded run this planned run can take instead of running, or None."""
    earlier = candidates.get(canonical(run.parameters))
    if not earlier:
        return None
    if run.template != "finetune":
        return earlier[0]["run_id"]
    try:
        fingerprint = finetune_data_fingerprint(run.parameters)
    except TransferlabError:
        return None  # the run would fail on its data: run it, and let it say why
    for row in earlier:
        if row["data_fingerprint"] == fingerprint:
            return row["run_id"]
    return None


def finetune_data_fingerprint(parameters: dict[str, Any]) -> str:
    """The data fingerprint a finetune-template run with these parameters will record.

    Built from the request's data settings alone, with the code the run itself uses
    (`requested_splits`: sources, splitting, few-shot sampling); no model is resolved or read.
    """
    from transferlab.finetuning.config import requested_splits
    from transferlab.parameters import finetune_config, signature
    from transferlab.runner import template_path

    defaults = signature(template_path("finetune")).defaults
    return requested_splits(finetune_config({**defaults, **parameters})).fingerprint()
