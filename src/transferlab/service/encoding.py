"""Values out of the registry as JSON: what `transferlab ... --json` prints, so the CLI over
HTTP can print the same (datetimes as ISO 8601, dataclasses as dicts, anything else as text)."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types, encoded as the CLI's --json encodes it."""
    return json.loads(json.dumps(value, default=_default))
