"""The PostgreSQL backend: a registry a team shares on a PostgreSQL server (psycopg 3).

Its locations: `postgresql://USER@HOST:PORT/DATABASE` (also `postgres://` and
`postgresql+psycopg://`), given to --registry or TRANSFERLAB_REGISTRY. The database must exist
(transferlab creates its tables in it, not the database); the password belongs in ~/.pgpass
or PGPASSWORD, since the location is passed on to notebooks and sweep workers.

The same Registry API and the same SQL as the DuckDB file: the queries keep DuckDB's `?`
placeholders (postgres_connection.py turns them into psycopg's), the few fragments the two
engines write differently come from `self.dialect` (postgres_dialect.py), and the schema is the
same numbered migrations (migrations/postgresql/). What differs is how turns are taken: readers
never wait (one snapshot per operation), writers queue on an advisory lock instead of a lock
file, and semantic search ranks a cached copy of the embeddings with numpy
(postgres_vectors.py), since pgvector is not assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from transferlab.registry import postgres_migrate, postgres_sql, postgres_vectors
from transferlab.registry.backends import RegistryBackend
from transferlab.registry.postgres_connection import (
    PostgresConnection,
    PostgresLocation,
    close_idle,
    connect,
    held_connection,
    parse_location,
    savepoint,
)
from transferlab.registry.postgres_dialect import PostgresDialect


class PostgresBackend(RegistryBackend):
    scheme = "postgresql"

    def __init__(self, place: PostgresLocation, *, lock_timeout_s: float):
        self.place = place
        self.location = place.location
        self.path = None
        self.lock_timeout_s = lock_timeout_s
        self.dialect = PostgresDialect(place.key)

    @classmethod
    def from_location(cls, location: str, *, lock_timeout_s: float) -> PostgresBackend:
        return cls(parse_location(location), lock_timeout_s=lock_timeout_s)

    @property
    def display_location(self) -> str:
        return self.place.display

    def default_models_dir(self) -> Path | None:
        """None: a registry on a server has no folder beside it, and weights written into
        whatever folder a command runs from would be lost to the team. Weights need
        --models-dir or TRANSFERLAB_MODELS (Registry.models_dir says so when asked)."""
        return None

    @contextmanager
    def _schema_session(self) -> Iterator[Any]:
        """A connection of its own for the schema work (it runs its own transactions)."""
        raw = connect(self.place)
        try:
            yield raw
        finally:
            raw.close()

    def exists(self) -> bool:
        with self.connection(read_only=True) as con:
            return postgres_migrate.current_version(con.raw) > 0

    def writable(self) -> bool:
        with self.connection(read_only=True) as con:
            if not postgres_migrate.current_version(con.raw):
                return True
            return bool(
                con.raw.execute("SELECT has_table_privilege('runs', 'UPDATE')").fetchone()[0]
            )

    def prepare(self, pending: Callable[[Any], Any], settle: Callable[[Any, Any], None]) -> None:
        """Refuse a database that is no registry or a newer one, create or upgrade the schema
        (under the migration lock), then settle what is pending (runs whose process is gone)
        in a write transaction. An up-to-date registry with nothing pending is only read."""
        with self.connection(read_only=True) as con:
            behind = postgres_migrate.migration_needed(con.raw, self.place)
            work = None if behind else pending(con)
        if not behind and not work:
            return
        if behind:
            with self._schema_session() as raw:
                postgres_migrate.migrate(raw, self.place, self.lock_timeout_s)
        elif not self.writable():
            return  # what is pending stays so for a user who may not write
        with self.connection() as con:
            settle(con, pending(con))

    def connection(self, *, read_only: bool = False) -> AbstractContextManager[Any]:
        return held_connection(self.place, read_only=read_only, timeout_s=self.lock_timeout_s)

    def transaction(self, con: PostgresConnection) -> AbstractContextManager[Any]:  # type: ignore[override]
        return savepoint(con)

    def check_read_only(self, sql: str) -> None:
        postgres_sql.check_read_only(sql)

    def close(self) -> None:
        """Close this thread's idle connection and drop the cached embeddings."""
        close_idle(self.place)
        postgres_vectors.forget(self.place.key)
