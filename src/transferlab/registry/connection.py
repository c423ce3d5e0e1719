"""Short-lived DuckDB connections that wait their turn for a registry shared by processes.

DuckDB lets one process hold a database file read-write at a time and fails every other open
at once. Parallel papermill runs share one registry, so every operation opens the file, does
its work and closes it again.

Processes take turns through our own advisory lock on a sidecar file (`<registry>.lock`),
taken before DuckDB opens the file and released only after DuckDB has closed it (checkpoint
and WAL clean-up included). In measurements without it, one process could open the file while
another was still finishing its close, and a committed run went missing about once in ten
8-process runs. Writers take it exclusively, readers shared (DuckDB lets READ_ONLY
attachments share the file); waiters queue fairly (see _SidecarLock), with a bounded wait.
Only a DuckDB lock held outside transferlab (a notebook's `duckdb.connect`) is retried with
jittered exponential back-off.

Creating a DuckDB database instance costs ~13 ms even in memory, more than most registry
queries. So each process keeps one in-memory host instance and ATTACHes the registry file to
it for the length of an operation, then DETACHes it, which closes the file and releases
DuckDB's lock just as closing a connection does: ~3 ms instead of ~16 ms per operation
(benchmarks/registry_bench.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from transferlab.errors import RegistryError, RegistryLockedError
from transferlab.registry.files import open_failure, write_refusal

DEFAULT_LOCK_TIMEOUT_S = 120.0
LOCK_TIMEOUT_VARIABLE = "TRANSFERLAB_LOCK_TIMEOUT"
_FIRST_DELAY_S = 0.005
_MAX_DELAY_S = 0.25
_HOLDER_PATTERN = re.compile(r"Conflicting lock is held in (?P<holder>.+?\(PID \d+\))")


def lock_timeout_from_env() -> float:
    """TRANSFERLAB_LOCK_TIMEOUT as a number of seconds (default 120); refuses anything else."""
    value = os.environ.get(LOCK_TIMEOUT_VARIABLE, "").strip()
    if not value:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise RegistryError(
            f"{LOCK_TIMEOUT_VARIABLE}={value!r} is not a usable wait: it must be a positive "
            "number of seconds.",
            f"Set it to e.g. {LOCK_TIMEOUT_VARIABLE}=300 (seconds), or unset it for the default "
            f"of {DEFAULT_LOCK_TIMEOUT_S:.0f} s.",
        )
    return seconds


def is_lock_conflict(error: BaseException) -> bool:
    text = str(error)
    return "Could not set lock" in text or "Conflicting lock" in text


def lock_holder(error: BaseException) -> str:
    """The process DuckDB names as holding the file, or 'another process'."""
    match = _HOLDER_PATTERN.search(str(error))
    return match.group("holder") if match else "another process"


def _locked_message(path: Path, holder: str, timeout_s: float) -> RegistryLockedError:
    return RegistryLockedError(
        f"The registry {path} stayed locked by {holder} for {timeout_s:.0f} s.",
        "Wait for that process to finish (or stop it if it hangs), or raise the wait with "
        f"{LOCK_TIMEOUT_VARIABLE}=<seconds>. Long-lived connections (a notebook holding "
        "duckdb.connect on this file) block every other run.",
    )


class _Backoff:
    """Jittered exponential sleeps until a deadline (for a file held outside transferlab)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.delay = _FIRST_DELAY_S

    def wait(self) -> bool:
        """Sleep before the next attempt; False once the deadline has passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(remaining, self.delay * random.uniform(0.5, 1.5)))
        self.delay = min(self.delay * 2, _MAX_DELAY_S)
        return True


def _blocking_flock(fd: int, operation: int, timeout_s: float) -> bool:
    """flock(fd, operation) waiting at most `timeout_s`; True once held.

    A blocking flock has no timeout, so it waits in a helper thread. Unless it returns True,
    `fd` belongs to that thread from here on: a waiter that gives up (or is interrupted) leaves
    it to release the lock and close `fd` should the lock be granted later.
    """
    granted = threading.Event()
    state = {"abandoned": False}
    guard = threading.Lock()

    def wait() -> None:
        try:
            fcntl.flock(fd, operation)
        except OSError:
            with guard:
                state["abandoned"] = True
                os.close(fd)
            granted.set()
            return
        with guard:
            if state["abandoned"]:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                return
            granted.set()

    threading.Thread(target=wait, name="transferlab-registry-lock", daemon=True).start()
    finished = False
    try:
        granted.wait(timeout_s)
        finished = True
    finally:
        with guard:
            held = granted.is_set() and not state["abandoned"]
            if held and not finished:  # interrupted just as it was granted: give it back
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            state["abandoned"] = True
    return held


def _take(fd: int, operation: int, deadline: float) -> bool:
    """flock `fd` by the deadline. True: held, `fd` still the caller's. False or an exception:
    not held, and `fd` is closed (now or by the helper thread)."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    except BaseException:
        os.close(fd)
        raise
    return _blocking_flock(fd, operation, max(0.0, deadline - time.monotonic()))


def _open_lock_file(path: Path) -> int | None:
    """The lock file, read-write where possible. flock works on a read-only descriptor too:
    a lock file another user created (mode 644) or one in a folder this user may only read
    still serves to take turns. None: no lock file and none can be made (a reader in a folder
    it may not write; DuckDB's own file lock still keeps writers out while it reads)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        pass
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def _write_holder(fd: int, text: str) -> None:
    with contextlib.suppress(OSError):  # a read-only lock file holds no name
        os.ftruncate(fd, 0)
        if text:
            os.write(fd, text.encode())


class _SidecarLock:
    """A process-wide, re-entrant lock on `<registry>.lock`: exclusive for writes, shared for
    reads (several processes may read at once; DuckDB lets READ_ONLY attachments share).

    Waiting is fair: a waiter first takes the turnstile `<registry>.queue.lock`, then waits
    for the lock itself while holding the turnstile, so when the holder lets go the lock
    goes to that waiter and not back to a process that releases and re-takes it in a tight
    loop (with flock alone, the releasing process usually wins: it is on a CPU while the
    woken waiter is still being scheduled). The rest queue in the kernel on the turnstile and
    are woken when it frees up, instead of polling with back-off: polling let busy writers
    take the lock again and again while a waiter slept, 47 s waits with 8 writers
    (benchmarks/registry_contention.py). A waiting writer holds the turnstile, so readers
    arriving after it wait too: a stream of readers cannot starve a writer.
    """

    _locks: dict[Path, _SidecarLock] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self.queue_path = path.with_name(path.name + ".queue.lock")
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.shared = False
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

    def acquire(self, deadline: float, registry: Path, timeout_s: float, shared: bool) -> None:
        if not self.thread_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise _locked_message(registry, "another thread of this process", timeout_s)
        try:
            if self.depth:
                if self.shared and not shared:
                    raise RegistryError(
                        f"A write to the registry {registry} was asked for inside a read-only "
                        "connection.",
                        "Open the outer block with registry.connect() (read-write).",
                    )
                self.depth += 1
                return
            self._lock(deadline, registry, timeout_s, shared)
        except BaseException:
            self.thread_lock.release()
            raise

    def _lock(self, deadline: float, registry: Path, timeout_s: float, shared: bool) -> None:
        fd = _open_lock_file(self.path)
        if fd is None:
            self.fd, self.depth, self.shared = None, 1, shared
            return
        turn = _open_lock_file(self.queue_path)
        try:
            queued = turn is None or _take(turn, fcntl.LOCK_EX, deadline)
        except BaseException:
            os.close(fd)
            raise
        if not queued:
            os.close(fd)
            raise _locked_message(registry, self.holder(), timeout_s)
        try:
            held = _take(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, deadline)
        finally:
            if turn is not None:
                fcntl.flock(turn, fcntl.LOCK_UN)
                os.close(turn)
        if not held:
            raise _locked_message(registry, self.holder(), timeout_s)
        if not shared:
            _write_holder(fd, f"transferlab (PID {os.getpid()})")
        self.fd, self.depth, self.shared = fd, 1, shared

    def release(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.fd is not None:
            if not self.shared:
                _write_holder(self.fd, "")
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
    cursor: duckdb.DuckDBPyConnection,
    path: Path,
    deadline: float,
    timeout_s: float,
    read_only: bool = False,
) -> None:
    """Attach `path`, retrying while a process outside transferlab holds it. TYPE DUCKDB keeps
    DuckDB from opening another kind of database through an extension it would download."""
    # ATTACH takes no prepared parameters: the path is quoted as an SQL string literal.
    options = "TYPE DUCKDB, READ_ONLY" if read_only else "TYPE DUCKDB"
    statement = f"ATTACH {_quoted(str(path))} AS {catalog_name(path)} ({options})"
    backoff = _Backoff(deadline)
    while True:
        try:
            cursor.execute(statement)
            return
        except duckdb.Error as error:
            if not is_lock_conflict(error):
                raise open_failure(path, error, read_only=read_only) from error
            if not backoff.wait():
                raise _locked_message(path, lock_holder(error), timeout_s) from error


@contextmanager
def connection(
    path: Path, timeout_s: float, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default catalog is the registry at `path`, held until the block
    ends. Nested calls in one thread share the attachment; the outermost one detaches.
    `read_only` attaches READ_ONLY under a shared lock, so readers do not exclude each other."""
    if not read_only:
        refusal = write_refusal(path)
        if refusal is not None:
            raise refusal
    deadline = time.monotonic() + timeout_s
    sidecar = _SidecarLock.for_registry(path)
    sidecar.acquire(deadline, path, timeout_s, shared=read_only)
    outermost = sidecar.depth == 1
    name = catalog_name(path)
    try:
        cursor = _Host.get().database.cursor()
        try:
            if outermost:
                attach_with_retry(cursor, path, deadline, timeout_s, read_only)
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
