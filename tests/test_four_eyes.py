"""Four-eyes promotion on a team registry, through the command line: production moves only
when the gates hold and an approver who did not ask approves (the gates checked again then);
reject and withdraw; --force is an admin's and audited; history shows requests and decisions.
A registry without users promotes as it always did (tests/test_promotion.py, unchanged)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import direct, is_served
from tests.test_promotion import MODEL, add_benchmark, build_registry
from tests.test_team_identity import snapshot
from transferlab import Registry

SERVED = True  # the registry suite: also through the service (conftest.py)


@pytest.fixture
def lab(registry: Registry, run_cli, monkeypatch: pytest.MonkeyPatch) -> dict:
    """MODEL:1 benchmarked and in staging; users ada (admin), carl (contributor), april and
    abe (approvers); a function running the CLI as one of them."""
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    monkeypatch.setenv("TRANSFERLAB_USER", "mallory")  # a claim the audit log must not take
    build_registry(registry)
    add_benchmark(registry, f"{MODEL}:1", {"accuracy": [0.90, 0.92], "macro_f1": [0.88, 0.90]})
    registry.set_alias(f"{MODEL}:1", "staging", reason="before team mode")
    _, admin = registry.add_user("ada", "admin")
    admin_registry = Registry(registry.location, token=admin)
    tokens = {"ada": admin}
    for name, role in (("carl", "contributor"), ("april", "approver"), ("abe", "approver")):
        tokens[name] = admin_registry.add_user(name, role)[1]

    def as_user(name: str | None, *args: str) -> tuple[int, str, str]:
        token = ("--token", tokens[name]) if name else ()
        return run_cli(*args, "--registry", registry.location, *token)

    # "registry": the tests' own tokenless view, on the database (a service serves no one
    # without a token on a team registry)
    # "reader": who lists requests and history: no one on a file (reads need no token), an
    # approver's token over HTTP (every call does)
    reader = "abe" if is_served(registry) else None
    return {
        "registry": direct(registry),
        "admin": admin_registry,
        "as": as_user,
        "tokens": tokens,
        "reader": reader,
    }


def _promote(lab: dict, who: str, version: str = f"{MODEL}:1", *extra: str):
    return lab["as"](who, "promote", version, "--to", "production", "--reason", "ship", *extra)


def test_production_opens_a_request_and_moves_nothing(lab):
    registry = lab["registry"]
    code, out, err = _promote(lab, "carl")
    assert code == 0, err
    assert f"opened request #1: {MODEL}@production (unset) -> {MODEL}:1, the gates hold" in out
    assert "transferlab approve 1" in out
    assert registry.alias_holder(MODEL, "production") is None
    (request,) = registry.promotion_requests()
    assert (request["status"], request["requester"], request["version_id"]) == (
        "open",
        "carl",
        f"{MODEL}:1",
    )
    assert request["evidence"]["gates"]["licence"] == "passed"
    event = registry.history(MODEL)[-1]
    assert (event["action"], event["actor"], event["to_version"]) == (
        "promotion.request",
        "carl",
        None,
    )
    code, out, err = _promote(lab, "carl")
    assert code == 2 and "Request #1 to move intents-lora@production" in err
    code, out, _ = lab["as"](lab["reader"], "requests", "--status", "open")
    assert code == 0 and "carl" in out and f"(unset) -> {MODEL}:1" in out


def test_failing_gates_open_no_request(lab):
    registry = lab["registry"]
    before = snapshot(registry)
    code, out, err = _promote(lab, "carl", f"{MODEL}:2")  # no benchmark, never staged
    assert code == 1 and "gates failed" in err
    assert snapshot(registry) == before


def test_the_requester_may_not_approve_and_a_second_approver_does(lab):
    registry = lab["registry"]
    assert _promote(lab, "april")[0] == 0
    before = snapshot(registry)
    code, out, err = lab["as"]("april", "approve", "1")
    assert code == 2 and "april requested #1 and may not approve it" in err
    assert snapshot(registry) == before
    code, out, err = lab["as"]("carl", "approve", "1")
    assert code == 2 and "carl (role contributor) is refused `promotion.approve`" in err
    assert snapshot(registry) == before
    code, out, err = lab["as"]("abe", "approve", "1", "--reason", "numbers look right")
    assert code == 0, err
    assert f"approved #1 (requested by april): {MODEL}@production (unset) -> {MODEL}:1" in out
    assert "passed  staging_first" in out
    assert registry.alias_holder(MODEL, "production") == f"{MODEL}:1"
    request = registry.promotion_request(1)
    assert (request["status"], request["decided_by"], request["decision_reason"]) == (
        "approved",
        "abe",
        "numbers look right",
    )
    actions = [(e["action"], e["actor"]) for e in registry.history(MODEL)[-2:]]
    assert actions == [("promotion.request", "april"), ("promotion.approve", "abe")]
    move = registry.history(MODEL)[-1]
    assert (move["alias"], move["to_version"], move["forced"]) == (
        "production",
        f"{MODEL}:1",
        False,
    )
    assert move["details"]["request_id"] == 1 and move["details"]["requested_by"] == "april"
    code, out, _ = lab["as"](lab["reader"], "history", MODEL)
    assert code == 0 and "promotion.request" in out and "promotion.approve" in out
    assert "#1" in out and "mallory" not in out
    code, out, err = lab["as"]("ada", "approve", "1")
    assert code == 2 and "Request #1 is approved (by abe" in err


def test_the_gates_are_checked_again_at_approval(lab):
    registry = lab["registry"]
    assert _promote(lab, "carl")[0] == 0
    # meanwhile an admin forces a much better version into production
    add_benchmark(lab["admin"], f"{MODEL}:3", {"accuracy": [0.99], "macro_f1": [0.99]})
    code, out, err = lab["as"]("ada", "promote", f"{MODEL}:3", "--to", "production",
                               "--reason", "hotfix", "--force")  # fmt: skip
    assert code == 0 and "FORCED" in out, err
    before = snapshot(registry)
    code, out, err = lab["as"]("april", "approve", "1")
    assert code == 1 and "request #1 stays open" in out
    assert "FAILED  no_regression" in out and "worse by" in out
    assert snapshot(registry) == before
    assert registry.promotion_request(1)["status"] == "open"


def test_reject_closes_a_request_and_the_requester_may_withdraw(lab):
    registry = lab["registry"]
    assert _promote(lab, "carl")[0] == 0
    with pytest.raises(SystemExit):  # argparse: --reason is required
        lab["as"]("april", "reject", "1")
    code, out, err = lab["as"]("april", "reject", "1", "--reason", "wait for the new data")
    assert code == 0 and "rejected #1 by april" in out, err
    assert registry.promotion_request(1)["status"] == "rejected"
    assert registry.alias_holder(MODEL, "production") is None
    assert _promote(lab, "carl")[0] == 0
    code, out, err = lab["as"]("carl", "reject", "2", "--reason", "wrong version")
    assert code == 0 and "withdrawn #2 by carl" in out, err
    actions = [e["action"] for e in registry.history(MODEL)[-4:]]
    assert actions == [
        "promotion.request",
        "promotion.reject",
        "promotion.request",
        "promotion.withdraw",
    ]
    code, out, _ = lab["as"](lab["reader"], "requests", "--json")
    assert [r["status"] for r in json.loads(out)] == ["withdrawn", "rejected"]


def test_force_is_an_admins_and_audited_as_forced(lab):
    registry = lab["registry"]
    for who in ("carl", "april"):
        before = snapshot(registry)
        code, out, err = _promote(lab, who, f"{MODEL}:1", "--force")
        assert code == 2 and "is refused `promotion.force`" in err
        assert snapshot(registry) == before
    code, out, err = _promote(lab, "ada", f"{MODEL}:1", "--force")
    assert code == 0 and "without a second approval" in out, err
    event = registry.history(MODEL)[-1]
    assert (event["action"], event["actor"], event["forced"]) == ("promote", "ada", True)
    assert registry.promotion_requests() == []
    code, out, _ = lab["as"](lab["reader"], "history", MODEL)
    assert "FORCED" in out.splitlines()[-1]


def test_staging_moves_directly_for_a_contributor(lab):
    registry = lab["registry"]
    add_benchmark(lab["admin"], f"{MODEL}:2", {"accuracy": [0.91], "macro_f1": [0.90]})
    code, out, err = lab["as"]("carl", "promote", f"{MODEL}:2", "--to", "staging",
                               "--reason", "better")  # fmt: skip
    assert code == 0 and f"promoted {MODEL}@staging: {MODEL}:1 -> {MODEL}:2" in out, err
    assert registry.history(MODEL)[-1]["actor"] == "carl"
    code, out, err = lab["as"](None, "promote", f"{MODEL}:1", "--to", "staging", "--reason", "x")
    assert code == 2 and "needs a token" in err


def test_another_policy_file_is_an_admins(lab, tmp_path):
    from transferlab.promotion import DEFAULT_POLICY_PATH

    lax = tmp_path / "lax.yaml"
    lax.write_text(DEFAULT_POLICY_PATH.read_text().replace("true", "false"))
    before = snapshot(lab["registry"])
    code, out, err = _promote(lab, "carl", f"{MODEL}:1", "--policy", str(lax))
    assert code == 2 and "is refused `policy.override`" in err
    assert snapshot(lab["registry"]) == before


def test_without_users_production_moves_at_once_as_before(registry, run_cli, monkeypatch):
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    monkeypatch.setenv("TRANSFERLAB_USER", "solo")
    build_registry(registry)
    add_benchmark(registry, f"{MODEL}:1", {"accuracy": [0.9], "macro_f1": [0.9]})
    where = ("--registry", registry.location)
    for target in ("staging", "production"):
        code, out, err = run_cli("promote", f"{MODEL}:1", "--to", target, "--reason", "r", *where)
        assert code == 0 and f"promoted {MODEL}@{target}" in out, err
    assert registry.promotion_requests() == [] and not registry.team_mode()
    solo = "anonymous" if is_served(registry) else "solo"  # a service names no claimed user
    assert [e["actor"] for e in registry.history(MODEL)] == [solo, solo]
