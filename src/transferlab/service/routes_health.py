"""Liveness and readiness, without a token: `/healthz` answers while the process serves;
`/readyz` also reads the registry and checks the artefact store (503 when either fails), so a
load balancer sends no traffic to an instance that cannot do its work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from transferlab.errors import TransferlabError
from transferlab.registry.identity import User
from transferlab.service.auth import Caller, caller_of
from transferlab.service.encoding import jsonable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    service = request.app.state.service
    checks: dict[str, str] = {}
    try:
        checks["registry"] = f"schema {service.registry.schema_version()}"
    except TransferlabError as error:
        checks["registry"] = f"unavailable: {error.problem}"
    except Exception as error:  # a database that went away raises its driver's error
        checks["registry"] = f"unavailable: {type(error).__name__}"
    checks["artefacts"] = "writable" if service.store.writable() else "not writable"
    ready = checks["registry"].startswith("schema") and checks["artefacts"] == "writable"
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/v1/whoami", tags=["identity"])
def whoami(caller: Annotated[Caller, Depends(caller_of)]) -> dict:
    user: User | None = caller.user
    return jsonable(
        {"name": caller.name, "role": user.role if user else None, "team_mode": user is not None}
    )
