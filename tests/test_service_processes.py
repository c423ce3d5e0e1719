"""`transferlab serve` as a process of its own, no mocks: the JSON access log, the refusal of a
registry without users, SIGTERM, kill -9 in the middle of an upload, and 8 client processes
recording runs at once (slow tier)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests.conftest import transferlab_executable  # noqa: E402
from tests.test_promotion import MODEL, build_registry  # noqa: E402
from tests.test_service import Served  # noqa: E402
from tests.test_team_identity import Team  # noqa: E402
from transferlab import Registry  # noqa: E402
from transferlab.service import create_app  # noqa: E402

# -- the command ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_service(command: list[str], port: int, env: dict) -> subprocess.Popen:
    """`transferlab serve ...` in a process of its own, once it answers /healthz."""
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            con = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            con.request("GET", "/healthz")
            if con.getresponse().status == 200:
                con.close()
                return server
        except (OSError, http.client.HTTPException):
            pass  # not listening yet
        if server.poll() is not None:
            raise AssertionError(f"the service exited: {server.stderr.read()}")
        assert time.monotonic() < deadline, "the service did not start in 60 s"
        time.sleep(0.2)


def test_the_serve_command_logs_json_and_stops_on_sigterm(tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    location = tmp_path / "registry.duckdb"
    build_registry(Registry(location))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [transferlab_executable(), "serve", "--registry", str(location)]
    refused = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and "--allow-anonymous" in refused.stderr
    port = _free_port()
    server = _start_service(
        [*command, "--port", str(port), "--allow-anonymous", "--graceful-timeout", "5"], port, env
    )
    try:
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        con.request("GET", "/v1/runs", headers={"X-Request-ID": "abc-123"})
        reply = con.getresponse()
        assert reply.status == 200 and reply.getheader("x-request-id") == "abc-123"
        reply.read()
        con.close()
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode in (0, 143), err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    entry = next(line for line in lines if line["request_id"] == "abc-123")
    assert entry["method"] == "GET" and entry["path"] == "/v1/runs" and entry["status"] == 200
    assert entry["user"] == "anonymous" and entry["duration_ms"] >= 0


def test_kill_9_mid_upload_leaves_no_half_artefact(tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    location = tmp_path / "registry.duckdb"
    registry = build_registry(Registry(location))
    versions_before = [v.version_id for v in registry.versions(MODEL)]
    store = tmp_path / "artefacts"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    port = _free_port()
    command = [
        transferlab_executable(),
        "serve",
        "--registry",
        str(location),
        "--port",
        str(port),
        "--allow-anonymous",
        "--artefacts",
        str(store),
    ]
    server = _start_service(command, port, env)
    try:
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        con.putrequest("PUT", f"/v1/artefacts/{'a' * 64}")
        con.putheader("Content-Length", str(10_000_000))
        con.putheader("Content-Type", "application/octet-stream")
        con.endheaders()
        con.send(os.urandom(2_000_000))
        deadline = time.monotonic() + 30
        while not any(p.stat().st_size for p in (store / "tmp").glob("*.part")):
            assert time.monotonic() < deadline, "the upload never reached the store"
            time.sleep(0.05)
        server.kill()  # SIGKILL, mid-upload
        server.wait(30)
        con.close()
    finally:
        if server.poll() is None:
            server.kill()
    assert list((store / "tmp").glob("*.part")), "the kill came after the upload ended"
    server = _start_service(command, port, env)
    try:
        assert not list((store / "tmp").glob("*.part"))
        assert not [p for p in (store / "sha256").rglob("*") if p.is_file()]
        assert [v.version_id for v in registry.versions(MODEL)] == versions_before
    finally:
        server.kill()
        server.wait(30)


# -- load ---------------------------------------------------------------------------------------

CLIENT = textwrap.dedent(
    """
    import http.client, json, sys
    port, token, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    failures = []
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for number in range(count):
        con.request("POST", "/v1/runs", json.dumps({"kind": "load"}), headers)
        reply = con.getresponse()
        data = reply.read()
        if reply.status != 201:
            failures.append((reply.status, data[:200].decode()))
            continue
        run_id = json.loads(data)["run_id"]
        finish = {"status": "succeeded", "metrics": {"n": number}}
        con.request("POST", f"/v1/runs/{run_id}/finish", json.dumps(finish), headers)
        reply = con.getresponse()
        data = reply.read()
        if reply.status != 200:
            failures.append((reply.status, data[:200].decode()))
    print(json.dumps(failures))
    """
)


@pytest.mark.slow
def test_eight_client_processes_record_fifty_runs_each(registry, tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    build_registry(registry)
    team = Team(registry)
    served = Served(create_app(team.location, tmp_path / "artefacts"))
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(served.port), team.tokens["contributor"], "50"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        failures = [json.loads(client.communicate(timeout=600)[0]) for client in clients]
        assert failures == [[]] * 8
        runs = team.plain.runs(kind="load", limit=1000)
        assert len(runs) == 400 and {run["status"] for run in runs} == {"succeeded"}
        assert served.call("GET", "/healthz").status == 200
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
        served.stop()


# -- PostgreSQL restarted under load --------------------------------------------------------------

RESTART_CLIENT = textwrap.dedent(
    """
    import json, sys
    from transferlab import Registry
    registry, recorded, errors = Registry(sys.argv[1]), [], []
    for i in range(int(sys.argv[2])):
        try:
            run_id = registry.start_run("load", parameters={"i": i})
            registry.finish_run(run_id, "succeeded")
            recorded.append(run_id)
        except Exception as error:  # counted, not fatal: the test says which
            errors.append(f"{type(error).__name__}: {error}")
    print(json.dumps({"recorded": recorded, "errors": errors}))
    """
)


@pytest.mark.postgres
def test_postgresql_restarted_under_load_loses_and_doubles_nothing(tmp_path, monkeypatch):
    """4 clients record runs through the service while its PostgreSQL server restarts: the
    service answers the cut calls with a retryable 503, the clients send them again (a start
    whose commit was cut is looked up first), and every run is there once."""
    from tests.postgres_server import ThrowawayCluster, _pg_bin

    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip(
            "no initdb: a cluster of its own is needed to restart it (apt-get install postgresql)"
        )
    cluster = ThrowawayCluster(bin_dir)
    admin = cluster.start()
    if admin is None:
        pytest.skip(f"a throw-away PostgreSQL cluster did not start: {cluster.problem}")
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    served = None
    try:
        import psycopg

        with psycopg.connect(admin, autocommit=True) as con:
            con.execute("CREATE DATABASE restart_load")
        location = admin.rsplit("/", 1)[0] + "/restart_load"
        Registry(location).schema_version()
        served = Served(create_app(location, tmp_path / "artefacts", allow_anonymous=True))
        url = f"http://127.0.0.1:{served.port}"
        env = {**os.environ, "TRANSFERLAB_RETRY_S": "90"}
        clients = [
            subprocess.Popen(
                [sys.executable, "-c", RESTART_CLIENT, url, "40"],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )  # fmt: skip
            for _ in range(4)
        ]
        deadline = time.monotonic() + 120
        while len(Registry(location).runs(kind="load", limit=1000)) < 20:
            assert time.monotonic() < deadline, "the clients recorded nothing in 120 s"
            time.sleep(0.1)
        restarted = cluster._run(
            bin_dir / "pg_ctl", "-D", cluster.data, "-l", cluster.folder / "server.log",
            "-m", "fast", "-w", "-t", "60", "restart",
            "-o", f"-p {cluster.port} -k {cluster.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off",
        )  # fmt: skip
        assert restarted.returncode == 0, restarted.stderr
        outcomes = [json.loads(client.communicate(timeout=600)[0]) for client in clients]
        assert [o["errors"] for o in outcomes] == [[]] * 4
        recorded = [run_id for o in outcomes for run_id in o["recorded"]]
        runs = Registry(location).runs(kind="load", limit=1000)
        assert len(recorded) == 160 and sorted(r["run_id"] for r in runs) == sorted(recorded)
        assert {r["status"] for r in runs} == {"succeeded"}
        assert served.call("GET", "/readyz").status == 200
    finally:
        if served is not None:
            served.stop()
        cluster.stop()
