"""A team registry's identity: the first admin turns team mode on, tokens (shown once, stored
as a hash, refused when malformed, unknown, forged, revoked, expired or of a disabled user),
the table of actions by role over every guarded write, and the audit log naming the token's
user. On both backends (the `registry` fixture)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from tests.conftest import direct, is_served
from tests.test_promotion import MODEL, add_benchmark, build_registry
from transferlab import Registry
from transferlab.errors import AuthenticationError, PermissionDeniedError, TransferlabError
from transferlab.promotion import approve, promote
from transferlab.registry import identity
from transferlab.registry.identity import ACTIONS, PROTECTED_ALIASES, ROLES, role_allows

SERVED = True  # the registry suite: also through the service (conftest.py)

# -- helpers ------------------------------------------------------------------------------------


class Team:
    """A team registry with one user per role, a Registry handle per credential and tokens."""

    def __init__(self, registry: Registry):
        self.location = registry.location
        self.plain = direct(registry)  # no token, on the database: the tests' own view
        admin, self.tokens = registry.add_user("ada", "admin")
        self.tokens = {"admin": self.tokens}
        self.admin = self.handle(self.tokens["admin"])
        for role, name in (("reader", "rita"), ("contributor", "carl"), ("approver", "april")):
            _, self.tokens[role] = self.admin.add_user(name, role)
        self.names = {"admin": "ada", "reader": "rita", "contributor": "carl", "approver": "april"}

    def handle(self, token: str | None, **kwargs) -> Registry:
        return Registry(self.location, token=token, **kwargs)

    def token_id(self, role: str) -> str:
        return identity.parse_token(self.tokens[role])


def snapshot(registry: Registry) -> dict:
    """Everything a refused call must leave as it was (a token's last use aside: a valid token
    that was used is recorded as used even when the action is refused)."""
    tables = {
        "models": "name",
        "model_versions": "version_id",
        "aliases": "model_name, alias",
        "audit_log": "event_id",
        "runs": "run_id",
        "results": "result_id",
        "users": "name",
        "api_tokens": "token_id",
        "promotion_requests": "request_id",
        "training_scores": "run_id, step, metric",
    }
    state = {}
    for table, order in tables.items():
        rows = registry.query(f"SELECT * FROM {table} ORDER BY {order}")
        for row in rows:
            row.pop("last_used_at", None)
        state[table] = rows
    return state


@pytest.fixture
def team(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Team:
    monkeypatch.delenv("TRANSFERLAB_TOKEN", raising=False)
    build_registry(registry)
    return Team(registry)


# -- bootstrap and team mode --------------------------------------------------------------------


def test_a_new_registry_is_a_one_person_registry(registry):
    assert not registry.team_mode() and registry.whoami() is None
    build_registry(registry)  # writes need no token
    assert registry.users() == [] and registry.require_action("users.manage") is None


def test_the_first_user_must_be_an_admin_and_turns_team_mode_on(registry):
    build_registry(registry)
    with pytest.raises(PermissionDeniedError, match="the first one must be an admin"):
        registry.add_user("carl", "contributor")
    assert not registry.team_mode()
    user, token = registry.add_user("ada", "admin")
    assert user["role"] == "admin" and user["token"]["user_name"] == "ada"
    assert direct(registry).team_mode()
    # from now on: no token, no write (over HTTP, no call at all); users need an admin token
    with pytest.raises(AuthenticationError, match="is a team registry: .* needs a token"):
        registry.add_version(MODEL, "adapter", "/nowhere")
    with pytest.raises(AuthenticationError, match="needs a token"):
        registry.add_user("eve", "admin")
    assert Registry(registry.location, token=token).whoami().name == "ada"


def test_bad_user_input_is_named(team):
    with pytest.raises(TransferlabError, match="Unknown role 'boss'"):
        team.admin.add_user("bob", "boss")
    with pytest.raises(PermissionDeniedError, match="A user named 'carl' already exists"):
        team.admin.add_user("carl", "reader")
    with pytest.raises(TransferlabError, match="at most 365 days; got 400"):
        team.admin.create_token(expires_in_days=400)
    with pytest.raises(TransferlabError, match="No user named 'nobody'"):
        team.admin.create_token("nobody")
    with pytest.raises(TransferlabError, match="No token with id 'ffffffffffff'"):
        team.admin.revoke_token("ffffffffffff")
    with pytest.raises(PermissionDeniedError, match="may not disable their own account"):
        team.admin.disable_user("ada")


# -- tokens -------------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_only_its_hash_is_stored(team):
    row, token = team.admin.create_token("carl", description="ci job", expires_in_days=7)
    assert token.startswith(f"tlab_{row['token_id']}_") and len(token) == 5 + 12 + 1 + 43
    assert "secret" not in json.dumps(row, default=str) and token not in str(row)
    stored = team.plain.query("SELECT * FROM api_tokens WHERE token_id = ?", [row["token_id"]])
    assert stored[0]["secret_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    everything = json.dumps(snapshot(team.plain), default=str)
    for issued in [token, *team.tokens.values()]:
        assert issued not in everything and issued[18:] not in everything  # nor the secret
    listed = team.admin.tokens("carl")
    assert {t["token_id"] for t in listed} == {team.token_id("contributor"), row["token_id"]}
    assert all("secret_sha256" not in t for t in listed)
    assert (row["expires_at"] - row["created_at"]) == timedelta(days=7)
    assert team.handle(token).whoami().name == "carl"


def test_refused_tokens_each_say_why(team, monkeypatch):
    good = team.tokens["contributor"]
    token_id = team.token_id("contributor")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    unknown = "tlab_" + "0" * 12 + good[17:]
    cases = {
        "garbage": "is not a transferlab token",
        good[:-1]: "is not a transferlab token",  # one character short
        unknown: "is not known to the registry",
        forged: "does not match the one issued with that id",
    }
    for token, message in cases.items():
        with pytest.raises(AuthenticationError, match=message) as refused:
            team.plain.authenticate(token)
        assert token not in str(refused.value) or token == "garbage"
    # revoked, then a disabled user, then expired
    row, other = team.admin.create_token("carl")
    team.handle(good).revoke_token(token_id)  # one's own
    with pytest.raises(AuthenticationError, match=f"tlab_{token_id}_... was revoked"):
        team.plain.authenticate(good)
    team.admin.disable_user("carl")
    with pytest.raises(AuthenticationError, match="The user carl of token .* is disabled"):
        team.plain.authenticate(other)
    later = identity.utc_now() + timedelta(days=91)
    monkeypatch.setattr(identity, "utc_now", lambda: later)
    with pytest.raises(AuthenticationError, match="expired at"):
        team.plain.authenticate(team.tokens["reader"])


def test_a_reader_manages_only_their_own_tokens(team):
    reader = team.handle(team.tokens["reader"])
    row, _ = reader.create_token(description="laptop")
    assert row["user_name"] == "rita" and row["created_by"] == "rita"
    assert {t["user_name"] for t in reader.tokens()} == {"rita"}
    with pytest.raises(PermissionDeniedError, match="refused `tokens.manage`"):
        reader.tokens("carl")
    with pytest.raises(PermissionDeniedError, match="refused `tokens.manage`"):
        reader.revoke_token(team.token_id("contributor"))
    assert {t["user_name"] for t in team.admin.tokens()} == {"ada", "rita", "carl", "april"}
    reader.revoke_token(row["token_id"])
    assert row["token_id"] not in {t["token_id"] for t in reader.tokens()}
    assert row["token_id"] in {t["token_id"] for t in reader.tokens(include_inactive=True)}


def test_the_audit_log_names_the_token_user_not_a_claimed_name(team, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_USER", "mallory")
    contributor = team.handle(team.tokens["contributor"], actor="mallory")
    contributor.set_alias(f"{MODEL}:1", "champion", reason="best so far")
    contributor.remove_alias(MODEL, "champion", reason="not any more")
    assert [e["actor"] for e in team.plain.history(MODEL)] == ["carl", "carl"]
    assert contributor.actor == "carl"
    assert team.handle(team.tokens["approver"], actor="mallory").actor == "april"  # before a write
    if not is_served(team.admin):  # (over HTTP a client without a token is no one)
        assert Registry(team.location).actor == "mallory"  # the claim, and it may not write


# -- the access matrix --------------------------------------------------------------------------


def _request(team: Team, by: str = "contributor") -> int:
    """An open request for production of MODEL:1 (the one already open, or a new one)."""
    for request in team.plain.promotion_requests(status="open"):
        return request["request_id"]
    return team.handle(team.tokens[by]).open_promotion_request(
        f"{MODEL}:1", "production", "ship it"
    )["request_id"]


def _no_open_request(team: Team) -> None:
    _prepared(team)
    for request in team.plain.promotion_requests(status="open"):
        team.admin.reject_promotion_request(request["request_id"], reason="setup")


def _prepared(team: Team) -> None:
    add_benchmark(team.admin, f"{MODEL}:1", {"accuracy": [0.9], "macro_f1": [0.9]})
    team.admin.set_alias(f"{MODEL}:1", "staging", reason="setup")


# action -> (what it needs, setup run by the admin returning a context, the call)
GUARDED = {
    "record a run": ("write", lambda t: None, lambda r, c, n: r.start_run("benchmark")),
    "register a version": (
        "write",
        lambda t: None,
        lambda r, c, n: r.add_version(MODEL, "adapter", f"/nowhere/{n}"),
    ),
    "move staging": (
        "alias.move",
        lambda t: None,
        lambda r, c, n: r.set_alias(f"{MODEL}:2", "staging", reason=n),
    ),
    "remove an alias": (
        "alias.move",
        lambda t: t.admin.set_alias(f"{MODEL}:1", "champion", reason="setup"),
        lambda r, c, n: r.remove_alias(MODEL, "champion", reason=n),
    ),
    "set production directly": (
        "alias.protected",
        lambda t: None,
        lambda r, c, n: r.set_alias(f"{MODEL}:1", "production", reason=n),
    ),
    "request production": (
        "promotion.request",
        _no_open_request,
        lambda r, c, n: promote(r, f"{MODEL}:1", "production", n),
    ),
    "approve a request": (
        "promotion.approve",
        lambda t: (_prepared(t), _request(t))[1],
        lambda r, c, n: approve(r, c, reason=n),
    ),
    "reject a request": (
        "promotion.reject",
        lambda t: _request(t, by="admin"),  # the admin's own: a withdrawal, which is allowed
        lambda r, c, n: r.reject_promotion_request(c, reason=n),
    ),
    "force production": (
        "promotion.force",
        lambda t: None,
        lambda r, c, n: promote(r, f"{MODEL}:2", "production", n, force=True),
    ),
    "add a user": ("users.manage", lambda t: None, lambda r, c, n: r.add_user(n, "reader")),
    "disable a user": (
        "users.manage",
        lambda t: t.admin.add_user(f"x{len(t.admin.users())}", "reader")[0]["name"],
        lambda r, c, n: r.disable_user(c),
    ),
    "create another's token": (
        "tokens.manage",
        lambda t: None,
        lambda r, c, n: r.create_token("ada", description=n),  # the admin's: only theirs
    ),
    "create one's own token": (
        "tokens.own",
        lambda t: None,
        lambda r, c, n: r.create_token(description=n),
    ),
}
BAD_CREDENTIALS = ("none", "malformed", "forged", "revoked", "expired")


def _bad_token(team: Team, kind: str) -> str | None:
    if kind == "none":
        return None
    if kind == "malformed":
        return "tlab_not-a-token"
    if kind == "forged":
        good = team.tokens["admin"]
        return good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    if kind == "disabled":  # a valid token of a user an admin has since disabled
        name = f"dora{len(team.plain.users())}"
        _, token = team.admin.add_user(name, "admin")
        team.admin.disable_user(name)
        return token
    row, token = team.admin.create_token("ada", expires_in_days=1)
    if kind == "revoked":
        team.admin.revoke_token(row["token_id"])
        return token
    return token  # expired: the clock is moved on below


@pytest.mark.parametrize("action", list(GUARDED), ids=lambda a: a.replace(" ", "-"))
def test_every_guarded_action_by_role_and_credential(team, action, monkeypatch):
    needed, setup, call = GUARDED[action]
    assert needed in ACTIONS
    for role in ROLES:
        context = setup(team)
        before = snapshot(team.plain)
        handle = team.handle(team.tokens[role])
        note = f"{action}-{role}".replace(" ", "-")
        if role_allows(role, needed):
            call(handle, context, note)
            assert snapshot(team.plain) != before, f"{role} may {action} but nothing changed"
        else:
            with pytest.raises(PermissionDeniedError, match=r"is refused `[a-z.]+`"):
                call(handle, context, note)
            assert snapshot(team.plain) == before, f"{role}'s refused {action} changed something"
    for kind in BAD_CREDENTIALS:
        token = _bad_token(team, kind)
        context = setup(team)
        before = snapshot(team.plain)
        with monkeypatch.context() as patch:
            if kind == "expired":
                later = identity.utc_now() + timedelta(days=2)
                patch.setattr(identity, "utc_now", lambda later=later: later)
            with pytest.raises(AuthenticationError):
                call(team.handle(token), context, f"{action}-{kind}".replace(" ", "-"))
        assert snapshot(team.plain) == before, f"a {kind} token's {action} changed something"


def test_the_table_of_actions_is_ordered_by_role():
    assert set(ACTIONS.values()) <= set(ROLES)
    for action in ACTIONS:
        allowed = [role_allows(role, action) for role in ROLES]
        assert allowed == sorted(allowed), f"{action}: a higher role may do less"
    assert PROTECTED_ALIASES == ("production",)
    with pytest.raises(ValueError, match="unknown action"):
        role_allows("admin", "teleport")


# -- through the command line -------------------------------------------------------------------


def test_users_and_tokens_through_the_cli(registry, run_cli, monkeypatch):
    build_registry(registry)
    where = ("--registry", registry.location)
    code, out, err = run_cli("users", "add", "ada", "--role", "admin", *where)
    assert code == 0, err
    admin_token = out.strip()
    assert admin_token.startswith("tlab_") and "team mode is on" in err
    assert "shown this once" in err
    code, out, err = run_cli("users", "add", "carl", "--role", "contributor", *where)
    assert code == 2 and "needs a token" in err and "TRANSFERLAB_TOKEN" in err
    code, out, err = run_cli(
        "users", "add", "carl", "--role", "contributor", "--token", admin_token, *where
    )
    assert code == 0, err
    carl_token = out.strip()
    monkeypatch.setenv("TRANSFERLAB_TOKEN", carl_token)
    code, out, _ = run_cli("whoami", *where)
    assert code == 0 and out.startswith("carl (contributor)")
    code, out, err = run_cli("users", "add", "eve", "--role", "admin", *where)
    assert code == 2 and "carl (role contributor) is refused `users.manage`" in err
    code, out, err = run_cli("tokens", "create", "--description", "laptop", "--json", *where)
    assert code == 0, err
    created = json.loads(out)
    assert created["user_name"] == "carl" and created["token"].startswith("tlab_")
    code, out, _ = run_cli("tokens", "list", *where)
    assert code == 0 and f"tlab_{created['token_id']}_..." in out
    assert created["token"] not in out and carl_token not in out
    code, out, err = run_cli("tokens", "revoke", created["token_id"], *where)
    assert code == 0 and "revoked" in out, err
    code, out, _ = run_cli("users", "list", *where)
    assert code == 0 and "ada" in out and "contributor" in out
    monkeypatch.setenv("TRANSFERLAB_TOKEN", "tlab_broken")
    code, out, err = run_cli("alias", "set", f"{MODEL}:1", "champion", *where)
    assert code == 2 and "is not a transferlab token" in err and "tlab_broken" not in err
    assert direct(registry).aliases(MODEL) == []


# -- upgrade in place ---------------------------------------------------------------------------


def test_a_schema_3_registry_upgrades_in_place(registry_location):
    """The tables of schema 4 are added to a registry of schema 3; its data stays."""
    from transferlab.registry.migrate import available_migrations, latest_schema_version

    if registry_location.startswith("http"):
        pytest.skip("a service migrates its own database (the duckdb and postgresql cases)")
    engine = "duckdb" if "://" not in registry_location else "postgresql"
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect(registry_location)
        run = con.execute
    else:
        import psycopg

        con = psycopg.connect(registry_location, autocommit=True)
        run = con.execute
    run("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")  # fmt: skip
    for number, name, sql in available_migrations(engine):
        if number <= 3:
            run(sql)
            run(f"INSERT INTO schema_version (version, name) VALUES ({number}, '{name}')")
    run(
        "INSERT INTO models (name, source, source_ref, task, content_hash) "
        "VALUES ('old', 'hf', 'org/old', 'feature-extraction', 'x')"
    )
    con.close()
    registry = Registry(registry_location)
    assert registry.schema_version() == latest_schema_version()
    assert registry.model_names() == ["old"] and registry.users() == []
    assert not registry.team_mode()
    registry.add_user("ada", "admin")
    assert registry.team_mode()


def test_reading_runs_needs_no_token_even_when_a_gone_run_is_marked(team):
    """`transferlab runs` marks this host's runs whose process is gone as interrupted:
    housekeeping, which a reader without a token may trigger."""
    import subprocess
    import sys

    if is_served(team.admin):
        pytest.skip("over HTTP every read needs a token (test_remote_registry: gone runs)")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    run_id = team.admin.start_run("finetune")
    with team.admin.connect() as con:
        con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [child.pid, run_id])
    reader = Registry(team.location)  # no token
    (run,) = [r for r in reader.runs() if r["run_id"] == run_id]
    assert run["status"] == "interrupted"
    with pytest.raises(AuthenticationError):
        reader.start_run("finetune")
