"""Semantic search on PostgreSQL without a vector extension: the model embeddings are ranked in
this process with numpy, over a copy of the model_embeddings table kept in memory.

The copy (a float32 matrix, 384 values a row: ~150 MB for 100k models) is loaded on the first
search and reused while the table is unchanged. A trigger counts the statements that change the
table in a one-row table (migrations/postgresql/0001_initial.sql); each search reads that row
first, in the search's own snapshot: the count and the row's xmin (the writing transaction, so
a count reached again after a rolled-back write does not match). When they differ from the
cache's, the table is read again: the embeddings are stored as little-endian float32 bytes and
fetched in binary, so numpy takes them as they come (~65 ms for 12k rows on 2 busy cores).

Scores are the cosine similarity DuckDB's array_cosine_similarity gives on FLOAT[384]: dot
product over the product of the norms, in float32; ties go to the smaller name, as in the
DuckDB query's `ORDER BY score DESC, name`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferlab.embeddings import EMBEDDING_DIM
from transferlab.errors import RegistryError

_FLOAT32 = np.dtype("<f4")
_ROW_BYTES = EMBEDDING_DIM * _FLOAT32.itemsize


def to_bytes(vector: Sequence[float] | np.ndarray) -> bytes:
    """An embedding as the model_embeddings column keeps it: 384 little-endian float32."""
    values = np.asarray(vector, dtype=_FLOAT32)
    if values.shape != (EMBEDDING_DIM,):
        raise RegistryError(
            f"An embedding has {values.size} values; the registry keeps {EMBEDDING_DIM}.",
            "Embed with the registry's embedder (all-MiniLM-L6-v2).",
        )
    return values.tobytes()


@dataclass
class EmbeddingMatrix:
    """The model_embeddings table at one state: names (in name order), unit rows' norms."""

    state: tuple
    names: list[str]
    index: dict[str, int]
    matrix: np.ndarray  # float32, (n, EMBEDDING_DIM)
    norms: np.ndarray  # float32, (n,)


_cache: dict[tuple, EmbeddingMatrix] = {}
_guard = threading.Lock()


def _state(con: Any) -> tuple:
    row = con.execute(
        "SELECT changes, xmin::text, (SELECT oid FROM pg_database "
        "WHERE datname = current_database()) FROM model_embedding_changes"
    ).fetchone()
    return tuple(row) if row else ()


def decode(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings as one float32 matrix (a row per blob)."""
    data = b"".join(blobs)
    if len(data) != len(blobs) * _ROW_BYTES:
        raise RegistryError(
            "The model_embeddings table holds an embedding that is not 384 float32 values.",
            "Re-embed the models (transferlab init re-syncs the embeddings).",
        )
    return np.frombuffer(data, dtype=_FLOAT32).reshape(len(blobs), EMBEDDING_DIM)


def load(con: Any, state: tuple) -> EmbeddingMatrix:
    with con.raw.cursor(binary=True) as cursor:
        cursor.execute("SELECT name, embedding FROM model_embeddings ORDER BY name")
        rows = cursor.fetchall()
    names = [row[0] for row in rows]
    matrix = decode([row[1] for row in rows])
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float32))
    return EmbeddingMatrix(state, names, {n: i for i, n in enumerate(names)}, matrix, norms)


def embeddings(con: Any, key: tuple) -> EmbeddingMatrix:
    """The cached embeddings of the database `key`, reloaded when the table has changed."""
    state = _state(con)
    with _guard:
        cached = _cache.get(key)
    if cached is not None and cached.state == state:
        return cached
    fresh = load(con, state)
    with _guard:
        _cache[key] = fresh
    return fresh


def forget(key: tuple) -> None:
    with _guard:
        _cache.pop(key, None)


def ranked(
    table: EmbeddingMatrix,
    vector: Sequence[float],
    names: Sequence[str] | None = None,
    limit: int | None = None,
) -> tuple[list[str], list[float]]:
    """(names, scores) by cosine similarity to `vector`, best first then by name: of the
    given names that have an embedding (all when None), the `limit` best (all when None)."""
    if names is None:
        rows = np.arange(len(table.names))
    else:
        found = [table.index.get(name) for name in names]
        rows = np.array(sorted(i for i in found if i is not None), dtype=np.int64)
    if rows.size == 0:
        return [], []
    query = np.asarray(vector, dtype=np.float32)
    # Every row is scored (one matrix-vector product, ~10 ms for 100k rows) and the candidates
    # picked out after: copying a large subset of the matrix would cost more, and a model's
    # score does not depend on the filter.
    with np.errstate(divide="ignore", invalid="ignore"):
        every = (table.matrix @ query) / (table.norms * np.float32(np.sqrt(np.dot(query, query))))
    scores = every.astype(np.float32, copy=False)
    if names is not None:
        scores = scores[rows]
    if limit is not None and limit < rows.size:
        # The limit-th best score; every row that reaches it goes on to the exact sort, so
        # ties at the edge are broken by name as in SQL.
        edge = np.partition(-scores, limit - 1)[limit - 1]
        keep = np.flatnonzero(-scores <= edge)
    else:
        keep = np.arange(rows.size)
    # Rows are in name order, so a stable sort on the score alone breaks ties by name.
    order = keep[np.argsort(-scores[keep], kind="stable")]
    if limit is not None:
        order = order[:limit]
    return [table.names[i] for i in rows[order]], [float(s) for s in scores[order]]
