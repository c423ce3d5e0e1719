"""Writing a run's outcome to the registry: the derived model, its version and its results in
one transaction, so a failure leaves no half-registered version behind.
"""

from __future__ import annotations

from typing import Any

from transferlab.data import DataSplits
from transferlab.finetuning.artifacts import SavedModel
from transferlab.finetuning.config import ResolvedConfig
from transferlab.finetuning.training import TrainingOutcome
from transferlab.registry import ModelRecord, Registry, VersionRecord

RESULT_METRICS = ("accuracy", "macro_f1", "loss")


def derived_record(
    resolved: ResolvedConfig, saved: SavedModel, outcome: TrainingOutcome, splits: DataSplits
) -> ModelRecord:
    base = resolved.base
    labels = splits.label_names
    title = resolved.finetune_method.record_title
    description = (
        f"{title} fine-tune of {base.model_name} for text classification on {resolved.dataset} "
        f"({len(labels)} labels: {', '.join(labels[:8])}{' ...' if len(labels) > 8 else ''}), "
        f"trained on {len(splits.train)} examples."
    )
    unwrap = getattr(outcome.model, "get_base_model", None)  # a PEFT model: the model inside
    architecture = type(unwrap() if callable(unwrap) else outcome.model).__name__
    return ModelRecord(
        name=resolved.name,
        source="local",
        source_ref=str(saved.folder),
        task="text-classification",
        architecture=architecture,
        model_type=base.model_type,
        library="peft" if saved.adapter_format == "peft" else "transformers",
        license=base.license,
        commercial_use=base.commercial_use,
        parameters=outcome.total_parameters,
        size_bytes=saved.size_bytes,
        languages=list(base.languages),
        description=description,
        tags=["fine-tuned", resolved.method, f"base:{base.model_name}", resolved.dataset],
        finetune={**base.finetune, "label_names": labels},
    )


def result_rows(
    run_id: str, resolved: ResolvedConfig, outcome: TrainingOutcome, n_train: int
) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "suite": None,
            "task": "text-classification",
            "dataset": resolved.dataset,
            "split": split,
            "metric": metric,
            "value": scores[metric],
            "n_train": n_train,
            "seed": resolved.seed,
        }
        for split, scores in outcome.metrics.items()
        for metric in RESULT_METRICS
    ]


def register_outcome(
    registry: Registry,
    resolved: ResolvedConfig,
    saved: SavedModel,
    outcome: TrainingOutcome,
    splits: DataSplits,
    run_id: str,
) -> VersionRecord:
    """Base (if new), derived model, version and results: all or nothing."""
    record = derived_record(resolved, saved, outcome, splits)
    base = None
    if resolved.base.version_id is None and resolved.base.record_to_register is not None:
        base = (
            resolved.base.record_to_register,
            resolved.base.source.location,
            {"registered_by_run": run_id},
        )
    # Later runs add versions to the model and leave its record as the first run wrote it.
    return registry.record_derived_version(
        record,
        saved.kind,
        str(saved.folder),
        run_id=run_id,
        parent_version_id=resolved.base.version_id,
        base=base,
        label_names=list(splits.label_names),
        metadata=saved.metadata,
        results=result_rows(run_id, resolved, outcome, len(splits.train)),
    )
