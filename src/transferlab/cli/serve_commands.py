"""`transferlab serve`: the registry as a REST service (service/), under uvicorn."""

from __future__ import annotations

import argparse
import json
import os

from transferlab.errors import TransferlabError

SETTINGS_VARIABLE = "TRANSFERLAB_SERVE_SETTINGS"  # how --workers N hands the settings over

#: uvicorn's loggers as usual, the access log as one JSON object per line on stdout
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json_line": {"format": "%(message)s"},
        "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
    },
    "handlers": {
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "json_line",
            "stream": "ext://sys.stdout",
        },
        "default": {
            "class": "logging.StreamHandler",
            "formatter": "default",
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "transferlab.service.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "transferlab.service": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
    },
}


def app_from_environment():
    """The app of one worker of `transferlab serve --workers N` (uvicorn's factory)."""
    from transferlab.service import create_app

    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    return create_app(settings.pop("registry_location"), **settings)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from transferlab.service import create_app
    except ImportError as error:
        raise TransferlabError(
            f"`transferlab serve` needs FastAPI and uvicorn ({error.name} is missing).",
            "Install them: pip install 'transferlab[service]'.",
        ) from error
    from transferlab.registry.backends import chosen_location

    for option, value in (("--workers", args.workers), ("--threads", args.threads)):
        if value < 1:
            raise TransferlabError(f"{option} {value}: it must be 1 or more.", "Give e.g. 4.")
    settings = {
        "registry_location": chosen_location(args.registry),
        "artefact_dir": args.artefacts,
        "allow_anonymous": args.allow_anonymous,
        "max_body_bytes": args.max_body_bytes,
        "max_artefact_bytes": args.max_artefact_bytes,
        "threads": args.threads,
    }
    app = create_app(**settings)
    app.state.service.start()  # refuses here, with the fix, rather than in uvicorn's log
    common = {
        "host": args.host,
        "port": args.port,
        "log_config": LOG_CONFIG,
        "access_log": False,  # ours (service/access.py) names the user and the request id
        "timeout_graceful_shutdown": args.graceful_timeout,
        "server_header": False,
        "proxy_headers": False,
    }
    if args.workers == 1:
        uvicorn.run(app, **common)
    else:
        os.environ[SETTINGS_VARIABLE] = json.dumps(
            {key: value for key, value in settings.items()}, default=str
        )
        uvicorn.run(
            "transferlab.cli.serve_commands:app_from_environment",
            factory=True,
            workers=args.workers,
            **common,
        )
    return 0


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve the registry as a REST service (FastAPI + uvicorn)",
        description="Serve the registry (--registry) over HTTP: OpenAPI page on /docs, /healthz "
        "and /readyz, every request authenticated by its Bearer token.",
    )
    serve.set_defaults(handler=cmd_serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument(
        "--artefacts",
        metavar="DIR",
        help="the artefact store: uploaded weights by SHA-256 (default: artefacts/ beside a "
        "registry file; needed for a server registry)",
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--threads",
        type=int,
        default=16,
        help="requests served at once per worker; each holds its own PostgreSQL connection, so "
        "keep workers x threads under the server's max_connections (default 16)",
    )
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="serve a registry without users: every caller may do everything, as `anonymous` "
        "(a trusted network only)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=int,
        default=30,
        metavar="SECONDS",
        help="on SIGTERM/Ctrl-C, wait this long for requests in flight (default 30)",
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="largest JSON body (default 1 MiB)"
    )
    serve.add_argument(
        "--max-artefact-bytes",
        type=int,
        default=20 << 30,
        help="largest artefact upload (default 20 GiB)",
    )
