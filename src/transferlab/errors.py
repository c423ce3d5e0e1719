"""Errors a user can act on: each says what was wrong and what to do about it."""

from __future__ import annotations


class TransferlabError(Exception):
    """Base class for every error transferlab reports to a user.

    `problem` says what went wrong (with the offending value); `fix` says what to do.
    The CLI prints both without a traceback.
    """

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  -> {fix}")


class RegistryError(TransferlabError):
    """The registry file cannot be used as asked (locked, newer schema, missing row...)."""


class RegistryLockedError(RegistryError):
    """Another process held the registry for longer than the bounded wait."""


class RegistryUnavailableError(RegistryError):
    """The registry's database server could not be reached, or dropped the connection (a
    restart). `retry_safe`: the operation was certainly not done (it failed before its
    commit), so it may be sent again; False when a commit's outcome is unknown."""

    def __init__(self, problem: str, fix: str | None = None, *, retry_safe: bool = True):
        super().__init__(problem, fix)
        self.retry_safe = retry_safe


class NotFoundError(TransferlabError):
    """A model, version, alias or run that does not exist."""


class CatalogError(TransferlabError):
    """A malformed catalog file or entry."""


class ModelSourceError(TransferlabError):
    """A model folder or hub id that cannot be read."""


class DataError(TransferlabError):
    """Labelled data that cannot be used as given."""


class AuthenticationError(TransferlabError):
    """A team registry refused a token: none, malformed, unknown, forged, revoked, expired, or
    its user disabled. Nothing was changed."""


class PermissionDeniedError(TransferlabError):
    """The authenticated user's role does not allow the action. Nothing was changed."""
