"""The registry's schema in a PostgreSQL database: read its version, refuse a database that is
no registry or a schema newer than this transferlab, apply the numbered migrations of
migrations/postgresql/.

Each migration runs in its own transaction that first takes a transaction-level advisory lock
and reads the version again: several processes opening a new database at once queue on the
lock, the first applies what is missing and the others find nothing left to do. The DDL and
its schema_version row commit together, so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

from typing import Any

from transferlab.errors import RegistryError
from transferlab.registry.migrate import available_migrations, newer_schema_error
from transferlab.registry.postgres_connection import (
    LOCK_CLASS,
    LOCK_TIMEOUT_VARIABLE,
    MIGRATION_LOCK,
    PostgresLocation,
    psycopg_module,
)

ENGINE = "postgresql"
_SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
    'name TEXT COLLATE "C" NOT NULL, '
    "applied_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'))"
)


def latest() -> int:
    return available_migrations(ENGINE)[-1][0]


def current_version(raw: Any) -> int:
    """The schema version of the database `raw` is connected to (0: no registry yet)."""
    exists = raw.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    return raw.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def _user_tables(raw: Any) -> list[str]:
    return [
        row[0]
        for row in raw.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY 1"
        ).fetchall()
    ]


def migration_needed(raw: Any, place: PostgresLocation) -> bool:
    """Whether the schema is behind this transferlab; refuses a schema written by a newer one
    and a database whose schema holds other tables and no registry (reads only)."""
    current = current_version(raw)
    newest = latest()
    if current > newest:
        raise newer_schema_error(place.display, current, newest, "another database")
    if current == 0:
        tables = _user_tables(raw)
        if tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise RegistryError(
                f"The PostgreSQL database {place.dbname!r} on {place.server} is not a "
                f"transferlab registry: its schema has tables {shown} and no schema_version.",
                "Point --registry / TRANSFERLAB_REGISTRY at an empty database (createdb NAME) "
                "or at a registry. The database was not changed.",
            )
    return current < newest


def migrate(raw: Any, place: PostgresLocation, lock_timeout_s: float) -> int:
    """Apply the missing migrations, each in one transaction under the migration lock."""
    psycopg = psycopg_module()
    milliseconds = max(1, int(lock_timeout_s * 1000))
    while True:
        raw.execute("BEGIN")
        try:
            raw.execute(f"SET LOCAL lock_timeout = '{milliseconds}ms'")
            raw.execute(f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, {MIGRATION_LOCK})")
            raw.execute("SET LOCAL lock_timeout TO DEFAULT")
            if not migration_needed(raw, place):
                raw.execute("COMMIT")
                return current_version(raw)
            current = current_version(raw)
            number, name, sql = next(m for m in available_migrations(ENGINE) if m[0] > current)
            raw.execute(_SCHEMA_VERSION_TABLE)
            raw.execute(sql)
            raw.execute(
                "INSERT INTO schema_version (version, name) VALUES (%s, %s)", [number, name]
            )
            raw.execute("COMMIT")
        except psycopg.errors.LockNotAvailable:
            raw.execute("ROLLBACK")
            raise RegistryError(
                f"The schema of the registry {place.display} is being upgraded by another "
                f"process, which held the upgrade for {lock_timeout_s:g} s.",
                f"Try again once it is done, or raise the wait with {LOCK_TIMEOUT_VARIABLE}.",
            ) from None
        except psycopg.errors.InsufficientPrivilege as error:
            raw.execute("ROLLBACK")
            raise RegistryError(
                f"The user {place.user or '(default)'} may not create the registry's tables in "
                f"the database {place.dbname!r} on {place.server}: "
                f"{str(error).splitlines()[0]}",
                "Have the database's owner run GRANT CREATE ON SCHEMA public TO <user> (or "
                "create the database owned by that user). Nothing was created.",
            ) from None
        except BaseException:
            raw.execute("ROLLBACK")
            raise
