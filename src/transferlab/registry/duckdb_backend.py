"""The DuckDB backend: the registry in one DuckDB file, opened per operation (connection.py).

Its locations: a plain path (`registry.duckdb`, `~/lab/registry.duckdb`) or
`duckdb:///absolute/path/registry.duckdb`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from transferlab.errors import RegistryError
from transferlab.registry.backends import RegistryBackend, location_scheme
from transferlab.registry.connection import connection, transaction
from transferlab.registry.dialect import DuckDBDialect
from transferlab.registry.files import (
    check_registry_path,
    create_folder,
    registry_exists,
    writable,
    write_refusal,
)
from transferlab.registry.migrate import migrate, migration_needed

# What Registry.query may run: statements that only read.
_READ_STATEMENTS = frozenset(
    {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}  # type: ignore[attr-defined]
)


class DuckDBBackend(RegistryBackend):
    scheme = "duckdb"
    dialect = DuckDBDialect()

    def __init__(self, path: Path, *, lock_timeout_s: float, location: str | None = None):
        self.path = path
        self.location = location or str(path)
        self.lock_timeout_s = lock_timeout_s

    @classmethod
    def from_location(cls, location: str, *, lock_timeout_s: float) -> DuckDBBackend:
        scheme = location_scheme(location)
        if scheme is None:
            return cls(Path(location).expanduser().resolve(), lock_timeout_s=lock_timeout_s)
        rest = location.split("://", 1)[1]
        if not rest.startswith("/"):
            raise RegistryError(
                f"The registry location {location!r} names no absolute path.",
                f"Write {scheme}:///ABSOLUTE/PATH/registry.duckdb (three slashes), or give a "
                "plain file path.",
            )
        path = Path(rest).resolve()
        # A subclass's scheme stays in the location, so that workers open the same backend.
        kept = None if scheme == DuckDBBackend.scheme else f"{scheme}://{path}"
        return cls(path, lock_timeout_s=lock_timeout_s, location=kept)

    def exists(self) -> bool:
        return registry_exists(self.path)

    def writable(self) -> bool:
        return writable(self.path)

    def prepare(self, pending: Callable[[Any], Any], settle: Callable[[Any, Any], None]) -> None:
        """Refuse a path that is no registry, bring the schema up to date and settle what is
        pending. A registry that needs neither is only read (shared, READ_ONLY)."""
        check_registry_path(self.path)
        if self.path.exists():
            with connection(self.path, self.lock_timeout_s, read_only=True) as con:
                behind = migration_needed(con, str(self.path))
                work = None if behind else pending(con)  # schema 3 records processes
            if not behind and not work:
                return
            refusal = write_refusal(self.path)
            if refusal is not None:
                if behind:
                    raise RegistryError(
                        f"{refusal.problem} Its schema is older than this transferlab's and "
                        "must be upgraded, which writes.",
                        refusal.fix,
                    )
                return  # what is pending stays so where we may not write
        else:
            create_folder(self.path)
        with connection(self.path, self.lock_timeout_s) as con:
            migrate(con, str(self.path))
            settle(con, pending(con))

    @contextmanager
    def connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with connection(self.path, self.lock_timeout_s, read_only=read_only) as con:
            yield con

    def transaction(self, con: duckdb.DuckDBPyConnection):  # type: ignore[override]
        return transaction(con)

    def check_read_only(self, sql: str) -> None:
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as error:
            raise RegistryError(
                f"The query cannot be parsed: {str(error).splitlines()[0]}", "Check the SQL."
            ) from error
        kinds = [statement.type for statement in statements]
        if len(kinds) != 1 or kinds[0] not in _READ_STATEMENTS:
            shown = ", ".join(kind.name for kind in kinds) or "nothing"
            raise RegistryError(
                f"Registry.query runs one statement that only reads (SELECT); this holds "
                f"{shown}. It is a read-only escape hatch for notebooks.",
                "Change the registry through its methods (add_version, set_alias, start_run, "
                "...), which write in one transaction and keep the audit log.",
            )
