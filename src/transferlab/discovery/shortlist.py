"""Which registered models to score: filters, semantic ranking, and where the weights are.

A model that passes the filters but cannot run here (weights neither on this machine nor
loadable from a reachable Hub) is kept in the shortlist with the reason, never dropped
silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transferlab.discovery.config import CANDIDATE_TASKS, DiscoveryConfig
from transferlab.embeddings import embed_texts
from transferlab.errors import TransferlabError
from transferlab.models.sources import HUB_SCHEME, hub_status, sequence_classification_types
from transferlab.registry import Registry
from transferlab.search import LICENSE_POLICIES, local_path

# version id -> why it must not be scored, or None
Exclude = Callable[[str], str | None]
_FIXES = {
    "task": "Register an encoder that can take a classification head (transferlab import local "
    "DIR), or check the task.",
    "license": "Use license='any', or register a model whose licence allows your use.",
    "max_params": "Raise max_params (e.g. 150M) or set it to None.",
    "runnable_here": "Set runnable_here=False to list hub models too, or register local weights "
    "(transferlab import local DIR --name NAME).",
}


@dataclass
class Candidate:
    """A model on the shortlist, the version that would be scored, and why it may not be."""

    name: str
    row: dict[str, Any]
    version_id: str | None
    uri: str | None
    similarity: float | None
    runnable: bool
    reason: str | None = None  # why it is not scored; None = score it
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "not runnable"  # the table's status when it is not scored


def _filters(config: DiscoveryConfig) -> dict[str, Any]:
    """Discovery's filters as the registry's candidate queries take them."""
    return {
        "tasks": list(CANDIDATE_TASKS[config.task]),
        "head_types": sorted(sequence_classification_types()),
        "license": config.license,
        "max_params": config.max_params,
    }


def explain_no_match(registry: Registry, config: DiscoveryConfig) -> TransferlabError:
    """The error for an empty candidate list, naming the filter that removes the most."""
    total = registry.model_count()
    if not total:
        return TransferlabError(
            f"The registry {registry.display_location} holds no models.",
            "Run `transferlab init` first.",
        )
    kept = registry.candidate_filter_counts(**_filters(config), runnable_here=config.runnable_here)
    removed = {name: total - count for name, count in kept.items()}
    worst = max(removed, key=lambda name: removed[name])
    if worst == "license" and config.license not in LICENSE_POLICIES and removed[worst] == total:
        held = registry.model_licences()
        return TransferlabError(
            f"No registered model has the licence {config.license!r}.",
            f"Use license='any', 'commercial' or 'open', or one of the licences in the "
            f"registry: {', '.join(held) or 'none recorded'}.",
        )
    shown = {
        "task": f"task={config.task!r}",
        "license": f"license={config.license!r}",
        "max_params": f"max_params={config.max_params}",
        "runnable_here": "runnable_here=True",
    }
    counts = ", ".join(f"{shown[n]} removes {c}" for n, c in removed.items())
    return TransferlabError(
        f"No model matches all discovery filters; the {shown[worst]} filter removes the most "
        f"({removed[worst]} of {total} models). Alone, each filter: {counts}.",
        _FIXES[worst],
    )


def _ranked(registry: Registry, config: DiscoveryConfig, vector: list[float] | None) -> list:
    """Models passing every filter but runnable_here, best semantic match first."""
    return registry.candidate_models(**_filters(config), vector=vector)


def _scored_version(
    registry: Registry, name: str, exclude: Exclude | None = None
) -> tuple[str | None, str | None, bool, str | None]:
    """(version id, uri, weights here, why excluded): the latest complete version with local
    weights that `exclude` does not rule out, else the latest one it rules out (with why),
    else the latest complete version (a Hub reference or a missing folder)."""
    versions = registry.complete_versions_of(name)
    ruled_out = None
    for version in versions:
        if local_path(version["uri"]):
            why = exclude(version["version_id"]) if exclude else None
            if why is None:
                return version["version_id"], version["uri"], True, None
            ruled_out = ruled_out or (version["version_id"], version["uri"], True, why)
    if ruled_out:
        return ruled_out
    if versions:
        return versions[0]["version_id"], versions[0]["uri"], False, None
    return None, None, False, None


def not_runnable_reason(uri: str | None) -> str:
    """Why a version without local weights cannot be scored on this machine (or '' if the Hub
    is reachable and it may be)."""
    if not uri:
        return "no weights registered"
    if uri.startswith(HUB_SCHEME):
        status = hub_status()
        if status == "online":
            return ""
        return f"weights are on the Hugging Face Hub, which is {status} here"
    if "://" in uri:
        return f"{uri.split('://', 1)[0]} model, not a transformers text model"
    return f"weights folder {uri} is not on this machine"


def build_shortlist(
    registry: Registry, config: DiscoveryConfig, exclude: Exclude | None = None
) -> list[Candidate]:
    """The candidates to score (and, with reasons, those that cannot run here).

    With runnable_here the shortlist holds the best `shortlist` models that run here, plus the
    best `shortlist` matches that cannot (listed with the reason, not scored). Without it, the best
    `shortlist` models whatever their weights; those that cannot be loaded say why.
    `exclude(version_id)` says why a version must not be scored (e.g. it was fine-tuned on the
    examples discovery scores with): such models take no place among the scored ones and are
    listed (as many as are scored at most) with that reason.
    """
    vector = embed_texts([config.query])[0] if config.query else None
    with registry.session(read_only=True):
        ranked = []
        for row in _ranked(registry, config, vector):
            version_id, uri, runnable, why = _scored_version(registry, row["name"], exclude)
            candidate = Candidate(
                row["name"], row, version_id, uri, row.get("similarity"), runnable
            )
            if why:
                candidate.reason, candidate.status = why, why.split(":", 1)[0]
            ranked.append(candidate)
        if not ranked or (config.runnable_here and not any(c.runnable for c in ranked)):
            raise explain_no_match(registry, config)
    excluded = [c for c in ranked if c.reason][: config.shortlist]
    candidates = [c for c in ranked if not c.reason]
    if not config.runnable_here:
        chosen = candidates[: config.shortlist]
        for candidate in chosen:
            reason = "" if candidate.runnable else not_runnable_reason(candidate.uri)
            candidate.reason = f"not runnable here: {reason}" if reason else None
        listed = {id(c) for c in chosen + excluded}
        return [c for c in ranked if id(c) in listed]
    runnable = [c for c in candidates if c.runnable][: config.shortlist]
    # The best matches that cannot run here are listed with the reason (as many as are
    # scored at most), so a better match is never dropped without a word.
    skipped = [c for c in candidates if not c.runnable][: config.shortlist]
    for candidate in skipped:
        candidate.reason = "not runnable here: " + (
            not_runnable_reason(candidate.uri) or "no local weights (runnable_here=True)"
        )
    listed = {id(c) for c in runnable + skipped + excluded}
    return [c for c in ranked if id(c) in listed]
