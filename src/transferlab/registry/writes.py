"""Writes that span several tables, each in one transaction, for Registry (api.py): an
import (the model if new, its version and its profile), the seed catalog, a catalog sync (the
catalog's models and their audit-log entries), and a fine-tune's outcome (the base if new, the
derived model, its version and its results).

A write that fails anywhere (a name clash found inside the transaction, a bad record, a
failed insert) leaves the registry exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from transferlab.registry.records import ModelRecord, VersionRecord
from transferlab.registry.rows import Connection

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

PROFILE_COLUMNS = (
    "parameters",
    "size_bytes",
    "load_seconds",
    "latency_ms_p50",
    "latency_ms_p95",
    "throughput_per_s",
    "peak_memory_mb",
)
_VERSION_COLUMNS = (
    "version_id",
    "model_name",
    "version",
    "kind",
    "uri",
    "parent_version_id",
    "run_id",
    "label_names",
    "metadata",
    "created_at",
)


def existing_model(con: Connection, name: str) -> dict[str, Any] | None:
    """The models row called `name` (JSON columns as text), or None."""
    cursor = con.execute("SELECT * FROM models WHERE name = ?", [name])
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cursor.description], row, strict=True))


def _version_at(con: Connection, model_name: str, kind: str, uri: str) -> VersionRecord | None:
    row = con.execute(
        f"SELECT {', '.join(_VERSION_COLUMNS)} FROM model_versions WHERE model_name = ? "
        "AND uri = ? AND kind = ? ORDER BY version DESC LIMIT 1",
        [model_name, uri, kind],
    ).fetchone()
    if row is None:
        return None
    values = dict(zip(_VERSION_COLUMNS, row, strict=True))
    for key in ("label_names", "metadata"):
        if isinstance(values[key], str):
            values[key] = json.loads(values[key])
    values["metadata"] = values["metadata"] or {}
    return VersionRecord(**values)


def insert_profile(con: Connection, version_id: str, profile: dict[str, Any]) -> None:
    """Write the version's profile on its device, replacing an earlier one."""
    details = {k: v for k, v in profile.items() if k not in PROFILE_COLUMNS}
    updated = ", ".join(f"{c} = excluded.{c}" for c in ("measured_at", *PROFILE_COLUMNS, "details"))
    con.execute(
        "INSERT INTO profiles (version_id, measured_at, device, "
        f"{', '.join(PROFILE_COLUMNS)}, details) VALUES (?, ?, ?, "
        f"{', '.join('?' for _ in PROFILE_COLUMNS)}, ?) "
        f"ON CONFLICT (version_id, device) DO UPDATE SET {updated}",
        [
            version_id,
            datetime.now(UTC).replace(tzinfo=None),
            profile.get("device", "cpu"),
            *[profile.get(k) for k in PROFILE_COLUMNS],
            json.dumps(details, sort_keys=True, default=str),
        ],
    )


class WritesMixin:
    actor: str

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager: ...

        def upsert_models(
            self, records: Iterable[ModelRecord], origin: str = ..., con: Any = ...
        ) -> dict: ...

        def add_version(
            self, model_name: str, kind: str, uri: str | None, **fields: Any
        ) -> Any: ...

        def add_results(self, rows: Iterable[dict], con: Any = ...) -> int: ...

    def register_import(
        self,
        record: ModelRecord,
        uri: str,
        *,
        metadata: dict[str, Any] | None = None,
        profile: dict[str, Any] | None = None,
        check_existing: Callable[[dict[str, Any]], None] | None = None,
    ) -> VersionRecord:
        """Write an imported model, its base version at `uri` and its profile, all or nothing.

        A model already called `record.name` keeps its record (curated metadata is never
        overwritten by an import); `check_existing(row)` is called with its row first and may
        raise to refuse the import. A version already registered at `uri` is reused.
        """
        with self.transaction() as con:
            known = existing_model(con, record.name)
            if known is None:
                self.upsert_models([record], origin="import", con=con)
            elif check_existing is not None:
                check_existing(known)
            version = _version_at(con, record.name, "base", uri)
            if version is None:
                version = self.add_version(
                    record.name, "base", uri, metadata=metadata or {}, con=con
                )
            if profile is not None:
                insert_profile(con, version.version_id, profile)
        return version

    def load_catalog(
        self, records: Sequence[ModelRecord], uri_for: Callable[[ModelRecord], str | None]
    ) -> dict:
        """Upsert catalog records and give each model without versions a base version at
        `uri_for(record)` (when it has one), all or nothing. The upsert counts, plus
        `versions`: the models given a version."""
        with self.transaction() as con:
            return self._write_catalog(con, records, uri_for)

    def sync_catalog(
        self,
        records: Sequence[ModelRecord],
        uri_for: Callable[[ModelRecord], str | None],
        events: Sequence[dict[str, Any]],
    ) -> dict:
        """A catalog sync's metadata, all or nothing: the records written as `load_catalog`
        writes them, and one audit-log entry per event (`action`, `model_name`, `reason`,
        `details`) naming this registry's actor."""
        with self.transaction() as con:
            counts = self._write_catalog(con, records, uri_for)
            for event in events:
                con.execute(
                    "INSERT INTO audit_log (actor, action, model_name, reason, details) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        self.actor,
                        event["action"],
                        event["model_name"],
                        event.get("reason"),
                        json.dumps(event.get("details") or {}, sort_keys=True, default=str),
                    ],
                )
        return counts

    def _write_catalog(
        self,
        con: Connection,
        records: Sequence[ModelRecord],
        uri_for: Callable[[ModelRecord], str | None],
    ) -> dict:
        counts = self.upsert_models(records, origin="catalog", con=con)
        new_versions = []
        for record in records:
            uri = uri_for(record)
            has_version = con.execute(
                "SELECT 1 FROM model_versions WHERE model_name = ?", [record.name]
            ).fetchall()
            if uri and not has_version:
                self.add_version(record.name, "base", uri, metadata={"origin": "catalog"}, con=con)
                new_versions.append(record.name)
        counts["versions"] = new_versions
        return counts

    def record_derived_version(
        self,
        record: ModelRecord,
        kind: str,
        uri: str,
        *,
        run_id: str,
        parent_version_id: str | None = None,
        base: tuple[ModelRecord, str, dict[str, Any]] | None = None,
        label_names: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        results: Iterable[dict] = (),
    ) -> VersionRecord:
        """A run's outcome, all or nothing: `base` (its record, uri and version metadata)
        registered first when given (its new version is the parent), the derived model (when
        it is new), its version at `uri` and the run's result rows (tagged with the version).

        Later runs add versions to the model and leave its record as the first run wrote it:
        DuckDB rejects an UPDATE of a models row that versions reference (foreign key).
        `metadata` gets `base_version_id` (the parent).
        """
        with self.transaction() as con:
            parent_id = parent_version_id
            if base is not None:
                base_record, base_uri, base_metadata = base
                self.upsert_models([base_record], origin="import", con=con)
                parent_id = self.add_version(
                    base_record.name, "base", base_uri, metadata=base_metadata, con=con
                ).version_id
            if existing_model(con, record.name) is None:
                self.upsert_models([record], origin="derived", con=con)
            version = self.add_version(
                record.name,
                kind,
                uri,
                parent_version_id=parent_id,
                run_id=run_id,
                label_names=label_names,
                metadata={**(metadata or {}), "base_version_id": parent_id},
                con=con,
            )
            rows = [{**row, "version_id": version.version_id} for row in results]
            self.add_results(rows, con=con)
        return version
