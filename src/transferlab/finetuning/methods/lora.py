"""LoRA: low-rank adapters on frozen base weights, the classifier head trained alongside;
saved and loaded as a PEFT adapter (adapter_model.safetensors + adapter_config.json)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.errors import TransferlabError
from transferlab.finetuning.artifacts import SavedModel
from transferlab.finetuning.methods.base import (
    FinetuneMethod,
    adapter_tokenizer,
    load_adapter_base,
    load_for_training,
)
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
        model, tokenizer, head = load_for_training(resolved, label_names)
        return with_lora(model, resolved, head), tokenizer, head

    def save(self, outcome: TrainingOutcome, folder: Path, metadata: dict[str, Any]) -> SavedModel:
        folder.mkdir(parents=True, exist_ok=True)
        outcome.model.save_pretrained(str(folder), safe_serialization=True)
        return self.saved(outcome, folder, metadata)

    def load(
        self, registry: Registry, version: VersionRecord, device: str, quantized: bool | None
    ) -> tuple[Any, Any, list[str]]:
        from peft import PeftModel

        model, folder, base, labels = load_adapter_base(registry, version, device, quantized)
        with quiet_transformers():
            model = PeftModel.from_pretrained(model, folder.location, is_trainable=False)
        return model, adapter_tokenizer(folder, base), labels


def with_lora(model: Any, resolved: ResolvedConfig, head: list[str]) -> Any:
    """The model wrapped with LoRA adapters per the resolved settings; the head is trained in
    full and saved with the adapter (modules_to_save)."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,  # keeps the classifier head trainable (modules_to_save)
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
