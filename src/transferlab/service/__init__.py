"""The REST service over any registry backend (`transferlab serve`): FastAPI + uvicorn.

app (create_app: the service, its errors), auth (Bearer token -> the registry's own identity
code, one Registry per request), access (JSON access logs, request ids), artefacts (the
content-addressed store), schemas (request bodies), encoding (JSON as the CLI prints it),
routes_* (one module per resource). Needs the `service` extra: pip install 'transferlab[service]'.
"""

from transferlab.service.app import create_app

__all__ = ["create_app"]
