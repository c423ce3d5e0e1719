"""Four-eyes promotion requests, for Registry (api.py): open, approve (the alias moves in the
same transaction as the decision), reject or withdraw; each one an audit-log entry.

The gates are the promotion package's business: `transferlab.promotion.request_promotion` and
`approve` check them (with this process holding the registry) before calling these methods.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from transferlab.errors import NotFoundError, PermissionDeniedError, TransferlabError
from transferlab.registry.aliases import move_alias
from transferlab.registry.identity import require
from transferlab.registry.rows import Connection, dict_rows, to_json, utc_now

if TYPE_CHECKING:
    from transferlab.registry.identity import User
    from transferlab.registry.records import VersionRecord

REQUEST_STATUSES = ("open", "approved", "rejected", "withdrawn")
REQUEST_ACTION = "promotion.request"
APPROVE_ACTION = "promotion.approve"  # the alias move itself, with the request in its details
REJECT_ACTION = "promotion.reject"
WITHDRAW_ACTION = "promotion.withdraw"


class ApprovalsMixin:
    display_location: str
    actor: str

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def transaction(self) -> AbstractContextManager: ...

        def resolve(self, ref: Any) -> VersionRecord: ...

        def _require_in(self, con: Connection, action: str) -> User | None: ...

        def _identity_transaction(self) -> AbstractContextManager: ...

    def open_promotion_request(
        self, ref: str, alias: str, reason: str, *, evidence: dict | None = None
    ) -> dict:
        """Ask for `model@alias` to move to the version; another person approves it. One open
        request per version and alias."""
        _need_reason(reason, "A promotion request")
        version = self.resolve(ref)
        with self._identity_transaction() as con:
            user = self._require_in(con, "promotion.request")
            if user is None:
                raise TransferlabError(
                    f"The registry {self.display_location} has no users, so there is nobody "
                    "to approve a request.",
                    "Promote directly (transferlab promote ...), or turn team mode on with "
                    "`transferlab users add YOUR_NAME --role admin`.",
                )
            same = con.execute(
                "SELECT request_id FROM promotion_requests WHERE model_name = ? AND alias = ? "
                "AND version_id = ? AND status = 'open'",
                [version.model_name, alias, version.version_id],
            ).fetchall()
            if same:
                raise TransferlabError(
                    f"Request #{same[0][0]} to move {version.model_name}@{alias} to "
                    f"{version.version_id} is already open; nothing was changed.",
                    f"Ask an approver to decide it: transferlab approve {same[0][0]}.",
                )
            holder = con.execute(
                "SELECT version_id FROM aliases WHERE model_name = ? AND alias = ?",
                [version.model_name, alias],
            ).fetchall()
            from_version = holder[0][0] if holder else None
            request_id = con.execute(
                "INSERT INTO promotion_requests (model_name, alias, version_id, from_version, "
                "requester, created_at, reason, status, evidence) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?) RETURNING request_id",
                [
                    version.model_name,
                    alias,
                    version.version_id,
                    from_version,
                    user.name,
                    utc_now(),
                    reason.strip(),
                    to_json(evidence or {}),
                ],
            ).fetchall()[0][0]
            _audit(
                con,
                user.name,
                REQUEST_ACTION,
                version.model_name,
                alias,
                reason.strip(),
                {"request_id": request_id, "version": version.version_id, "holder": from_version},
            )
            return _request(con, request_id, self.display_location)

    def promotion_request(self, request_id: int) -> dict:
        with self.connect(read_only=True) as con:
            return _request(con, request_id, self.display_location)

    def promotion_requests(
        self, *, status: str | None = None, model_name: str | None = None
    ) -> list[dict]:
        """Requests, newest first, of one status and/or model."""
        if status is not None and status not in REQUEST_STATUSES:
            raise TransferlabError(
                f"Unknown request status {status!r}.", f"Use one of: {', '.join(REQUEST_STATUSES)}."
            )
        clauses, params = [], []
        for column, value in (("status", status), ("model_name", model_name)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.connect(read_only=True) as con:
            return dict_rows(
                con, f"SELECT * FROM promotion_requests{where} ORDER BY request_id DESC", params
            )

    def approve_promotion_request(
        self, request_id: int, *, reason: str | None = None, evidence: dict | None = None
    ) -> dict:
        """Approve an open request of someone else and move the alias, in one transaction.
        The caller has checked the gates again (transferlab.promotion.approve)."""
        with self._identity_transaction() as con:
            user, request = self._decidable(con, request_id, "promotion.approve", "approve")
            if user.name == request["requester"]:
                raise PermissionDeniedError(
                    f"{user.name} requested #{request_id} and may not approve it: a promotion "
                    "to a protected alias needs a second person. Nothing was changed.",
                    "Ask another approver to run `transferlab approve "
                    f"{request_id}` (or withdraw it: transferlab reject {request_id}).",
                )
            version = self.resolve(request["version_id"])
            details = {
                "request_id": request_id,
                "requested_by": request["requester"],
                "request_reason": request["reason"],
                **(evidence or {}),
            }
            from_version = move_alias(
                con,
                user.name,
                version,
                request["alias"],
                (reason or "").strip() or request["reason"],
                APPROVE_ACTION,
                False,
                details,
            )
            _decide(con, request_id, "approved", user.name, reason)
            return {**_request(con, request_id, self.display_location), "from": from_version}

    def reject_promotion_request(self, request_id: int, *, reason: str) -> dict:
        """Reject someone else's open request (an approver), or withdraw one's own."""
        _need_reason(reason, "A rejection")
        with self._identity_transaction() as con:
            user, request = self._decidable(con, request_id, "promotion.request", "reject")
            own = user.name == request["requester"]
            if not own:
                require(user, "promotion.reject")
            status, action = ("withdrawn", WITHDRAW_ACTION) if own else ("rejected", REJECT_ACTION)
            _decide(con, request_id, status, user.name, reason)
            _audit(
                con,
                user.name,
                action,
                request["model_name"],
                request["alias"],
                reason.strip(),
                {"request_id": request_id, "version": request["version_id"]},
            )
            return _request(con, request_id, self.display_location)

    def _decidable(
        self, con: Connection, request_id: int, action: str, verb: str
    ) -> tuple[User, dict]:
        user = self._require_in(con, action)
        request = _request(con, request_id, self.display_location)
        if user is None:  # pragma: no cover - a request exists only on a team registry
            raise TransferlabError("This registry has no users.", "Nothing to decide.")
        if request["status"] != "open":
            raise TransferlabError(
                f"Request #{request_id} is {request['status']} (by {request['decided_by']} at "
                f"{request['decided_at']}), so it cannot be {verb}d; nothing was changed.",
                "See the open ones with `transferlab requests --status open`; promote again "
                "to open a new request.",
            )
        return user, request


def _need_reason(reason: str | None, what: str) -> None:
    if not reason or not reason.strip():
        raise TransferlabError(f"{what} needs a reason.", 'Say why: --reason "..."')


def _request(con: Connection, request_id: int, where: str) -> dict:
    rows = dict_rows(con, "SELECT * FROM promotion_requests WHERE request_id = ?", [request_id])
    if not rows:
        raise NotFoundError(
            f"No promotion request #{request_id} in the registry {where}.",
            "See the requests with `transferlab requests`.",
        )
    return rows[0]


def _decide(
    con: Connection,
    request_id: int,
    status: str,
    who: str,
    reason: str | None,
) -> None:
    con.execute(
        "UPDATE promotion_requests SET status = ?, decided_by = ?, decided_at = ?, "
        "decision_reason = ? WHERE request_id = ? AND status = 'open'",
        [status, who, utc_now(), (reason or "").strip() or None, request_id],
    )


def _audit(
    con: Connection, actor: str, action: str, model: str, alias: str, reason: str, details: dict
) -> None:
    con.execute(
        "INSERT INTO audit_log (actor, action, model_name, alias, reason, details) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [actor, action, model, alias, reason, to_json(details)],
    )
