"""The Registry API: models, versions, aliases, runs, results, profiles and the audit log.

Every public method opens the registry, does its work in one transaction and closes it again,
so that parallel runs can share it (a DuckDB file: connection.py; a PostgreSQL database:
postgres_connection.py). The SQL is written once for every backend; what an engine writes its
own way comes from `self.backend.dialect` (dialect.py).
"""

from __future__ import annotations

import copy
import getpass
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from transferlab.errors import NotFoundError, RegistryError, TransferlabError
from transferlab.registry.aliases import AliasesMixin
from transferlab.registry.approvals import ApprovalsMixin
from transferlab.registry.backends import (
    RegistryBackend,
    chosen_location,
    location_scheme,
    open_backend,
    resolve_models_dir,
)
from transferlab.registry.connection import lock_timeout_from_env
from transferlab.registry.identity import TOKEN_VARIABLE, IdentityMixin
from transferlab.registry.model_queries import ModelQueriesMixin
from transferlab.registry.records import (
    SOURCES,
    VERSION_KINDS,
    ModelRecord,
    VersionRecord,
)
from transferlab.registry.refs import VersionRef, parse_version_ref, validate_name
from transferlab.registry.result_queries import ResultQueriesMixin
from transferlab.registry.rows import Connection, dict_rows, to_json
from transferlab.registry.runs import RunsMixin, gone_runs, new_run_id, package_versions
from transferlab.registry.search_queries import SearchQueriesMixin
from transferlab.registry.study_queries import StudyQueriesMixin
from transferlab.registry.sweep_queries import SweepQueriesMixin
from transferlab.registry.writes import WritesMixin, insert_profile

__all__ = ["Registry", "new_run_id", "package_versions", "record_hash", "require_registry_file"]

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


def current_actor() -> str:
    """Who the audit log names: TRANSFERLAB_USER, else the login name."""
    explicit = os.environ.get("TRANSFERLAB_USER")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record_hash(record: ModelRecord) -> str:
    payload = json.dumps(record.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Registry(
    IdentityMixin,
    ApprovalsMixin,
    AliasesMixin,
    RunsMixin,
    ModelQueriesMixin,
    SearchQueriesMixin,
    SweepQueriesMixin,
    StudyQueriesMixin,
    ResultQueriesMixin,
    WritesMixin,
):
    """The transferlab model registry, kept by a backend chosen by its location: a DuckDB
    file (a plain path or duckdb:///abs/path, created on first use), a PostgreSQL database
    (postgresql://user@host:port/db; it must exist, its tables are created on first use), or
    a backend another package declares (registry/backends.py).

    `models_dir` is where model weights are written (fine-tunes): an explicit value
    wins, then TRANSFERLAB_MODELS, then a `models` folder beside the registry file; a
    registry on a server has no such folder and needs one of the first two.

    `token` (default: $TRANSFERLAB_TOKEN) is who is writing on a team registry, one with
    users (identity.py): every write authenticates it and checks its user's role, and the
    audit log names that user. A registry with no user ignores it.
    """

    def __new__(cls, path: str | os.PathLike[str] | None = None, **options: Any) -> Registry:
        """A registry served over HTTP (`http(s)://host:port`) is a RemoteRegistry
        (registry/remote.py) with the same methods; any other location, this class."""
        location = chosen_location(path)
        if cls is Registry and location_scheme(location) in ("http", "https"):
            from transferlab.registry.remote import RemoteRegistry

            return RemoteRegistry(location, **options)  # type: ignore[return-value]
        return super().__new__(cls)

    def __getnewargs__(self) -> tuple[str]:
        # a copy or an unpickled Registry is rebuilt from its own location, never from
        # $TRANSFERLAB_REGISTRY (see __new__)
        return (self.location,)

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        lock_timeout_s: float | None = None,
        actor: str | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        token: str | None = None,
    ):
        self.lock_timeout_s = (
            lock_timeout_s if lock_timeout_s is not None else lock_timeout_from_env()
        )
        self.backend: RegistryBackend = open_backend(path, lock_timeout_s=self.lock_timeout_s)
        self.path = self.backend.path
        self.location = self.backend.location
        #: the location as messages show it (a server's without its password)
        self.display_location = self.backend.display_location
        self._models_dir = resolve_models_dir(models_dir, self.backend)
        self._claimed_actor = actor or current_actor()
        self._token = token if token is not None else os.environ.get(TOKEN_VARIABLE)
        self._user = None  # the token's user, once a write on a team registry authenticated it
        self._guard = threading.local()  # identity.py: its own transactions check roles
        self._ready = False

    def __repr__(self) -> str:
        return f"Registry({self.display_location!r})"

    def with_token(self, token: str | None, *, actor: str | None = None) -> Registry:
        """This registry for another caller: the same backend (its schema already prepared),
        its own token and user. The REST service makes one per request, so every request is
        authenticated and authorised by the same code as a client's (identity.py). `token`
        None or "" means no token (never $TRANSFERLAB_TOKEN); `actor` names the writer on a
        registry without users."""
        other = copy.copy(self)
        other._token = token or None
        other._user = None
        other._guard = threading.local()
        if actor is not None:
            other._claimed_actor = actor
        return other

    @property
    def models_dir(self) -> Path:
        """Where model weights are written; refused for a server registry without
        --models-dir / TRANSFERLAB_MODELS, rather than filling the current folder."""
        if self._models_dir is None:
            raise RegistryError(
                f"The registry {self.display_location} is kept on a server: there is no folder "
                "beside it for model weights.",
                "Give --models-dir DIR or set TRANSFERLAB_MODELS=DIR (a folder every machine "
                "that loads these weights can read, e.g. a shared mount).",
            )
        return self._models_dir

    def exists(self) -> bool:
        """Whether the registry has been created (a file, or a schema in the database)."""
        return self.backend.exists()

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Connection]:
        """A short-lived connection with the schema up to date, for the registry package's
        own methods (code outside it holds the registry with `session()`). Hold it briefly.

        `read_only` attaches a DuckDB file READ_ONLY under a shared lock (other processes may
        read at the same time, and it works on a registry this process may not write); on
        PostgreSQL it is a read-only snapshot that no writer waits for. A write connection to
        a team registry first authenticates the token (identity.py) and refuses a user whose
        role may not write, before anything is written.
        """
        if not self._ready:
            # Once per Registry: refuse a location that is no registry, bring the schema up
            # to date, and mark the runs of this host whose process is gone as interrupted.
            self.backend.prepare(gone_runs, self._interrupt)
            self._ready = True
        with self.backend.connection(read_only=read_only) as con:
            if not read_only:
                self._check_writer(con)  # a team registry: the token's user, role `write`
            yield con

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[None]:
        """Hold the registry open across several calls: the methods called inside the block
        share one open registry (and one lock) instead of opening it each. Yields nothing."""
        with self.connect(read_only=read_only):
            yield

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.connect() as con, self.backend.transaction(con):
            yield con

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        """Read-only escape hatch for notebooks only: one parameterized SELECT, rows as dicts.
        A statement that would write is refused (changes go through the Registry's methods);
        package code calls named methods instead. Inside a `session()` it reuses that open
        registry; alone it reads under a shared lock."""
        self.backend.check_read_only(sql)
        return self._rows(sql, params)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        """A parameterized read of the registry package's own SQL, rows as dicts."""
        with self.connect(read_only=True) as con:
            return dict_rows(con, sql, params)

    def schema_version(self) -> int:
        with self.connect(read_only=True) as con:
            return con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]

    # -- models -----------------------------------------------------------------------------

    def upsert_models(
        self,
        records: Iterable[ModelRecord],
        origin: str = "import",
        con: Connection | None = None,
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
        data["finetune"] = to_json(data["finetune"] or {})
        return [data[column] for column in _MODEL_COLUMNS]

    def get_model(self, name: str) -> dict:
        with self.connect(read_only=True) as con:
            rows = dict_rows(con, "SELECT * FROM models WHERE name = ?", [name])
            if not rows:
                raise NotFoundError(
                    f"No model named {name!r} in the registry {self.display_location}.",
                    self._suggest(con, name),
                )
            return rows[0]

    def model_names(self) -> list[str]:
        with self.connect(read_only=True) as con:
            return [r[0] for r in con.execute("SELECT name FROM models ORDER BY name").fetchall()]

    def _suggest(self, con: Connection, name: str) -> str:
        close = self.backend.dialect.closest_names(con, name, 3)
        hint = "List models with `transferlab search`, or add one with `transferlab import`."
        if close:
            hint = f"Did you mean {', '.join(close)}? " + hint
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
        con: Connection | None = None,
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
                f"No model named {model_name!r} in the registry {self.display_location}.",
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
                to_json(label_names),
                to_json(metadata or {}),
            ],
        )
        return self._version_from_row(
            dict_rows(con, "SELECT * FROM model_versions WHERE version_id = ?", [version_id])[0]
        )

    def ensure_version(self, model_name: str, kind: str, uri: str, **fields: Any) -> VersionRecord:
        """The model's version at `uri`, registering it when it is not there yet."""
        with self.transaction() as con:
            rows = dict_rows(
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
        with self.connect(read_only=True) as con:
            if not con.execute(
                "SELECT 1 FROM models WHERE name = ?", [parsed.model_name]
            ).fetchall():
                raise NotFoundError(
                    f"No model named {parsed.model_name!r} in the registry "
                    f"{self.display_location}.",
                    self._suggest(con, parsed.model_name),
                )
            if parsed.alias is not None:
                rows = dict_rows(
                    con,
                    "SELECT v.* FROM aliases a JOIN model_versions v USING (version_id) "
                    "WHERE a.model_name = ? AND a.alias = ?",
                    [parsed.model_name, parsed.alias],
                )
            elif parsed.version is not None:
                rows = dict_rows(
                    con,
                    "SELECT * FROM model_versions WHERE model_name = ? AND version = ?",
                    [parsed.model_name, parsed.version],
                )
            else:
                rows = dict_rows(
                    con,
                    "SELECT * FROM model_versions WHERE model_name = ? "
                    "ORDER BY version DESC LIMIT 1",
                    [parsed.model_name],
                )
            if not rows:
                raise self._no_such_version(con, parsed)
            return self._version_from_row(rows[0])

    def _no_such_version(self, con: Connection, parsed: VersionRef) -> NotFoundError:
        name = parsed.model_name
        versions = [
            f"{name}:{r[0]}"
            for r in con.execute(
                "SELECT version FROM model_versions WHERE model_name = ? ORDER BY 1", [name]
            ).fetchall()
        ]
        aliases = [
            f"{name}@{r[0]}"
            for r in con.execute(
                "SELECT alias FROM aliases WHERE model_name = ? ORDER BY 1", [name]
            ).fetchall()
        ]
        if parsed.alias is not None:
            missing = f"{name} has no alias {parsed.alias!r}"
        elif parsed.version is not None:
            missing = f"{name} has no version {parsed.version}"
        else:
            missing = f"{name} has no version yet"
        if not versions:
            return NotFoundError(
                f"{parsed} does not name a version in the registry "
                f"{self.display_location}: {missing}.",
                "Register weights with `transferlab import local DIR --name "
                f"{name}` (or import it from its hub).",
            )
        return NotFoundError(
            f"{parsed} does not name a version in the registry {self.display_location}: {missing}.",
            f"Its versions: {', '.join(versions)}; its aliases: {', '.join(aliases) or 'none'}.",
        )

    def versions(self, model_name: str) -> list[VersionRecord]:
        with self.connect(read_only=True) as con:
            rows = dict_rows(
                con,
                "SELECT * FROM model_versions WHERE model_name = ? ORDER BY version",
                [model_name],
            )
        return [self._version_from_row(row) for row in rows]

    def lineage(self, ref: str) -> list[VersionRecord]:
        """The version and its ancestors, newest first (adapter -> base)."""
        chain = [self.resolve(ref)]
        with self.connect(read_only=True) as con:
            while chain[-1].parent_version_id:
                rows = dict_rows(
                    con,
                    "SELECT * FROM model_versions WHERE version_id = ?",
                    [chain[-1].parent_version_id],
                )
                if not rows or len(chain) > 100:
                    break
                chain.append(self._version_from_row(rows[0]))
        return chain

    # -- results ----------------------------------------------------------------------------

    def add_results(self, rows: Iterable[dict], con: Connection | None = None) -> int:
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
        self.backend.dialect.insert_rows(con, "results", frame)
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
        return self._rows(f"SELECT * FROM results{where} ORDER BY result_id", params)

    def leaderboard(self, suite: str, metric: str = "accuracy", limit: int = 20) -> list[dict]:
        """Versions ranked by their mean `metric` on `suite` over succeeded runs.

        A quick overall ranking (mean over the suite's tasks, splits and seeds); the
        `transferlab leaderboard` command ranks per task and split with spreads.
        """
        return self._rows(
            "SELECT r.version_id, avg(r.value) AS score, count(*) AS n_results, "
            "max(r.created_at) AS last_result FROM results r JOIN runs u USING (run_id) "
            "WHERE r.suite = ? AND r.metric = ? AND r.version_id IS NOT NULL "
            "AND u.status = 'succeeded' GROUP BY r.version_id ORDER BY score DESC LIMIT ?",
            [suite, metric, limit],
        )

    # -- profiles ---------------------------------------------------------------------------

    def save_profile(self, version_id: str, profile: dict) -> None:
        with self.connect() as con:
            insert_profile(con, version_id, profile)

    def profiles(self, version_id: str | None = None) -> list[dict]:
        if version_id:
            return self._rows("SELECT * FROM profiles WHERE version_id = ?", [version_id])
        return self._rows("SELECT * FROM profiles ORDER BY version_id")

    # -- embeddings for semantic search -----------------------------------------------------

    def embedding_hashes(self) -> dict[str, str]:
        with self.connect(read_only=True) as con:
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
            self.backend.dialect.insert_rows(con, "model_embeddings", frame, conflict_key=("name",))
        return len(frame)


def require_registry_file(path: str | os.PathLike[str] | None) -> Path | str:
    """For read commands: the registry must already exist (init creates it). Its file, or
    the location of a registry kept elsewhere than in a file (a served one: the service
    answers for it on the first call)."""
    location = chosen_location(path)
    if location_scheme(location) in ("http", "https"):
        return location
    backend = open_backend(path, lock_timeout_s=lock_timeout_from_env())
    if not backend.exists():
        raise RegistryError(
            f"No registry at {backend.display_location}.",
            "Create it with `transferlab init` (or point --registry / TRANSFERLAB_REGISTRY "
            "at an existing registry).",
        )
    return backend.path if backend.path is not None else backend.location
