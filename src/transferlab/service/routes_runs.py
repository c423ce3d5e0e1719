"""Runs and results: record a run, update it, finish it, add its results; list and show runs.
Writes need `write` (contributor), checked by the registry inside each write's transaction.

Paths on the service's machine are not a client's to name: a run recorded here may not carry
`output_dir` (the registry removes an interrupted fine-tune's unfinished output folder, and a
client must not point that at the server's disk), and `interrupted` is the registry's own
verdict on a run whose process is gone, so a client finishes a run as succeeded or failed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from transferlab.errors import TransferlabError
from transferlab.service.auth import Caller, caller_of
from transferlab.service.encoding import jsonable
from transferlab.service.schemas import ResultsIn, RunFinish, RunIn, RunUpdate

router = APIRouter(prefix="/v1", tags=["runs"])
Authenticated = Annotated[Caller, Depends(caller_of)]
SERVER_PATH_PARAMETERS = ("output_dir",)


def _refuse_server_paths(parameters: dict[str, Any] | None) -> None:
    named = sorted(set(parameters or {}) & set(SERVER_PATH_PARAMETERS))
    if named:
        raise TransferlabError(
            f"A run recorded through the service may not name {', '.join(named)}: it would be "
            "a folder on the service's machine, which the registry may clean up. Nothing was "
            "recorded.",
            "Keep the output folder on the client's side (record it under another name, e.g. "
            "client_output_dir).",
        )


@router.get("/runs")
def runs(
    caller: Authenticated,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    status: Literal["running", "succeeded", "failed", "interrupted", "pruned"] | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> list:
    return jsonable(caller.registry.runs(kind=kind, status=status, limit=limit))


@router.get("/runs/{run_id}")
def run(run_id: str, caller: Authenticated) -> dict:
    return jsonable(caller.registry.get_run(run_id))


@router.post("/runs", status_code=201)
def start_run(body: RunIn, caller: Authenticated) -> dict:
    _refuse_server_paths(body.parameters)
    registry = caller.registry
    if body.run_id is not None and registry.run_exists(body.run_id):
        raise TransferlabError(
            f"A run {body.run_id!r} is already recorded; nothing was changed.",
            "Leave run_id out (the service makes one) or choose another.",
        )
    run_id = registry.start_run(
        body.kind,
        template=body.template,
        parameters=body.parameters,
        data_fingerprint=body.data_fingerprint,
        output_notebook=body.output_notebook,
        sweep_id=body.sweep_id,
        run_id=body.run_id,
    )
    return {"run_id": run_id}


@router.patch("/runs/{run_id}")
def update_run(run_id: str, body: RunUpdate, caller: Authenticated) -> dict:
    _refuse_server_paths(body.parameters)
    fields = body.model_dump(exclude_unset=True)
    caller.registry.update_run(run_id, **fields)
    return jsonable(caller.registry.get_run(run_id))


@router.post("/runs/{run_id}/finish")
def finish_run(run_id: str, body: RunFinish, caller: Authenticated) -> dict:
    caller.registry.finish_run(
        run_id,
        body.status,
        error=body.error,
        metrics=body.metrics,
        output_notebook=body.output_notebook,
    )
    return jsonable(caller.registry.get_run(run_id))


@router.post("/runs/{run_id}/results", status_code=201)
def add_results(run_id: str, body: ResultsIn, caller: Authenticated) -> dict:
    rows = [{**result.model_dump(), "run_id": run_id} for result in body.results]
    return {"added": caller.registry.add_results(rows)}


@router.get("/results")
def results(
    caller: Authenticated,
    version_id: Annotated[str | None, Query(max_length=400)] = None,
    run_id: Annotated[str | None, Query(max_length=200)] = None,
    suite: Annotated[str | None, Query(max_length=300)] = None,
    metric: Annotated[str | None, Query(max_length=100)] = None,
) -> list:
    return jsonable(
        caller.registry.results(version_id=version_id, run_id=run_id, suite=suite, metric=metric)
    )
