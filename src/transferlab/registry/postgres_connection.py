"""Connections to a registry kept in PostgreSQL (psycopg 3), in the shape the registry's code
uses for DuckDB: `con.execute(sql with ?, params)` returning something with fetchall(),
fetchone() and description.

One connection per thread and database is kept open between operations (opening one costs
10-20 ms, a query well under one), and handed out again for the next. A registry operation is
one transaction on it:

- reading: `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, one consistent snapshot, and
  readers never wait for anyone;
- writing: `BEGIN` and a transaction-level advisory lock, so that writers take turns as they
  do on the DuckDB file (a version number is `max + 1`, an alias move reads the holder before
  it writes the audit log); the wait is bounded by TRANSFERLAB_LOCK_TIMEOUT, and a writer
  still waiting then is told which session holds the lock.

Nested blocks in one thread share the connection and its transaction; an inner
`transaction()` is a savepoint. Commit at the end of the outermost block, roll back on any
exception: a failed operation leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from transferlab.errors import RegistryError, RegistryLockedError, RegistryUnavailableError
from transferlab.registry.postgres_sql import to_pyformat

CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_VARIABLE = "TRANSFERLAB_LOCK_TIMEOUT"
# Advisory lock keys (two int4): the class is "tlab"; writers take WRITE_LOCK for each write
# transaction, schema migrations MIGRATION_LOCK.
LOCK_CLASS = 0x746C6162
WRITE_LOCK = 1
MIGRATION_LOCK = 2
INSTALL_HINT = "pip install -e '.[postgres]' (or pip install 'psycopg[binary]>=3.3,<4')"
_PASSWORD_IN_URL = re.compile(r"(://[^/@:]*):[^/@]*@")
_PASSWORD_IN_QUERY = re.compile(r"(?i)([?&]password=)[^&]*")


def psycopg_module(location: str = "") -> Any:
    """psycopg, or a RegistryError saying how to install it."""
    try:
        import psycopg
    except ImportError as error:
        where = f"The registry {mask_password(location)}" if location else "A PostgreSQL registry"
        raise RegistryError(
            f"{where} needs the PostgreSQL driver psycopg, which is not installed.",
            f"{INSTALL_HINT}. Nothing was created.",
        ) from error
    return psycopg


def mask_password(location: str) -> str:
    """The location with any password in it replaced by ***."""
    return _PASSWORD_IN_QUERY.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1:***@", location))


@dataclass(frozen=True)
class PostgresLocation:
    """A PostgreSQL registry location: what was given, what libpq takes, and its parts."""

    location: str
    conninfo: str
    dbname: str
    host: str
    port: str
    user: str
    given_keys: frozenset[str]

    @property
    def display(self) -> str:
        return mask_password(self.location)

    @property
    def server(self) -> str:
        host = self.host or "the local socket"
        return f"{host}:{self.port or 5432}"

    @property
    def key(self) -> tuple:
        """The same database under another spelling of its location is the same key: nested
        blocks in one thread must share one connection (a second one would wait for the
        first's write lock)."""
        return (self.host, self.port or "5432", self.dbname, self.user)


def parse_location(location: str) -> PostgresLocation:
    """`postgresql://[user[:password]@][host][:port]/dbname[?param=value]` (also `postgres://`
    and `postgresql+psycopg://`) as libpq understands it; refuses one without a database."""
    psycopg = psycopg_module(location)
    scheme, _, rest = location.partition("://")
    conninfo = f"postgresql://{rest}"
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as error:
        raise RegistryError(
            f"The registry location {mask_password(location)} is not a valid PostgreSQL URL: "
            f"{str(error).splitlines()[0]}",
            "Write postgresql://USER@HOST:PORT/DATABASE (a password belongs in ~/.pgpass or "
            "PGPASSWORD, not in the URL).",
        ) from None
    dbname = str(params.get("dbname") or "")
    if not dbname:
        raise RegistryError(
            f"The registry location {mask_password(location)} names no database.",
            f"Write {scheme}://USER@HOST:PORT/DATABASE.",
        )
    return PostgresLocation(
        location=location,
        conninfo=conninfo,
        dbname=dbname,
        host=str(params.get("host") or os.environ.get("PGHOST", "")),
        port=str(params.get("port") or os.environ.get("PGPORT", "")),
        user=str(params.get("user") or os.environ.get("PGUSER", "")),
        given_keys=frozenset(params),
    )


def _connection_failure(place: PostgresLocation, error: Exception) -> RegistryError:
    text = str(error).strip()
    detail = next(
        (line.strip() for line in text.splitlines() if "FATAL" in line or "failed" in line),
        text.splitlines()[0] if text else type(error).__name__,
    )
    nothing = "Nothing was created."
    if f'database "{place.dbname}" does not exist' in text:
        return RegistryError(
            f"The PostgreSQL database {place.dbname!r} does not exist on {place.server} "
            f"(registry {place.display}).",
            f"Create it first: createdb -h {place.host or 'localhost'} -p {place.port or 5432} "
            f"{place.dbname} (or CREATE DATABASE in psql); transferlab creates its tables in "
            f"it, not the database. {nothing}",
        )
    if "password" in text or "authentication" in text or "role" in text:
        return RegistryError(
            f"The PostgreSQL server at {place.server} refused the login for the registry "
            f"{place.display}: {detail}",
            "Check the user in the URL and give the password in ~/.pgpass or PGPASSWORD "
            f"(a password written into the URL is passed on to notebooks). {nothing}",
        )
    return RegistryUnavailableError(
        f"The PostgreSQL server at {place.server} cannot be reached for the registry "
        f"{place.display} (database {place.dbname!r}): {detail}",
        "Start the server (e.g. pg_ctlcluster 15 main start), or fix the host and port given "
        f"to --registry / TRANSFERLAB_REGISTRY. {nothing}",
    )


def connect(place: PostgresLocation) -> Any:
    """A new autocommit connection (transactions are opened explicitly), times in UTC, JSON
    returned as text and NUMERIC as float, as DuckDB returns them here."""
    psycopg = psycopg_module(place.location)
    from psycopg.types.numeric import FloatLoader
    from psycopg.types.string import TextLoader

    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in place.given_keys:
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    if "application_name" not in place.given_keys:
        options["application_name"] = f"transferlab (PID {os.getpid()} on {socket.gethostname()})"[
            :63
        ]
    try:
        raw = psycopg.connect(place.conninfo, **options)
    except psycopg.OperationalError as error:
        raise _connection_failure(place, error) from None
    for name in ("json", "jsonb"):
        raw.adapters.register_loader(name, TextLoader)
    raw.adapters.register_loader("numeric", FloatLoader)
    raw.execute("SET TIME ZONE 'UTC'")
    return raw


class PostgresConnection:
    """DuckDB's calling convention over one psycopg connection: `execute(sql, params)` with
    `?` placeholders returns a cursor (fetchall, fetchone, description)."""

    def __init__(self, raw: Any, place: PostgresLocation):
        self.raw = raw
        self.place = place
        self.depth = 0
        self.read_only = False
        self.savepoints = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.raw.cursor()
        cursor.execute(to_pyformat(sql), list(params))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(to_pyformat(sql), rows)

    def usable(self) -> bool:
        return not (self.raw.closed or self.raw.broken)

    def idle(self) -> bool:
        """Usable and outside any transaction (an interrupted operation can leave one open;
        such a connection is not reused)."""
        from psycopg import pq

        return self.usable() and self.raw.info.transaction_status == pq.TransactionStatus.IDLE


class _Slots(threading.local):
    def __init__(self) -> None:
        self.held: dict[tuple, PostgresConnection] = {}


_slots = _Slots()
_inherited: list[Any] = []  # a forked child's copies of its parent's connections, never closed


def _after_fork_in_child() -> None:
    """A forked child must not use, nor close, its parent's connections: closing one would end
    the parent's session on the server. They are kept (unused) and new ones opened."""
    global _slots
    _inherited.append(_slots)
    _slots = _Slots()


os.register_at_fork(after_in_child=_after_fork_in_child)


def close_idle(place: PostgresLocation) -> None:
    """Close this thread's idle connection to the database (tests drop their databases)."""
    held = _slots.held.get(place.key)
    if held is not None and not held.depth:
        with suppress(Exception):
            held.raw.close()
        del _slots.held[place.key]


def _lock_sql(timeout_s: float) -> str:
    milliseconds = max(1, int(timeout_s * 1000))
    return (
        f"BEGIN; SET LOCAL lock_timeout = '{milliseconds}ms'; "
        f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, {WRITE_LOCK}); "
        "SET LOCAL lock_timeout TO DEFAULT"
    )


def lock_holder(raw: Any, key: int) -> str:
    """Who holds the advisory lock `key` of this database, as well as can be seen."""
    try:
        row = raw.execute(
            "SELECT a.application_name, l.pid, a.client_addr::text FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 2 AND "
            "l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [LOCK_CLASS, key],
        ).fetchone()
    except Exception:
        return "another session"
    if row is None:
        return "another session"
    name, pid, client = row
    where = f"server pid {pid}" + (f", client {client}" if client else "")
    return f"{name} ({where})" if name else f"another session ({where})"


def _begin(con: PostgresConnection, read_only: bool, timeout_s: float) -> None:
    psycopg = psycopg_module()
    if read_only:
        con.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return
    try:
        con.raw.execute(_lock_sql(timeout_s))
    except psycopg.errors.LockNotAvailable:
        con.raw.execute("ROLLBACK")
        holder = lock_holder(con.raw, WRITE_LOCK)
        raise RegistryLockedError(
            f"The registry {con.place.display} stayed locked by {holder} for {timeout_s:g} s "
            "(writers take turns).",
            "Wait for that process to finish (or stop it if it hangs), or raise the wait with "
            f"{LOCK_TIMEOUT_VARIABLE}=<seconds>.",
        ) from None


def _opened(place: PostgresLocation, read_only: bool, timeout_s: float) -> PostgresConnection:
    """This thread's connection to the database, in a new transaction; a kept connection the
    server has since closed (a restart, an idle timeout) is replaced once."""
    psycopg = psycopg_module()
    kept = _slots.held.get(place.key)
    if kept is not None and kept.idle():
        try:
            _begin(kept, read_only, timeout_s)
            return kept
        except psycopg.OperationalError:
            pass
    if kept is not None:
        with suppress(Exception):
            kept.raw.close()
    con = PostgresConnection(connect(place), place)
    _slots.held[place.key] = con
    try:
        _begin(con, read_only, timeout_s)
    except psycopg.OperationalError as error:
        if con.usable():
            raise
        raise _dropped(place, error, retry_safe=True) from error
    return con


def _end(con: PostgresConnection, commit: bool) -> None:
    if not con.usable():
        _slots.held.pop(con.place.key, None)
        return
    try:
        con.raw.execute("COMMIT" if commit else "ROLLBACK")
    except Exception:
        if commit:
            raise
        with suppress(Exception):
            con.raw.close()


@contextmanager
def held_connection(
    place: PostgresLocation, *, read_only: bool, timeout_s: float
) -> Iterator[PostgresConnection]:
    """The thread's connection in one transaction until the outermost block ends."""
    con = _slots.held.get(place.key)
    if con is not None and con.depth:
        if con.read_only and not read_only:
            raise RegistryError(
                f"A write to the registry {place.display} was asked for inside a read-only "
                "connection.",
                "Open the outer block with registry.connect() (read-write).",
            )
        con.depth += 1
        try:
            yield con
        finally:
            con.depth -= 1
        return
    con = _opened(place, read_only, timeout_s)
    con.depth, con.read_only, con.savepoints = 1, read_only, 0
    psycopg = psycopg_module()
    try:
        yield con
    except BaseException as error:
        con.depth = 0
        _end(con, commit=False)
        if isinstance(error, psycopg.OperationalError) and not con.usable():
            # the server dropped the connection before the commit: nothing was written
            raise _dropped(place, error, retry_safe=True) from error
        raise
    con.depth = 0
    try:
        _end(con, commit=True)
    except Exception as error:
        with suppress(Exception):
            con.raw.execute("ROLLBACK")
        if isinstance(error, psycopg.OperationalError) and not con.usable():
            raise _dropped(place, error, retry_safe=False) from error
        raise


def _dropped(place: PostgresLocation, error: Exception, *, retry_safe: bool) -> RegistryError:
    """A connection the server closed in the middle of an operation (a restart, a failover)."""
    _slots.held.pop(place.key, None)
    outcome = (
        "nothing was written"
        if retry_safe
        else "the commit was sent, so it may or may not have been written"
    )
    return RegistryUnavailableError(
        f"The PostgreSQL server at {place.server} closed the connection of the registry "
        f"{place.display} during an operation ({type(error).__name__}); {outcome}.",
        "Try again once the server is back"
        + ("." if retry_safe else ", after checking whether the change is there."),
        retry_safe=retry_safe,
    )


@contextmanager
def savepoint(con: PostgresConnection) -> Iterator[PostgresConnection]:
    """All or nothing inside the block's transaction: a failure rolls back to where the block
    began and leaves the outer transaction usable."""
    con.savepoints += 1
    name = f"transferlab_{con.savepoints}"
    con.raw.execute(f"SAVEPOINT {name}")
    try:
        yield con
    except BaseException:
        if con.usable():
            con.raw.execute(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    con.raw.execute(f"RELEASE SAVEPOINT {name}")
