"""A PostgreSQL server for the tests, found or started once per session.

In order: TRANSFERLAB_TEST_POSTGRES (a libpq URL to a server where this user may create
databases; a wrong one fails the PostgreSQL tests rather than skipping them), a server answering
on the local socket or 127.0.0.1:5432 as the current user or `postgres`, else a throw-away
cluster from the installed PostgreSQL (initdb as the `postgres` user when running as root) on a
free loopback port, stopped and removed at the end. None of them: the PostgreSQL tests skip,
saying why. Each test gets a database of its own (CREATE DATABASE with a unique name), dropped
after it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

VARIABLE = "TRANSFERLAB_TEST_POSTGRES"
LOCAL_CANDIDATES = (
    "postgresql:///postgres",
    "postgresql://postgres@/postgres",
    "postgresql://127.0.0.1:5432/postgres",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)


def _psycopg():
    try:
        import psycopg
    except ImportError:
        return None
    return psycopg


def _can_create_databases(url: str) -> bool:
    psycopg = _psycopg()
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as con:
            row = con.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            return bool(row and row[0])
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pg_bin() -> Path | None:
    """The folder of the installed PostgreSQL's initdb and pg_ctl (the newest version)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


class ThrowawayCluster:
    """initdb + pg_ctl start in a temporary folder, trust authentication on 127.0.0.1."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="transferlab-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to `postgres`
            self.user = "postgres"
            shutil.chown(self.folder, user="postgres", group="postgres")

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, timeout=120, user=self.user
        )

    def start(self) -> str | None:
        """The admin URL once running, or None (the reason is in `self.problem`)."""
        self.problem = ""
        steps = (
            (self.bin_dir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
             "--no-sync", "--encoding=UTF8", "--no-locale"),
            (self.bin_dir / "pg_ctl", "-D", self.data, "-l", self.folder / "server.log", "-w",
             "-t", "60", "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
             "-c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start"),
        )  # fmt: skip
        for step in steps:
            try:
                done = self._run(*step)
            except (OSError, subprocess.SubprocessError, KeyError) as error:
                self.problem = f"{Path(step[0]).name}: {error}"
                return None
            if done.returncode != 0:
                self.problem = f"{Path(step[0]).name}: {(done.stderr or done.stdout).strip()}"
                return None
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.bin_dir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


class PostgresServer:
    """Where the tests make their databases."""

    def __init__(self, admin_url: str, origin: str, cluster: ThrowawayCluster | None = None):
        self.admin_url = admin_url
        self.origin = origin
        self.cluster = cluster

    @classmethod
    def find(cls) -> tuple[PostgresServer | None, str]:
        """A server, or None and why there is none."""
        if _psycopg() is None:
            return None, "psycopg is not installed (pip install -e '.[postgres]')"
        given = os.environ.get(VARIABLE, "").strip()
        if given:
            if not _can_create_databases(given):
                raise RuntimeError(
                    f"{VARIABLE}={given!r}: no PostgreSQL server there lets this user create "
                    "databases. Fix the URL or unset it."
                )
            return cls(given, VARIABLE), ""
        for url in LOCAL_CANDIDATES:
            if _can_create_databases(url):
                return cls(url, f"local server ({url})"), ""
        bin_dir = _pg_bin()
        if bin_dir is None:
            return None, (
                f"no PostgreSQL server: {VARIABLE} is unset, none lets this user create "
                "databases on the local socket or 127.0.0.1:5432, and no initdb is installed "
                "(apt-get install postgresql)"
            )
        cluster = ThrowawayCluster(bin_dir)
        url = cluster.start()
        if url is None or not _can_create_databases(url):
            cluster.stop()
            return None, f"a throw-away PostgreSQL cluster did not start: {cluster.problem}"
        return cls(url, f"throw-away cluster on port {cluster.port}", cluster), ""

    def url_for(self, dbname: str) -> str:
        """The admin URL with another database (`postgresql:///x` keeps its three slashes)."""
        head, mark, query = self.admin_url.partition("?")
        scheme, _, rest = head.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/{dbname}{mark}{query}"

    def _admin(self):
        return _psycopg().connect(self.admin_url, connect_timeout=5, autocommit=True)

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A new, empty database for one test; dropped after it (sessions still open in
        other processes included)."""
        name = f"transferlab_test_{uuid.uuid4().hex[:12]}"
        with self._admin() as con:
            con.execute(f'CREATE DATABASE "{name}"')
        url = self.url_for(name)
        try:
            yield url
        finally:
            from transferlab.registry.postgres_backend import PostgresBackend

            PostgresBackend.from_location(url, lock_timeout_s=5).close()
            self._drop(name)

    def _drop(self, name: str) -> None:
        """DROP DATABASE ... WITH (FORCE), retried: it terminates the sessions still in the
        database, and a role without pg_signal_backend may not terminate an autovacuum worker
        that happens to be there (it is gone a moment later). A database that still will not
        drop is left behind with a warning rather than failing the test that used it."""
        psycopg = _psycopg()
        problem: Exception | None = None
        for attempt in range(10):
            try:
                with self._admin() as con:
                    con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse) as error:
                problem = error
                time.sleep(0.25 * (attempt + 1))
        warnings.warn(f"test database {name} was not dropped: {problem}", stacklevel=2)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
