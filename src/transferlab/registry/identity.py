"""Who may do what on a team registry: users with a role, API tokens, the table of actions.

A registry with no user is a one-person registry, as it always was: every write is allowed and
the audit log names $TRANSFERLAB_USER or the login name. The first user, who must be an admin,
turns *team mode* on (`transferlab users add NAME --role admin`, allowed without a token while
the registry has no user). From then on every write needs a token ($TRANSFERLAB_TOKEN or
`--token`): the write connection authenticates it and checks the role before anything is
written (`Registry.connect`), and the audit log names the token's user, never a claimed name.

Tokens look like `tlab_<token id: 12 hex>_<secret: 43 url-safe characters>` (256 random bits).
The id is looked up; only the SHA-256 of the whole token is stored and compared in constant
time. A fast hash is right here: the secret is random, not a password a person chose, so no
dictionary or brute force can reach it and a slow KDF would only slow every write. A pepper
would have to be known to every client that verifies (each verifies itself on a shared
database), so it would not stay secret; the REST service is the place for one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from transferlab.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    TransferlabError,
)
from transferlab.registry.refs import validate_name
from transferlab.registry.rows import Connection, dict_rows, utc_now

if TYPE_CHECKING:
    from collections.abc import Iterator

ROLES = ("reader", "contributor", "approver", "admin")  # each may do what the ones before may

#: every action the registry (and the REST service) checks -> the least role that may do it
ACTIONS: dict[str, str] = {
    "read": "reader",  # search, show, download (checked by the REST service; reads are open here)
    "tokens.own": "reader",  # create, list and revoke one's own tokens
    "write": "contributor",  # record runs and results, register/import versions, sync the catalog
    "alias.move": "contributor",  # set or remove an alias that is not protected; promote to it
    "promotion.request": "contributor",  # ask for a protected alias to move (four-eyes)
    "promotion.approve": "approver",  # approve someone else's request (the alias moves)
    "promotion.reject": "approver",  # reject someone else's request (one's own: withdraw)
    "promotion.force": "admin",  # promote past failed gates and without approval
    "alias.protected": "admin",  # set or remove a protected alias directly (recorded as forced)
    "policy.override": "admin",  # promote under a policy file other than the packaged one
    "users.manage": "admin",  # add and disable users
    "tokens.manage": "admin",  # create, list and revoke other users' tokens
}
#: aliases that move only through an approved request (or an admin's audited --force)
PROTECTED_ALIASES = ("production",)

TOKEN_PREFIX = "tlab_"
TOKEN_VARIABLE = "TRANSFERLAB_TOKEN"
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 365
_TOKEN = re.compile(r"^tlab_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class User:
    """An authenticated user: who the audit log names and what the role allows."""

    name: str
    role: str
    token_id: str | None = None


def role_allows(role: str, action: str) -> bool:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    return ROLES.index(role) >= ROLES.index(ACTIONS[action])


def require(user: User, action: str) -> None:
    """Refuse `action` unless the user's role reaches the least role the table gives it."""
    if not role_allows(user.role, action):
        needed = ACTIONS[action]
        raise PermissionDeniedError(
            f"{user.name} (role {user.role}) is refused `{action}`: it needs the role "
            f"{needed} or above. Nothing was changed.",
            f"Ask someone whose role is {needed} or above to do it (`transferlab users "
            "list` names them), or an admin for such an account.",
        )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_token(token: str) -> str:
    """The token id of a well-formed token; refuses anything else without echoing it."""
    match = _TOKEN.match(token.strip()) if isinstance(token, str) else None
    if match is None:
        raise AuthenticationError(
            "The token given (TRANSFERLAB_TOKEN or --token) is not a transferlab token: they "
            "look like tlab_<12 hex digits>_<43 characters>.",
            "Copy the whole token printed by `transferlab tokens create` (or `users add`), "
            f"e.g. export {TOKEN_VARIABLE}='tlab_...'.",
        )
    return match.group(1)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise TransferlabError(f"Unknown role {role!r}.", f"Use one of: {', '.join(ROLES)}.")


def _check_days(days: float) -> None:
    if not 0 < days <= MAX_TOKEN_DAYS:
        raise TransferlabError(
            f"A token's lifetime must be more than 0 and at most {MAX_TOKEN_DAYS} days; "
            f"got {days:g}.",
            f"Give --expires-in DAYS between 1 and {MAX_TOKEN_DAYS} (default "
            f"{DEFAULT_TOKEN_DAYS}); create a new token when it runs out.",
        )


class IdentityMixin:
    """Users, tokens, team mode and the write guard, for Registry (api.py)."""

    display_location: str
    _token: str | None
    _claimed_actor: str
    _user: User | None
    _guard: threading.local  # `off`: inside an identity transaction of this thread

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def transaction(self) -> AbstractContextManager: ...

    # -- who is acting --------------------------------------------------------------------------

    @property
    def actor(self) -> str:
        """Who the audit log names: on a team registry the token's user, else the name given
        or taken from the environment. Every write authenticates the token again; this only
        reads, once, so that a report made before the first write names the same user."""
        if self._user is None and self._token and not getattr(self._guard, "looked", False):
            self._guard.looked = True
            with suppress(TransferlabError), self.connect(read_only=True) as con:
                if _has_users(con):
                    self._user = _verify(con, self._token, self.display_location)
        return self._user.name if self._user is not None else self._claimed_actor

    @actor.setter
    def actor(self, name: str) -> None:
        self._claimed_actor = name

    def team_mode(self) -> bool:
        """Whether the registry has users (then every write needs a token)."""
        with self.connect(read_only=True) as con:
            return _has_users(con)

    def whoami(self) -> User | None:
        """The token's user on a team registry (authenticated now), None on a one-person one."""
        with self.connect(read_only=True) as con:
            return self._authenticated(con) if _has_users(con) else None

    def authenticate(self, token: str) -> User:
        """The user a token belongs to; refuses a malformed, unknown, forged, revoked or
        expired token and a disabled user, each with its own error. Records its last use."""
        with self._identity_transaction() as con:
            user = _verify(con, token, self.display_location)
            _touch(con, user)
            return user

    def require_action(self, action: str) -> User | None:
        """Authenticate and refuse `action` unless the role allows it (nothing is changed);
        None on a one-person registry, where everything is allowed."""
        with self._identity_transaction() as con:
            return self._require_in(con, action)

    def _require_in(self, con: Connection, action: str) -> User | None:
        if not _has_users(con):
            return None
        user = self._authenticated(con)
        require(user, action)
        _touch(con, user)
        return user

    def _authenticated(self, con: Connection) -> User:
        if not self._token:
            raise AuthenticationError(
                f"The registry {self.display_location} is a team registry: changing it needs "
                "a token, and none was given.",
                f"Set {TOKEN_VARIABLE}=tlab_... (or pass --token); an admin creates one with "
                "`transferlab tokens create --user YOUR_NAME`.",
            )
        self._user = _verify(con, self._token, self.display_location)
        return self._user

    def _check_writer(self, con: Connection) -> None:
        """Called on every write connection: on a team registry, authenticate the token and
        require the `write` role before anything is written."""
        if getattr(self._guard, "off", 0):
            return
        if _has_users(con):
            user = self._authenticated(con)
            require(user, "write")
            _touch(con, user)
        else:
            self._user = None

    @contextmanager
    def _identity_transaction(self) -> Iterator[Connection]:
        """A write transaction that checks roles itself (a reader may manage own tokens)."""
        with self._unchecked(), self.transaction() as con:
            yield con

    @contextmanager
    def _unchecked(self) -> Iterator[None]:
        """Writes in this thread skip the write guard: the block checks roles itself, or is
        housekeeping no one asked for (a run whose process is gone marked interrupted, which a
        reader's `transferlab runs` may do)."""
        self._guard.off = getattr(self._guard, "off", 0) + 1
        try:
            yield
        finally:
            self._guard.off -= 1

    # -- users ----------------------------------------------------------------------------------

    def add_user(self, name: str, role: str) -> tuple[dict, str]:
        """Add a user and create their first token; returns (the user with `token`: that
        token's row, no secret in it; the token itself, shown once).

        On a registry with no user only an admin may be added, without a token (this turns
        team mode on); afterwards it takes an admin's token."""
        validate_name(name, "user name")
        _check_role(role)
        with self._identity_transaction() as con:
            if _has_users(con):
                creator = self._require_in(con, "users.manage").name
            elif role != "admin":
                raise PermissionDeniedError(
                    f"The registry {self.display_location} has no user yet, so the first one "
                    f"must be an admin (asked: {name} as {role}).",
                    f"Start with `transferlab users add YOUR_NAME --role admin`, then add {name}.",
                )
            else:
                creator = self._claimed_actor  # the bootstrap: the one unauthenticated write
            if con.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchall():
                raise PermissionDeniedError(
                    f"A user named {name!r} already exists; nothing was changed.",
                    "Choose another name, or create a token for them with "
                    f"`transferlab tokens create --user {name}`.",
                )
            con.execute(
                "INSERT INTO users (name, role, created_at, created_by) VALUES (?, ?, ?, ?)",
                [name, role, utc_now(), creator],
            )
            token = _insert_token(con, name, creator, DEFAULT_TOKEN_DAYS, "first token")
            first = _token_rows(con, "WHERE token_id = ?", [parse_token(token)])[0]
            return {**_user_row(con, name), "token": first}, token

    def disable_user(self, name: str) -> dict:
        """Disable a user (their tokens stop working at once); an admin's act."""
        with self._identity_transaction() as con:
            admin = self._require_in(con, "users.manage")
            row = _user_row(con, name)
            if admin is not None and admin.name == name:
                raise PermissionDeniedError(
                    f"{name} may not disable their own account; nothing was changed.",
                    "Ask another admin to do it.",
                )
            con.execute(
                "UPDATE users SET disabled = true, disabled_at = ?, disabled_by = ? WHERE name = ?",
                [utc_now(), admin.name if admin else self._claimed_actor, name],
            )
            return {**row, "disabled": True}

    def users(self) -> list[dict]:
        return _rows(self, "SELECT * FROM users ORDER BY name")

    # -- tokens ---------------------------------------------------------------------------------

    def create_token(
        self,
        user: str | None = None,
        *,
        expires_in_days: float = DEFAULT_TOKEN_DAYS,
        description: str | None = None,
    ) -> tuple[dict, str]:
        """A new token for `user` (default: the token's own user); returns (its row without
        any secret, the token, which is shown this once and stored only as a hash)."""
        _check_days(expires_in_days)
        with self._identity_transaction() as con:
            me = self._require_in(con, "tokens.own")
            if me is None:
                raise PermissionDeniedError(
                    f"The registry {self.display_location} has no users, so tokens mean "
                    "nothing on it yet.",
                    "Turn team mode on with `transferlab users add YOUR_NAME --role admin` "
                    "(it prints your first token).",
                )
            owner = user or me.name
            if owner != me.name:
                require(me, "tokens.manage")
            _user_row(con, owner)
            token = _insert_token(con, owner, me.name, expires_in_days, description)
            return _token_rows(con, "WHERE token_id = ?", [parse_token(token)])[0], token

    def tokens(self, user: str | None = None, *, include_inactive: bool = False) -> list[dict]:
        """Tokens (never their secret or hash): one's own, or an admin's choice (all users
        when `user` is None and the caller is an admin)."""
        with self._identity_transaction() as con:
            me = self._require_in(con, "tokens.own")
            if me is None:
                owner = user
            elif user is None:
                owner = None if role_allows(me.role, "tokens.manage") else me.name
            else:
                if user != me.name:
                    require(me, "tokens.manage")
                owner = user
            clauses, params = [], []
            if owner is not None:
                clauses.append("user_name = ?")
                params.append(owner)
            if not include_inactive:
                clauses.append("revoked_at IS NULL AND expires_at > ?")
                params.append(utc_now())
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            return _token_rows(con, where, params)

    def revoke_token(self, token_id: str) -> dict:
        """Revoke a token at once (one's own, or any as an admin); it is kept, marked revoked."""
        with self._identity_transaction() as con:
            me = self._require_in(con, "tokens.own")
            rows = _token_rows(con, "WHERE token_id = ?", [token_id])
            if not rows:
                raise NotFoundError(
                    f"No token with id {token_id!r} in the registry {self.display_location}.",
                    "See the ids with `transferlab tokens list` (the id is the 12 hex digits "
                    "after tlab_).",
                )
            if me is not None and rows[0]["user_name"] != me.name:
                require(me, "tokens.manage")
            if rows[0]["revoked_at"] is None:
                con.execute(
                    "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE token_id = ?",
                    [utc_now(), me.name if me else self._claimed_actor, token_id],
                )
            return _token_rows(con, "WHERE token_id = ?", [token_id])[0]


# -- helpers (SQL on a connection the caller holds) ---------------------------------------------

_TOKEN_COLUMNS = (
    "token_id, user_name, description, created_at, created_by, expires_at, revoked_at, "
    "revoked_by, last_used_at"
)


def _rows(registry: Any, sql: str, params: list | None = None) -> list[dict]:
    with registry.connect(read_only=True) as con:
        return dict_rows(con, sql, params or [])


def _has_users(con: Connection) -> bool:
    return bool(con.execute("SELECT 1 FROM users LIMIT 1").fetchall())


def _user_row(con: Connection, name: str) -> dict:
    rows = dict_rows(con, "SELECT * FROM users WHERE name = ?", [name])
    if not rows:
        raise NotFoundError(
            f"No user named {name!r} in this registry.",
            "See the users with `transferlab users list`; an admin adds one with "
            f"`transferlab users add {name} --role ROLE`.",
        )
    return rows[0]


def _token_rows(con: Connection, where: str, params: list) -> list[dict]:
    return dict_rows(
        con,
        f"SELECT {_TOKEN_COLUMNS} FROM api_tokens {where} ORDER BY created_at, token_id",
        params,
    )


def _insert_token(
    con: Connection, user: str, creator: str, days: float, description: str | None
) -> str:
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    now = utc_now()
    con.execute(
        "INSERT INTO api_tokens (token_id, user_name, secret_sha256, created_at, created_by, "
        "expires_at, description) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [token_id, user, token_hash(token), now, creator, now + timedelta(days=days), description],
    )
    return token


def _verify(con: Connection, token: str, where: str) -> User:
    token_id = parse_token(token)
    rows = con.execute(
        "SELECT t.secret_sha256, t.expires_at, t.revoked_at, u.name, u.role, "
        "u.disabled FROM api_tokens t LEFT JOIN users u ON u.name = t.user_name "
        "WHERE t.token_id = ?",
        [token_id],
    ).fetchall()
    fix = "Ask an admin for a new token (`transferlab tokens create --user YOUR_NAME`)."
    if not rows:
        raise AuthenticationError(
            f"Token tlab_{token_id}_... is not known to the registry {where}.",
            "Check TRANSFERLAB_TOKEN / --token and --registry (a token belongs to one "
            "registry). " + fix,
        )
    digest, expires_at, revoked_at, name, role, disabled = rows[0]
    if not hmac.compare_digest(digest, token_hash(token.strip())):
        raise AuthenticationError(
            f"Token tlab_{token_id}_... does not match the one issued with that id; it was "
            "refused.",
            "Copy the whole token as it was printed. " + fix,
        )
    now = utc_now()
    if revoked_at is not None:
        raise AuthenticationError(f"Token tlab_{token_id}_... was revoked at {revoked_at}.", fix)
    if expires_at <= now:
        raise AuthenticationError(f"Token tlab_{token_id}_... expired at {expires_at}.", fix)
    if name is None or disabled:
        raise AuthenticationError(
            f"The user {name or '(deleted)'} of token tlab_{token_id}_... is disabled.",
            "Ask an admin about the account.",
        )
    return User(name=name, role=role, token_id=token_id)


def _touch(con: Connection, user: User) -> None:
    """Record a token's use (once a minute at most, so that a busy client writes little)."""
    now = utc_now()
    con.execute(
        "UPDATE api_tokens SET last_used_at = ? WHERE token_id = ? "
        "AND (last_used_at IS NULL OR last_used_at < ?)",
        [now, user.token_id, now - timedelta(minutes=1)],
    )
