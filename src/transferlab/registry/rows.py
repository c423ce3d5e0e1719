"""Rows out of and values into the registry: JSON columns decoded, timestamps in naive UTC."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

# A connection of any backend: DuckDB's, or one that keeps its calling convention
# (postgres_connection.PostgresConnection): execute(sql with ? placeholders, params) returns
# a cursor with fetchall(), fetchone() and description.
Connection = Any

JSON_COLUMNS = {
    "requested",
    "finetune",
    "parameters_json",
    "label_names",
    "metadata",
    "package_versions",
    "metrics",
    "details",
    "evidence",
}


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def dict_rows(con: Connection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    """The result of a parameterized query as dicts, JSON columns decoded."""
    cursor = con.execute(sql, list(params))
    names = [column[0] for column in cursor.description]
    found = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for key in JSON_COLUMNS & row.keys():
            if isinstance(row[key], str):
                row[key] = json.loads(row[key])
        found.append(row)
    return found


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)
