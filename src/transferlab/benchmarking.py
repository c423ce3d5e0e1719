"""Helpers the benchmark template shares: which versions to evaluate, and data-efficiency data."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from transferlab.errors import NotFoundError
from transferlab.registry import Registry

TRAINED_KINDS = ("adapter", "merged", "full")


def normalise_versions(versions: str | Sequence[str] | None) -> list[str]:
    """A template parameter given as a list, as 'a:1, b@staging', or as None."""
    if versions is None:
        return []
    if isinstance(versions, str):
        return [v.strip() for v in versions.split(",") if v.strip()]
    return [str(v) for v in versions]


def latest_finetuned_version(registry: Registry) -> str:
    rows = registry.query(
        "SELECT version_id FROM model_versions WHERE kind IN (?, ?, ?) "
        "ORDER BY created_at DESC LIMIT 1",
        list(TRAINED_KINDS),
    )
    if not rows:
        raise NotFoundError(
            "No fine-tuned version in the registry to benchmark.",
            "Fine-tune one first (`transferlab run finetune`), or pass -p versions NAME:N.",
        )
    return rows[0]["version_id"]


def lineage_roots(registry: Registry, versions: Sequence[str]) -> set[str]:
    return {registry.lineage(v)[-1].model_name for v in versions}


def data_efficiency_results(
    registry: Registry, versions: Sequence[str], metric: str = "accuracy", split: str = "test"
) -> pd.DataFrame:
    """Mean and spread of `metric` against training examples, per method, for fine-tunes of
    the same base models as `versions` (one point per method and training-set size)."""
    roots = lineage_roots(registry, versions) if versions else set()
    rows = registry.query(
        "SELECT r.value, r.n_train, r.seed, u.parameters FROM results r "
        "JOIN runs u USING (run_id) WHERE u.kind = 'finetune' AND u.status = 'succeeded' "
        "AND r.metric = ? AND r.split = ? AND r.n_train IS NOT NULL",
        [metric, split],
    )
    records = []
    for row in rows:
        parameters = json.loads(row["parameters"]) if row["parameters"] else {}
        if roots and parameters.get("base_model") not in roots:
            continue
        records.append(
            {
                "method": parameters.get("method"),
                "n_train": row["n_train"],
                "n_per_class": parameters.get("n_per_class"),
                "value": row["value"],
            }
        )
    frame = pd.DataFrame(records, columns=["method", "n_train", "n_per_class", "value"])
    if frame.empty:
        return pd.DataFrame(columns=["method", "n_train", "mean", "std", "runs"])
    grouped = frame.groupby(["method", "n_train"])["value"]
    summary = grouped.agg(mean="mean", std="std", runs="count").reset_index()
    if summary["runs"].max() < 2 and summary["n_train"].nunique() < 2:
        return pd.DataFrame(columns=["method", "n_train", "mean", "std", "runs"])
    return summary.fillna({"std": 0.0})
