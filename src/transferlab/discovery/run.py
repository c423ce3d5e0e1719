"""One discovery run: shortlist -> score each runnable candidate -> rank -> recommend ->
record, with the run finished as failed (error kept) when anything goes wrong."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from transferlab.catalog.weights import check_weights
from transferlab.data import (
    LabelledData,
    dataset_name,
    load_labelled_data,
    sample_data_path,
    sample_few_shot,
)
from transferlab.discovery import figures
from transferlab.discovery.config import DiscoveryConfig
from transferlab.discovery.provenance import TRAINED_ON_DATA, TrainedOnData
from transferlab.discovery.ranking import Outcome, best_row, faster_alternatives, rank_table
from transferlab.discovery.recommend import finetune_command, recommend
from transferlab.discovery.recording import RUN_KIND, record_discovery
from transferlab.discovery.scoring import cv_folds, profiled_latency, score_candidate
from transferlab.discovery.shortlist import Candidate, build_shortlist
from transferlab.errors import DataError, ModelSourceError, TransferlabError
from transferlab.progress import for_run
from transferlab.registry import Registry
from transferlab.run_status import finish_failed, finish_succeeded
from transferlab.search import local_path


@dataclass
class DiscoveryResult:
    """The ranked table, the recommendation (finetune-template parameters) and the charts."""

    run_id: str
    table: pd.DataFrame
    recommendation: dict[str, Any] | None
    explanation: str
    data: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def command(self) -> str | None:
        """`transferlab run finetune -p ...` for the recommendation."""
        return finetune_command(self.recommendation) if self.recommendation else None

    def figures(self) -> dict[str, Any]:
        return {
            "score_vs_latency": figures.score_vs_latency(self.table),
            "score_vs_size": figures.score_vs_size(self.table),
        }


def load_pool(config: DiscoveryConfig) -> LabelledData:
    """Every labelled example of data / train / the sample data."""
    source = config.train if config.train is not None else config.data
    if source is None:
        source = sample_data_path("train")
    return load_labelled_data(
        source, text_column=config.text_column, label_column=config.label_column, split="train"
    )


def load_examples(config: DiscoveryConfig, pool: LabelledData | None = None) -> LabelledData:
    """`n_per_class` labelled examples of each class (seeded) from data / train / the sample."""
    pool = pool if pool is not None else load_pool(config)
    present = pool.present_labels()
    if len(present) < 2:
        raise DataError(
            f"{pool.source} has only one class ({', '.join(map(repr, present)) or 'none'}).",
            "Discovery ranks models by how well their embeddings separate your classes: give "
            "labelled data with at least two classes.",
        )
    examples = sample_few_shot(pool, n_per_class=config.n_per_class, seed=config.seed)
    cv_folds(examples.labels)
    return examples


def _score_all(
    registry: Registry, shortlist: list[Candidate], examples: LabelledData, config: DiscoveryConfig
) -> list[Outcome]:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    outcomes = []
    for candidate in shortlist:
        outcome = Outcome(candidate)
        outcomes.append(outcome)
        if candidate.reason:
            outcome.status, outcome.why = candidate.status, candidate.reason
            continue
        known = profiled_latency(registry, candidate.version_id, device)
        if known is not None and config.max_latency_ms and known > config.max_latency_ms:
            candidate.extra["latency_p50_ms"] = known
            outcome.status = "too slow"
            outcome.why = (
                f"not scored: its profile says {known:.1f} ms per text, over "
                f"max_latency_ms={config.max_latency_ms:g}"
            )
            continue
        try:
            folder = local_path(candidate.uri)
            if folder is not None:
                check_weights(folder)  # damaged weights: a clear reason, not a loader's error
            outcome.score = score_candidate(
                registry,
                candidate.version_id,
                candidate.uri,
                examples.texts,
                examples.labels,
                seed=config.seed,
                device=device,
            )
        except ModelSourceError as error:
            outcome.status, outcome.why = "not runnable", f"could not load: {error.problem}"
        except Exception as error:  # one broken candidate must not end the whole discovery
            outcome.status = "not runnable"
            outcome.why = f"could not score: {type(error).__name__}: {_first_line(error)}"
    return outcomes


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"


def _explain(table: pd.DataFrame, config: DiscoveryConfig) -> str:
    best = best_row(table)
    if best is None:
        return ""
    text = (
        f"{best['version']} ranks first: cross-validated accuracy {best['cv_accuracy']:.3f} ± "
        f"{best['cv_accuracy_std']:.3f} (macro-F1 {best['cv_macro_f1']:.3f}) on "
        f"{config.n_per_class} examples per class, {best['latency_p50_ms']:.1f} ms per text."
    )
    for other in faster_alternatives(table):
        speedup = best["latency_p50_ms"] / other["latency_p50_ms"]
        text += (
            f" {other['version']} is within one standard deviation "
            f"({other['cv_accuracy']:.3f}) and {speedup:.1f}x faster: worth a try where "
            "latency matters."
        )
    return text


def _no_eligible_error(table: pd.DataFrame, config: DiscoveryConfig) -> TransferlabError:
    slow = table[table["status"] == "too slow"]
    if not slow.empty:
        fastest = slow.sort_values("latency_p50_ms").iloc[0]
        return TransferlabError(
            f"No shortlisted model meets max_latency_ms={config.max_latency_ms:g}; the fastest, "
            f"{fastest['version']}, takes {fastest['latency_p50_ms']:.1f} ms per text.",
            "Raise max_latency_ms, or widen the shortlist (shortlist=, max_params=).",
        )
    reasons = "; ".join(f"{r['model']}: {r['why']}" for r in table.to_dict("records"))
    fix = (
        "Register local weights (transferlab import local DIR --name NAME), or run where the "
        "Hugging Face Hub is reachable."
    )
    if (table["status"] == TRAINED_ON_DATA).any():
        fix = (
            "Models fine-tuned on these examples are never scored on them: register a base "
            "model (transferlab import local DIR --name NAME), or " + fix[0].lower() + fix[1:]
        )
    return TransferlabError(
        f"No shortlisted model could be scored on this machine ({reasons}).", fix
    )


def discover(
    config: DiscoveryConfig | None = None,
    registry: Registry | None = None,
    *,
    run_id: str | None = None,
    **fields: Any,
) -> DiscoveryResult:
    """Shortlist registered models for the task, score them cheaply on the user's examples,
    rank them and recommend a base with its fine-tuning settings; recorded as a 'discover' run.

    `discover(query="...", n_per_class=16)` works as well as `discover(DiscoveryConfig(...))`.
    With `run_id` the run already exists (the papermill runner started it) and the runner
    finishes it; otherwise a run is started and finished here.
    """
    config = config or DiscoveryConfig(**fields)
    registry = registry or Registry()
    own_run = run_id is None
    if own_run:
        run_id = registry.start_run(RUN_KIND, parameters=config.to_params())
    try:
        with for_run(run_id):  # the runner's progress file, when it gave the run id
            result = _discover(config, registry, run_id)
    except BaseException as exc:
        finish_failed(registry, run_id, exc, own_run=own_run)
        raise
    finish_succeeded(registry, run_id, own_run=own_run)
    return result


def _discover(config: DiscoveryConfig, registry: Registry, run_id: str) -> DiscoveryResult:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    config = config.checked()
    pool = load_pool(config)
    examples = load_examples(config, pool)
    timings["data_s"] = time.perf_counter() - started
    started = time.perf_counter()
    shortlist = build_shortlist(registry, config, exclude=TrainedOnData(registry, pool))
    timings["shortlist_s"] = time.perf_counter() - started
    started = time.perf_counter()
    outcomes = _score_all(registry, shortlist, examples, config)
    timings["scoring_s"] = time.perf_counter() - started
    table = rank_table(outcomes, config.max_latency_ms)
    best = best_row(table)
    recommendation = recommend(registry, best["version"], config) if best else None
    dataset = dataset_name(
        config.train if config.train is not None else config.data or sample_data_path("train")
    )
    data = {
        "dataset": dataset,
        "examples": len(examples),
        "label_counts": examples.label_counts(),
        "n_per_class": config.n_per_class,
    }
    explanation = _explain(table, config)
    record_discovery(
        registry,
        run_id,
        table,
        recommendation,
        {"explanation": explanation, "data": data, "timings": timings},
        task=config.task,
        dataset=dataset,
        n_train=len(examples),
        seed=config.seed,
    )
    if best is None:
        raise _no_eligible_error(table, config)
    return DiscoveryResult(run_id, table, recommendation, explanation, data, timings)
