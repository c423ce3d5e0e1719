"""Using registered versions: load one (through the fine-tuning method that saved it: base +
adapter, or a complete model), predict labels, and merge an adapter into a standalone model
whose predictions match it (a pooled head's adapter: a complete pooled model, see
finetuning/methods/pooled.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import TransferlabError
from transferlab.finetuning import artifacts
from transferlab.finetuning.methods import method_for_version, pooled
from transferlab.finetuning.methods.base import base_source
from transferlab.models import sources
from transferlab.models.logits import softmax
from transferlab.quiet import quiet_transformers
from transferlab.registry import Registry, VersionRecord

DEFAULT_MAX_LENGTH = 256
MERGE_TOLERANCE = 1e-5
_PROBE_TEXTS = 32


@dataclass
class LoadedVersion:
    """A registered version ready for inference (eval mode, no gradients)."""

    version: VersionRecord
    model: Any
    tokenizer: Any
    label_names: list[str]
    max_length: int
    device: str

    def logits(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        import torch

        texts = _as_texts(texts)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                inputs = self.tokenizer(
                    texts[start : start + batch_size],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                outputs.append(self.model(**inputs).logits.float().cpu().numpy())
        if not outputs:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        return np.concatenate(outputs)

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """One dict per text: the label, its probability, and every label's probability."""
        probabilities = softmax(self.logits(texts, batch_size).astype(np.float64))
        predictions = []
        for row in probabilities:
            best = int(row.argmax())
            predictions.append(
                {
                    "label": self.label_names[best],
                    "score": float(row[best]),
                    "scores": {
                        name: float(p) for name, p in zip(self.label_names, row, strict=True)
                    },
                }
            )
        return predictions


def _as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TransferlabError(
            "predict() got one string, not a list of texts.", "Pass a list: predict(..., [text])."
        )
    return [str(t) for t in texts]


def load_version_model(
    registry: Registry,
    ref: str | VersionRecord,
    *,
    device: str | None = None,
    quantized: bool | None = None,
    progress: bool = False,
) -> LoadedVersion:
    """Load a version for inference, by the method that saved it (`method_for_version`); an
    adapter is applied to the exact base it was trained on.

    The base is loaded with the version's labels so that the trained head (saved with the
    adapter) replaces the freshly initialised one. `quantized` loads a QLoRA base in 4 bits
    (default: when the version was trained so and CUDA is available).
    """
    import torch

    version = ref if isinstance(ref, VersionRecord) else registry.resolve(ref)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    method = method_for_version(version)
    with sources.progress_bars(progress):
        model, tokenizer, labels = method.load(registry, version, device, quantized)
    sources.align_pad_token(model, tokenizer)
    model.eval()
    max_length = int(version.metadata.get("max_length") or 0) or min(
        DEFAULT_MAX_LENGTH, int(getattr(tokenizer, "model_max_length", DEFAULT_MAX_LENGTH))
    )
    return LoadedVersion(version, model, tokenizer, labels, max_length, device)


def predict(
    registry: Registry, ref: str | VersionRecord, texts: Sequence[str], *, batch_size: int = 32
) -> list[dict[str, Any]]:
    """Labels for `texts` from a registered version: [{label, score, scores}, ...]."""
    return load_version_model(registry, ref).predict(texts, batch_size=batch_size)


def merge(
    registry: Registry,
    ref: str | VersionRecord,
    output_dir: str | Path | None = None,
    *,
    tolerance: float = MERGE_TOLERANCE,
) -> VersionRecord:
    """Fold an adapter into its base and register the result as a 'merged' version.

    The merged model is saved as safetensors, reloaded from disk and checked against the
    adapter's logits on probe texts; a difference above `tolerance` registers nothing.
    """
    from transformers import AutoModelForSequenceClassification

    version = ref if isinstance(ref, VersionRecord) else registry.resolve(ref)
    if version.kind != "adapter":
        raise TransferlabError(
            f"{version.ref} is a {version.kind} version; only adapters are merged.",
            "Merge the adapter version a fine-tuning run registered (kind 'adapter').",
        )
    folder = _merge_folder(version, output_dir)
    loaded = load_version_model(registry, version, device="cpu", quantized=False)
    probe = _probe_texts()
    expected = loaded.logits(probe)
    adapter = sources.source_from_uri(version.uri, version.ref)
    folder.mkdir(parents=True, exist_ok=True)
    if pooled.is_pooled_folder(adapter.location):
        # A PooledClassifier's adapter: the merged encoder + the head files (+ the base's
        # sentence-transformers files), loaded back as a complete pooled model.
        base = base_source(registry, version)
        with sources.progress_bars(False):
            model = pooled.load_pooled_adapter(adapter.location, base, "cpu", merge=True)
        pooled.save_complete(model, folder, base.location if base.is_local else None)
        loaded.tokenizer.save_pretrained(str(folder))
        artifacts.require_no_pickles(folder)
        with sources.progress_bars(False):
            reloaded = pooled.load_complete_pooled(folder, "cpu")
    else:
        model = loaded.model
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.save_pretrained(str(folder))
        loaded.tokenizer.save_pretrained(str(folder))
        artifacts.require_no_pickles(folder)
        with quiet_transformers(), sources.progress_bars(False):
            reloaded = AutoModelForSequenceClassification.from_pretrained(str(folder))
    check = LoadedVersion(
        version, reloaded.eval(), loaded.tokenizer, loaded.label_names, loaded.max_length, "cpu"
    )
    difference = float(np.abs(check.logits(probe) - expected).max())
    if difference > tolerance:
        raise TransferlabError(
            f"The merged model in {folder} differs from {version.ref} by {difference:.2e} on "
            f"the probe texts (tolerance {tolerance:.0e}); nothing was registered.",
            "Keep using the adapter version, or report this with the versions of peft and "
            "transformers.",
        )
    metadata = {
        **{k: v for k, v in version.metadata.items() if k not in ("adapter_format",)},
        "merged_from": version.version_id,
        "max_abs_logit_difference": difference,
        "probe_texts": len(probe),
    }
    artifacts.write_metadata(folder, {**metadata, "adapter_format": None})
    return registry.add_version(
        version.model_name,
        "merged",
        str(folder),
        parent_version_id=version.version_id,
        label_names=list(loaded.label_names),
        metadata=metadata,
    )


def _merge_folder(version: VersionRecord, output_dir: str | Path | None) -> Path:
    if output_dir is not None:
        folder = Path(output_dir).expanduser().resolve()
    else:
        adapter = Path(version.uri or ".")
        folder = adapter.with_name(adapter.name + "-merged")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise TransferlabError(
            f"Output folder {folder} already exists and is not empty.",
            "Pass a new output_dir; nothing is overwritten.",
        )
    return folder


def _probe_texts() -> list[str]:
    from transferlab.data import load_labelled_data, sample_data_path

    return load_labelled_data(sample_data_path("test")).texts[:_PROBE_TEXTS]
