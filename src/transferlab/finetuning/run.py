"""One fine-tuning run from request to registered version, recorded in the registry whatever
happens: resolve -> load data -> train -> save -> register, or a failed run with its error.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.data import DataSplits, load_splits
from transferlab.finetuning.artifacts import label_maps
from transferlab.finetuning.config import (
    FinetuneConfig,
    ResolvedConfig,
    resolve_config,
)
from transferlab.finetuning.pruning import pruning_callbacks
from transferlab.finetuning.recording import register_outcome
from transferlab.finetuning.trackers import (
    Tracker,
    finish_quietly,
    start_tracker,
    tracking_folder,
)
from transferlab.finetuning.training import TrainingOutcome, train_and_evaluate
from transferlab.models.sources import progress_bars
from transferlab.progress import for_run
from transferlab.registry import Registry, VersionRecord
from transferlab.run_status import finish_failed, finish_succeeded

RUN_KIND = "finetune"


@dataclass
class FinetuneResult:
    """What a run produced: the registered version, its scores, curves and costs."""

    run_id: str
    version: VersionRecord
    output_dir: Path
    method: str
    label_names: list[str]
    metrics: dict[str, dict[str, float]]
    history: list[dict[str, Any]]
    confusion_matrix: list[list[int]] | None
    timings: dict[str, float]
    resources: dict[str, Any]
    data: dict[str, Any]
    parameters: dict[str, Any]
    logits: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def version_id(self) -> str:
        return self.version.version_id

    @property
    def ref(self) -> str:
        return self.version.ref


def finetune(
    config: FinetuneConfig,
    registry: Registry | None = None,
    *,
    run_id: str | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune `config.base` on the labelled data and register the result as a new version.

    With `run_id` the run already exists (the papermill runner started it): it is updated, and
    the runner finishes it after the whole notebook (`run_status`). Otherwise a 'finetune' run
    is started and finished here. On any error nothing is registered, the output folder is
    left for inspection, the run ends failed (or interrupted) with the error message, and the
    error is raised again.
    """
    registry = registry or Registry(config.registry)
    started = time.perf_counter()
    output_notebook = None
    own_run = run_id is None
    if own_run:
        run_id = registry.start_run(RUN_KIND, parameters=config.to_params())
        existing: dict[str, Any] = {}
    else:
        run = registry.get_run(run_id)
        existing, output_notebook = run["parameters"] or {}, run["output_notebook"]
    tracker = Tracker()
    try:
        resolved = resolve_config(config, registry, run_id=run_id)
        registry.update_run(run_id, parameters={**existing, **resolved.to_params()})
        splits = load_data(resolved)
        parameters = {**existing, **resolved.to_params(), "data": splits.summary()}
        registry.update_run(run_id, parameters=parameters, data_fingerprint=splits.fingerprint())
        tracker = start_tracker(
            resolved.report_to,
            run_id,
            tracking_folder(output_notebook),
            resolved.to_params(),
            splits.summary(),
            splits.fingerprint(),
            resolved.registry_path,
        )
        if tracker.describe():
            parameters["tracker"] = tracker.describe()
            registry.update_run(run_id, parameters=parameters)
        resolved.output_dir.mkdir(parents=True, exist_ok=True)
        callbacks = list(tracker.callbacks())
        if not own_run:  # a run of a sweep that prunes reports its scores (finetuning.pruning)
            callbacks += pruning_callbacks(registry, run_id)
        with for_run(run_id):  # live progress to the runner's file, when it gave the run id
            outcome = train_and_evaluate(resolved, splits, progress=progress, callbacks=callbacks)
        parameters["group_by_length"] = outcome.group_by_length
        registry.update_run(run_id, parameters=parameters)
        save_started = time.perf_counter()
        with progress_bars(progress):
            saved = resolved.finetune_method.save(
                outcome, resolved.output_dir, _version_metadata(resolved, splits, outcome)
            )
        version = register_outcome(registry, resolved, saved, outcome, splits, run_id)
        outcome.timings["save_s"] = time.perf_counter() - save_started
        outcome.timings["total_s"] = time.perf_counter() - started
        result = _result(run_id, version, resolved, splits, outcome, parameters)
        finish_quietly(tracker, outcome.metrics, version, outcome.resources["steps"])
        finish_succeeded(registry, run_id, own_run=own_run, metrics=_run_metrics(result, outcome))
        return result
    except BaseException as exc:
        with suppress(Exception):
            tracker.fail(exc)
        finish_failed(registry, run_id, exc, own_run=own_run)
        raise


# The settings that decide which examples a run trains on (besides its data sources).
SPLIT_SETTINGS = (
    "text_column",
    "label_column",
    "label_names",
    "test_fraction",
    "validation_fraction",
    "n_per_class",
    "n_train",
    "seed",
)


def load_data(resolved: ResolvedConfig) -> DataSplits:
    return load_splits(
        resolved.train,
        validation=resolved.validation,
        test=resolved.test,
        **{key: getattr(resolved, key) for key in SPLIT_SETTINGS},
    )


def load_recorded_data(parameters: dict[str, Any], *, training_only: bool = False) -> DataSplits:
    """The splits of a recorded run drawn again from its resolved parameters (the same sources,
    split settings and seed, through the same `load_splits`). They are the run's examples only
    while its data sources are unchanged: compare `fingerprints()` with the recorded
    `parameters['data']['splits']`.

    `training_only`: leave out the validation and test sources the run was given. A run holds
    out no fraction for a split it was given (its resolved fraction is 0), so the training
    examples depend only on the training source, the fractions, the sample and the seed."""
    return load_splits(
        parameters["train"],
        validation=None if training_only else parameters.get("validation"),
        test=None if training_only else parameters.get("test"),
        **{key: parameters[key] for key in SPLIT_SETTINGS},
    )


def _version_metadata(
    resolved: ResolvedConfig, splits: DataSplits, outcome: TrainingOutcome
) -> dict[str, Any]:
    """What loading the version needs (and what it is), stored in the registry and on disk."""
    return {
        "method": resolved.method,
        **label_maps(splits.label_names),
        "base_uri": resolved.base.source.uri,
        "base_version_id": resolved.base.version_id,
        "base_model": resolved.base.model_name,
        "model_type": resolved.base.model_type,
        "max_length": resolved.max_length,
        "target_modules": resolved.target_modules,
        "lora_r": resolved.lora_r,
        "lora_alpha": resolved.lora_alpha,
        "quantization": outcome.quantization,
        "dataset": resolved.dataset,
        "data_fingerprint": splits.fingerprint(),
        "trainable_parameters": outcome.trainable_parameters,
    }


def _result(
    run_id: str,
    version: VersionRecord,
    resolved: ResolvedConfig,
    splits: DataSplits,
    outcome: TrainingOutcome,
    parameters: dict[str, Any],
) -> FinetuneResult:
    return FinetuneResult(
        run_id=run_id,
        version=version,
        output_dir=resolved.output_dir,
        method=resolved.method,
        label_names=list(splits.label_names),
        metrics=outcome.metrics,
        history=outcome.history,
        confusion_matrix=outcome.confusion_matrix,
        timings=outcome.timings,
        resources={
            **outcome.resources,
            "trainable_parameters": outcome.trainable_parameters,
            "total_parameters": outcome.total_parameters,
            "best_step": outcome.best_step,
            "group_by_length": outcome.group_by_length,
        },
        data=splits.summary(),
        parameters=parameters,
        logits=outcome.logits,
    )


def _run_metrics(result: FinetuneResult, outcome: TrainingOutcome) -> dict[str, Any]:
    return {
        "version_id": result.version_id,
        "metrics": result.metrics,
        "confusion_matrix": result.confusion_matrix,
        "timings": result.timings,
        "resources": result.resources,
        "history": result.history,
        "label_names": result.label_names,
    }
