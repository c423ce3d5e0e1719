"""Aliases and the audit log. Moving an alias that is not protected needs `alias.move`
(contributor); a protected one (production) `alias.protected` (admin, recorded as forced):
others go through a promotion request. Checked by the registry in the move's transaction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from transferlab.service.auth import Caller, caller_of
from transferlab.service.encoding import jsonable
from transferlab.service.schemas import AliasRemove, AliasSet

router = APIRouter(prefix="/v1", tags=["aliases"])
Authenticated = Annotated[Caller, Depends(caller_of)]


@router.get("/aliases")
def aliases(
    caller: Authenticated, model: Annotated[str | None, Query(max_length=300)] = None
) -> list:
    return jsonable(caller.registry.aliases(model))


@router.post("/aliases")
def set_alias(body: AliasSet, caller: Authenticated) -> dict:
    """`transferlab alias set VERSION ALIAS`: {model, alias, from, to}."""
    return jsonable(caller.registry.set_alias(body.version, body.alias, reason=body.reason))


@router.post("/aliases/remove")
def remove_alias(body: AliasRemove, caller: Authenticated) -> dict:
    caller.registry.remove_alias(body.model, body.alias, reason=body.reason)
    return {"removed": f"{body.model}@{body.alias}"}


@router.get("/history")
def history(
    caller: Authenticated, model: Annotated[str | None, Query(max_length=300)] = None
) -> list:
    """The audit log (of one model), oldest first: who moved which alias, when, why."""
    return jsonable(caller.registry.history(model))
