"""Structured access logs: one JSON line per request on the `transferlab.service.access`
logger, with method, path, status, user, duration in ms and the request id.

The request id is the client's `X-Request-ID` when it is a short token of safe characters
(so a proxy's id carries through), else a new one; it goes back in the response's
`X-Request-ID` and in every error body, so a user's report leads to the log line. The query
string is not logged (it may hold search text), nor is any header (the token)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("transferlab.service.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
REQUEST_ID_KEY = "transferlab.request_id"


def request_id_of(scope: Scope) -> str | None:
    return scope.get(REQUEST_ID_KEY)


def _given_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SAFE_ID.match(text) else None
    return None


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _given_id(scope) or secrets.token_hex(8)
        scope[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            state: dict[str, Any] = scope.get("state") or {}
            entry = {
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status["code"],
                "user": state.get("user"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "client": (scope.get("client") or [None])[0],
            }
            log.info(json.dumps(entry, sort_keys=True))
