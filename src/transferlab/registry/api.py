"""The Registry API: models, versions, aliases, runs, results, profiles and the audit log.

Every public method opens the registry, does its work in one transaction and closes it again,
so that parallel runs can share the file (see connection.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import secrets
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from transferlab.config import current_actor, resolve_registry_path
from transferlab.errors import NotFoundError, RegistryError, TransferlabError
from transferlab.registry.connection import connection, lock_timeout_from_env, transaction
from transferlab.registry.migrate import migrate
from transferlab.registry.records import (
    RUN_STATUSES,
    SOURCES,
    VERSION_KINDS,
    ModelRecord,
    VersionRecord,
)
from transferlab.registry.refs import VersionRef, parse_version_ref, validate_name

_MODEL_COLUMNS = (
    "name",
    "source",
    "source_ref",
    "task",
    "architecture",
    "model_type",
    "library",
    "license",
    "commercial_use",
    "parameters",
    "size_bytes",
    "languages",
    "description",
    "card_text",
    "tags",
    "finetune",
)
_RESULT_COLUMNS = (
    "run_id",
    "version_id",
    "suite",
    "task",
    "dataset",
    "split",
    "metric",
    "value",
    "n_train",
    "seed",
)
_JSON_COLUMNS = {
    "requested",
    "finetune",
    "parameters_json",
    "label_names",
    "metadata",
    "package_versions",
    "metrics",
    "details",
}
TRACKED_PACKAGES = (
    "transferlab",
    "torch",
    "transformers",
    "peft",
    "datasets",
    "duckdb",
    "papermill",
    "scikit-learn",
    "numpy",
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    cursor = con.execute(sql, list(params))
    names = [column[0] for column in cursor.description]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for key in _JSON_COLUMNS & row.keys():
            if isinstance(row[key], str):
                row[key] = json.loads(row[key])
        rows.append(row)
    return rows


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def record_hash(record: ModelRecord) -> str:
    payload = json.dumps(record.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@functools.cache
def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def new_run_id(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class Registry:
    """The transferlab model registry stored in one DuckDB file (created on first use)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        lock_timeout_s: float | None = None,
        actor: str | None = None,
    ):
        self.path = resolve_registry_path(path)
        self.lock_timeout_s = (
            lock_timeout_s if lock_timeout_s is not None else lock_timeout_from_env()
        )
        self.actor = actor or current_actor()
        self._schema_checked = False

    def __repr__(self) -> str:
        return f"Registry({str(self.path)!r})"

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection with the schema up to date. Hold it briefly."""
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with connection(self.path, self.lock_timeout_s) as con:
            if not self._schema_checked:
                migrate(con, str(self.path))
                self._schema_checked = True
            yield con

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.connect() as con, transaction(con):
            yield con

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        """Read-only escape hatch for notebooks: parameterized SQL, rows as dicts."""
        with self.connect() as con:
            return _rows(con, sql, params)

    def schema_version(self) -> int:
        with self.connect() as con:
            return con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]

    # -- models -----------------------------------------------------------------------------

    def upsert_models(
        self,
        records: Iterable[ModelRecord],
        origin: str = "import",
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> dict:
        """Insert or update models in one transaction; unchanged records are left alone.

        Returns the names inserted, updated and unchanged.
        """
        records = list(records)
        for record in records:
            self._check_model_record(record)
        if con is None:
            with self.transaction() as own:
                return self.upsert_models(records, origin, con=own)
        counts: dict[str, list[str]] = {"inserted": [], "updated": [], "unchanged": []}
        existing = dict(con.execute("SELECT name, content_hash FROM models").fetchall())
        for record in records:
            digest = record_hash(record)
            values = self._model_values(record)
            if record.name not in existing:
                columns = ", ".join(_MODEL_COLUMNS)
                marks = ", ".join("?" for _ in _MODEL_COLUMNS)
                con.execute(
                    f"INSERT INTO models ({columns}, origin, content_hash) VALUES ({marks}, ?, ?)",
                    [*values, origin, digest],
                )
                counts["inserted"].append(record.name)
            elif existing[record.name] != digest:
                assignments = ", ".join(f"{c} = ?" for c in _MODEL_COLUMNS[1:])
                con.execute(
                    f"UPDATE models SET {assignments}, content_hash = ?, "
                    "updated_at = current_timestamp WHERE name = ?",
                    [*values[1:], digest, record.name],
                )
                counts["updated"].append(record.name)
            else:
                counts["unchanged"].append(record.name)
        return counts

    def add_model(self, record: ModelRecord, origin: str = "import") -> dict:
        self.upsert_models([record], origin=origin)
        return self.get_model(record.name)

    @staticmethod
    def _check_model_record(record: ModelRecord) -> None:
        validate_name(record.name)
        if record.source not in SOURCES:
            raise TransferlabError(
                f"Model {record.name!r} has unknown source {record.source!r}.",
                f"Use one of: {', '.join(SOURCES)}.",
            )
        if not record.task:
            raise TransferlabError(f"Model {record.name!r} has no task.", "Give it a task.")

    @staticmethod
    def _model_values(record: ModelRecord) -> list[Any]:
        data = record.to_dict()
        data["finetune"] = _json(data["finetune"] or {})
        return [data[column] for column in _MODEL_COLUMNS]

    def get_model(self, name: str) -> dict:
        with self.connect() as con:
            rows = _rows(con, "SELECT * FROM models WHERE name = ?", [name])
            if not rows:
                raise NotFoundError(
                    f"No model named {name!r} in the registry {self.path}.",
                    self._suggest(con, name),
                )
            return rows[0]

    def model_names(self) -> list[str]:
        with self.connect() as con:
            return [r[0] for r in con.execute("SELECT name FROM models ORDER BY name").fetchall()]

    def _suggest(self, con: duckdb.DuckDBPyConnection, name: str) -> str:
        close = con.execute(
            "SELECT name FROM models ORDER BY jaro_winkler_similarity(lower(name), lower(?)) "
            "DESC LIMIT 3",
            [name],
        ).fetchall()
        hint = "List models with `transferlab search`, or add one with `transferlab import`."
        if close:
            hint = f"Did you mean {', '.join(r[0] for r in close)}? " + hint
        return hint

    # -- versions ---------------------------------------------------------------------------

    def add_version(
        self,
        model_name: str,
        kind: str,
        uri: str | None,
        *,
        parent_version_id: str | None = None,
        run_id: str | None = None,
        label_names: list[str] | None = None,
        metadata: dict | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> VersionRecord:
        """Register a new version (numbered after the model's last one)."""
        if kind not in VERSION_KINDS:
            raise TransferlabError(
                f"Unknown version kind {kind!r}.", f"Use one of: {', '.join(VERSION_KINDS)}."
            )
        if con is None:
            with self.transaction() as own:
                return self.add_version(
                    model_name,
                    kind,
                    uri,
                    parent_version_id=parent_version_id,
                    run_id=run_id,
                    label_names=label_names,
                    metadata=metadata,
                    con=own,
                )
        if not con.execute("SELECT 1 FROM models WHERE name = ?", [model_name]).fetchall():
            raise NotFoundError(
                f"No model named {model_name!r} in the registry {self.path}.",
                self._suggest(con, model_name),
            )
        number = con.execute(
            "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model_name = ?",
            [model_name],
        ).fetchall()[0][0]
        version_id = f"{model_name}:{number}"
        con.execute(
            "INSERT INTO model_versions (version_id, model_name, version, kind, uri, "
            "parent_version_id, run_id, label_names, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                version_id,
                model_name,
                number,
                kind,
                uri,
                parent_version_id,
                run_id,
                _json(label_names),
                _json(metadata or {}),
            ],
        )
        return self._version_from_row(
            _rows(con, "SELECT * FROM model_versions WHERE version_id = ?", [version_id])[0]
        )

    def ensure_version(self, model_name: str, kind: str, uri: str, **fields: Any) -> VersionRecord:
        """The model's version at `uri`, registering it when it is not there yet."""
        with self.transaction() as con:
            rows = _rows(
                con,
                "SELECT * FROM model_versions WHERE model_name = ? AND uri = ? AND kind = ? "
                "ORDER BY version DESC LIMIT 1",
                [model_name, uri, kind],
            )
            if rows:
                return self._version_from_row(rows[0])
            return self.add_version(model_name, kind, uri, con=con, **fields)

    @staticmethod
    def _version_from_row(row: dict) -> VersionRecord:
        return VersionRecord(
            version_id=row["version_id"],
            model_name=row["model_name"],
            version=row["version"],
            kind=row["kind"],
            uri=row["uri"],
            parent_version_id=row["parent_version_id"],
            run_id=row["run_id"],
            label_names=row["label_names"],
            metadata=row["metadata"] or {},
            created_at=row["created_at"],
        )

    def resolve(self, ref: str | VersionRef) -> VersionRecord:
        """The version a user means by `name` (latest), `name:N` or `name@alias`."""
        parsed = parse_version_ref(ref) if isinstance(ref, str) else ref
        with self.connect() as con:
            if not con.execute(
                "SELECT 1 FROM models WHERE name = ?", [parsed.model_name]
            ).fetchall():
                raise NotFoundError(
                    f"No model named {parsed.model_name!r} in the registry {self.path}.",
                    self._suggest(con, parsed.model_name),
                )
            if parsed.alias is not None:
                rows = _rows(
                    con,
                    "SELECT v.* FROM aliases a JOIN model_versions v USING (version_id) "
                    "WHERE a.model_name = ? AND a.alias = ?",
                    [parsed.model_name, parsed.alias],
                )
            elif parsed.version is not None:
                rows = _rows(
                    con,
                    "SELECT * FROM model_versions WHERE model_name = ? AND version = ?",
                    [parsed.model_name, parsed.version],
                )
            else:
                rows = _rows(
                    con,
                    "SELECT * FROM model_versions WHERE model_name = ? "
                    "ORDER BY version DESC LIMIT 1",
                    [parsed.model_name],
                )
            if not rows:
                known = [
                    f"{parsed.model_name}:{r[0]}"
                    for r in con.execute(
                        "SELECT version FROM model_versions WHERE model_name = ? ORDER BY 1",
                        [parsed.model_name],
                    ).fetchall()
                ]
                aliases = [
                    f"{parsed.model_name}@{r[0]}"
                    for r in con.execute(
                        "SELECT alias FROM aliases WHERE model_name = ? ORDER BY 1",
                        [parsed.model_name],
                    ).fetchall()
                ]
                raise NotFoundError(
                    f"{parsed} does not name a version in the registry {self.path}.",
                    "Known versions: "
                    + (", ".join(known + aliases) or "none yet")
                    + ". Import weights with `transferlab import local DIR --name "
                    f"{parsed.model_name}`.",
                )
            return self._version_from_row(rows[0])

    def versions(self, model_name: str) -> list[VersionRecord]:
        with self.connect() as con:
            rows = _rows(
                con,
                "SELECT * FROM model_versions WHERE model_name = ? ORDER BY version",
                [model_name],
            )
        return [self._version_from_row(row) for row in rows]

    def lineage(self, ref: str) -> list[VersionRecord]:
        """The version and its ancestors, newest first (adapter -> base)."""
        chain = [self.resolve(ref)]
        with self.connect() as con:
            while chain[-1].parent_version_id:
                rows = _rows(
                    con,
                    "SELECT * FROM model_versions WHERE version_id = ?",
                    [chain[-1].parent_version_id],
                )
                if not rows or len(chain) > 100:
                    break
                chain.append(self._version_from_row(rows[0]))
        return chain

    # -- aliases and audit ------------------------------------------------------------------

    def set_alias(
        self,
        ref: str,
        alias: str,
        *,
        reason: str | None = None,
        action: str = "alias.set",
        forced: bool = False,
        details: dict | None = None,
    ) -> dict:
        """Point `alias` of the version's model at that version, with an audit entry."""
        validate_name(alias, "alias")
        version = self.resolve(ref)
        with self.transaction() as con:
            previous = con.execute(
                "SELECT version_id FROM aliases WHERE model_name = ? AND alias = ?",
                [version.model_name, alias],
            ).fetchall()
            from_version = previous[0][0] if previous else None
            con.execute(
                "INSERT OR REPLACE INTO aliases (model_name, alias, version_id, updated_at) "
                "VALUES (?, ?, ?, current_timestamp)",
                [version.model_name, alias, version.version_id],
            )
            con.execute(
                "INSERT INTO audit_log (actor, action, model_name, alias, from_version, "
                "to_version, reason, forced, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    self.actor,
                    action,
                    version.model_name,
                    alias,
                    from_version,
                    version.version_id,
                    reason,
                    forced,
                    _json(details or {}),
                ],
            )
        return {
            "model": version.model_name,
            "alias": alias,
            "from": from_version,
            "to": version.version_id,
        }

    def remove_alias(self, model_name: str, alias: str, *, reason: str | None = None) -> None:
        with self.transaction() as con:
            previous = con.execute(
                "SELECT version_id FROM aliases WHERE model_name = ? AND alias = ?",
                [model_name, alias],
            ).fetchall()
            if not previous:
                raise NotFoundError(
                    f"{model_name}@{alias} is not set.",
                    f"See the aliases with `transferlab show {model_name}`.",
                )
            con.execute(
                "DELETE FROM aliases WHERE model_name = ? AND alias = ?", [model_name, alias]
            )
            con.execute(
                "INSERT INTO audit_log (actor, action, model_name, alias, from_version, reason) "
                "VALUES (?, 'alias.remove', ?, ?, ?, ?)",
                [self.actor, model_name, alias, previous[0][0], reason],
            )

    def aliases(self, model_name: str | None = None) -> list[dict]:
        sql = "SELECT model_name, alias, version_id, updated_at FROM aliases"
        params: list[Any] = []
        if model_name:
            sql += " WHERE model_name = ?"
            params.append(model_name)
        return self.query(sql + " ORDER BY model_name, alias", params)

    def history(self, model_name: str | None = None) -> list[dict]:
        sql = "SELECT * FROM audit_log"
        params: list[Any] = []
        if model_name:
            sql += " WHERE model_name = ?"
            params.append(model_name)
        return self.query(sql + " ORDER BY event_id", params)

    # -- runs -------------------------------------------------------------------------------

    def start_run(
        self,
        kind: str,
        *,
        template: str | None = None,
        parameters: dict | None = None,
        data_fingerprint: str | None = None,
        output_notebook: str | None = None,
        sweep_id: str | None = None,
        run_id: str | None = None,
    ) -> str:
        run_id = run_id or new_run_id(kind)
        with self.connect() as con:
            con.execute(
                "INSERT INTO runs (run_id, kind, template, requested, parameters, status, "
                "started_at, output_notebook, data_fingerprint, package_versions, sweep_id, host, "
                "pid) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    kind,
                    template,
                    _json(parameters or {}),
                    _json(parameters or {}),
                    _now(),
                    output_notebook,
                    data_fingerprint,
                    _json(package_versions()),
                    sweep_id,
                    socket.gethostname(),
                    os.getpid(),
                ],
            )
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change a running run's parameters, fingerprint, metrics or notebook path."""
        allowed = {"parameters", "data_fingerprint", "metrics", "output_notebook", "template"}
        unknown = set(fields) - allowed
        if unknown:
            raise TransferlabError(
                f"Cannot update run field(s) {sorted(unknown)}.", f"Use {sorted(allowed)}."
            )
        if not fields:
            return
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [
            _json(v) if name in ("parameters", "metrics") else v for name, v in fields.items()
        ]
        with self.connect() as con:
            self._require_run(con, run_id)
            con.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values, run_id])

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        metrics: dict | None = None,
        output_notebook: str | None = None,
    ) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise TransferlabError(
                f"Cannot finish a run as {status!r}.", "Use succeeded, failed or interrupted."
            )
        with self.connect() as con:
            self._require_run(con, run_id)
            con.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = coalesce(?, error), "
                "metrics = coalesce(?, metrics), output_notebook = coalesce(?, output_notebook) "
                "WHERE run_id = ?",
                [status, _now(), error, _json(metrics), output_notebook, run_id],
            )

    def _require_run(self, con: duckdb.DuckDBPyConnection, run_id: str) -> None:
        if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
            raise NotFoundError(
                f"No run {run_id!r} in the registry {self.path}.",
                "List runs with `transferlab runs`.",
            )

    def get_run(self, run_id: str) -> dict:
        with self.connect() as con:
            self._require_run(con, run_id)
            row = _rows(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])[0]
        row["parameters"] = json.loads(row["parameters"]) if row["parameters"] else {}
        return row

    def runs(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        sweep_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict]:
        clauses, params = [], []
        for column, value in (("kind", kind), ("status", status), ("sweep_id", sweep_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.query(
            f"SELECT * FROM runs{where} ORDER BY started_at DESC LIMIT ?", [*params, limit]
        )
        for row in rows:
            row["parameters"] = json.loads(row["parameters"]) if row["parameters"] else {}
        return rows

    # -- sweeps -----------------------------------------------------------------------------

    def start_sweep(
        self,
        name: str,
        *,
        spec: dict | None = None,
        file_path: str | None = None,
        template: str | None = None,
        workers: int | None = None,
        sweep_id: str | None = None,
    ) -> str:
        """Record a sweep (one invocation of `transferlab sweep`) as running."""
        sweep_id = sweep_id or new_run_id("sweep")
        with self.connect() as con:
            con.execute(
                "INSERT INTO sweeps (sweep_id, name, template, spec, file_path, status, "
                "created_at, workers, host, pid) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                [
                    sweep_id,
                    name,
                    template,
                    _json(spec or {}),
                    file_path,
                    _now(),
                    workers,
                    socket.gethostname(),
                    os.getpid(),
                ],
            )
        return sweep_id

    def add_sweep_run(
        self, sweep_id: str, run_key: str, run_id: str, *, reused: bool = False
    ) -> None:
        """Link a planned run (its stable key) of a sweep to the run that holds its result."""
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO sweep_runs (sweep_id, run_key, run_id, reused) "
                "VALUES (?, ?, ?, ?)",
                [sweep_id, run_key, run_id, reused],
            )

    def finish_sweep(self, sweep_id: str, status: str, *, summary: dict | None = None) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise TransferlabError(
                f"Cannot finish a sweep as {status!r}.", "Use succeeded, failed or interrupted."
            )
        with self.connect() as con:
            self._require_sweep_id(con, sweep_id)
            con.execute(
                "UPDATE sweeps SET status = ?, finished_at = ?, summary = coalesce(?, summary) "
                "WHERE sweep_id = ?",
                [status, _now(), _json(summary), sweep_id],
            )

    def _require_sweep_id(self, con: duckdb.DuckDBPyConnection, sweep_id: str) -> None:
        if not con.execute("SELECT 1 FROM sweeps WHERE sweep_id = ?", [sweep_id]).fetchall():
            raise NotFoundError(
                f"No sweep {sweep_id!r} in the registry {self.path}.",
                "Run one with `transferlab sweep SWEEP.yaml`.",
            )

    def sweeps(self, name: str | None = None) -> list[dict]:
        """Sweeps, newest first (all of them, or those with this name)."""
        sql = "SELECT * FROM sweeps"
        params: list[Any] = []
        if name is not None:
            sql += " WHERE name = ?"
            params.append(name)
        rows = self.query(sql + " ORDER BY created_at DESC, sweep_id DESC", params)
        for row in rows:
            for key in ("spec", "summary"):
                if isinstance(row[key], str):
                    row[key] = json.loads(row[key])
        return rows

    def latest_sweep(self, name: str) -> dict | None:
        """The newest sweep called `name`, or None."""
        rows = self.sweeps(name)
        return rows[0] if rows else None

    def get_sweep(self, sweep_id_or_name: str) -> dict:
        """A sweep by id, else the newest sweep with that name."""
        rows = [row for row in self.sweeps() if row["sweep_id"] == sweep_id_or_name]
        if not rows:
            latest = self.latest_sweep(sweep_id_or_name)
            rows = [latest] if latest else []
        if not rows:
            known = sorted({row["name"] for row in self.sweeps()})
            raise NotFoundError(
                f"No sweep with id or name {sweep_id_or_name!r} in the registry {self.path}.",
                "Known sweeps: "
                + (", ".join(known) or "none yet")
                + ". Run one with `transferlab sweep SWEEP.yaml`.",
            )
        return rows[0]

    def sweep_runs(self, sweep_id_or_name: str) -> list[dict]:
        """The runs of a sweep (by id, or its newest invocation by name), one per planned run.

        Each row is a `runs` row (parameters and requested as dicts) plus `run_key` and
        `reused` (an earlier succeeded run the sweep took instead of running again). Planned
        runs that never started have no row.
        """
        sweep = self.get_sweep(sweep_id_or_name)
        rows = self.query(
            "SELECT r.*, s.run_key, s.reused FROM sweep_runs s JOIN runs r USING (run_id) "
            "WHERE s.sweep_id = ? ORDER BY r.started_at, s.run_key",
            [sweep["sweep_id"]],
        )
        for row in rows:
            row["parameters"] = json.loads(row["parameters"]) if row["parameters"] else {}
        return rows

    # -- results ----------------------------------------------------------------------------

    def add_results(
        self, rows: Iterable[dict], con: duckdb.DuckDBPyConnection | None = None
    ) -> int:
        """Insert result rows (dicts with the results columns) in one statement."""
        frame = pd.DataFrame(list(rows), columns=list(_RESULT_COLUMNS))
        if frame.empty:
            return 0
        missing = frame[["run_id", "dataset", "split", "metric", "value"]].isna().any()
        if missing.any():
            raise TransferlabError(
                f"Result rows lack {', '.join(missing[missing].index)}.",
                "Every result needs run_id, dataset, split, metric and a numeric value.",
            )
        if con is None:
            with self.transaction() as own:
                return self.add_results(frame.to_dict("records"), con=own)
        for run_id in frame["run_id"].unique():
            self._require_run(con, run_id)
        con.register("incoming_results", frame)
        try:
            columns = ", ".join(_RESULT_COLUMNS)
            con.execute(f"INSERT INTO results ({columns}) SELECT {columns} FROM incoming_results")
        finally:
            con.unregister("incoming_results")
        return len(frame)

    def results(
        self,
        *,
        version_id: str | None = None,
        run_id: str | None = None,
        suite: str | None = None,
        metric: str | None = None,
    ) -> list[dict]:
        clauses, params = [], []
        for column, value in (
            ("version_id", version_id),
            ("run_id", run_id),
            ("suite", suite),
            ("metric", metric),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.query(f"SELECT * FROM results{where} ORDER BY result_id", params)

    def leaderboard(self, suite: str, metric: str = "accuracy", limit: int = 20) -> list[dict]:
        """Versions ranked by their mean `metric` on `suite` over succeeded runs.

        A quick overall ranking (mean over the suite's tasks, splits and seeds); the
        `transferlab leaderboard` command ranks per task and split with spreads.
        """
        return self.query(
            "SELECT r.version_id, avg(r.value) AS score, count(*) AS n_results, "
            "max(r.created_at) AS last_result FROM results r JOIN runs u USING (run_id) "
            "WHERE r.suite = ? AND r.metric = ? AND r.version_id IS NOT NULL "
            "AND u.status = 'succeeded' GROUP BY r.version_id ORDER BY score DESC LIMIT ?",
            [suite, metric, limit],
        )

    # -- profiles ---------------------------------------------------------------------------

    def save_profile(self, version_id: str, profile: dict) -> None:
        known = (
            "parameters",
            "size_bytes",
            "load_seconds",
            "latency_ms_p50",
            "latency_ms_p95",
            "throughput_per_s",
            "peak_memory_mb",
        )
        details = {k: v for k, v in profile.items() if k not in known}
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO profiles (version_id, measured_at, device, "
                + ", ".join(known)
                + ", details) VALUES (?, ?, ?, "
                + ", ".join("?" for _ in known)
                + ", ?)",
                [
                    version_id,
                    _now(),
                    profile.get("device", "cpu"),
                    *[profile.get(k) for k in known],
                    _json(details),
                ],
            )

    def profiles(self, version_id: str | None = None) -> list[dict]:
        if version_id:
            return self.query("SELECT * FROM profiles WHERE version_id = ?", [version_id])
        return self.query("SELECT * FROM profiles ORDER BY version_id")

    # -- embeddings for semantic search -----------------------------------------------------

    def embedding_hashes(self) -> dict[str, str]:
        with self.connect() as con:
            return dict(con.execute("SELECT name, text_hash FROM model_embeddings").fetchall())

    def save_embeddings(self, embedder: str, rows: Iterable[tuple[str, str, list[float]]]) -> int:
        frame = pd.DataFrame(
            [
                (name, embedder, text_hash, list(map(float, vector)))
                for name, text_hash, vector in rows
            ],
            columns=["name", "embedder", "text_hash", "embedding"],
        )
        if frame.empty:
            return 0
        with self.transaction() as con:
            con.register("incoming_embeddings", frame)
            try:
                con.execute(
                    "INSERT OR REPLACE INTO model_embeddings "
                    "SELECT name, embedder, text_hash, embedding::FLOAT[384] "
                    "FROM incoming_embeddings"
                )
            finally:
                con.unregister("incoming_embeddings")
        return len(frame)


def require_registry_file(path: str | os.PathLike[str] | None) -> Path:
    """For read commands: the registry must already exist (init creates it)."""
    resolved = resolve_registry_path(path)
    if not resolved.exists():
        raise RegistryError(
            f"No registry at {resolved}.",
            "Create it with `transferlab init` (or point --registry / TRANSFERLAB_REGISTRY "
            "at an existing file).",
        )
    return resolved
