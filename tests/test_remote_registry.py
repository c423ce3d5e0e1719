"""`--registry http(s)://...`: the CLI, the Python API and a template against a registry behind
`transferlab serve` (a real uvicorn on a loopback port), through RemoteRegistry, no mocks.
The registry suite itself also runs through the service (the `http` case of the `registry`
fixture); this module holds what only a served registry has: the same output as on the file,
the client's process on its runs, the methods that are not served, errors that keep their
kind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests.served import Served  # noqa: E402
from tests.test_promotion import MODEL, SUITE, add_benchmark, build_registry  # noqa: E402
from tests.test_team_identity import Team, snapshot  # noqa: E402
from transferlab import Registry  # noqa: E402
from transferlab.errors import (  # noqa: E402
    NotFoundError,
    PermissionDeniedError,
    RegistryError,
    TransferlabError,
)
from transferlab.registry.processes import this_process  # noqa: E402
from transferlab.registry.remote import RemoteRegistry  # noqa: E402
from transferlab.service import create_app  # noqa: E402


@pytest.fixture
def served_file(tmp_path, monkeypatch):
    """(file, url): a registry file with a model, versions, results and an alias, and a
    service over it that allows anonymous calls."""
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    monkeypatch.delenv("TRANSFERLAB_REGISTRY", raising=False)
    path = tmp_path / "registry.duckdb"
    registry = build_registry(Registry(path))
    for number, scores in ((1, [0.8, 0.82]), (2, [0.86, 0.88])):
        add_benchmark(registry, f"{MODEL}:{number}", {"accuracy": scores})
    registry.set_alias(f"{MODEL}:2", "staging", reason="best on the suite")
    served = Served(create_app(path, allow_anonymous=True, artefact_dir=tmp_path / "artefacts"))
    yield path, f"http://127.0.0.1:{served.port}"
    served.stop()


def test_registry_of_an_http_address_is_a_remote_registry(served_file):
    _, url = served_file
    remote = Registry(url)
    assert isinstance(remote, RemoteRegistry)
    assert remote.get_model(MODEL)["name"] == MODEL
    assert [v.version for v in remote.versions(MODEL)] == [1, 2, 3]


@pytest.mark.parametrize(
    "command",
    [
        ["search"],
        ["search", "--task", "text-classification"],
        ["show", MODEL],
        ["show", f"{MODEL}@staging"],
        ["history"],
        ["alias", "list"],
        ["runs"],
        ["leaderboard", "--suite", SUITE],
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_the_cli_prints_over_http_what_it_prints_on_the_file(
    served_file, run_cli, command, as_json
):
    path, url = served_file
    extra = ["--json"] if as_json else []
    code, on_file, err = run_cli("--registry", str(path), *extra, *command)
    assert code == 0, err
    code, over_http, err = run_cli("--registry", url, *extra, *command)
    assert code == 0, err
    assert over_http.replace(url, str(path)) == on_file


def test_an_error_over_http_keeps_its_kind_problem_and_fix(served_file, run_cli):
    path, url = served_file
    with pytest.raises(NotFoundError) as remote:
        Registry(url).get_model("intents-lroa")
    with pytest.raises(NotFoundError) as local:
        Registry(path).get_model("intents-lroa")
    assert remote.value.problem == local.value.problem.replace(str(path), str(path))
    assert remote.value.fix == local.value.fix and "intents-lora" in remote.value.fix
    code, _, err = run_cli("--registry", url, "show", "intents-lroa")
    assert code != 0 and "Did you mean intents-lora" in err


def test_only_the_listed_methods_are_served(served_file):
    path, url = served_file
    remote = Registry(url)
    for refused in (lambda: remote.query("SELECT 1"), remote.connect, remote.transaction):
        with pytest.raises(RegistryError, match="served over HTTP"):
            refused()
    with pytest.raises(AttributeError):
        remote.authenticate  # noqa: B018 - not served: whoami says who a token is
    import httpx

    for name in ("query", "authenticate", "with_token", "_unchecked", "__init__"):
        reply = httpx.post(f"{url}/v1/registry/{name}", json={"args": ["SELECT 1"]})
        assert reply.status_code in (404, 422), name
        assert "error" in reply.json()
    before = Registry(path).model_names()
    reply = httpx.post(f"{url}/v1/registry/add_model", json={"args": [{"$dc": "Popen"}]})
    assert reply.status_code == 400 and "could not be read" in reply.json()["error"]
    assert Registry(path).model_names() == before


def test_team_writes_over_http_name_the_token_user_and_a_refused_one_changes_nothing(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    path = tmp_path / "registry.duckdb"
    team = Team(build_registry(Registry(path)))
    served = Served(create_app(path, artefact_dir=tmp_path / "artefacts"))
    url = f"http://127.0.0.1:{served.port}"
    try:
        carl = Registry(url, token=team.tokens["contributor"])
        assert carl.whoami().name == "carl" and carl.actor == "carl"
        run_id = carl.start_run("benchmark", parameters={"suite": SUITE})
        carl.finish_run(run_id, "succeeded")
        carl.set_alias(f"{MODEL}:1", "candidate", reason="over http")
        event = Registry(path).history(MODEL)[0]
        assert (event["actor"], event["alias"]) == ("carl", "candidate")

        rita = Registry(url, token=team.tokens["reader"])
        runs_before = [r["run_id"] for r in Registry(path).runs()]
        with pytest.raises(PermissionDeniedError):
            rita.start_run("benchmark")
        with pytest.raises(PermissionDeniedError):
            rita.set_alias(f"{MODEL}:2", "candidate")
        assert [r["run_id"] for r in Registry(path).runs()] == runs_before
        assert Registry(path).alias_holder(MODEL, "candidate") == f"{MODEL}:1"
        assert rita.get_run(run_id)["status"] == "succeeded"  # reading is a reader's right
    finally:
        served.stop()


CLIENT = textwrap.dedent(
    """
    import os, sys
    from transferlab import Registry
    run_id = Registry(sys.argv[1]).start_run("benchmark", parameters={"suite": "s"})
    print(run_id, flush=True)
    os.kill(os.getpid(), 9)  # gone without finishing its run
    """
)


def test_a_run_over_http_is_the_clients_and_a_gone_client_is_found_by_the_next_one(served_file):
    path, url = served_file
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    run_id = done.stdout.strip()
    run = Registry(url).get_run(run_id)  # (a local Registry opened here would interrupt it)
    host, pid, _ = this_process()
    assert (run["status"], run["host"]) == ("running", host)
    assert run["pid"] not in (pid, os.getpid()) and run["pid"] > 0  # the client's, not ours

    remote = Registry(url)
    later = remote.start_run("benchmark")  # a client's first write checks its host's runs
    gone = Registry(path).get_run(run_id)
    assert gone["status"] == "interrupted" and "process" in gone["error"]
    assert Registry(path).get_run(later)["pid"] == pid


@pytest.mark.training
def test_the_finetune_template_runs_against_a_served_registry(
    tmp_path, monkeypatch, run_cli, tiny_bert_dir
):
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    monkeypatch.delenv("TRANSFERLAB_MODELS", raising=False)
    monkeypatch.setenv("TRANSFERLAB_ARTEFACT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "registry.duckdb"
    Registry(path).schema_version()
    served = Served(create_app(path, allow_anonymous=True, artefact_dir=tmp_path / "artefacts"))
    url = f"http://127.0.0.1:{served.port}"
    weights = tmp_path / "weights"
    try:
        code, out, err = run_cli(
            "--registry", url, "--models-dir", weights, "run", "finetune",
            "-p", "base", tiny_bert_dir, "-p", "max_steps", "2", "-p", "batch_size", "8",
            "-p", "max_length", "32", "-p", "name", "tiny-served",
            "--output-dir", tmp_path / "runs", "--json",
        )  # fmt: skip
        assert code == 0, err + out
        run_id = json.loads(out)["run_id"]
        local = Registry(path)
        run = local.get_run(run_id)
        assert run["status"] == "succeeded" and run["host"] == this_process()[0]
        # the weights went to the service's artefact store, content-addressed
        version = local.resolve("tiny-served")
        assert version.run_id == run_id and version.uri.startswith("artefact://sha256/")
        digest = version.uri.rsplit("/", 1)[1]
        stored = tmp_path / "artefacts" / "sha256" / digest[:2] / digest[2:]
        assert stored.is_file() and hashlib.sha256(stored.read_bytes()).hexdigest() == digest
        code, out, err = run_cli("--registry", url, "--json", "show", "tiny-served")
        assert code == 0, err
        assert json.loads(out)["versions"][0]["uri"] == version.uri
        assert not (tmp_path / "cache").exists()  # showing downloads nothing
        # loading it over HTTP downloads it once into the cache, checked, and predicts
        code, out, err = run_cli("--registry", url, "--json", "predict", "tiny-served:1", "hi")
        assert code == 0, err
        assert [p["text"] for p in json.loads(out)] == ["hi"]
        assert any((tmp_path / "cache" / digest).glob("*.safetensors"))
    finally:
        served.stop()


INJECTIONS = ["x'; DROP TABLE models; --", 'a" OR 1=1 --', "../../etc/passwd", "名前\x00"]


def test_bad_calls_are_a_clear_4xx_change_nothing_and_the_service_stays_up(tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    path = tmp_path / "registry.duckdb"
    team = Team(build_registry(Registry(path)))
    served = Served(create_app(path, artefact_dir=tmp_path / "artefacts", max_body_bytes=64 * 1024))
    url = f"http://127.0.0.1:{served.port}"
    token = team.tokens["admin"]
    before = snapshot(team.plain)

    def call(method: str, body: bytes, status: int, text: str) -> None:
        reply = served.call(
            "POST", f"/v1/registry/{method}", token=token, raw=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert reply.status == status, (method, reply.status, reply.body[:300])
        assert text in reply.json()["error"] and reply.json()["fix"], reply.json()

    try:
        call("start_run", b'{"args": ["load"', 422, "JSON decode error")
        call("start_run", json.dumps({"args": ["x"], "actor": "mallory"}).encode(), 422, "actor")
        call("start_run", json.dumps({"args": ["x" * 70_000]}).encode(), 413, "limit")
        call("get_model", json.dumps({"args": [1, 2, 3]}).encode(), 400, "get_model")
        call("resolve", json.dumps({"args": ["intents-lora:99"]}).encode(), 404, "version 99")
        call("add_model", json.dumps({"args": [{"$dc": "Popen"}]}).encode(), 400, "Popen")
        remote = Registry(url, token=token)
        for text in INJECTIONS:
            with pytest.raises(TransferlabError):
                remote.get_model(text)
            with pytest.raises(TransferlabError):
                remote.set_alias(f"{MODEL}:1", text)
            with pytest.raises(TransferlabError):
                remote.resolve(text)
            assert remote.runs(kind=text) == []
        assert snapshot(team.plain) == before
        assert served.call("GET", "/healthz").status == 200
    finally:
        served.stop()
