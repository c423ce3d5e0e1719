"""The REST service's application: `create_app(registry_location, artefact_dir, ...)`.

One Registry for the service (its backend opened and its schema checked once, at start), one
per request derived from it for the request's caller (auth.py). Route functions are plain
`def`s: FastAPI runs them in its thread pool, and the registry's connections are per thread
(DuckDB file: a process-wide lock the threads take in turn; PostgreSQL: a kept connection per
thread, one transaction per operation), so a request's transaction commits or rolls back as a
whole whatever happens to the request.

Errors are JSON `{"error": what was wrong, "fix": what to do, "request_id": ...}`: a
TransferlabError's problem and fix with the status its kind calls for (`status_of`), a body that
does not fit its schema 422, one over the size limit 413, and anything unexpected 500 with
nothing of its internals (the log has the traceback under the request id).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from transferlab.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RegistryError,
    RegistryLockedError,
    RegistryUnavailableError,
    TransferlabError,
)
from transferlab.registry import Registry
from transferlab.registry.api import require_registry_file
from transferlab.service.access import AccessLogMiddleware, request_id_of
from transferlab.service.artefacts import (
    DEFAULT_ORPHAN_GRACE_S,
    URI_PREFIX,
    ArtefactStore,
    CorruptArtefactError,
    digest_of_uri,
)
from transferlab.service.auth import ANONYMOUS
from transferlab.service.limits import BodyLimitMiddleware

log = logging.getLogger("transferlab.service")

DEFAULT_MAX_BODY_BYTES = 1 << 20  # a JSON body: 1 MiB
DEFAULT_MAX_ARTEFACT_BYTES = 20 << 30  # an upload: 20 GiB
DEFAULT_THREADS = 16  # requests served at once per process (FastAPI's default is 40)


@dataclass
class Service:
    """What every request shares: the registry, the artefact store and the settings."""

    registry: Registry
    store: ArtefactStore
    allow_anonymous: bool
    max_artefact_bytes: int
    orphan_grace_s: float

    def start(self) -> dict:
        """Check that the registry can be served, prepare the store and sweep what killed
        uploads left (artefacts.py). Refuses a registry without users unless anonymous
        calls were allowed."""
        if not self.allow_anonymous and not self.registry.team_mode():
            raise PermissionDeniedError(
                f"The registry {self.registry.display_location} has no users (one-person "
                "mode): served as it is, anyone who reaches the port could change it.",
                "Turn team mode on first (`transferlab users add YOUR_NAME --role admin`), or "
                "pass --allow-anonymous to serve it without tokens on a trusted network.",
            )
        self.store.prepare()
        referenced = [digest_of_uri(uri) for uri in self.registry.version_uris_starting(URI_PREFIX)]
        return self.store.sweep(filter(None, referenced), grace_s=self.orphan_grace_s)


def create_app(
    registry_location: str | os.PathLike[str],
    artefact_dir: str | os.PathLike[str] | None = None,
    *,
    allow_anonymous: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_artefact_bytes: int = DEFAULT_MAX_ARTEFACT_BYTES,
    orphan_grace_s: float = DEFAULT_ORPHAN_GRACE_S,
    threads: int = DEFAULT_THREADS,
) -> FastAPI:
    """The service over the registry at `registry_location` (which must exist: `transferlab
    init` creates it), storing uploaded weights in `artefact_dir` (default: `artefacts/`
    beside a registry file; a server registry needs one). `threads` bounds the requests
    served at once by this process (each thread keeps its own PostgreSQL connection)."""
    require_registry_file(registry_location)
    registry = Registry(registry_location, token="", actor=ANONYMOUS)
    registry.removes_model_folders = False  # the folders of clients' runs are on their disks
    if artefact_dir is None:
        if registry.path is None:
            raise RegistryError(
                f"The registry {registry.display_location} is kept on a server: there is no "
                "folder beside it for artefacts.",
                "Give --artefacts DIR (a folder the service may write, e.g. a shared mount).",
            )
        artefact_dir = Path(registry.path).parent / "artefacts"
    service = Service(
        registry=registry,
        store=ArtefactStore(artefact_dir),
        allow_anonymous=allow_anonymous,
        max_artefact_bytes=max_artefact_bytes,
        orphan_grace_s=orphan_grace_s,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        swept = service.start()
        if swept["parts"] or swept["orphans"]:
            log.info(
                "artefact store swept: %d unfinished uploads, %d orphans",
                len(swept["parts"]),
                len(swept["orphans"]),
            )
        yield

    app = FastAPI(
        title="transferlab registry",
        summary="The transferlab model registry over HTTP: models, versions, runs, aliases, "
        "four-eyes promotion and content-addressed artefacts.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service
    _add_error_handlers(app)
    from transferlab.service import (
        routes_aliases,
        routes_artefacts,
        routes_calls,
        routes_health,
        routes_models,
        routes_promotions,
        routes_runs,
    )

    for module in (
        routes_health,
        routes_models,
        routes_runs,
        routes_aliases,
        routes_promotions,
        routes_artefacts,
        routes_calls,
    ):
        app.include_router(module.router)
    app.add_middleware(
        BodyLimitMiddleware, max_body_bytes=max_body_bytes, max_artefact_bytes=max_artefact_bytes
    )
    app.add_middleware(AccessLogMiddleware)  # outermost: every response has a request id
    return app


# -- errors -------------------------------------------------------------------------------------

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (RegistryLockedError, 503),
    (RegistryUnavailableError, 503),
    (CorruptArtefactError, 500),
)


def status_of(error: TransferlabError) -> int:
    from transferlab.promotion import PromotionRefused

    if isinstance(error, PromotionRefused):
        return 409
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


def error_response(
    request: Request, status: int, problem: str, fix: str | None, kind: str | None = None
) -> JSONResponse:
    """The JSON error body; `kind` names the TransferlabError class (a client raises the same)."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": problem, "fix": fix, "request_id": request_id_of(request.scope)}
    if kind is not None:
        body["kind"] = kind
    return JSONResponse(body, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TransferlabError)
    async def transferlab_error(request: Request, error: TransferlabError) -> JSONResponse:
        response = error_response(
            request, status_of(error), error.problem, error.fix, type(error).__name__
        )
        if isinstance(error, RegistryUnavailableError):
            # a client may send the call again: certainly (retry_safe) or after checking
            response.headers["Retry-After"] = "1"
            response.headers["X-Transferlab-Retry-Safe"] = "true" if error.retry_safe else "false"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors()[:10]:
            where = ".".join(str(part) for part in item.get("loc", ()))
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return error_response(
            request,
            422,
            "The request does not fit its schema: " + "; ".join(problems),
            "See the request's schema on /docs (unknown fields are refused).",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        fixes = {
            404: "See the endpoints on /docs.",
            405: "See the endpoints and their methods on /docs.",
            413: "Send a smaller body (JSON bodies up to the service's --max-body-bytes; "
            "weights as an artefact upload).",
        }
        response = error_response(
            request, error.status_code, str(error.detail), fixes.get(error.status_code)
        )
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        request_id = request_id_of(request.scope)
        log.error("request %s failed", request_id, exc_info=error)
        return error_response(
            request,
            500,
            f"The service failed on this request ({type(error).__name__}).",
            f"Tell the service's admin the request id {request_id} (its log has the details).",
        )
