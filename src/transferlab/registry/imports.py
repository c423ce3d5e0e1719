"""Imports written in one transaction: the model (if new), its version and its profile.

An import that fails anywhere (a name clash found inside the transaction, a bad record, a
failed write) leaves the registry exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb

from transferlab.registry.api import Registry
from transferlab.registry.records import ModelRecord, VersionRecord

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


def existing_model(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, Any] | None:
    """The models row called `name` (JSON columns as text), or None."""
    cursor = con.execute("SELECT * FROM models WHERE name = ?", [name])
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cursor.description], row, strict=True))


def _version_at(
    con: duckdb.DuckDBPyConnection, model_name: str, kind: str, uri: str
) -> VersionRecord | None:
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


def _insert_profile(
    con: duckdb.DuckDBPyConnection, version_id: str, profile: dict[str, Any]
) -> None:
    details = {k: v for k, v in profile.items() if k not in PROFILE_COLUMNS}
    con.execute(
        "INSERT OR REPLACE INTO profiles (version_id, measured_at, device, "
        f"{', '.join(PROFILE_COLUMNS)}, details) VALUES (?, ?, ?, "
        f"{', '.join('?' for _ in PROFILE_COLUMNS)}, ?)",
        [
            version_id,
            datetime.now(UTC).replace(tzinfo=None),
            profile.get("device", "cpu"),
            *[profile.get(k) for k in PROFILE_COLUMNS],
            json.dumps(details, sort_keys=True, default=str),
        ],
    )


def register_import(
    registry: Registry,
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
    with registry.transaction() as con:
        known = existing_model(con, record.name)
        if known is None:
            registry.upsert_models([record], origin="import", con=con)
        elif check_existing is not None:
            check_existing(known)
        version = _version_at(con, record.name, "base", uri)
        if version is None:
            version = registry.add_version(
                record.name, "base", uri, metadata=metadata or {}, con=con
            )
        if profile is not None:
            _insert_profile(con, version.version_id, profile)
    return version
