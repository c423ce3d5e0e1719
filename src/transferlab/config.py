"""Where things live: the registry file and the output folders, with their overrides."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

DEFAULT_REGISTRY_NAME = "registry.duckdb"


def resolve_registry_path(path: str | os.PathLike[str] | None = None) -> Path:
    """An explicit path wins, then TRANSFERLAB_REGISTRY, then ./registry.duckdb."""
    chosen = path or os.environ.get("TRANSFERLAB_REGISTRY") or DEFAULT_REGISTRY_NAME
    return Path(chosen).expanduser().resolve()


def current_actor() -> str:
    """Who the audit log names: TRANSFERLAB_USER, else the login name."""
    explicit = os.environ.get("TRANSFERLAB_USER")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
