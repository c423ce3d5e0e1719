"""Who is calling: the Bearer token of a request, authenticated by the registry's own code.

Every request gets its own `Registry` (`Registry.with_token`: the service's backend, the
request's token), so the rules are those of a client on the shared registry (identity.py):
the token is verified (unknown, forged, revoked, expired, a disabled user: 401), every read
needs the `read` action (reader and above), and every write is authenticated again and checked
for its action inside its own transaction (a role that may not: 403). The audit log names the
token's user; nothing a client sends can name someone else.

A registry without users (one-person mode) has no one to authenticate: the service refuses to
serve it unless started with `--allow-anonymous`, and then every caller is `anonymous` (which
the audit log names) and may do everything, as on the one-person file. A token sent to such a
registry is refused (401): it cannot be checked, and the caller should know.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from transferlab.errors import AuthenticationError, PermissionDeniedError
from transferlab.registry import Registry
from transferlab.registry.identity import TOKEN_VARIABLE, User, parse_token, require

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request and the registry opened for them."""

    registry: Registry
    user: User | None  # None: anonymous, on a registry without users served --allow-anonymous

    @property
    def name(self) -> str:
        return self.user.name if self.user is not None else ANONYMOUS

    def require(self, action: str) -> None:
        """Refuse `action` (403) unless the caller's role allows it; anonymous may all."""
        if self.user is not None:
            require(self.user, action)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when there is no header.
    A header of another kind, or a value that is no transferlab token, is refused (401)."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationError(
            "The Authorization header is not `Bearer <token>`.",
            f"Send `Authorization: Bearer tlab_...` (the CLI sends ${TOKEN_VARIABLE}).",
        )
    token = value.strip()
    parse_token(token)  # malformed: refused here, without echoing it
    return token


def authenticate(base: Registry, token: str | None, *, allow_anonymous: bool) -> Caller:
    """The caller a token stands for, with a registry opened for them; refuses (401) a missing
    or bad token on a team registry, and anonymous calls unless they are allowed."""
    registry = base.with_token(token, actor=ANONYMOUS)
    if token is None:
        if registry.team_mode():
            raise AuthenticationError(
                "This registry is a team registry: every request needs a token, and none was sent.",
                f"Send `Authorization: Bearer tlab_...` (the CLI sends ${TOKEN_VARIABLE}); an "
                "admin creates one with `transferlab tokens create --user YOUR_NAME`.",
            )
        user = None
    else:
        user = registry.whoami()  # verifies the token (read-only); None: no users
        if user is None:
            raise AuthenticationError(
                "This registry has no users, so no token can be checked; the token was refused.",
                "Send no Authorization header, or turn team mode on (`transferlab users add "
                "NAME --role admin`).",
            )
    if user is None and not allow_anonymous:
        raise PermissionDeniedError(
            "This registry has no users and the service was not started with "
            "--allow-anonymous, so it serves no one.",
            "Turn team mode on (`transferlab users add NAME --role admin`), or restart the "
            "service with --allow-anonymous on a trusted network.",
        )
    caller = Caller(registry, user)
    caller.require("read")
    return caller


def caller_of(request: Request) -> Caller:
    """The FastAPI dependency: the request's authenticated caller (remembered for the access
    log)."""
    service = request.app.state.service
    token = bearer_token(request.headers.get("authorization"))
    caller = authenticate(service.registry, token, allow_anonymous=service.allow_anonymous)
    request.state.user = caller.name
    return caller
