"""Imports written in one transaction: the model (if new), its version and its profile.

The work is Registry.register_import (registry/writes.py); this function is its older name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transferlab.registry.writes import PROFILE_COLUMNS, existing_model

if TYPE_CHECKING:
    from transferlab.registry.api import Registry
    from transferlab.registry.records import ModelRecord, VersionRecord

__all__ = ["PROFILE_COLUMNS", "existing_model", "register_import"]


def register_import(
    registry: Registry,
    record: ModelRecord,
    uri: str,
    *,
    metadata: dict[str, Any] | None = None,
    profile: dict[str, Any] | None = None,
    check_existing: Callable[[dict[str, Any]], None] | None = None,
) -> VersionRecord:
    """Write an imported model, its base version at `uri` and its profile, all or nothing
    (Registry.register_import)."""
    return registry.register_import(
        record, uri, metadata=metadata, profile=profile, check_existing=check_existing
    )
