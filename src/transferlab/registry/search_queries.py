"""Model search and discovery's candidate list: filters on the models' metadata and ranking
by similarity to a query's embedding, for Registry (api.py).

Filters arrive as plain values (a `transferlab.search.SearchFilters` or the discovery
settings); the SQL they become is built here only, with parameters for every value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from transferlab.registry.rows import dict_rows

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from transferlab.registry.backends import RegistryBackend
    from transferlab.registry.dialect import Dialect

_SEARCH_COLUMNS = (
    "m.name, m.source, m.source_ref, m.task, m.architecture, m.library, m.license, "
    "m.commercial_use, m.parameters, m.size_bytes, m.languages, m.tags, m.description"
)
_CANDIDATE_COLUMNS = (
    "m.name, m.source, m.source_ref, m.task, m.model_type, m.license, m.commercial_use, "
    "m.parameters, m.size_bytes, m.finetune, m.origin"
)


class Filters(Protocol):
    """What a search filters on (transferlab.search.SearchFilters has these fields)."""

    task: str | None
    license: str
    max_params: int | None
    source: str | None
    tags: list[str]
    runnable_here: bool


def filter_sql(filters: Filters, dialect: Dialect) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") and its parameters for every filter but the query."""
    clauses, params = [], []
    if filters.task:
        clauses.append("m.task = ?")
        params.append(filters.task)
    if filters.license == "commercial":
        clauses.append("m.commercial_use")
    elif filters.license == "open":
        clauses.append("m.commercial_use IS NOT NULL")
    elif filters.license != "any":
        clauses.append("m.license = ?")
        params.append(filters.license)
    if filters.max_params is not None:
        clauses.append("m.parameters <= ?")
        params.append(filters.max_params)
    if filters.source:
        clauses.append("m.source = ?")
        params.append(filters.source)
    for tag in filters.tags:
        clauses.append(dialect.list_contains("m.tags", "?"))
        params.append(tag)
    if filters.runnable_here:
        clauses.append(
            "m.name IN (SELECT v.model_name FROM model_versions v "
            "WHERE v.uri IS NOT NULL AND v.uri NOT LIKE '%://%')"
        )
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class _Only:
    """Filters with one of them set (the rest at their 'no filter' value)."""

    def __init__(self, **given: Any):
        self.task = given.get("task")
        self.license = given.get("license", "any")
        self.max_params = given.get("max_params")
        self.source = given.get("source")
        self.tags = list(given.get("tags") or [])
        self.runnable_here = bool(given.get("runnable_here", False))


def _candidate_clauses(
    dialect: Dialect,
    tasks: Sequence[str],
    head_types: Sequence[str],
    license: str,
    max_params: int | None,
    runnable_here: bool,
) -> dict[str, tuple[str, list[Any]]]:
    """One SQL condition per discovery filter (so each can be counted alone)."""
    clauses = {
        "task": (
            "m.task IN (SELECT unnest(?::VARCHAR[])) AND (m.model_type IS NULL OR "
            "m.model_type IN (SELECT unnest(?::VARCHAR[]))) AND EXISTS (SELECT 1 FROM "
            "model_versions v WHERE v.model_name = m.name AND v.kind <> 'adapter')",
            [list(tasks), list(head_types)],
        )
    }
    for name, single in (
        ("license", _Only(license=license)),
        ("max_params", _Only(max_params=max_params)),
        ("runnable_here", _Only(runnable_here=runnable_here)),
    ):
        where, params = filter_sql(single, dialect)
        if where:
            clauses[name] = (where.removeprefix(" WHERE "), params)
    return clauses


def _combine(clauses: dict[str, tuple[str, list[Any]]], skip: tuple[str, ...] = ()) -> tuple:
    kept = [(sql, params) for name, (sql, params) in clauses.items() if name not in skip]
    if not kept:
        return "", []
    return (
        " WHERE " + " AND ".join(f"({sql})" for sql, _ in kept),
        [p for _, params in kept for p in params],
    )


class SearchQueriesMixin:
    backend: RegistryBackend

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def _rows(self, sql: str, params: Any = ()) -> list[dict]: ...

    # -- search -----------------------------------------------------------------------------

    def search_rows(
        self, filters: Filters, limit: int, vector: Sequence[float] | None = None
    ) -> list[dict]:
        """Models passing every filter: the `limit` most similar to `vector` (with `score`),
        or the first `limit` by name (score NULL)."""
        dialect = self.backend.dialect
        where, params = filter_sql(filters, dialect)
        if vector is not None:
            # Rank the embeddings first (on the narrow embeddings table, or the cached matrix)
            # and join the wide model rows for the top k only: joining all 100k rows before
            # sorting cost ~3.5x more (benchmarks/registry_bench).
            candidates = (f"SELECT m.name FROM models m{where}", params) if where else None
            with self.connect(read_only=True) as con:
                top, top_params = dialect.similarity_source(con, vector, candidates, limit)
                sql = (
                    f"WITH top AS {top} "
                    f"SELECT {_SEARCH_COLUMNS}, top.score FROM top JOIN models m USING (name) "
                    "ORDER BY top.score DESC, m.name"
                )
                return dict_rows(con, sql, top_params)
        # Names first, wide columns for the page only: ~15 % faster on 100k models.
        sql = (
            f"WITH top AS (SELECT m.name FROM models m{where} ORDER BY m.name LIMIT ?) "
            f"SELECT {_SEARCH_COLUMNS}, NULL AS score FROM top JOIN models m USING (name) "
            "ORDER BY m.name"
        )
        return self._rows(sql, [*params, limit])

    def count_models_matching(self, filters: Filters) -> int:
        """How many models pass every filter (all models when none is set)."""
        where, params = filter_sql(filters, self.backend.dialect)
        return self._rows(f"SELECT count(*) AS n FROM models m{where}", params)[0]["n"]

    def filter_is_set(self, filters: Filters) -> bool:
        """Whether any of the filters narrows the models."""
        return bool(filter_sql(filters, self.backend.dialect)[0])

    # -- discovery --------------------------------------------------------------------------

    def candidate_filter_counts(
        self,
        *,
        tasks: Sequence[str],
        head_types: Sequence[str],
        license: str,
        max_params: int | None,
        runnable_here: bool,
    ) -> dict[str, int]:
        """For each discovery filter in use (task, license, max_params, runnable_here), how
        many models pass it alone."""
        clauses = _candidate_clauses(
            self.backend.dialect, tasks, head_types, license, max_params, runnable_here
        )
        with self.connect(read_only=True):
            return {
                name: self._rows(f"SELECT count(*) AS n FROM models m WHERE {sql}", params)[0]["n"]
                for name, (sql, params) in clauses.items()
            }

    def candidate_models(
        self,
        *,
        tasks: Sequence[str],
        head_types: Sequence[str],
        license: str,
        max_params: int | None,
        vector: Sequence[float] | None = None,
    ) -> list[dict]:
        """Models passing discovery's task, license and max_params filters, most similar to
        `vector` first (`similarity`), else by name (similarity NULL)."""
        dialect = self.backend.dialect
        clauses = _candidate_clauses(dialect, tasks, head_types, license, max_params, False)
        where, params = _combine(clauses)
        if vector is None:
            sql = (
                f"SELECT {_CANDIDATE_COLUMNS}, NULL AS similarity FROM models m{where} "
                "ORDER BY m.name"
            )
            return self._rows(sql, params)
        with self.connect(read_only=True) as con:
            scores, score_params = dialect.similarity_source(
                con, vector, (f"SELECT m.name FROM models m{where}", params), None
            )
            sql = (
                f"SELECT {_CANDIDATE_COLUMNS}, s.score AS similarity FROM models m "
                f"LEFT JOIN {scores} s USING (name){where} "
                "ORDER BY similarity DESC NULLS LAST, m.name"
            )
            return dict_rows(con, sql, [*score_params, *params])
