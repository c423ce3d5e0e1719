"""Full fine-tuning: every weight trained; saved and loaded as a complete transformers model.

Its `load` also reads every complete model the registry holds (merged versions, imported
fine-tuned checkpoints): it owns the complete-model layout.

On a base with a sentence-transformers pooling config the head is a `PooledClassifier`'s (the
encoder's pooling + normalisation + a linear layer, zero-initialised, at its own learning
rate): the encoder is saved as a transformers folder with head.safetensors + head.json (and
the base's sentence-transformers files) beside it, and loaded with `PooledClassifier.load`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.errors import TransferlabError
from transferlab.finetuning.artifacts import SavedModel
from transferlab.finetuning.methods import pooled
from transferlab.finetuning.methods.base import FinetuneMethod, load_for_training, version_labels
from transferlab.models import sources
from transferlab.quiet import quiet_transformers

if TYPE_CHECKING:
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.finetuning.training import TrainingOutcome
    from transferlab.registry import Registry, VersionRecord


class FullFinetuning(FinetuneMethod):
    name = "full"
    display_name = "full fine-tuning"
    description = "every weight trained; a complete model (the largest to store)"
    default_learning_rate = 5e-5
    catalog_learning_rate_key = "full_learning_rate"
    version_kind = "full"
    adapter_format = None
    title = "Full"

    def prepare(self, resolved: ResolvedConfig, label_names: list[str]) -> tuple[Any, Any, list]:
        pooling = pooled.base_pooling(resolved)
        if pooling is not None:
            model, tokenizer = pooled.build_pooled(resolved, label_names, pooling)
            head = pooled.HEAD
        else:
            model, tokenizer, head = load_for_training(resolved, label_names)
        for parameter in model.parameters():
            parameter.requires_grad = True
        return model, tokenizer, head

    def head_learning_rate(self, resolved: ResolvedConfig) -> float | None:
        """A pooled head starts at zero and needs a larger step than the body."""
        return pooled.zero_head_learning_rate(resolved)

    def save(self, outcome: TrainingOutcome, folder: Path, metadata: dict[str, Any]) -> SavedModel:
        folder.mkdir(parents=True, exist_ok=True)
        model = pooled.pooled_model(outcome.model)
        if model is not None:
            base = sources.source_from_uri(metadata.get("base_uri"), "the base")
            pooled.save_complete(model, folder, base.location if base.is_local else None)
            metadata = {**metadata, **pooled.pooled_metadata(model)}
        else:
            outcome.model.save_pretrained(str(folder))
        return self.saved(outcome, folder, {**metadata, **outcome.details})

    def load(
        self, registry: Registry, version: VersionRecord, device: str, quantized: bool | None
    ) -> tuple[Any, Any, list[str]]:
        source = sources.source_from_uri(version.uri, version.ref)
        if source.is_local and pooled.is_pooled_folder(source.location):
            model = pooled.load_complete_pooled(source.location, device)
            labels = version_labels(version) or list(model.label_names)
            return model, sources.load_tokenizer(source), labels
        model, tokenizer, labels = load_complete(version)
        model.to(device)
        return model, tokenizer, labels


def load_complete(version: VersionRecord) -> tuple[Any, Any, list[str]]:
    """A complete sequence-classification model, its tokenizer and its labels."""
    from transformers import AutoModelForSequenceClassification

    source = sources.source_from_uri(version.uri, version.ref)
    config = sources.load_config(source)
    architectures = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise TransferlabError(
            f"{version.ref} has no trained classification head "
            f"({', '.join(architectures) or config.model_type}).",
            "Fine-tune it first (transferlab.finetune.finetune), then predict with the new "
            "version.",
        )
    with sources.loading_errors(source, "model"), quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            source.location, **sources.pretrained_options(source)
        )
    tokenizer = sources.load_tokenizer(source)
    labels = version_labels(version) or [
        str(model.config.id2label[i]) for i in range(model.config.num_labels)
    ]
    return model, tokenizer, labels
