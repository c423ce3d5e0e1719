"""Models and versions: search (the CLI's filters), show, list and resolve versions, register
one. Reads need `read`; registering needs `write` (checked by the registry in its transaction).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from transferlab.errors import NotFoundError, TransferlabError
from transferlab.registry.refs import parse_version_ref, validate_name
from transferlab.service.artefacts import artefact_uri, check_digest
from transferlab.service.auth import Caller, caller_of
from transferlab.service.encoding import jsonable
from transferlab.service.schemas import VersionIn

router = APIRouter(prefix="/v1", tags=["models"])
Authenticated = Annotated[Caller, Depends(caller_of)]


@router.get("/models")
def search(
    caller: Authenticated,
    query: Annotated[str | None, Query(max_length=1_000)] = None,
    task: Annotated[str | None, Query(max_length=200)] = None,
    license: Annotated[str, Query(max_length=200)] = "any",
    max_params: Annotated[str | None, Query(max_length=40)] = None,
    source: Annotated[str | None, Query(max_length=40)] = None,
    tag: Annotated[list[str] | None, Query()] = None,
    runnable_here: bool = False,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 20,
) -> list:
    """`transferlab search`: models matching every filter, ranked by similarity to `query`.
    `runnable_here` means weights on the service's machine."""
    from transferlab.search import SearchFilters, parse_parameter_count, search_models

    filters = SearchFilters(
        task=task,
        license=license,
        max_params=parse_parameter_count(max_params),
        source=source,
        tags=tag or [],
        runnable_here=runnable_here,
        query=query,
        limit=limit,
    )
    return jsonable(search_models(caller.registry, filters))


@router.get("/models/{name:path}/versions")
def versions(name: str, caller: Authenticated) -> list:
    registry = caller.registry
    registry.get_model(validate_name(name))  # an unknown model: 404 with "did you mean"
    return jsonable([asdict(v) for v in registry.versions(name)])


@router.post("/models/{name:path}/versions", status_code=201)
def register_version(name: str, body: VersionIn, request: Request, caller: Authenticated) -> dict:
    """Register a version whose weights are at `uri`, or in the artefact store
    (`artefact_sha256`, uploaded first with PUT /v1/artefacts/<sha256>)."""
    validate_name(name)
    uri = body.uri
    if body.artefact_sha256 is not None:
        if uri is not None:
            raise TransferlabError(
                "A version's weights are either at `uri` or in the artefact store "
                "(`artefact_sha256`), not both.",
                "Send one of the two.",
            )
        digest = check_digest(body.artefact_sha256)
        if not request.app.state.service.store.has(digest):
            raise NotFoundError(
                f"No artefact {digest} in the store; nothing was registered.",
                "Upload the weights first: PUT /v1/artefacts/<sha256> with the file as body.",
            )
        uri = artefact_uri(digest)
    version = caller.registry.add_version(
        name,
        body.kind,
        uri,
        parent_version_id=body.parent_version_id,
        run_id=body.run_id,
        label_names=body.label_names,
        metadata=body.metadata,
    )
    return jsonable(asdict(version))


@router.get("/models/{name:path}")
def show(name: str, caller: Authenticated) -> dict:
    """`transferlab show --json`: the model, its versions, aliases, profiles and results."""
    registry = caller.registry
    ref = parse_version_ref(name)
    model = registry.get_model(ref.model_name)
    if ref.version is not None or ref.alias is not None:
        registry.resolve(ref)
    versions = [asdict(v) for v in registry.versions(ref.model_name)]
    ids = {v["version_id"] for v in versions}
    return jsonable(
        {
            "model": model,
            "versions": versions,
            "aliases": registry.aliases(ref.model_name),
            "profiles": [p for p in registry.profiles() if p["version_id"] in ids],
            "results": registry.result_means_of_model(ref.model_name),
        }
    )


@router.get("/versions/resolve", tags=["versions"])
def resolve(caller: Authenticated, ref: Annotated[str, Query(max_length=400)]) -> dict:
    """The version `name`, `name:N` or `name@alias` names."""
    return jsonable(asdict(caller.registry.resolve(ref)))


@router.get("/versions/lineage", tags=["versions"])
def lineage(caller: Authenticated, ref: Annotated[str, Query(max_length=400)]) -> list:
    """The version and its ancestors, newest first."""
    return jsonable([asdict(v) for v in caller.registry.lineage(ref)])
