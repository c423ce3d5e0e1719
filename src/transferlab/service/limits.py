"""Request body limits: a JSON body up to --max-body-bytes, an artefact upload up to
--max-artefact-bytes, answered 413 in the service's JSON error shape.

A declared Content-Length over the limit is refused before a byte is read; a body sent without
one (chunked) is counted as it arrives and refused the moment it passes the limit (the upload
then removes its temporary file). FastAPI's own `max_body_size` answers in plain text and
replaces any response to an over-long Content-Length with its own, hence this middleware."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from transferlab.service.access import request_id_of

UPLOAD_PREFIX = "/v1/artefacts/"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"The request body is over this service's limit of {limit} bytes.")


def _fix(limit: int, upload: bool) -> str:
    if upload:
        return f"Artefacts up to {limit} bytes: ask the admin to raise --max-artefact-bytes."
    return f"JSON bodies up to {limit} bytes: send weights as an artefact (PUT {UPLOAD_PREFIX}…)."


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_artefact_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_artefact_bytes = max_artefact_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "PUT" and scope["path"].startswith(UPLOAD_PREFIX)
        limit = self.max_artefact_bytes if upload else self.max_body_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            body = {
                "error": f"The request body ({declared} bytes) is over this service's limit of "
                f"{limit} bytes; nothing was read or changed.",
                "fix": _fix(limit, upload),
                "request_id": request_id_of(scope),
            }
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)
