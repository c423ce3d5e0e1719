"""`transferlab init`: the seed catalog, the installed MiniLM, profiles and search embeddings."""

from __future__ import annotations

from pathlib import Path

from transferlab.catalog.importers import (
    load_seed_catalog,
    profile_version,
    register_installed_minilm,
)
from transferlab.registry import Registry
from transferlab.search import local_path, sync_embeddings


def initialize(registry: Registry, catalog: str | Path | None = None, profile: bool = True) -> dict:
    """Bring a registry up to date; running it again changes nothing."""
    counts = load_seed_catalog(registry, catalog)
    minilm = register_installed_minilm(registry)
    profiled = []
    if profile:
        measured = {row["version_id"] for row in registry.profiles()}
        for ref in registry.base_version_refs():
            version = registry.resolve(ref)
            if version.version_id not in measured and local_path(version.uri):
                profile_version(registry, version)
                profiled.append(version.version_id)
    return {
        "registry": registry.display_location,
        "schema_version": registry.schema_version(),
        "models_inserted": len(counts["inserted"]),
        "models_updated": len(counts["updated"]),
        "models_unchanged": len(counts["unchanged"]),
        "versions_added": len(counts["versions"]),
        "local_minilm": minilm.version_id if minilm else None,
        "profiled": profiled,
        "embedded": sync_embeddings(registry),
    }


def ensure_initialized(registry: Registry) -> dict | None:
    """Load the catalog and the installed MiniLM into a registry that has no models yet.

    Templates call this so that a first `transferlab run` on a new machine works without a
    separate `transferlab init` (profiling is left to `init`, it takes a while).
    """
    if registry.model_count():
        return None
    return initialize(registry, profile=False)
