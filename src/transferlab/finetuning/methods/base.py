"""The interface of a fine-tuning method, and what every method shares to implement it.

A method owns everything that depends on which method it is: its defaults, whether this
machine can run it, how the model is prepared for training, how it trains (transformers'
Trainer unless it says otherwise), and how its weights are saved *and* loaded again, side by
side, so a version written by a method is read back by the same method.

Method modules import nothing heavy at import time (torch, transformers and peft are
imported inside the calls): the table is read by config checks, the CLI and the picker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.errors import ModelSourceError
from transferlab.finetuning import artifacts
from transferlab.finetuning.artifacts import SavedModel
from transferlab.models import sources

if TYPE_CHECKING:
    from transferlab.data import DataSplits
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.finetuning.training import TrainingOutcome
    from transferlab.registry import Registry, VersionRecord

VERSION_KINDS = ("adapter", "full")


class FinetuneMethod(ABC):
    """One fine-tuning method. Trainer-based methods implement `prepare`, `save` and `load`."""

    name: ClassVar[str]  # what `method=` takes; also the entry point's name
    display_name: ClassVar[str]  # in tables and figures: "LoRA", "linear probe"
    description: ClassVar[str]  # one line
    default_learning_rate: ClassVar[float]
    # Which key of a catalog `finetune` block holds this method's learning rate.
    catalog_learning_rate_key: ClassVar[str] = "learning_rate"
    # Whether lora_r / lora_alpha / lora_dropout / target_modules are resolved and checked.
    uses_lora_settings: ClassVar[bool] = False
    version_kind: ClassVar[str]  # registry kind of what it saves: 'adapter' or 'full'
    # The on-disk layout it writes ('peft', 'head', None for a complete model): versions
    # written before methods were recorded are loaded by the method owning their layout.
    adapter_format: ClassVar[str | None] = None
    # A CUDA-only method is checked before a run is recorded (others only at resolution, so
    # that the check of a request does not import torch).
    needs_cuda: ClassVar[bool] = False
    # How a registered model's description names it: "<title> fine-tune of <base> ...".
    title: ClassVar[str | None] = None

    @property
    def device_needs(self) -> str:
        return "CUDA GPU" if self.needs_cuda else "CPU or GPU"

    @property
    def record_title(self) -> str:
        return self.title or self.display_name[:1].upper() + self.display_name[1:]

    def check_environment(self) -> str:
        """The device to train on ('cuda' or 'cpu'); raise TransferlabError if this machine
        cannot run the method."""
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @abstractmethod
    def prepare(self, resolved: ResolvedConfig, label_names: list[str]) -> tuple[Any, Any, list]:
        """(model ready to train, tokenizer, names of the head modules)."""

    def train(
        self,
        resolved: ResolvedConfig,
        splits: DataSplits,
        *,
        progress: bool = True,
        callbacks: list[Any] | None = None,
    ) -> TrainingOutcome:
        """Train and evaluate every split; by default with transformers' Trainer on the model
        `prepare` returns. `callbacks` are extra Trainer callbacks (an experiment tracker's)."""
        from transferlab.finetuning.training import train_with_trainer

        head_rate = self.head_learning_rate(resolved)
        outcome = train_with_trainer(
            self,
            resolved,
            splits,
            progress=progress,
            callbacks=callbacks,
            head_learning_rate=head_rate,
        )
        if head_rate is not None:
            outcome.details["head_learning_rate"] = head_rate
        return outcome

    def head_learning_rate(self, resolved: ResolvedConfig) -> float | None:
        """A learning rate of its own for the head modules, or None: one rate for all."""
        return None

    @abstractmethod
    def save(self, outcome: TrainingOutcome, folder: Path, metadata: dict[str, Any]) -> SavedModel:
        """Write the trained weights (safetensors), the tokenizer and `transferlab.json`."""

    @abstractmethod
    def load(
        self, registry: Registry, version: VersionRecord, device: str, quantized: bool | None
    ) -> tuple[Any, Any, list[str]]:
        """(model on `device`, tokenizer, label names) of a version this method saved."""

    # -- shared by the implementations ----------------------------------------------------

    def saved(self, outcome: TrainingOutcome, folder: Path, metadata: dict[str, Any]) -> SavedModel:
        """After the weights: the tokenizer, the metadata file, and no pickles anywhere."""
        outcome.tokenizer.save_pretrained(str(folder))
        metadata = {
            **metadata,
            "method": self.name,
            "adapter_format": self.adapter_format,
            "head_modules": outcome.head_modules,
        }
        artifacts.write_metadata(folder, metadata)
        artifacts.require_no_pickles(folder)
        return SavedModel(
            kind=self.version_kind,
            adapter_format=self.adapter_format,
            folder=folder,
            metadata=metadata,
        )


# -- helpers for prepare / load ----------------------------------------------------------------


def load_for_training(
    resolved: ResolvedConfig, label_names: list[str], *, quantization: Any = None
) -> tuple[Any, Any, list[str]]:
    """The base with a fresh classification head for `label_names`, its tokenizer, and the
    names of the newly initialised (head) modules."""
    source = resolved.base.source
    tokenizer = sources.load_tokenizer(source)
    model, head = sources.load_classifier(source, label_names, quantization=quantization)
    sources.align_pad_token(model, tokenizer)
    return model, tokenizer, head


def train_only(model: Any, module_names: list[str]) -> None:
    """Freeze every weight but those of the named modules."""
    for parameter in model.parameters():
        parameter.requires_grad = False
    modules = dict(model.named_modules())
    for name in module_names:
        for parameter in modules[name].parameters():
            parameter.requires_grad = True


def quantization_config() -> Any:
    """4-bit NF4 base weights (bitsandbytes), for QLoRA's training and loading."""
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def version_labels(version: VersionRecord) -> list[str] | None:
    if version.label_names:
        return list(version.label_names)
    id2label = version.metadata.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return [str(id2label[k]) for k in sorted(id2label, key=int)]
    return None


def base_source(registry: Registry, version: VersionRecord) -> sources.ModelSource:
    """The parent version's weights (the lineage), else the base location the run recorded."""
    if version.parent_version_id:
        parent = registry.resolve(version.parent_version_id)
        return sources.source_from_uri(parent.uri, parent.ref)
    base_uri = version.metadata.get("base_uri")
    return sources.source_from_uri(base_uri, f"the base of {version.ref}")


def load_adapter_base(
    registry: Registry, version: VersionRecord, device: str, quantized: bool | None
) -> tuple[Any, sources.ModelSource, sources.ModelSource, list[str]]:
    """For an adapter version: (its base with a head for its labels, on `device` or in 4 bits,
    the adapter's folder, the base's source, the labels). `quantized` None: 4 bits when the
    version was trained so and CUDA is available."""
    import torch

    folder = sources.source_from_uri(version.uri, version.ref)
    labels = version_labels(version)
    if not labels:
        raise ModelSourceError(
            f"{version.ref} is an adapter without label names, so its head cannot be rebuilt.",
            "Register adapters through transferlab.finetune, which records them.",
        )
    base = base_source(registry, version)
    trained_quantized = bool(version.metadata.get("quantization"))
    if quantized is None:
        quantized = trained_quantized and torch.cuda.is_available()
    quantization = quantization_config() if quantized else None
    model, _ = sources.load_classifier(base, labels, quantization=quantization)
    if not quantized:
        model.to(device)
    return model, folder, base, labels


def adapter_tokenizer(folder: sources.ModelSource, base: sources.ModelSource) -> Any:
    """The tokenizer saved with an adapter, else its base's."""
    path = Path(folder.location)
    saved = (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file()
    return sources.load_tokenizer(folder if saved else base)
