"""A classifier that fits the encoder: the encoder's own pooling (+ L2 normalisation), then one
linear layer, so it sees the vector the encoder was trained to produce and the standard probe
was fitted on (not an untrained [CLS] pooler).

`forward` returns transformers' SequenceClassifierOutput, so the HF Trainer and peft LoRA
(`LoraConfig(target_modules=[...], modules_to_save=["classifier"])`, no task_type) train it.
Files: `save` writes the head (`head.safetensors`) and `head.json` (pooling, labels); the
encoder's weights are the caller's (a peft adapter, or a full encoder folder).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from transferlab.errors import ModelSourceError
from transferlab.models.embedding import forward_keys
from transferlab.models.head_files import HEAD_CONFIG, HEAD_FILE
from transferlab.models.pooling import Pooling, pool, pooling_or_default
from transferlab.quiet import quiet_transformers

FORMAT = "transferlab.pooled_classifier/1"
ADAPTER_CONFIG = "adapter_config.json"


class PooledClassifier(torch.nn.Module):
    """encoder (AutoModel) -> pool (the folder's pooling) -> L2 normalise (if `normalize`) ->
    `classifier` (Linear). `normalize=True` matches the standard probe's features."""

    def __init__(
        self,
        encoder: Any,
        pooling: Pooling,
        num_labels: int,
        *,
        normalize: bool = True,
        label_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"{len(label_names)} label names for {num_labels} labels")
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize
        self.num_labels = num_labels
        self.label_names = list(label_names) if label_names is not None else None
        self.config = encoder.config  # what Trainer and peft read (model_type, use_cache ...)
        self.classifier = torch.nn.Linear(pooling.width(encoder.config.hidden_size), num_labels)
        self._keys = forward_keys(encoder)

    @classmethod
    def from_pretrained(
        cls,
        base_folder: str | Path,
        num_labels: int,
        *,
        pooling: Pooling | None = None,
        normalize: bool = True,
        label_names: Sequence[str] | None = None,
        **options: Any,
    ) -> PooledClassifier:
        """The encoder of `base_folder` with a new head (zero-initialised: every class starts
        at the same logit, as a probe with no evidence would)."""
        model = cls(
            _load_encoder(base_folder, **options),
            pooling or pooling_or_default(base_folder),
            num_labels,
            normalize=normalize,
            label_names=label_names,
        )
        torch.nn.init.zeros_(model.classifier.weight)
        torch.nn.init.zeros_(model.classifier.bias)
        return model

    def embed(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
        """The pooled (and normalised) vector the classifier sees."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and (self._keys is None or "token_type_ids" in self._keys):
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs).last_hidden_state
        pooled = pool(hidden, attention_mask, self.pooling)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    def forward(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        token_type_ids: Any = None,
        labels: Any = None,
        **_: Any,
    ) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        logits = self.classifier(self.embed(input_ids, attention_mask, token_type_ids))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits, labels.view(-1).long())
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def init_from_probe(self, weight: Any, bias: Any) -> None:
        """Start the head from `probe_head_weights(probe)` (rows = label ids 0..K-1)."""
        weight = torch.as_tensor(weight, dtype=self.classifier.weight.dtype)
        bias = torch.as_tensor(bias, dtype=self.classifier.bias.dtype)
        if tuple(weight.shape) != tuple(self.classifier.weight.shape) or tuple(bias.shape) != (
            self.num_labels,
        ):
            raise ValueError(
                f"probe weights {tuple(weight.shape)} / {tuple(bias.shape)} do not fit the head "
                f"{tuple(self.classifier.weight.shape)}"
            )
        with torch.no_grad():
            self.classifier.weight.copy_(weight)
            self.classifier.bias.copy_(bias)

    def head_config(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "pooling": self.pooling.to_dict(),
            "normalize": self.normalize,
            "num_labels": self.num_labels,
            "label_names": self.label_names,
            "hidden_size": int(self.encoder.config.hidden_size),
        }

    def save(self, folder: str | Path) -> Path:
        """Write head.safetensors and head.json (the active head, also under a peft wrapper)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "weight": self.classifier.weight.detach().cpu().contiguous(),
            "bias": self.classifier.bias.detach().cpu().contiguous(),
        }
        save_file(tensors, str(folder / HEAD_FILE), metadata={"format": FORMAT})
        (folder / HEAD_CONFIG).write_text(json.dumps(self.head_config(), indent=1) + "\n")
        return folder

    @classmethod
    def load(
        cls,
        folder: str | Path,
        base_folder: str | Path | None = None,
        *,
        merge: bool = False,
        **options: Any,
    ) -> Any:
        """The encoder from `base_folder` (default: `folder`, for a fully fine-tuned encoder
        saved there) with the head of `folder`, in eval mode. If `folder` holds a peft adapter
        it is applied: the PeftModel is returned, or with merge=True the merged
        PooledClassifier."""
        from safetensors.torch import load_file

        folder = Path(folder)
        config = read_head_config(folder)
        model = cls(
            _load_encoder(base_folder or folder, **options),
            Pooling.from_dict(config["pooling"]),
            int(config["num_labels"]),
            normalize=bool(config["normalize"]),
            label_names=config.get("label_names"),
        )
        tensors = load_file(str(folder / HEAD_FILE))
        model.init_from_probe(tensors["weight"], tensors["bias"])
        if (folder / ADAPTER_CONFIG).is_file():
            from peft import PeftModel

            with quiet_transformers():
                peft_model = PeftModel.from_pretrained(model, str(folder))
            return (peft_model.merge_and_unload() if merge else peft_model).eval()
        return model.eval()


def read_head_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / HEAD_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelSourceError(
            f"{path} cannot be read: {exc}",
            "Pass the folder written by PooledClassifier.save (head.json + head.safetensors).",
        ) from exc
    if config.get("format") != FORMAT:
        raise ModelSourceError(
            f"{path} is not a pooled-classifier head (format {config.get('format')!r}).",
            f"Expected format {FORMAT!r}.",
        )
    return config


def _load_encoder(location: str | Path, **options: Any) -> Any:
    from transformers import AutoModel

    options.setdefault("trust_remote_code", False)
    with quiet_transformers():
        return AutoModel.from_pretrained(str(location), **options)
