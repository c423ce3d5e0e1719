"""Aliases of model versions and the audit log of their moves, for Registry (api.py)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.errors import NotFoundError
from transferlab.registry.identity import PROTECTED_ALIASES
from transferlab.registry.refs import validate_name
from transferlab.registry.rows import Connection, dict_rows, to_json

if TYPE_CHECKING:
    from transferlab.registry.records import VersionRecord


class AliasesMixin:
    """Every alias move (set, remove, promote) is written to the audit log with who, when,
    from, to and why, in the transaction that moves it."""

    path: Path | None
    display_location: str
    actor: str

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def transaction(self) -> AbstractContextManager: ...

        def resolve(self, ref: Any) -> VersionRecord: ...

        def _suggest(self, con: Connection, name: str) -> str: ...

        def _rows(self, sql: str, params: Any = ()) -> list[dict]: ...

        def _require_in(self, con: Connection, action: str) -> Any: ...

    def set_alias(
        self,
        ref: str,
        alias: str,
        *,
        reason: str | None = None,
        action: str = "alias.set",
        forced: bool = False,
        details: dict | None = None,
    ) -> dict:
        """Point `alias` of the version's model at that version, with an audit entry."""
        validate_name(alias, "alias")
        version = self.resolve(ref)
        with self.transaction() as con:
            protected = alias in PROTECTED_ALIASES
            user = self._require_in(con, "alias.protected" if protected else "alias.move")
            if user is not None and protected:
                forced = True  # a team registry: an admin skipped the four-eyes approval
            from_version = move_alias(
                con, self.actor, version, alias, reason, action, forced, details or {}
            )
        return {
            "model": version.model_name,
            "alias": alias,
            "from": from_version,
            "to": version.version_id,
        }

    def remove_alias(self, model_name: str, alias: str, *, reason: str | None = None) -> None:
        with self.transaction() as con:
            self._require_in(con, "alias.protected" if alias in PROTECTED_ALIASES else "alias.move")
            previous = con.execute(
                "SELECT version_id FROM aliases WHERE model_name = ? AND alias = ?",
                [model_name, alias],
            ).fetchall()
            if not previous:
                if not con.execute("SELECT 1 FROM models WHERE name = ?", [model_name]).fetchall():
                    raise NotFoundError(
                        f"No model named {model_name!r} in the registry {self.display_location}.",
                        self._suggest(con, model_name),
                    )
                raise NotFoundError(
                    f"{model_name}@{alias} is not set.",
                    f"See the aliases with `transferlab show {model_name}`.",
                )
            con.execute(
                "DELETE FROM aliases WHERE model_name = ? AND alias = ?", [model_name, alias]
            )
            con.execute(
                "INSERT INTO audit_log (actor, action, model_name, alias, from_version, reason) "
                "VALUES (?, 'alias.remove', ?, ?, ?, ?)",
                [self.actor, model_name, alias, previous[0][0], reason],
            )

    def alias_holder(self, model_name: str, alias: str) -> str | None:
        """The version `model_name@alias` points at, or None when it is not set."""
        rows = self._rows(
            "SELECT version_id FROM aliases WHERE model_name = ? AND alias = ?",
            [model_name, alias],
        )
        return rows[0]["version_id"] if rows else None

    def has_held_alias(self, model_name: str, alias: str, version_id: str) -> bool:
        """Whether `model_name@alias` points at the version now or ever did (audit log)."""
        return bool(
            self._rows(
                "SELECT 1 AS hit FROM aliases WHERE model_name = ? AND alias = ? "
                "AND version_id = ? UNION ALL SELECT 1 FROM audit_log WHERE model_name = ? "
                "AND alias = ? AND to_version = ? LIMIT 1",
                [model_name, alias, version_id, model_name, alias, version_id],
            )
        )

    def aliases(self, model_name: str | None = None) -> list[dict]:
        """The aliases of one model (which must exist), or of every model."""
        return self._of_model(
            "SELECT model_name, alias, version_id, updated_at FROM aliases",
            model_name,
            "model_name, alias",
        )

    def history(self, model_name: str | None = None) -> list[dict]:
        """The audit log of one model (which must exist), or of every model, oldest first."""
        return self._of_model("SELECT * FROM audit_log", model_name, "event_id")

    def _of_model(self, sql: str, model_name: str | None, order: str) -> list[dict]:
        with self.connect(read_only=True) as con:
            if model_name is None:
                return dict_rows(con, f"{sql} ORDER BY {order}")
            found = dict_rows(con, f"{sql} WHERE model_name = ? ORDER BY {order}", [model_name])
            if (
                not found
                and not con.execute("SELECT 1 FROM models WHERE name = ?", [model_name]).fetchall()
            ):
                raise NotFoundError(
                    f"No model named {model_name!r} in the registry {self.display_location}.",
                    self._suggest(con, model_name),
                )
            return found


def move_alias(
    con: Connection,
    actor: str,
    version: VersionRecord,
    alias: str,
    reason: str | None,
    action: str,
    forced: bool,
    details: dict,
) -> str | None:
    """Point the alias at the version and write its audit entry, in the caller's transaction;
    returns the version it pointed at before."""
    previous = con.execute(
        "SELECT version_id FROM aliases WHERE model_name = ? AND alias = ?",
        [version.model_name, alias],
    ).fetchall()
    from_version = previous[0][0] if previous else None
    con.execute(
        "INSERT INTO aliases (model_name, alias, version_id, updated_at) "
        "VALUES (?, ?, ?, current_timestamp) ON CONFLICT (model_name, alias) DO UPDATE SET "
        "version_id = excluded.version_id, updated_at = excluded.updated_at",
        [version.model_name, alias, version.version_id],
    )
    con.execute(
        "INSERT INTO audit_log (actor, action, model_name, alias, from_version, "
        "to_version, reason, forced, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            actor,
            action,
            version.model_name,
            alias,
            from_version,
            version.version_id,
            reason,
            forced,
            to_json(details),
        ],
    )
    return from_version
