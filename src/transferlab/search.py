"""Finding models: filters on the registry's metadata plus semantic search over model cards."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.embeddings import EMBEDDING_DIM, embed_texts, model_search_text, text_hash
from transferlab.errors import TransferlabError
from transferlab.registry import Registry
from transferlab.registry.records import SOURCES

LICENSE_POLICIES = ("any", "commercial", "open")
_SIZE_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}
_SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([KMBG]?)\s*$", re.IGNORECASE)


def parse_parameter_count(text: str | int | None) -> int | None:
    """'150M' -> 150_000_000; '1.5B', '20k' and plain integers work too."""
    if text is None or isinstance(text, int):
        return text
    match = _SIZE_PATTERN.match(str(text))
    if not match:
        raise TransferlabError(
            f"Invalid parameter count {text!r}.",
            "Write a number with an optional K, M or B suffix, e.g. 150M or 1.5B.",
        )
    return int(float(match.group(1)) * _SIZE_SUFFIXES[match.group(2).upper()])


@dataclass
class SearchFilters:
    task: str | None = None
    license: str = "any"  # any | commercial | open | a licence id such as apache-2.0
    max_params: int | None = None
    source: str | None = None
    tags: list[str] = field(default_factory=list)
    runnable_here: bool = False
    query: str | None = None
    limit: int = 20


def sync_embeddings(registry: Registry) -> int:
    """Embed the models whose search text changed since they were last embedded."""
    stored = registry.embedding_hashes()
    models = registry.query("SELECT * FROM models")
    stale = []
    for model in models:
        text = model_search_text(model)
        digest = text_hash(text)
        if stored.get(model["name"]) != digest:
            stale.append((model["name"], digest, text))
    if not stale:
        return 0
    vectors = embed_texts([text for _, _, text in stale])
    return registry.save_embeddings(
        "all-MiniLM-L6-v2",
        [(name, digest, vector) for (name, digest, _), vector in zip(stale, vectors, strict=True)],
    )


def _validate(registry: Registry, filters: SearchFilters) -> None:
    if filters.source and filters.source not in SOURCES:
        raise TransferlabError(
            f"Unknown source {filters.source!r}.", f"Use one of: {', '.join(SOURCES)}."
        )
    if filters.task and not registry.query(
        "SELECT 1 FROM models WHERE task = ? LIMIT 1", [filters.task]
    ):
        tasks = [r["task"] for r in registry.query("SELECT DISTINCT task FROM models ORDER BY 1")]
        if filters.task not in tasks:
            raise TransferlabError(
                f"Unknown task {filters.task!r}.",
                f"Tasks in this registry: {', '.join(tasks) or 'none (run transferlab init)'}.",
            )
    if filters.license not in LICENSE_POLICIES and not re.match(
        r"^[a-z0-9.\-+]+$", filters.license
    ):
        raise TransferlabError(
            f"Invalid licence filter {filters.license!r}.",
            f"Use {', '.join(LICENSE_POLICIES)} or a licence id such as apache-2.0.",
        )
    if filters.license not in LICENSE_POLICIES and not registry.query(
        "SELECT 1 FROM models WHERE license = ? LIMIT 1", [filters.license]
    ):
        known = [
            r["license"]
            for r in registry.query(
                "SELECT DISTINCT license FROM models WHERE license IS NOT NULL ORDER BY 1"
            )
        ]
        raise TransferlabError(
            f"Unknown licence {filters.license!r}: no model in this registry has it.",
            f"Use {', '.join(LICENSE_POLICIES)} or one of the licences in this registry: "
            f"{', '.join(known) or 'none (run transferlab init)'}.",
        )
    if filters.limit < 1:
        raise TransferlabError(f"Invalid limit {filters.limit}.", "Use a positive number.")


def filter_sql(filters: SearchFilters) -> tuple[str, list[Any]]:
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
        clauses.append("list_contains(m.tags, ?)")
        params.append(tag)
    if filters.runnable_here:
        clauses.append(
            "m.name IN (SELECT v.model_name FROM model_versions v "
            "WHERE v.uri IS NOT NULL AND v.uri NOT LIKE '%://%')"
        )
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def local_path(uri: str | None) -> Path | None:
    """The folder a version's weights are in, when they are on this machine."""
    if not uri or "://" in uri:
        return None
    path = Path(uri)
    return path if path.exists() else None


def search_models(registry: Registry, filters: SearchFilters) -> list[dict]:
    """Models matching every filter, ranked by semantic similarity when a query is given."""
    if filters.query is not None and not filters.query.strip():
        raise TransferlabError(
            "The search text is empty.", "Describe what you need, e.g. 'multilingual embeddings'."
        )
    # Embed first (a model call), then hold the registry once for the whole search: the
    # nested queries reuse that open file instead of opening it again (~15 ms each).
    vector = embed_texts([filters.query])[0] if filters.query else None
    with registry.connect(read_only=True):
        return _search(registry, filters, vector)


def _search(registry: Registry, filters: SearchFilters, vector: list[float] | None) -> list[dict]:
    _validate(registry, filters)
    where, params = filter_sql(filters)
    columns = (
        "m.name, m.source, m.source_ref, m.task, m.architecture, m.library, m.license, "
        "m.commercial_use, m.parameters, m.size_bytes, m.languages, m.tags, m.description"
    )
    if vector is not None:
        # Rank on the narrow embeddings table first and join the wide model rows for the top k
        # only: joining all 100k rows before sorting cost ~3.5x more (benchmarks/registry_bench).
        candidates = f"SELECT m.name FROM models m{where}" if where else None
        sql = (
            "WITH top AS (SELECT name, array_cosine_similarity(embedding, "
            f"?::FLOAT[{EMBEDDING_DIM}]) AS score FROM model_embeddings"
            + (f" WHERE name IN ({candidates})" if candidates else "")
            + " ORDER BY score DESC, name LIMIT ?) "
            f"SELECT {columns}, top.score FROM top JOIN models m USING (name) "
            "ORDER BY top.score DESC, m.name"
        )
        rows = registry.query(sql, [vector, *params, filters.limit])
    else:
        # Names first, wide columns for the page only: ~15 % faster on 100k models.
        sql = (
            f"WITH top AS (SELECT m.name FROM models m{where} ORDER BY m.name LIMIT ?) "
            f"SELECT {columns}, NULL AS score FROM top JOIN models m USING (name) ORDER BY m.name"
        )
        rows = registry.query(sql, [*params, filters.limit])
    if filters.runnable_here and rows:
        local = _names_with_local_weights(registry, [row["name"] for row in rows])
        rows = [row for row in rows if row["name"] in local]
    return rows


def _names_with_local_weights(registry: Registry, names: list[str]) -> set[str]:
    """Of `names`, those with a version whose weights are in a folder on this machine."""
    versions = registry.query(
        "SELECT model_name, uri FROM model_versions WHERE list_contains(?, model_name)", [names]
    )
    return {v["model_name"] for v in versions if local_path(v["uri"])}


def explain_empty(registry: Registry, filters: SearchFilters) -> str:
    """Which single filter removes the most models, to say why nothing matched."""
    with registry.connect(read_only=True):
        return _explain_empty(registry, filters)


def _explain_empty(registry: Registry, filters: SearchFilters) -> str:
    total = registry.query("SELECT count(*) AS n FROM models")[0]["n"]
    candidates = {
        "task": SearchFilters(task=filters.task),
        "license": SearchFilters(license=filters.license),
        "max_params": SearchFilters(max_params=filters.max_params),
        "source": SearchFilters(source=filters.source),
        "tags": SearchFilters(tags=filters.tags),
        "runnable_here": SearchFilters(runnable_here=filters.runnable_here),
    }
    removed = {}
    for name, single in candidates.items():
        where, params = filter_sql(single)
        if not where:
            continue
        kept = registry.query(f"SELECT count(*) AS n FROM models m{where}", params)[0]["n"]
        removed[name] = total - kept
    if not removed:
        return f"The registry holds {total} models."
    worst = max(removed, key=removed.get)
    return (
        f"No model matches all filters; the {worst} filter alone removes {removed[worst]} of "
        f"{total} models. Loosen it and search again."
    )
