"""Helpers the benchmark template shares: which versions to evaluate and their base models.

Its data-efficiency section reads transferlab.efficiency (filtered by `lineage_roots`).
"""

from __future__ import annotations

from collections.abc import Sequence

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
