"""What DuckDB and PostgreSQL cannot say in the same SQL, behind one small object per backend.

The query modules (registry/*_queries.py, runs.py, aliases.py, api.py) write SQL both engines
accept: `?` placeholders (the PostgreSQL connection turns them into psycopg's), `INSERT ... ON
CONFLICT (...) DO UPDATE`, `IN (SELECT unnest(?::VARCHAR[]))`, `starts_with`, `CAST(extract(epoch
FROM ...) AS DOUBLE PRECISION)`. The few fragments they cannot share come from
`backend.dialect`: a list membership test, a string out of a JSON column, the similarity ranking
of semantic search, the closest model names for a "did you mean", and a bulk insert. Nothing in
the query modules branches on the backend's name.

This module holds the interface and DuckDB's dialect; PostgreSQL's is in postgres_dialect.py.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import pandas as pd

from transferlab.embeddings import EMBEDDING_DIM

_JSON_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A query and its parameters: what a dialect hands back to be spliced into a statement.
Fragment = tuple[str, list[Any]]


def checked_json_path(path: Sequence[str]) -> list[str]:
    """The keys of a JSON path written into SQL text; only plain identifiers are accepted
    (they come from code, never from a user)."""
    keys = list(path)
    if not keys or not all(_JSON_KEY.match(key) for key in keys):
        raise ValueError(f"Invalid JSON path {keys!r}: plain identifiers only.")
    return keys


class Dialect(ABC):
    """The SQL fragments one engine writes its own way."""

    name: str = ""

    @abstractmethod
    def list_contains(self, array_sql: str, element_sql: str) -> str:
        """A condition: the list `array_sql` holds `element_sql` (NULL list: not true)."""

    @abstractmethod
    def json_text(self, column: str, path: Sequence[str]) -> str:
        """The string at `path` (keys, outermost first) in the JSON text of `column`."""

    @abstractmethod
    def similarity_source(
        self,
        con: Any,
        vector: Sequence[float],
        candidates: Fragment | None,
        limit: int | None,
    ) -> Fragment:
        """A parenthesised subquery with columns (name, score): the cosine similarity of each
        model embedding to `vector`, for the names `candidates` selects (all when None), the
        `limit` best first (by score, then name) when a limit is given."""

    @abstractmethod
    def closest_names(self, con: Any, name: str, count: int = 3) -> list[str]:
        """The `count` model names most like `name` (Jaro-Winkler, case-insensitive)."""

    @abstractmethod
    def insert_rows(
        self,
        con: Any,
        table: str,
        frame: pd.DataFrame,
        *,
        conflict_key: Sequence[str] = (),
    ) -> None:
        """Insert the frame's rows (its columns are the table's) in one statement's worth of
        work on `con`; with `conflict_key`, a row whose key exists replaces the other columns."""


def conflict_clause(columns: Sequence[str], key: Sequence[str]) -> str:
    """` ON CONFLICT (key) DO UPDATE SET c = excluded.c, ...` for the non-key columns."""
    if not key:
        return ""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    return f" ON CONFLICT ({', '.join(key)}) {action}"


class DuckDBDialect(Dialect):
    """DuckDB's own functions: list_contains, json_extract_string, array_cosine_similarity on
    FLOAT[384], jaro_winkler_similarity, and a pandas frame scanned by INSERT ... SELECT."""

    name = "duckdb"
    # Columns whose values DuckDB must cast on the way in (a list of floats to a fixed array).
    _CASTS = {"embedding": f"FLOAT[{EMBEDDING_DIM}]"}

    def list_contains(self, array_sql: str, element_sql: str) -> str:
        return f"list_contains({array_sql}, {element_sql})"

    def json_text(self, column: str, path: Sequence[str]) -> str:
        return f"json_extract_string({column}, '$.{'.'.join(checked_json_path(path))}')"

    def similarity_source(
        self,
        con: Any,
        vector: Sequence[float],
        candidates: Fragment | None,
        limit: int | None,
    ) -> Fragment:
        sql = (
            "(SELECT name, array_cosine_similarity(embedding, "
            f"?::FLOAT[{EMBEDDING_DIM}]) AS score FROM model_embeddings"
        )
        params: list[Any] = [list(vector)]
        if candidates is not None:
            sql += f" WHERE name IN ({candidates[0]})"
            params += candidates[1]
        if limit is not None:
            sql += " ORDER BY score DESC, name LIMIT ?"
            params.append(limit)
        return sql + ")", params

    def closest_names(self, con: Any, name: str, count: int = 3) -> list[str]:
        rows = con.execute(
            "SELECT name FROM models ORDER BY jaro_winkler_similarity(lower(name), lower(?)) "
            "DESC LIMIT ?",
            [name, count],
        ).fetchall()
        return [row[0] for row in rows]

    def insert_rows(
        self,
        con: Any,
        table: str,
        frame: pd.DataFrame,
        *,
        conflict_key: Sequence[str] = (),
    ) -> None:
        columns = list(frame.columns)
        selected = ", ".join(f"{c}::{self._CASTS[c]}" if c in self._CASTS else c for c in columns)
        view = f"incoming_{table}"
        con.register(view, frame)
        try:
            con.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selected} FROM {view}"
                + conflict_clause(columns, conflict_key)
            )
        finally:
            con.unregister(view)
