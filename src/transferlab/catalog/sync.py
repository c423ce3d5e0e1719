"""`transferlab sync CATALOG.yaml`: a catalog file as the desired state of the registry.

Three steps; the first two write nothing:

1. **check**: the reader's problems (seed.py), the policy's (policy.py), and what only the disk
   and the registry can tell: a local folder that is missing, unreadable, holds broken weights
   or is not the model the entry describes; a name taken by a fine-tuned model; an entry that
   would point a model that has versions at other weights. Any problem refuses the whole file.
2. **plan**: each entry is added, updated (key: old -> new) or unchanged, and its weights may
   need an import (a local folder, or a Hub id whose weights are in this machine's Hugging Face
   cache) or a profile; the catalog models of the registry that the file does not list are
   reported, never deleted. A Hub id without cached weights is metadata only (its `hf://`
   version loads from the Hub where reachable): nothing is downloaded, nothing waits on the
   network.
3. **apply** (not with --dry-run, and nothing at all when the plan is empty): one transaction
   writes the metadata, the hub versions of new models and one audit-log entry per added or
   updated model; then each weight action runs the code of `transferlab import local` /
   `transferlab profile`; the sync is one run of kind `sync` (who, which file, what changed).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.catalog.importers import check_hub_ref, import_local, profile_version
from transferlab.catalog.local import inspect_local_model, safetensors_files
from transferlab.catalog.policy import CatalogPolicy, check_policy, license_exceptions
from transferlab.catalog.seed import (
    CatalogEntry,
    CatalogFile,
    CatalogProblem,
    hub_uri,
    parse_catalog,
)
from transferlab.catalog.weights import check_weights
from transferlab.errors import ModelSourceError, TransferlabError
from transferlab.registry import ModelRecord, Registry, VersionRecord

RUN_KIND = "sync"
IMPORT, PROFILE = "import", "profile"
# A folder's parameter count may differ this much from the entry's (the catalog counts a bare
# encoder, a checkpoint may add a pooler): the rule `transferlab import` applies to a copy.
PARAMETER_TOLERANCE = 0.1
_LIST_FIELDS = ("languages", "tags")
SUMMARY_KEYS = (
    "added", "updated", "unchanged", "imported", "profiled", "refused", "failed", "not_in_file"
)  # fmt: skip


@dataclass
class EntryPlan:
    """What a sync does with one entry of the file."""

    record: ModelRecord
    change: str  # add | update | unchanged
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # key -> (old, new)
    weights: str | None = None  # import | profile | None
    folder: Path | None = None  # the weights to import
    version_id: str | None = None  # the version to profile
    note: str | None = None  # why the weights are left alone (the same text for the same why)

    @property
    def name(self) -> str:
        return self.record.name

    def to_dict(self, profile: bool) -> dict[str, Any]:
        return {
            "name": self.name,
            "change": self.change,
            "source": self.record.source,
            "source_ref": self.record.source_ref,
            "changes": {k: {"old": old, "new": new} for k, (old, new) in self.changes.items()},
            "weights": self.weights,
            "profile": self.weights == PROFILE or (self.weights == IMPORT and profile),
            "folder": str(self.folder) if self.folder else None,
            "note": self.note,
        }


@dataclass
class SyncPlan:
    """The checked file, the policy, and what applying it would do."""

    catalog: CatalogFile
    policy: CatalogPolicy
    entries: list[EntryPlan]
    not_in_file: list[str]
    profile: bool

    @property
    def problems(self) -> list[CatalogProblem]:
        return sorted(self.catalog.problems, key=lambda p: (p.line or 0, p.key or ""))

    @property
    def refused(self) -> bool:
        return bool(self.catalog.problems)

    def named(self, change: str) -> list[EntryPlan]:
        return [entry for entry in self.entries if entry.change == change]

    @property
    def weight_actions(self) -> list[EntryPlan]:
        return [entry for entry in self.entries if entry.weights]

    @property
    def has_changes(self) -> bool:
        return any(e.change != "unchanged" or e.weights for e in self.entries)


@dataclass
class SyncReport:
    """A sync's outcome: the plan, and what applying it did."""

    plan: SyncPlan
    registry: str
    dry_run: bool
    run_id: str | None = None
    imported: list[str] = field(default_factory=list)
    profiled: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    embedded: int = 0
    actor: str | None = None

    @property
    def status(self) -> str:
        if self.plan.refused:
            return "refused"
        if not self.plan.has_changes:
            return "unchanged"
        if self.dry_run:
            return "planned"
        return "failed" if self.failed else "applied"

    def summary(self) -> dict[str, int]:
        plan = self.plan
        if plan.refused:  # nothing happens to any entry
            refused = len({p.entry for p in plan.catalog.problems})
            return dict.fromkeys(SUMMARY_KEYS, 0) | {"refused": refused}
        if self.dry_run:  # what applying would do
            imported = sum(e.weights == IMPORT for e in plan.entries)
            profiled = sum(
                e.weights == PROFILE or (e.weights == IMPORT and plan.profile) for e in plan.entries
            )
        else:
            imported, profiled = len(self.imported), len(self.profiled)
        return {
            "added": len(plan.named("add")),
            "updated": len(plan.named("update")),
            "unchanged": len(plan.named("unchanged")),
            "imported": imported,
            "profiled": profiled,
            "refused": 0,
            "failed": len(self.failed),
            "not_in_file": len(plan.not_in_file),
        }

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "status": self.status,
            "catalog": str(plan.catalog.path),
            "registry": self.registry,
            "policy": plan.policy.to_dict(),
            "dry_run": self.dry_run,
            "profile": plan.profile,
            "summary": self.summary(),
            "entries": [e.to_dict(plan.profile) for e in plan.entries],
            "not_in_file": plan.not_in_file,
            "problems": [p.to_dict() for p in plan.problems],
            "run_id": self.run_id,
            "actor": self.actor,
            "imported": self.imported,
            "profiled": self.profiled,
            "failed": self.failed,
            "embedded": self.embedded,
        }


# -- plan -------------------------------------------------------------------------------------


def plan_sync(
    registry: Registry, path: str | Path, policy: CatalogPolicy, *, profile: bool = True
) -> SyncPlan:
    """Check a catalog file against the policy, the disk and the registry, and plan the sync.
    Reads only; a registry that does not exist yet is planned against as empty (and is not
    created)."""
    catalog = parse_catalog(path)
    check_policy(catalog, policy)
    rows, versions, profiled = _registry_state(registry, [e.name for e in catalog.entries])
    entries: list[EntryPlan] = []
    for entry in catalog.entries:
        if entry.record is None:
            continue
        name = entry.record.name
        planned = _plan_entry(catalog, entry, rows.get(name), versions.get(name, []))
        if planned is not None:
            _plan_weights(catalog, entry, planned, versions.get(name, []), profiled, profile)
            entries.append(planned)
    listed = {entry.name for entry in catalog.entries}
    missing = sorted(n for n, r in rows.items() if r["origin"] == "catalog" and n not in listed)
    return SyncPlan(catalog, policy, entries, missing, profile)


def _registry_state(
    registry: Registry, names: list[str | None]
) -> tuple[dict[str, dict], dict[str, list[VersionRecord]], set[str]]:
    """The models rows by name, the versions of the file's models and the profiled version
    ids, read under one shared lock that is released before the folders are checked."""
    if not registry.exists():
        return {}, {}, set()
    with registry.session(read_only=True):
        rows = {row["name"]: row for row in registry.all_models()}
        versions = {name: registry.versions(name) for name in names if name in rows}
        profiled = {row["version_id"] for row in registry.profiles()}
    return rows, versions, profiled


def _plan_entry(
    catalog: CatalogFile, entry: CatalogEntry, row: dict | None, versions: list[VersionRecord]
) -> EntryPlan | None:
    record = entry.record
    assert record is not None
    if record.source == "local":
        folder = Path(record.source_ref).expanduser()
        if not folder.is_absolute():
            folder = catalog.path.parent / folder  # relative to the catalog file
        record = dataclasses.replace(record, source_ref=str(folder.resolve()))
    elif not _hub_ref_ok(catalog, entry, record):
        return None
    if row is None:
        return EntryPlan(record, "add")
    if row["origin"] == "derived":
        catalog.add_problem(
            entry,
            "name",
            f"{record.name!r} is a fine-tuned model of this registry (origin derived)",
            "give the catalog entry another name.",
        )
        return None
    moved = [k for k in ("source", "source_ref") if row[k] != getattr(record, k)]
    if moved and versions:
        catalog.add_problem(
            entry,
            moved[0],
            f"{record.name} is registered from {row['source']} {row['source_ref']} with "
            f"{len(versions)} version(s); a sync does not point a registered model at other "
            "weights",
            f"keep {moved[0]} as registered, or give the new weights an entry of their own name.",
        )
        return None
    changes = _changes(row, record)
    return EntryPlan(record, "update" if changes else "unchanged", changes)


def _hub_ref_ok(catalog: CatalogFile, entry: CatalogEntry, record: ModelRecord) -> bool:
    """A Hub id (owner/name) or torchhub/tfhub reference written as its hub expects."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if record.source == "hf":
            validate_repo_id(record.source_ref)
        else:
            check_hub_ref(record.source, record.source_ref)
    except HFValidationError as error:
        catalog.add_problem(
            entry,
            "source_ref",
            f"{record.source_ref!r} is not a Hugging Face model id ({error})",
            "write it as owner/name, e.g. sentence-transformers/all-MiniLM-L6-v2.",
        )
        return False
    except ModelSourceError as error:
        catalog.add_problem(entry, "source_ref", error.problem.rstrip("."), error.fix)
        return False
    return True


def _comparable(key: str, value: Any) -> Any:
    if key in _LIST_FIELDS:
        return list(value or [])
    if key == "finetune":
        return dict(value or {})
    return value


def _changes(row: dict, record: ModelRecord) -> dict[str, tuple[Any, Any]]:
    """key -> (registered, in the file) for every field of the record that differs."""
    found = {}
    for key, new in record.to_dict().items():
        old = row.get(key)
        if key != "name" and _comparable(key, old) != _comparable(key, new):
            found[key] = (old, new)
    return found


def _plan_weights(
    catalog: CatalogFile,
    entry: CatalogEntry,
    planned: EntryPlan,
    versions: list[VersionRecord],
    profiled: set[str],
    profile: bool,
) -> None:
    """What the entry's weights need here: an import, a profile, or nothing (with a note)."""
    record = planned.record
    if record.source == "local":
        folder: Path | None = Path(record.source_ref)
        mismatches = _folder_mismatches(record, folder)
        for key, problem, fix in mismatches:
            catalog.add_problem(entry, key, problem, fix)
        if any(key == "source_ref" for key, _, _ in mismatches):
            return  # no model folder there: nothing more to check
    elif record.source == "hf":
        folder = cached_snapshot(record.source_ref)
        mismatches = _folder_mismatches(record, folder) if folder else []
        if folder is None or mismatches:
            if planned.change != "unchanged":
                planned.note = _hub_note(record, mismatches)
            return
    else:
        if planned.change == "add":
            planned.note = (
                f"metadata only: a {record.source} reference ({record.source}://...); profiling "
                "measures Hugging Face text models"
            )
        return
    assert folder is not None
    uri = str(folder.resolve())
    version = next((v for v in versions if v.uri == uri and v.kind == "base"), None)
    if version is None:
        planned.weights, planned.folder = IMPORT, folder
        if record.source == "local":
            try:
                check_weights(folder)  # broken weights refuse the file before anything is written
            except ModelSourceError as error:
                catalog.add_problem(entry, "source_ref", error.problem.rstrip("."), error.fix)
    elif (
        profile and version.version_id not in profiled and not version.metadata.get("not_profiled")
    ):
        planned.weights, planned.version_id = PROFILE, version.version_id


def _folder_mismatches(record: ModelRecord, folder: Path) -> list[tuple[str, str, str]]:
    """(key, problem, fix) for each way the folder is not the model the entry describes."""
    try:
        found = inspect_local_model(folder)
    except ModelSourceError as error:
        return [("source_ref", error.problem.rstrip("."), error.fix)]
    issues = []
    for key in ("model_type", "architecture"):
        ours, theirs = getattr(record, key), getattr(found, key)
        if ours and theirs and ours != theirs:
            issues.append(
                (
                    key,
                    f"says {ours!r} but {folder}/config.json says {theirs!r}",
                    f"write {key}: {theirs}, or point source_ref at the model's folder.",
                )
            )
    ours, theirs = record.parameters, found.parameters
    if ours and theirs and abs(ours - theirs) > PARAMETER_TOLERANCE * max(ours, theirs):
        issues.append(
            (
                "parameters",
                f"says {ours:,} but the weights in {folder} hold {theirs:,}",
                f"write parameters: {theirs}, or point source_ref at the model's folder.",
            )
        )
    return issues


def cached_snapshot(model_id: str) -> Path | None:
    """The folder of a Hub model in this machine's Hugging Face cache, when its config and
    weights are there; never touches the network (local_files_only)."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # not cached, or not a valid id: either way, nothing here to load
        return None
    has_weights = safetensors_files(folder) or list(folder.glob("pytorch_model*.bin"))
    return folder if (folder / "config.json").is_file() and has_weights else None


def _hub_note(record: ModelRecord, mismatches: list[tuple[str, str, str]]) -> str:
    from transferlab.catalog.hf import hub_is_offline

    if mismatches:
        key, problem, _ = mismatches[0]
        why = f"the cached copy of {record.source_ref} does not match the entry ({key}: {problem})"
    else:
        offline = " (HF_HUB_OFFLINE is set)" if hub_is_offline() else ""
        why = f"the weights are not in this machine's Hugging Face cache{offline}"
    return (
        f"metadata only: {why}; registered as hf://ID, loaded from the Hub where it is "
        "reachable (`hf download ID`, then sync again, imports and profiles it)"
    )


# -- apply ------------------------------------------------------------------------------------


def apply_sync(registry: Registry, plan: SyncPlan) -> SyncReport:
    """Apply a checked plan; a refused or empty plan writes nothing at all."""
    report = SyncReport(plan, str(registry.location), dry_run=False, actor=registry.actor)
    if plan.refused or not plan.has_changes:
        return report
    catalog = plan.catalog
    report.run_id = registry.start_run(
        RUN_KIND,
        parameters={
            "catalog": str(catalog.path.resolve()),
            "catalog_sha256": hashlib.sha256(catalog.path.read_bytes()).hexdigest(),
            "policy": str(plan.policy.path),
            "profile": plan.profile,
            "actor": registry.actor,
            "license_exceptions": license_exceptions(catalog),
        },
    )
    try:
        written = [e.record for e in plan.entries if e.change != "unchanged"]
        if written:
            registry.sync_catalog(written, hub_uri, _audit_events(plan, report.run_id))
        for entry in plan.weight_actions:
            _apply_weights(registry, plan, entry, report)
        from transferlab.search import sync_embeddings

        report.embedded = sync_embeddings(registry)
    except KeyboardInterrupt:
        registry.finish_run(report.run_id, "interrupted", error="Interrupted during the sync.")
        raise
    except Exception as error:
        registry.finish_run(report.run_id, "failed", error=str(error).splitlines()[0])
        raise
    errors = "; ".join(f"{f['name']}: {f['error']}" for f in report.failed)
    registry.finish_run(
        report.run_id,
        "failed" if report.failed else "succeeded",
        error=errors or None,
        metrics={
            **report.summary(),
            "added_models": [e.name for e in plan.named("add")],
            "updated_models": [e.name for e in plan.named("update")],
            "imported_versions": report.imported,
            "profiled_versions": report.profiled,
        },
    )
    return report


def _audit_events(plan: SyncPlan, run_id: str) -> list[dict[str, Any]]:
    exceptions = license_exceptions(plan.catalog)
    shown = plan.catalog.path.name
    events = []
    for entry in plan.entries:
        details: dict[str, Any] = {"run_id": run_id, "catalog": str(plan.catalog.path.resolve())}
        if entry.name in exceptions:
            details["license_exception"] = exceptions[entry.name]
        if entry.change == "add":
            reason = f"added by the sync of {shown}"
        elif entry.change == "update":
            reason = f"changed {', '.join(entry.changes)} (sync of {shown})"
            details["changes"] = {k: [old, new] for k, (old, new) in entry.changes.items()}
        else:
            continue
        events.append(
            {
                "action": f"catalog.{entry.change}",
                "model_name": entry.name,
                "reason": reason,
                "details": details,
            }
        )
    return events


def _apply_weights(
    registry: Registry, plan: SyncPlan, entry: EntryPlan, report: SyncReport
) -> None:
    """Import or profile one entry's weights; a failure is reported and the others go on."""
    try:
        if entry.weights == IMPORT:
            assert entry.folder is not None
            metadata: dict[str, Any] = {"synced_by": report.run_id}
            if entry.record.source == "hf":
                metadata["same_weights_as"] = hub_uri(entry.record)
            version = import_local(
                registry, entry.folder, entry.name, plan.profile, metadata=metadata
            )
            report.imported.append(version.version_id)
            if plan.profile and registry.profiles(version.version_id):
                report.profiled.append(version.version_id)
        elif entry.weights == PROFILE:
            assert entry.version_id is not None
            profile_version(registry, registry.resolve(entry.version_id))
            report.profiled.append(entry.version_id)
    except TransferlabError as error:
        message = error.problem + (f" {error.fix}" if error.fix else "")
        report.failed.append({"name": entry.name, "action": entry.weights or "", "error": message})


def sync_catalog_file(
    registry: Registry,
    path: str | Path,
    policy: CatalogPolicy,
    *,
    dry_run: bool = False,
    profile: bool = True,
) -> SyncReport:
    """Check, plan and (unless `dry_run`) apply a catalog file; see the module docstring."""
    plan = plan_sync(registry, path, policy, profile=profile)
    if dry_run or plan.refused:
        return SyncReport(plan, str(registry.location), dry_run=dry_run, actor=registry.actor)
    return apply_sync(registry, plan)
