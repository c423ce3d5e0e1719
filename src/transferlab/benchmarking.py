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
    latest = registry.latest_version_of_kinds(TRAINED_KINDS)
    if latest is None:
        raise NotFoundError(
            "No fine-tuned version in the registry to benchmark.",
            "Fine-tune one first (`transferlab run finetune`), or pass -p versions NAME:N.",
        )
    return latest


def lineage_roots(registry: Registry, versions: Sequence[str]) -> set[str]:
    return {registry.lineage(v)[-1].model_name for v in versions}
