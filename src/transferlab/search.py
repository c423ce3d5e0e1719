"""Finding models: filters on the registry's metadata plus semantic search over model cards."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.embeddings import embed_texts, model_search_text, text_hash
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
    models = registry.all_models()
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


def _check_filters(filters: SearchFilters) -> None:
    """What can be refused without the registry."""
    if filters.source and filters.source not in SOURCES:
        raise TransferlabError(
            f"Unknown source {filters.source!r}.", f"Use one of: {', '.join(SOURCES)}."
        )
    if filters.license not in LICENSE_POLICIES and not re.match(
        r"^[a-z0-9.\-+]+$", filters.license
    ):
        raise TransferlabError(
            f"Invalid licence filter {filters.license!r}.",
            f"Use {', '.join(LICENSE_POLICIES)} or a licence id such as apache-2.0.",
        )
    if filters.limit < 1:
        raise TransferlabError(f"Invalid limit {filters.limit}.", "Use a positive number.")


def _check_known(registry: Registry, filters: SearchFilters) -> None:
    """A task or licence no model has: refused by name (asked only when nothing matched)."""
    if filters.task and not registry.has_task(filters.task):
        tasks = registry.model_tasks()
        if filters.task not in tasks:
            raise TransferlabError(
                f"Unknown task {filters.task!r}.",
                f"Tasks in this registry: {', '.join(tasks) or 'none (run transferlab init)'}.",
            )
    if filters.license not in LICENSE_POLICIES and not registry.has_licence(filters.license):
        known = registry.model_licences()
        raise TransferlabError(
            f"Unknown licence {filters.license!r}: no model in this registry has it.",
            f"Use {', '.join(LICENSE_POLICIES)} or one of the licences in this registry: "
            f"{', '.join(known) or 'none (run transferlab init)'}.",
        )


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
    with registry.session(read_only=True):
        return _search(registry, filters, vector)


def _search(registry: Registry, filters: SearchFilters, vector: list[float] | None) -> list[dict]:
    _check_filters(filters)
    rows = registry.search_rows(filters, filters.limit, vector)
    if not rows:  # an unknown task or licence matches nothing: say which (one query saved
        _check_known(registry, filters)  # per search otherwise; two calls over HTTP)
    if filters.runnable_here and rows:
        local = _names_with_local_weights(registry, [row["name"] for row in rows])
        rows = [row for row in rows if row["name"] in local]
    return rows


def _names_with_local_weights(registry: Registry, names: list[str]) -> set[str]:
    """Of `names`, those with a version whose weights are in a folder on this machine."""
    versions = registry.version_uris(names)
    return {v["model_name"] for v in versions if local_path(v["uri"])}


def explain_empty(registry: Registry, filters: SearchFilters) -> str:
    """Which single filter removes the most models, to say why nothing matched."""
    with registry.session(read_only=True):
        return _explain_empty(registry, filters)


def _explain_empty(registry: Registry, filters: SearchFilters) -> str:
    total = registry.model_count()
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
        if not registry.filter_is_set(single):
            continue
        kept = registry.count_models_matching(single)
        removed[name] = total - kept
    if not removed:
        return f"The registry holds {total} models."
    worst = max(removed, key=removed.get)
    return (
        f"No model matches all filters; the {worst} filter alone removes {removed[worst]} of "
        f"{total} models. Loosen it and search again."
    )
