"""LoRA: low-rank adapters on frozen base weights, the classifier head trained alongside;
saved and loaded as a PEFT adapter (adapter_model.safetensors + adapter_config.json).

On a base with a sentence-transformers pooling config the head is the one that fits the
encoder (`PooledClassifier`: its pooling + normalisation + a linear layer, zero-initialised,
trained at its own learning rate), saved beside the adapter as head.safetensors + head.json;
other bases keep transformers' sequence-classification head."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.errors import TransferlabError
from transferlab.finetuning.artifacts import SavedModel
from transferlab.finetuning.methods import pooled
from transferlab.finetuning.methods.base import (
    FinetuneMethod,
    adapter_tokenizer,
    base_source,
    load_adapter_base,
    load_for_training,
    version_labels,
)
from transferlab.models import sources
from transferlab.quiet import quiet_transformers

if TYPE_CHECKING:
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.finetuning.training import TrainingOutcome
    from transferlab.registry import Registry, VersionRecord


class LoRA(FinetuneMethod):
    name = "lora"
    display_name = "LoRA"
    description = "low-rank adapters on frozen weights, head trained too; a small PEFT adapter"
    # LoRA trains a few low-rank matrices starting from zero (B = 0), scaled by alpha / r, on
    # top of frozen weights: each update moves the model far less than a full-weight step, so
    # it needs a learning rate 10-100x higher than full fine-tuning (5e-4 was too slow on a
    # few hundred examples, 2e-3 worked).
    default_learning_rate = 2e-3
    catalog_learning_rate_key = "learning_rate"
    uses_lora_settings = True
    version_kind = "adapter"
    adapter_format = "peft"

    def prepare(self, resolved: ResolvedConfig, label_names: list[str]) -> tuple[Any, Any, list]:
        pooling = pooled.base_pooling(resolved)
        if pooling is not None:
            model, tokenizer = pooled.build_pooled(resolved, label_names, pooling)
            return with_lora(model, resolved, pooled.HEAD, task_type=None), tokenizer, pooled.HEAD
        model, tokenizer, head = load_for_training(resolved, label_names)
        return with_lora(model, resolved, head), tokenizer, head

    def head_learning_rate(self, resolved: ResolvedConfig) -> float | None:
        """A pooled head starts at zero and needs a larger step than the body."""
        return pooled.zero_head_learning_rate(resolved)

    def save(self, outcome: TrainingOutcome, folder: Path, metadata: dict[str, Any]) -> SavedModel:
        folder.mkdir(parents=True, exist_ok=True)
        outcome.model.save_pretrained(str(folder), safe_serialization=True)
        model = pooled.pooled_model(outcome.model)
        if model is not None:  # the head's own files, read by PooledClassifier.load
            model.save(folder)
            metadata = {**metadata, **pooled.pooled_metadata(model)}
        return self.saved(outcome, folder, {**metadata, **outcome.details})

    def load(
        self, registry: Registry, version: VersionRecord, device: str, quantized: bool | None
    ) -> tuple[Any, Any, list[str]]:
        from peft import PeftModel

        folder = sources.source_from_uri(version.uri, version.ref)
        if pooled.is_pooled_folder(folder.location):
            base = base_source(registry, version)
            model = pooled.load_pooled_adapter(folder.location, base, device)
            labels = version_labels(version) or list(pooled.pooled_model(model).label_names)
            return model, adapter_tokenizer(folder, base), labels
        model, folder, base, labels = load_adapter_base(registry, version, device, quantized)
        with quiet_transformers():
            model = PeftModel.from_pretrained(model, folder.location, is_trainable=False)
        return model, adapter_tokenizer(folder, base), labels


def with_lora(
    model: Any, resolved: ResolvedConfig, head: list[str] | None, *, task_type: Any = "seq_cls"
) -> Any:
    """The model wrapped with LoRA adapters per the resolved settings; the head is trained in
    full and saved with the adapter (modules_to_save; None: no head). `task_type=None` for a
    model that is not a transformers sequence classifier (a PooledClassifier, a bare body)."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        # SEQ_CLS keeps a transformers classifier head trainable (modules_to_save)
        task_type=TaskType.SEQ_CLS if task_type == "seq_cls" else task_type,
        r=resolved.lora_r,
        lora_alpha=resolved.lora_alpha,
        lora_dropout=resolved.lora_dropout,
        target_modules=resolved.target_modules,
        modules_to_save=head,
    )
    try:
        with quiet_transformers():
            return get_peft_model(model, config)
    except ValueError as exc:
        raise TransferlabError(
            f"LoRA cannot wrap {resolved.base.ref} with target_modules="
            f"{resolved.target_modules}: {exc}",
            "Use target_modules='auto', or name Linear modules the model has.",
        ) from exc
