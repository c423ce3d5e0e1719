"""`POST /v1/registry/{method}`: a Registry method run for the caller, so that `--registry
http(s)://...` gives the CLI, the Python API and the templates the same behaviour as a file.

Only the methods of registry/remote_calls.py are served (any other name: 404). The body is
`{"args": [...], "kwargs": {...}}` in that module's JSON, the answer `{"value": ...}`. The
caller is authenticated as on every route (a reader and above may call the reads); each write
is authorised by the registry inside its own transaction (identity.py), so this route adds no
rule of its own, except two that keep the service's machine the service's:
- a version may refer to `artefact://` weights only once they are in the store;
- the service never removes a folder on its disk for a client's run (`Registry` with
  `removes_model_folders` off: the client removes its own, remote.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from transferlab.errors import NotFoundError, TransferlabError
from transferlab.registry.remote_calls import CALLS, decode, dumps, server_arguments
from transferlab.service.artefacts import URI_PREFIX, digest_of_uri
from transferlab.service.auth import Caller, caller_of

router = APIRouter(prefix="/v1/registry", tags=["registry methods"])
Authenticated = Annotated[Caller, Depends(caller_of)]
# the methods whose `uri` (positional index, keyword) names a version's weights
_URI_ARGUMENT = {
    "add_version": (2, "uri"),
    "ensure_version": (2, "uri"),
    "record_derived_version": (2, "uri"),
    "register_import": (1, "uri"),
}


class Call(BaseModel):
    """A Registry method's arguments, in registry/remote_calls.py's JSON."""

    model_config = ConfigDict(extra="forbid")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


@router.post("/{method}", summary="Call a Registry method")
def call(
    method: Annotated[str, Path(max_length=64, pattern=r"^[a-z_]+$")],
    body: Call,
    request: Request,
    caller: Authenticated,
) -> Response:
    if method not in CALLS:
        raise NotFoundError(
            f"The registry has no method {method!r} that a client may call.",
            "See registry/remote_calls.py (CALLS) for those that are served.",
        )
    try:
        args, kwargs = decode(body.args), decode(body.kwargs)
    except (TypeError, ValueError, KeyError) as error:
        raise TransferlabError(
            f"The arguments of {method} could not be read: {error}.",
            "Send them as transferlab's RemoteRegistry writes them.",
        ) from error
    kwargs = server_arguments(method, kwargs)
    _check_artefact(request, method, args, kwargs)
    try:
        value = getattr(caller.registry, method)(*args, **kwargs)
    except TypeError as error:  # wrong arguments for the method: the caller's mistake
        if "argument" not in str(error):
            raise
        raise TransferlabError(
            f"{method}: {error}.", "Call it with the arguments the Registry method takes."
        ) from error
    return Response(dumps({"value": value}), media_type="application/json")


def _check_artefact(request: Request, method: str, args: list, kwargs: dict) -> None:
    where = _URI_ARGUMENT.get(method)
    if where is None:
        return
    index, name = where
    uri = kwargs.get(name, args[index] if len(args) > index else None)
    if not isinstance(uri, str) or not uri.startswith(URI_PREFIX):
        return
    digest = digest_of_uri(uri)
    if digest is None or not request.app.state.service.store.has(digest):
        raise NotFoundError(
            f"No artefact {uri} in the store; nothing was registered.",
            "Upload the weights first: PUT /v1/artefacts/<sha256> with the file as body.",
        )
