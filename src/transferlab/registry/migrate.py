"""Numbered schema migrations kept as SQL files beside this module: DuckDB's in migrations/,
PostgreSQL's (the same numbers and names, types mapped) in migrations/postgresql/, applied by
postgres_migrate.py."""

from __future__ import annotations

import re
from importlib import resources

import duckdb

from transferlab.errors import RegistryError

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available_migrations(engine: str = "duckdb") -> list[tuple[int, str, str]]:
    """(number, file name, SQL) for every migration of `engine` (duckdb or postgresql)
    shipped with the package, in order."""
    folder = resources.files("transferlab.registry") / "migrations"
    if engine != "duckdb":
        folder = folder / engine
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_schema_version(engine: str = "duckdb") -> int:
    return available_migrations(engine)[-1][0]


def newer_schema_error(where: str, current: int, latest: int, elsewhere: str) -> RegistryError:
    """The refusal of a registry written by a newer transferlab (nothing is changed)."""
    return RegistryError(
        f"The registry {where} has schema version {current}, but this transferlab only "
        f"knows versions up to {latest}: it was written by a newer transferlab.",
        "Upgrade transferlab (pip install -U transferlab), or point --registry / "
        f"TRANSFERLAB_REGISTRY at {elsewhere}. The registry was not changed.",
    )


def current_schema_version(con: duckdb.DuckDBPyConnection) -> int:
    has_table = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = 'schema_version' AND table_catalog = current_database()"
    ).fetchall()[0][0]
    if not has_table:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]


def _user_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        row[0]
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY 1"
        ).fetchall()
    ]


def migration_needed(con: duckdb.DuckDBPyConnection, path: str) -> bool:
    """Whether the schema is behind this transferlab; refuses a registry written by a newer
    transferlab and a DuckDB database that is no registry (reads only, changes nothing)."""
    current = current_schema_version(con)
    latest = latest_schema_version()
    if current > latest:
        raise newer_schema_error(path, current, latest, "another file")
    if current == 0:
        tables = _user_tables(con)
        if tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise RegistryError(
                f"{path} is a DuckDB database but not a transferlab registry (it has tables "
                f"{shown} and no schema_version).",
                "Point --registry / TRANSFERLAB_REGISTRY at a registry file, or at a new file "
                "to create one. The database was not changed.",
            )
    return current < latest


def migrate(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """Bring the schema up to date; refuse a registry written by a newer transferlab."""
    if not migration_needed(con, path):
        return current_schema_version(con)
    current = current_schema_version(con)
    latest = latest_schema_version()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
            " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
        )
        for number, name, sql in available_migrations():
            if number > current:
                con.execute(sql)
                con.execute(
                    "INSERT INTO schema_version (version, name) VALUES (?, ?)", [number, name]
                )
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return latest
