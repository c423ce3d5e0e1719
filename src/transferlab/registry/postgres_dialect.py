"""PostgreSQL's side of registry/dialect.py: `= ANY` for list membership, `#>>` for JSON,
semantic ranking over the cached embeddings (postgres_vectors.py), Jaro-Winkler in Python
(PostgreSQL has no such function without an extension), and bulk inserts by binary COPY."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from transferlab.registry import postgres_vectors
from transferlab.registry.dialect import Dialect, Fragment, checked_json_path, conflict_clause


def jaro_winkler(a: str, b: str, prefix_weight: float = 0.1) -> float:
    """Jaro-Winkler similarity (1 = equal), the common prefix (up to 4) boosting a Jaro
    similarity above 0.7, as DuckDB's jaro_winkler_similarity."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    window = max(max(len(a), len(b)) // 2 - 1, 0)
    matched_b = [False] * len(b)
    matches_a = []
    for i, char in enumerate(a):
        for j in range(max(0, i - window), min(len(b), i + window + 1)):
            if not matched_b[j] and b[j] == char:
                matched_b[j] = True
                matches_a.append(char)
                break
    if not matches_a:
        return 0.0
    matches_b = [char for char, hit in zip(b, matched_b, strict=True) if hit]
    transpositions = sum(x != y for x, y in zip(matches_a, matches_b, strict=True)) / 2
    m = len(matches_a)
    jaro = (m / len(a) + m / len(b) + (m - transpositions) / m) / 3
    if jaro <= 0.7:
        return jaro
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * prefix_weight * (1 - jaro)


def _plain(value: Any, whole: bool = False) -> Any:
    """A frame's value as psycopg takes it: NaN/NA as NULL, numpy scalars and arrays as
    Python values, and a float in a whole-number column (pandas makes an integer column
    with a missing value float) as an int."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if whole and value.is_integer():
            return int(value)
    return value


class PostgresDialect(Dialect):
    name = "postgresql"

    def __init__(self, key: tuple):
        self.key = key  # the database, for the embeddings cache

    def list_contains(self, array_sql: str, element_sql: str) -> str:
        return f"({element_sql} = ANY({array_sql}))"

    def json_text(self, column: str, path: Sequence[str]) -> str:
        return f"({column}::json #>> '{{{','.join(checked_json_path(path))}}}')"

    def similarity_source(
        self,
        con: Any,
        vector: Sequence[float],
        candidates: Fragment | None,
        limit: int | None,
    ) -> Fragment:
        table = postgres_vectors.embeddings(con, self.key)
        names = None
        if candidates is not None:
            names = [row[0] for row in con.execute(*candidates).fetchall()]
        ranked_names, scores = postgres_vectors.ranked(table, vector, names, limit)
        return (
            "(SELECT * FROM unnest(?::text[], ?::real[]) AS similar_models (name, score))",
            [ranked_names, scores],
        )

    def closest_names(self, con: Any, name: str, count: int = 3) -> list[str]:
        wanted = name.lower()
        names = [row[0] for row in con.execute("SELECT name FROM models").fetchall()]
        scored = sorted(names, key=lambda other: (-jaro_winkler(other.lower(), wanted), other))
        return scored[:count]

    def insert_rows(
        self,
        con: Any,
        table: str,
        frame: pd.DataFrame,
        *,
        conflict_key: Sequence[str] = (),
    ) -> None:
        """Binary COPY into a temporary table typed like the target's columns (JSON as text),
        then one INSERT ... SELECT: ~10x faster than a pipelined INSERT per row for the
        embeddings, and the change trigger on model_embeddings fires once."""
        columns = list(frame.columns)
        types = dict(
            con.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = ?::regclass AND attnum > 0 AND NOT attisdropped",
                [table],
            ).fetchall()
        )
        staged = ["text" if types[c] in ("json", "jsonb") else types[c] for c in columns]
        integral = [t in ("smallint", "integer", "bigint") for t in staged]
        # A list of floats for a bytea column is an embedding: 384 little-endian float32.
        vectors = [t == "bytea" for t in staged]
        stage = f"incoming_{table}"
        con.execute(
            f"CREATE TEMPORARY TABLE {stage} ("
            + ", ".join(f"{c} {t}" for c, t in zip(columns, staged, strict=True))
            + ") ON COMMIT DROP"
        )
        copy_sql = f"COPY {stage} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        with con.raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.set_types(staged)
            for row in frame.itertuples(index=False, name=None):
                copy.write_row(
                    [
                        postgres_vectors.to_bytes(v)
                        if vector and v is not None
                        else _plain(v, whole)
                        for v, whole, vector in zip(row, integral, vectors, strict=True)
                    ]
                )
        selected = ", ".join(
            f"{c}::{types[c]}" if types[c] in ("json", "jsonb") else c for c in columns
        )
        con.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selected} FROM {stage}"
            + conflict_clause(columns, conflict_key)
        )
        con.execute(f"DROP TABLE {stage}")
