"""What LoRA, full fine-tuning and LP-FT share for a base with a sentence-transformers pooling
config: the classifier that fits the encoder (`transferlab.models.heads.PooledClassifier`:
the encoder's own pooling + L2 normalisation + one linear layer) instead of a sequence-
classification head on the untrained [CLS] pooler; how such a version is told apart (a
`head.json` beside its weights, `head: pooled` in its metadata), and how its complete form
(full fine-tuning, a merged adapter) is saved and loaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.models import sources
from transferlab.models.head_files import HEAD_CONFIG

if TYPE_CHECKING:
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.models.pooling import Pooling

HEAD = ["classifier"]  # PooledClassifier's head module: trained in full, saved with an adapter
# A zero-initialised head on unit-length features needs a large step (benchmarks/
# method_study.py, lora_mean: head 1e-2 with body 2e-3).
ZERO_HEAD_LEARNING_RATE = 1e-2
# What makes a folder a sentence-transformers model (copied into complete pooled versions so
# that they keep their pooling when fine-tuned or embedded again).
_ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


def base_pooling(resolved: ResolvedConfig) -> Pooling | None:
    """The pooling the base's folder declares (sentence-transformers), else None."""
    from transferlab.models.pooling import pooling_of

    return pooling_of(resolved.base.source.location)


def zero_head_learning_rate(resolved: ResolvedConfig) -> float | None:
    """On a pooled base, the freshly initialised head's own (larger) rate; else None."""
    if base_pooling(resolved) is None:
        return None
    return max(ZERO_HEAD_LEARNING_RATE, resolved.learning_rate)


def build_pooled(
    resolved: ResolvedConfig, label_names: list[str], pooling: Pooling | None = None
) -> tuple[Any, Any]:
    """(PooledClassifier with a zero head, tokenizer) for the base."""
    from transferlab.models.heads import PooledClassifier

    source = resolved.base.source
    tokenizer = sources.load_tokenizer(source)
    with sources.loading_errors(source, "model"):
        model = PooledClassifier.from_pretrained(
            source.location,
            len(label_names),
            pooling=pooling,
            label_names=label_names,
            **sources.pretrained_options(source),
        )
    sources.align_pad_token(model.encoder, tokenizer)
    return model, tokenizer


def pooled_model(model: Any) -> Any:
    """The PooledClassifier inside a peft wrapper (or the model itself); None if it is not one."""
    from transferlab.models.heads import PooledClassifier

    unwrap = getattr(model, "get_base_model", None)
    inner = unwrap() if callable(unwrap) else model
    return inner if isinstance(inner, PooledClassifier) else None


def is_pooled_folder(folder: str | Path) -> bool:
    return (Path(folder) / HEAD_CONFIG).is_file()


def pooled_metadata(model: Any) -> dict[str, Any]:
    """`head: pooled` and the pooling, for the version's metadata."""
    return {"head": "pooled", "pooling": model.pooling.to_dict(), "normalize": model.normalize}


def save_complete(model: Any, folder: Path, base_location: str | None) -> None:
    """A complete pooled model: the encoder (transformers folder), head.safetensors + head.json,
    and the base's sentence-transformers files when it has them."""
    folder.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(folder))
    model.save(folder)
    if base_location:
        copy_sentence_transformers_files(Path(base_location), folder)


def copy_sentence_transformers_files(base: Path, folder: Path) -> None:
    """modules.json and the module folders after the Transformer (Pooling, Normalize)."""
    import json

    if not base.is_dir() or not (base / "modules.json").is_file():
        return
    for name in _ST_FILES:
        if (base / name).is_file():
            shutil.copy2(base / name, folder / name)
    for entry in json.loads((base / "modules.json").read_text(encoding="utf-8")):
        path = str(entry.get("path") or "") if isinstance(entry, dict) else ""
        if path and (base / path).is_dir() and not (folder / path).exists():
            shutil.copytree(base / path, folder / path)


def load_complete_pooled(folder: str | Path, device: str) -> Any:
    from transferlab.models.heads import PooledClassifier

    return PooledClassifier.load(folder).to(device).eval()


def load_pooled_adapter(
    folder: str | Path, base: sources.ModelSource, device: str, *, merge: bool = False
) -> Any:
    """Base encoder + the saved head + the peft adapter (merged into the encoder if asked)."""
    from transferlab.models.heads import PooledClassifier

    with sources.loading_errors(base, "model"):
        model = PooledClassifier.load(
            folder, base.location, merge=merge, **sources.pretrained_options(base)
        )
    return model.to(device).eval()


def head_parameter_groups(
    model: Any, head: list[str], learning_rate: float, head_learning_rate: float
) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: the head's (modules named in `head`, also under a
    peft wrapper) at `head_learning_rate`, the rest at `learning_rate`."""
    body, top = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        dotted = f".{name}."
        (top if any(f".{module}." in dotted for module in head) else body).append(parameter)
    groups = [{"params": body, "lr": learning_rate}, {"params": top, "lr": head_learning_rate}]
    return [group for group in groups if group["params"]]
