"""The REST service (`transferlab serve`) under a real uvicorn on a loopback port, no mocks:
health and readiness, the OpenAPI page, the token matrix (every role and every bad credential
on every route; refused calls change nothing), bad input, four-eyes over
HTTP, the artefact store (content-addressed upload, verified download, the sweep of what a
killed upload leaves). On both backends where it takes the `registry` fixture. The service as a
process of its own (`transferlab serve`, kill -9, load) is in test_service_processes.py."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import time
from datetime import timedelta

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from tests.served import Reply, Served  # noqa: E402
from tests.test_promotion import MODEL, build_registry  # noqa: E402
from tests.test_team_identity import Team, _bad_token, _prepared, _request, snapshot  # noqa: E402
from transferlab import Registry  # noqa: E402
from transferlab.errors import PermissionDeniedError  # noqa: E402
from transferlab.registry import identity  # noqa: E402
from transferlab.registry.identity import ROLES  # noqa: E402
from transferlab.service import create_app  # noqa: E402
from transferlab.service.artefacts import host_label  # noqa: E402


@pytest.fixture
def serve(tmp_path):
    """serve(location, **create_app options) -> a running Served; all stopped afterwards."""
    running = []

    def start(location, **options) -> Served:
        options.setdefault("artefact_dir", tmp_path / "artefacts")
        served = Served(create_app(location, **options))
        running.append(served)
        return served

    yield start
    for served in running:
        served.stop()


@pytest.fixture
def team(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Team:
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    build_registry(registry)
    return Team(registry)


def _ok(reply: Reply) -> bool:
    return 200 <= reply.status < 300


# -- health, readiness, OpenAPI -------------------------------------------------------------------


def test_health_readiness_and_the_openapi_page(team, serve):
    served = serve(team.location)
    assert served.call("GET", "/healthz").json() == {"status": "ok"}
    ready = served.call("GET", "/readyz")
    assert ready.status == 200 and ready.json()["status"] == "ready", ready.body
    spec = served.call("GET", "/openapi.json").json()
    assert "/v1/runs" in spec["paths"] and "/v1/artefacts/{sha256}" in spec["paths"]
    page = served.call("GET", "/docs")
    assert page.status == 200 and b"swagger" in page.body.lower()
    assert served.call("GET", "/v1/whoami", token=team.tokens["reader"]).json() == {
        "name": "rita",
        "role": "reader",
        "team_mode": True,
    }
    assert served.call("GET", "/healthz").headers.get("x-request-id")


# -- who may do what ------------------------------------------------------------------------------


def _alias_body(team, role):
    return {"version": f"{MODEL}:2", "alias": f"champion-{role}", "reason": "matrix"}


# endpoint -> (action needed, method, path or path(team), body(team, role) or None, setup)
ENDPOINTS = {
    "show a model": ("read", "GET", f"/v1/models/{MODEL}", None, None),
    "list runs": ("read", "GET", "/v1/runs", None, None),
    "search": ("read", "GET", "/v1/models?task=text-classification", None, None),
    "history": ("read", "GET", "/v1/history", None, None),
    "record a run": ("write", "POST", "/v1/runs", lambda t, r: {"kind": "benchmark"}, None),
    "register a version": (
        "write",
        "POST",
        f"/v1/models/{MODEL}/versions",
        lambda t, r: {"kind": "adapter", "uri": f"/nowhere/{r}"},
        None,
    ),
    "set an alias": ("alias.move", "POST", "/v1/aliases", _alias_body, None),
    "set production directly": (
        "alias.protected",
        "POST",
        "/v1/aliases",
        lambda t, r: {"version": f"{MODEL}:3", "alias": "production", "reason": r},
        None,
    ),
    "approve a request": (
        "promotion.approve",
        "POST",
        lambda t: f"/v1/requests/{_request(t)}/approve",
        lambda t, r: {"reason": "looks right"},
        _prepared,
    ),
    "reject a request": (
        "promotion.reject",
        "POST",
        lambda t: f"/v1/requests/{_request(t, by='admin')}/reject",  # the admin may withdraw
        lambda t, r: {"reason": "not yet"},
        _prepared,
    ),
    "promote to staging": (
        "alias.move",
        "POST",
        "/v1/promotions",
        lambda t, r: {"version": f"{MODEL}:1", "alias": "staging", "reason": r},
        lambda t: (_prepared(t), t.admin.remove_alias(MODEL, "staging", reason="again")),
    ),
    "list requests": ("read", "GET", "/v1/requests", None, _prepared),
    "show a request": ("read", "GET", lambda t: f"/v1/requests/{_request(t)}", None, _prepared),
    "list aliases": ("read", "GET", f"/v1/aliases?model={MODEL}", None, None),
    "remove an alias": (
        "alias.move",
        "POST",
        "/v1/aliases/remove",
        lambda t, r: {"model": MODEL, "alias": "champion", "reason": r},
        lambda t: t.admin.set_alias(f"{MODEL}:1", "champion", reason="setup"),
    ),
    "list versions": ("read", "GET", f"/v1/models/{MODEL}/versions", None, None),
    "resolve a version": ("read", "GET", f"/v1/versions/resolve?ref={MODEL}:1", None, None),
    "lineage": ("read", "GET", f"/v1/versions/lineage?ref={MODEL}:2", None, None),
    "show a run": ("read", "GET", lambda t: f"/v1/runs/{_run(t)}", None, None),
    "update a run": (
        "write",
        "PATCH",
        lambda t: f"/v1/runs/{_run(t)}",
        lambda t, r: {"metrics": {"by": r}},
        None,
    ),
    "finish a run": (
        "write",
        "POST",
        lambda t: f"/v1/runs/{_run(t)}/finish",
        lambda t, r: {"status": "failed", "error": r},
        None,
    ),
    "add results": (
        "write",
        "POST",
        lambda t: f"/v1/runs/{_run(t)}/results",
        lambda t, r: {"results": [{"dataset": "d", "split": "test", "metric": r, "value": 1}]},
        None,
    ),
    "list results": ("read", "GET", "/v1/results", None, None),
    "whoami": ("read", "GET", "/v1/whoami", None, None),
    "upload an artefact": (
        "write",
        "PUT",
        lambda t: f"/v1/artefacts/{hashlib.sha256(b'weights').hexdigest()}",
        lambda t, r: b"weights",
        None,
    ),
    "download an artefact": (
        "read",
        "GET",
        lambda t: f"/v1/artefacts/{_artefact(t)}",
        None,
        None,
    ),
    "download a version": (
        "read",
        "GET",
        lambda t: f"/v1/versions/download?ref={_artefact_version(t)}",
        None,
        None,
    ),
    "call a registry method": (
        "write",
        "POST",
        "/v1/registry/start_run",
        lambda t, r: {"args": ["benchmark"], "kwargs": {"parameters": {"by": r}}},
        None,
    ),
    "record a training score": (
        "write",
        "POST",
        "/v1/registry/record_training_score",
        lambda t, r: {"args": [t.scored_run, 3, f"validation_{r}", 1.5]},
        lambda t: setattr(t, "scored_run", _run(t)),
    ),
    "read training scores": (
        "read",
        "POST",
        "/v1/registry/training_scores",
        lambda t, r: {"args": [[t.scored_run]]},
        lambda t: setattr(t, "scored_run", _run(t)),
    ),
}
# the artefact store is no registry table: what a call changes there is checked on its own
STORE_WRITES = ("upload an artefact",)


def _run(team: Team) -> str:
    return team.admin.start_run("benchmark")


def _artefact(team: Team) -> str:
    """The digest of an artefact in the store of the service under test (`team.served`)."""
    digest = hashlib.sha256(b"stored weights").hexdigest()
    reply = team.served.call("PUT", f"/v1/artefacts/{digest}", token=team.tokens["admin"],
                             raw=b"stored weights")  # fmt: skip
    assert reply.status == 201, reply.body
    return digest


def _artefact_version(team: Team) -> str:
    digest = _artefact(team)
    for version in team.plain.versions(MODEL):
        if version.uri == f"artefact://sha256/{digest}":
            return version.ref
    return team.admin.add_version(MODEL, "full", f"artefact://sha256/{digest}").ref


BAD = ("none", "malformed", "forged", "revoked", "expired", "disabled")


# On the DuckDB file only: who may call what is decided by the same code on every backend (the
# registry suite's own matrix, test_team_identity, runs on all three); this one is the routes'.
@pytest.mark.parametrize("registry_location", ["duckdb"], indirect=True)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS), ids=lambda e: e.replace(" ", "-"))
def test_every_role_and_every_bad_credential_over_http(team, serve, endpoint, monkeypatch):
    needed, method, path, body, setup = ENDPOINTS[endpoint]
    served = team.served = serve(team.location)

    def sent(who) -> dict:
        data = body(team, who) if body else None
        return {"raw": data} if isinstance(data, bytes) else {"body": data}

    for role in ROLES:
        if setup:
            setup(team)
        where = path(team) if callable(path) else path
        before = snapshot(team.plain)
        reply = served.call(method, where, token=team.tokens[role], **sent(role))
        if identity.role_allows(role, needed):
            assert _ok(reply), f"{role} may {endpoint}: {reply.status} {reply.body[:300]}"
            if needed != "read" and endpoint not in STORE_WRITES:
                assert snapshot(team.plain) != before, f"{role}'s {endpoint} changed nothing"
        else:
            assert reply.status == 403, f"{role} {endpoint}: {reply.status} {reply.body[:300]}"
            assert "is refused `" in reply.json()["error"]  # `write` first, for a reader
            assert snapshot(team.plain) == before, f"{role}'s refused {endpoint} changed things"
    for kind in BAD:
        if setup:
            setup(team)
        token = _bad_token(team, kind)
        where = path(team) if callable(path) else path
        before = snapshot(team.plain)
        with monkeypatch.context() as patch:
            if kind == "expired":
                later = identity.utc_now() + timedelta(days=2)
                patch.setattr(identity, "utc_now", lambda later=later: later)
            reply = served.call(method, where, token=token, **sent(kind))
        assert reply.status == 401, f"{kind} token, {endpoint}: {reply.status} {reply.body[:300]}"
        assert reply.headers.get("www-authenticate") == "Bearer"
        assert set(reply.json()) == {"error", "fix", "request_id", "kind"} and reply.json()["fix"]
        assert reply.json()["kind"] == "AuthenticationError"
        assert snapshot(team.plain) == before, f"a {kind} token's {endpoint} changed something"
    wrong_scheme = served.call("GET", "/v1/runs", headers={"Authorization": "Basic YWRhOng="})
    assert wrong_scheme.status == 401


@pytest.mark.parametrize("registry_location", ["duckdb"], indirect=True)
def test_the_matrix_has_every_endpoint(team, serve):
    team.served = serve(team.location)
    spec = team.served.call("GET", "/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path not in ("/healthz", "/readyz")
    }
    covered = {
        (method, (path(team) if callable(path) else path).split("?")[0])
        for _, method, path, _, _ in ENDPOINTS.values()
    }
    templates = {(m, p) for m, p in routes if "{" in p}
    plain = routes - templates
    assert plain <= covered, f"not in the access matrix: {sorted(plain - covered)}"
    for method, template in templates:  # a path with a parameter: any instance of it
        head = template.split("{")[0]
        tail = template.rsplit("}", 1)[1]
        assert any(m == method and p.startswith(head) and p.endswith(tail) for m, p in covered), (
            f"not in the access matrix: {method} {template}"
        )


def test_a_registry_without_users_is_served_only_with_allow_anonymous(registry, serve, tmp_path):
    build_registry(registry)
    with pytest.raises(PermissionDeniedError, match="no users"):
        create_app(registry.location, tmp_path / "a").state.service.start()
    served = serve(registry.location, allow_anonymous=True)
    moved = served.call("POST", "/v1/aliases", body=_alias_body(None, "anon"))
    assert moved.status == 200, moved.body
    assert registry.history(MODEL)[-1]["actor"] == "anonymous"  # never a name a client claims
    some_token = "tlab_0123456789ab_" + "A" * 43
    assert served.call("GET", "/v1/runs", token=some_token).status == 401


def test_the_audit_log_names_the_token_user_never_a_claimed_one(team, serve, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_USER", "mallory")  # the service's environment
    served = serve(team.location)
    reply = served.call(
        "POST",
        "/v1/aliases",
        token=team.tokens["contributor"],
        body=_alias_body(team, "x"),
        headers={"X-Transferlab-User": "mallory", "X-Forwarded-User": "mallory"},
    )
    assert reply.status == 200, reply.body
    assert team.plain.history(MODEL)[-1]["actor"] == "carl"


def test_four_eyes_over_http(team, serve):
    served = serve(team.location)
    _prepared(team)
    asked = served.call(
        "POST",
        "/v1/promotions",
        token=team.tokens["approver"],
        body={"version": f"{MODEL}:1", "alias": "production", "reason": "beats the baseline"},
    )
    assert asked.status == 200, asked.body
    assert asked.json()["moved"] is False
    request_id = asked.json()["request"]["request_id"]
    listed = served.call("GET", "/v1/requests?status=open", token=team.tokens["reader"])
    assert [r["request_id"] for r in listed.json()] == [request_id]
    by_role = served.call(
        "POST",
        f"/v1/requests/{request_id}/approve",
        token=team.tokens["contributor"],
        body={"reason": "yes"},
    )
    assert by_role.status == 403 and "promotion.approve" in by_role.json()["error"]
    own = served.call(
        "POST",
        f"/v1/requests/{request_id}/approve",
        token=team.tokens["approver"],
        body={"reason": "mine"},
    )
    assert own.status == 403 and "second person" in own.json()["error"], own.body
    assert team.plain.alias_holder(MODEL, "production") is None
    approved = served.call(
        "POST",
        f"/v1/requests/{request_id}/approve",
        token=team.tokens["admin"],
        body={"reason": "checked"},
    )
    assert approved.status == 200, approved.body
    assert team.plain.alias_holder(MODEL, "production") == f"{MODEL}:1"
    last = team.plain.history(MODEL)[-1]
    assert (last["actor"], last["action"]) == ("ada", "promotion.approve")
    again = served.call(
        "POST", f"/v1/requests/{request_id}/approve", token=team.tokens["admin"], body={}
    )
    assert again.status == 400 and "is approved" in again.json()["error"]


# -- bad input ------------------------------------------------------------------------------------


def _chunked_put(served: Served, path: str, token: str, chunks: list[bytes]) -> Reply:
    """A PUT whose body has no Content-Length (chunked transfer encoding)."""
    con = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    try:
        headers = {"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"}
        con.request("PUT", path, body=iter(chunks), headers=headers, encode_chunked=True)
        response = con.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, response.read(), headers)
    finally:
        con.close()


def test_bad_input_is_a_clear_4xx_and_changes_nothing(team, serve, tmp_path):
    served = serve(team.location, max_body_bytes=4096, max_artefact_bytes=10_000)
    token = team.tokens["admin"]
    before = snapshot(team.plain)

    def refused(reply: Reply, status: int, text: str) -> None:
        assert reply.status == status, (reply.status, reply.body[:300])
        assert text in reply.json()["error"], reply.json()
        assert reply.json()["request_id"]

    con_type = {"Content-Type": "application/json"}
    refused(
        served.call("POST", "/v1/runs", token=token, raw=b'{"kind": ', headers=con_type),
        422,
        "JSON decode error",
    )
    refused(
        served.call("POST", "/v1/runs", token=token, body={"kind": "x", "actor": "mallory"}),
        422,
        "actor",
    )
    refused(
        served.call("POST", "/v1/runs", token=token, body={"kind": "x" * 5000}),
        413,
        "over this service's limit of 4096 bytes",
    )
    refused(
        served.call("POST", "/v1/runs", token=token, body={"kind": "a; DROP TABLE runs"}),
        422,
        "kind",
    )
    refused(
        served.call(
            "POST",
            "/v1/runs",
            token=token,
            body={"kind": "finetune", "parameters": {"output_dir": "/etc"}},
        ),
        400,
        "output_dir",
    )
    refused(
        served.call("GET", "/v1/versions/resolve?ref=intents-lora:99", token=token),
        404,
        "has no version 99",
    )
    refused(
        served.call("GET", "/v1/models/no-such-model%27%20OR%20%271%27=%271", token=token),
        400,
        "Invalid model name",
    )
    refused(served.call("GET", "/v1/models/no-such-model", token=token), 404, "No model named")
    refused(
        served.call(
            "POST",
            f"/v1/models/{MODEL}/versions",
            token=token,
            body={"kind": "adapter", "artefact_sha256": "../../etc/passwd"},
        ),
        400,
        "not a SHA-256 digest",
    )
    refused(
        served.call("PUT", "/v1/artefacts/..%5C..%5Cescaped", token=token, raw=b"x"),
        400,
        "not a SHA-256 digest",
    )
    slash = served.call("PUT", "/v1/artefacts/..%2F..%2Fescaped", token=token, raw=b"x")
    assert slash.status == 404, slash.body  # a slash never reaches the store
    refused(served.call("GET", "/v1/requests/99999999999", token=token), 422, "request_id")
    refused(
        served.call("POST", "/v1/requests/4242/approve", token=token, body={}),
        404,
        "No promotion request #4242",
    )
    refused(
        served.call("POST", "/v1/runs/nope/finish", token=token, body={"status": "interrupted"}),
        422,
        "status",
    )
    big = os.urandom(20_000)
    digest = hashlib.sha256(big).hexdigest()
    refused(served.call("PUT", f"/v1/artefacts/{digest}", token=token, raw=big), 413, "10000")
    chunked = _chunked_put(served, f"/v1/artefacts/{digest}", token, [big[:8000], big[8000:]])
    refused(chunked, 413, "10000")
    assert not [p for p in (tmp_path / "artefacts").rglob("*") if p.is_file()]
    assert snapshot(team.plain) == before
    assert not list(tmp_path.rglob("escaped"))
    # an injection string is a value like any other: stored and shown verbatim
    evil = "x'); DELETE FROM audit_log; DROP TABLE models; --"
    moved = served.call(
        "POST",
        "/v1/aliases",
        token=token,
        body={"version": f"{MODEL}:2", "alias": "staging", "reason": evil},
    )
    assert moved.status == 200, moved.body
    history = served.call("GET", f"/v1/history?model={MODEL}", token=token).json()
    assert history[-1]["reason"] == evil
    assert len(team.plain.model_names()) == 2
    assert served.call("GET", "/healthz").status == 200


# -- artefacts ------------------------------------------------------------------------------------


def test_artefacts_are_content_addressed_and_checked_on_download(team, serve, tmp_path):
    served = serve(team.location)
    weights = os.urandom(300_000)
    digest = hashlib.sha256(weights).hexdigest()
    contributor, reader = team.tokens["contributor"], team.tokens["reader"]
    wrong = served.call("PUT", f"/v1/artefacts/{'0' * 64}", token=contributor, raw=weights)
    assert wrong.status == 400 and "nothing was stored" in wrong.json()["error"]
    # (a short body: a refused upload is answered before its body is read)
    assert served.call("PUT", f"/v1/artefacts/{digest}", token=reader, raw=b"x").status == 403
    assert not [p for p in (tmp_path / "artefacts").rglob("*") if p.is_file()]
    stored = served.call("PUT", f"/v1/artefacts/{digest}", token=contributor, raw=weights)
    assert stored.status == 201 and stored.json()["created"] is True, stored.body
    again = served.call("PUT", f"/v1/artefacts/{digest}", token=contributor, raw=weights)
    assert again.json()["created"] is False
    unknown = served.call(
        "POST",
        f"/v1/models/{MODEL}/versions",
        token=contributor,
        body={"kind": "full", "artefact_sha256": "f" * 64},
    )
    assert unknown.status == 404
    version = served.call(
        "POST",
        f"/v1/models/{MODEL}/versions",
        token=contributor,
        body={"kind": "full", "artefact_sha256": digest},
    )
    assert version.status == 201, version.body
    assert version.json()["uri"] == f"artefact://sha256/{digest}"
    ref = version.json()["version_id"]
    got = served.call("GET", f"/v1/versions/download?ref={ref}", token=reader)
    assert got.status == 200 and got.body == weights
    assert got.headers["x-content-sha256"] == digest
    stored_file = tmp_path / "artefacts" / "sha256" / digest[:2] / digest[2:]
    stored_file.chmod(0o644)
    stored_file.write_bytes(weights[:-1] + b"\0")  # changed on disk
    corrupt = served.call("GET", f"/v1/artefacts/{digest}", token=reader)
    assert corrupt.status == 500 and "no longer matches" in corrupt.json()["error"]


def test_the_start_sweeps_unfinished_uploads_and_orphans(team, serve, tmp_path):
    store = tmp_path / "artefacts"
    kept = hashlib.sha256(b"kept").hexdigest()
    orphan = hashlib.sha256(b"orphan").hexdigest()
    young = hashlib.sha256(b"young").hexdigest()
    for digest in (kept, orphan, young):
        path = store / "sha256" / digest[:2] / digest[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(digest.encode())
        if digest != young:
            os.utime(path, (time.time() - 7200, time.time() - 7200))
    team.admin.add_version(MODEL, "full", f"artefact://sha256/{kept}")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (store / "tmp").mkdir(parents=True)
    killed = store / "tmp" / f"{host_label()}-{dead.pid}-0123456789abcdef.part"
    killed.write_bytes(b"half an upload")
    serve(team.location, orphan_grace_s=3600)
    left = sorted(p.parent.name + p.name for p in (store / "sha256").rglob("*") if p.is_file())
    assert left == sorted([kept, young])
    assert not killed.exists()
