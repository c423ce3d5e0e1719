"""Evidence for a promotion: benchmark results summarised over seeds, lineage and licence."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from transferlab.errors import NotFoundError
from transferlab.registry import Registry, VersionRecord

EVIDENCE_RUN_KIND = "benchmark"


@dataclass(frozen=True)
class Summary:
    """One metric of one version on one suite task and split: mean and spread over seeds."""

    mean: float
    std: float | None
    n: int


# (version_id, suite task, split, metric)
SummaryKey = tuple[str, str, str, str]


def summarise(rows: Iterable[dict], key_fields: Sequence[str]) -> dict[tuple, Summary]:
    """Mean over seeds per key. Rows of the same seed are averaged first, so re-running one seed
    does not count as more evidence; NaN values (an undefined metric) are left out."""
    by_seed: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        value = row["value"]
        if value is None or math.isnan(value):
            continue
        key = tuple(row[f] if row[f] is not None else "" for f in key_fields)
        by_seed[key][row.get("seed")].append(float(value))
    summaries = {}
    for key, seeds in by_seed.items():
        means = [statistics.fmean(values) for values in seeds.values()]
        std = statistics.stdev(means) if len(means) > 1 else None
        summaries[key] = Summary(statistics.fmean(means), std, len(means))
    return summaries


def _evidence_rows(
    registry: Registry, suite: str | None = None, version_ids: Sequence[str] | None = None
) -> list[dict]:
    """Result rows of succeeded benchmark runs (a failed or running run is no evidence)."""
    return registry.evidence_rows(EVIDENCE_RUN_KIND, suite, version_ids)


def suite_summaries(
    registry: Registry, suite: str, version_ids: Sequence[str] | None = None
) -> dict[SummaryKey, Summary]:
    rows = _evidence_rows(registry, suite, version_ids)
    return summarise(rows, ("version_id", "task", "split", "metric"))  # type: ignore[return-value]


def suites_with_results(registry: Registry, version_id: str | None = None) -> list[str]:
    rows = _evidence_rows(registry, None, [version_id] if version_id else None)
    return sorted({row["suite"] for row in rows})


# -- lineage and licence ----------------------------------------------------------------------


def lineage_models(registry: Registry, version: VersionRecord) -> list[dict]:
    """The models of the version's lineage, its own first, each once."""
    models: list[dict] = []
    for ancestor in registry.lineage(version.version_id):
        if any(m["name"] == ancestor.model_name for m in models):
            continue
        try:
            models.append(registry.get_model(ancestor.model_name))
        except NotFoundError:
            continue
    return models


def allows_commercial_use(model: dict) -> bool | None:
    """The model's recorded answer, else what its licence id says (None: unknown)."""
    from transferlab.catalog.licenses import commercial_use_for_license

    if model.get("commercial_use") is not None:
        return bool(model["commercial_use"])
    return commercial_use_for_license(model.get("license"))


def effective_licence(models: Sequence[dict]) -> dict | None:
    """The nearest model in the lineage that records a licence (a derived model without one
    inherits its base's)."""
    return next((m for m in models if m.get("license")), None)
