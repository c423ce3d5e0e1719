"""Promotion with gates, and four-eyes requests: promote (the gates, then the move, or on a
team registry a request for a protected alias), list requests, approve (someone else's: the
gates again, the alias moves with the decision), reject or withdraw. The policy is the
packaged one: another file is an admin's choice on the command line, not over HTTP."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from transferlab.service.auth import Caller, caller_of
from transferlab.service.encoding import jsonable
from transferlab.service.schemas import Decision, PromotionIn, Rejection

router = APIRouter(prefix="/v1", tags=["promotion"])
Authenticated = Annotated[Caller, Depends(caller_of)]
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/promotions")
def promote(body: PromotionIn, caller: Authenticated) -> dict:
    """`transferlab promote VERSION --to ALIAS`: moved, or (production on a team registry) a
    request opened; failed gates: 409 with each gate's numbers."""
    from transferlab.promotion import promote as promote_version

    done = promote_version(caller.registry, body.version, body.alias, body.reason, force=body.force)
    return jsonable(done.to_dict())


@router.get("/requests")
def requests(
    caller: Authenticated,
    status: Literal["open", "approved", "rejected", "withdrawn"] | None = None,
    model: Annotated[str | None, Query(max_length=300)] = None,
) -> list:
    return jsonable(caller.registry.promotion_requests(status=status, model_name=model))


@router.get("/requests/{request_id}")
def request(request_id: RequestId, caller: Authenticated) -> dict:
    return jsonable(caller.registry.promotion_request(request_id))


@router.post("/requests/{request_id}/approve")
def approve(request_id: RequestId, body: Decision, caller: Authenticated) -> dict:
    from transferlab.promotion import approve as approve_request

    return jsonable(approve_request(caller.registry, request_id, reason=body.reason).to_dict())


@router.post("/requests/{request_id}/reject")
def reject(request_id: RequestId, body: Rejection, caller: Authenticated) -> dict:
    from transferlab.promotion import reject as reject_request

    return jsonable(reject_request(caller.registry, request_id, reason=body.reason))
