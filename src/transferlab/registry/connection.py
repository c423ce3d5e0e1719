"""Short-lived DuckDB connections that wait politely for a registry held by another process.

DuckDB lets one process hold a database file at a time and fails every other open at once.
Parallel papermill runs share one registry, so every operation opens the file, does its work
and closes it again, and an open that meets a lock retries with jittered exponential back-off
until a bounded wait runs out.

Our own advisory lock on a sidecar file (`<registry>.lock`) is taken before DuckDB opens the
file and released only after DuckDB has closed it (checkpoint and WAL clean-up included). In
measurements without it, one process could open the file while another was still finishing its
close, and a committed run went missing about once in ten 8-process runs.

Creating a DuckDB database instance costs ~13 ms even in memory, more than most registry
queries. So each process keeps one in-memory host instance and ATTACHes the registry file to
it for the length of an operation, then DETACHes it, which closes the file and releases
DuckDB's lock just as closing a connection does: ~3 ms instead of ~16 ms per operation
(benchmarks/registry_bench.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from transferlab.errors import RegistryLockedError

DEFAULT_LOCK_TIMEOUT_S = 120.0
_FIRST_DELAY_S = 0.005
_MAX_DELAY_S = 0.25
_HOLDER_PATTERN = re.compile(r"Conflicting lock is held in (?P<holder>.+?\(PID \d+\))")


def lock_timeout_from_env() -> float:
    value = os.environ.get("TRANSFERLAB_LOCK_TIMEOUT")
    return float(value) if value else DEFAULT_LOCK_TIMEOUT_S


def is_lock_conflict(error: BaseException) -> bool:
    text = str(error)
    return "Could not set lock" in text or "Conflicting lock" in text


def lock_holder(error: BaseException) -> str:
    """The process DuckDB names as holding the file, or 'another process'."""
    match = _HOLDER_PATTERN.search(str(error))
    return match.group("holder") if match else "another process"


def _locked_message(
    path: Path, holder: str, timeout_s: float, attempts: int
) -> RegistryLockedError:
    return RegistryLockedError(
        f"The registry {path} stayed locked by {holder} for {timeout_s:.0f} s "
        f"({attempts} attempts).",
        "Wait for that process to finish (or stop it if it hangs), or raise the wait with "
        "TRANSFERLAB_LOCK_TIMEOUT=<seconds>. Long-lived connections (a notebook holding "
        "duckdb.connect on this file) block every other run.",
    )


class _Backoff:
    """Jittered exponential sleeps until a deadline."""

    def __init__(self, timeout_s: float):
        self.deadline = time.monotonic() + timeout_s
        self.delay = _FIRST_DELAY_S
        self.attempts = 0

    def wait(self) -> bool:
        """Sleep before the next attempt; False once the deadline has passed."""
        self.attempts += 1
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(remaining, self.delay * random.uniform(0.5, 1.5)))
        self.delay = min(self.delay * 2, _MAX_DELAY_S)
        return True


class _SidecarLock:
    """A process-wide, re-entrant exclusive lock on `<registry>.lock`."""

    _locks: dict[Path, _SidecarLock] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None

    @classmethod
    def for_registry(cls, path: Path) -> _SidecarLock:
        with cls._guard:
            return cls._locks.setdefault(path, cls(path))

    def holder(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        return text or "another process"

    def acquire(self, backoff: _Backoff, registry: Path, timeout_s: float) -> None:
        if not self.thread_lock.acquire(timeout=max(0.0, backoff.deadline - time.monotonic())):
            raise _locked_message(registry, "another thread of this process", timeout_s, 1)
        if self.depth:
            self.depth += 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not backoff.wait():
                    holder = self.holder()
                    os.close(fd)
                    self.thread_lock.release()
                    raise _locked_message(registry, holder, timeout_s, backoff.attempts) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"transferlab (PID {os.getpid()})".encode())
        self.fd, self.depth = fd, 1

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        self.thread_lock.release()


class _Host:
    """This process's in-memory DuckDB instance that registry files are attached to."""

    _instance: _Host | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.database = duckdb.connect(":memory:")

    @classmethod
    def get(cls) -> _Host:
        with cls._guard:
            # A forked child must not reuse its parent's instance.
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = cls()
            return cls._instance


def catalog_name(path: Path) -> str:
    """The name a registry file is attached under: stable per path, a valid identifier."""
    return "registry_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attach_with_retry(
    cursor: duckdb.DuckDBPyConnection, path: Path, backoff: _Backoff, timeout_s: float
) -> None:
    """Attach `path` read-write, retrying while a process outside transferlab holds it."""
    # ATTACH takes no prepared parameters: the path is quoted as an SQL string literal.
    statement = f"ATTACH {_quoted(str(path))} AS {catalog_name(path)}"
    while True:
        try:
            cursor.execute(statement)
            return
        except duckdb.Error as error:
            if not is_lock_conflict(error):
                raise
            if not backoff.wait():
                raise _locked_message(
                    path, lock_holder(error), timeout_s, backoff.attempts
                ) from error


@contextmanager
def connection(path: Path, timeout_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default catalog is the registry at `path`, held until the block
    ends. Nested calls in one thread share the attachment; the outermost one detaches."""
    backoff = _Backoff(timeout_s)
    sidecar = _SidecarLock.for_registry(path)
    sidecar.acquire(backoff, path, timeout_s)
    outermost = sidecar.depth == 1
    name = catalog_name(path)
    try:
        cursor = _Host.get().database.cursor()
        try:
            if outermost:
                attach_with_retry(cursor, path, backoff, timeout_s)
            try:
                cursor.execute(f"USE {name}")
                yield cursor
            finally:
                if outermost:
                    cursor.execute("USE memory")
                    cursor.execute(f"DETACH {name}")
        finally:
            cursor.close()
    finally:
        sidecar.release()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing: commit when the block ends, roll back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
