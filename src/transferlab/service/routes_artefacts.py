"""Artefacts: upload weights under their SHA-256 (`write`), download a version's weights
(`read`), checked against the digest before a byte is sent. The store is artefacts.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from transferlab.errors import NotFoundError
from transferlab.service.artefacts import check_digest, digest_of_uri
from transferlab.service.auth import Caller, caller_of

router = APIRouter(prefix="/v1", tags=["artefacts"])
Authenticated = Annotated[Caller, Depends(caller_of)]


@router.put(
    "/artefacts/{sha256}",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload(sha256: str, request: Request) -> dict:
    """Store the body (the file's bytes, any content type) under its SHA-256: the name must
    be the digest of what arrives, or nothing is stored. Needs `write` (contributor). Its
    size limit is the service's --max-artefact-bytes (limits.py)."""
    digest = check_digest(sha256)
    caller: Caller = await run_in_threadpool(caller_of, request)
    await run_in_threadpool(caller.require, "write")
    stored = await request.app.state.service.store.receive(digest, request.stream())
    return stored.to_dict()


@router.get("/artefacts/{sha256}")
def download(sha256: str, request: Request, caller: Authenticated) -> StreamingResponse:
    return _stream(request, check_digest(sha256))


@router.get("/versions/download", tags=["versions"])
def download_version(
    request: Request, caller: Authenticated, ref: Annotated[str, Query(max_length=400)]
) -> StreamingResponse:
    """A version's weights from the artefact store (404 for a version whose weights are
    elsewhere: its uri says where)."""
    version = caller.registry.resolve(ref)
    digest = digest_of_uri(version.uri)
    if digest is None:
        raise NotFoundError(
            f"{version.version_id}'s weights are not in the artefact store: its uri is "
            f"{version.uri!r}.",
            "Load them from where the uri points.",
        )
    return _stream(request, digest)


def _stream(request: Request, digest: str) -> StreamingResponse:
    store = request.app.state.service.store
    chunks = store.verified_chunks(digest)  # hashed first: a changed file is never served
    return StreamingResponse(
        iterate_in_threadpool(chunks),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(store.size_of(digest)),
            "ETag": f'"sha256:{digest}"',
            "X-Content-SHA256": digest,
        },
    )
