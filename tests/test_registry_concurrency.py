"""Several processes sharing one registry: retries with back-off, bounded waits, clear errors.

Writers taking turns run on a DuckDB file and a PostgreSQL database (`registry_location`). A lock
held by a plain duckdb.connect and readers holding the file shared are about the DuckDB file;
PostgreSQL's counterparts (readers never wait, the write lock's holder named) are in
test_registry_postgres.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from transferlab import Registry
from transferlab.errors import RegistryLockedError

WRITER = textwrap.dedent(
    """
    import sys
    from transferlab import Registry
    registry = Registry(sys.argv[1])
    for i in range(int(sys.argv[3])):
        run_id = registry.start_run("finetune", parameters={"worker": sys.argv[2], "i": i})
        registry.finish_run(run_id, "succeeded", metrics={"i": i})
    """
)

HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


@pytest.mark.slow
def test_eight_processes_writing_fifty_runs_each_all_land(tmp_path, registry_location):
    path = registry_location
    Registry(path).schema_version()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), str(w), "50"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(8)
    ]
    errors = [p.communicate(timeout=240)[1] for p in workers]
    assert [p.returncode for p in workers] == [0] * 8, errors
    counts = Registry(path).query(
        "SELECT status, count(*) AS n, count(DISTINCT parameters->>'worker') AS workers "
        "FROM runs GROUP BY status"
    )
    assert counts == [{"status": "succeeded", "n": 400, "workers": 8}]


def _hold(path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


# DuckDB-only: a lock held on the file by a process outside transferlab (duckdb.connect).
def test_a_write_waits_for_a_short_lock(tmp_path):
    path = tmp_path / "reg.duckdb"
    Registry(path).schema_version()
    holder = _hold(path, 1.0)
    started = time.monotonic()
    run_id = Registry(path, lock_timeout_s=30).start_run("finetune")
    waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert waited >= 0.5
    assert Registry(path).get_run(run_id)["status"] == "running"


# DuckDB-only, as above.
def test_a_lock_held_past_the_bounded_wait_names_the_holder(tmp_path):
    path = tmp_path / "reg.duckdb"
    Registry(path).schema_version()
    holder = _hold(path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(RegistryLockedError) as caught:
            Registry(path, lock_timeout_s=1.0).start_run("finetune")
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert 1.0 <= elapsed < 5
    assert f"PID {holder.pid}" in caught.value.problem
    assert "TRANSFERLAB_LOCK_TIMEOUT" in caught.value.fix
    assert Registry(path).runs() == []


HOG = textwrap.dedent(
    """
    import sys, time
    from transferlab import Registry
    registry = Registry(sys.argv[1])
    registry.schema_version()
    end = time.monotonic() + float(sys.argv[2])
    print("hogging", flush=True)
    while time.monotonic() < end:  # takes the registry back the moment it lets go
        with registry.connect() as con:
            con.execute("SELECT 1").fetchall()
            time.sleep(0.03)
    """
)


def test_a_waiter_is_served_while_another_process_takes_the_registry_back_to_back(
    registry_location,
):
    """Polling with back-off missed the microsecond gaps between a busy process's calls and
    waited until that process stopped; a queued waiter gets the next turn."""
    path = registry_location
    Registry(path).schema_version()
    hog = subprocess.Popen(
        [sys.executable, "-c", HOG, str(path), "8"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert hog.stdout.readline().strip() == "hogging"
        time.sleep(0.3)
        waits = []
        for _ in range(3):
            started = time.monotonic()
            Registry(path, lock_timeout_s=30).start_run("finetune")
            waits.append(time.monotonic() - started)
        still_hogging = hog.poll() is None
    finally:
        hog.kill()
        hog.wait()
    assert still_hogging
    assert max(waits) < 2.0, waits


READER = textwrap.dedent(
    """
    import sys, time
    from transferlab import Registry
    registry = Registry(sys.argv[1])
    with registry.connect(read_only=True) as con:
        con.execute("SELECT count(*) FROM runs").fetchall()
        print("reading", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


# DuckDB-only: readers hold the file under a shared lock that a writer waits for. On PostgreSQL
# a writer does not wait for readers (test_registry_postgres.py).
def test_readers_share_the_registry_and_a_writer_waits_for_them(tmp_path):
    path = tmp_path / "reg.duckdb"
    run_id = Registry(path).start_run("finetune")
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "reading"
        started = time.monotonic()
        assert Registry(path, lock_timeout_s=30).get_run(run_id)["status"] == "running"
        assert [r["run_id"] for r in Registry(path).runs()] == [run_id]
        read_s = time.monotonic() - started
        Registry(path, lock_timeout_s=30).finish_run(run_id, "succeeded")
        write_s = time.monotonic() - started
    finally:
        reader.kill()
        reader.wait()
    assert read_s < 1.5  # alongside the other reader
    assert write_s >= 1.5  # after it
    assert Registry(path).get_run(run_id)["status"] == "succeeded"
