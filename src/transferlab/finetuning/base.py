"""The base a run starts from: the exact registry version (or a local folder to register),
its model type, and the modules LoRA wraps in it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.errors import ModelSourceError, TransferlabError
from transferlab.models import sources
from transferlab.quiet import quiet_transformers
from transferlab.registry import ModelRecord, Registry

# The attention projections LoRA wraps, per transformers model_type.
TARGET_MODULES_BY_MODEL_TYPE = {
    "bert": ["query", "value"],
    "electra": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "deberta-v2": ["query_proj", "value_proj"],
    "mpnet": ["q", "v"],
}
# Tried in order on an unknown architecture's Linear module names.
_KNOWN_PROJECTIONS = (
    ("query", "value"),
    ("q_proj", "v_proj"),
    ("query_proj", "value_proj"),
    ("q_lin", "v_lin"),
    ("q", "v"),
    ("c_attn",),
    ("Wqkv",),
    ("qkv",),
)


@dataclass
class BaseModel:
    """The exact base version a run starts from (or a local folder to register as one)."""

    ref: str
    model_name: str
    version_id: str | None
    source: sources.ModelSource
    model_type: str | None
    task: str | None
    license: str | None
    commercial_use: bool | None
    languages: list[str]
    finetune: dict[str, Any]
    record_to_register: ModelRecord | None = None


def resolve_base(base: str, registry: Registry) -> BaseModel:
    """A registry reference (name, name:N, name@alias), or a local folder (registered when
    the run succeeds, unless a version already points at it).

    A bare word that names both a registered model and a folder here means the model; write
    ./word for the folder.
    """
    text = str(base or "").strip()
    if not text:
        raise TransferlabError("No base model given.", "Set base= to a registry name or a folder.")
    path = Path(text).expanduser()
    if text.startswith((".", "/", "~")):
        if not path.is_dir():
            raise ModelSourceError(
                f"Base model folder {path} "
                + ("is a file, not a folder." if path.exists() else "does not exist."),
                "Pass the folder that holds config.json and the weights, or a registry name "
                "(`transferlab search`).",
            )
        return _local_base(path.resolve(), registry)
    try:
        version = registry.resolve(text)
    except TransferlabError:
        if path.is_dir():
            return _local_base(path.resolve(), registry)
        raise
    if version.kind == "adapter":
        raise TransferlabError(
            f"{version.ref} is an adapter, not a complete model to fine-tune.",
            f"Fine-tune its base ({version.parent_version_id or 'the parent version'}), or merge "
            f"it first with transferlab.predict.merge(registry, {version.ref!r}) and fine-tune "
            "the merged version.",
        )
    model = registry.get_model(version.model_name)
    model_type = model.get("model_type")
    sources.require_classification_head(model_type, f"Base model {version.ref}", model.get("task"))
    source = sources.source_from_uri(version.uri, version.ref)
    if source.is_local:
        model_type = sources.read_model_type(source) or model_type
    else:
        # Fails within seconds when the Hub is unreachable and the model is not cached.
        model_type = getattr(sources.load_config(source), "model_type", None) or model_type
    return BaseModel(
        ref=str(base),
        model_name=version.model_name,
        version_id=version.version_id,
        source=source,
        model_type=model_type,
        task=model.get("task"),
        license=model.get("license"),
        commercial_use=model.get("commercial_use"),
        languages=list(model.get("languages") or []),
        finetune=dict(model.get("finetune") or {}),
    )


def _local_base(folder: Path, registry: Registry) -> BaseModel:
    from transferlab.catalog.local import inspect_local_model

    rows = registry.complete_versions_at(str(folder))
    source = sources.ModelSource(str(folder), is_local=True)
    model_type = sources.read_model_type(source)
    if rows:
        row = rows[0]
        return BaseModel(
            ref=str(folder),
            model_name=row["model_name"],
            version_id=row["version_id"],
            source=source,
            model_type=model_type or row["model_type"],
            task=row["task"],
            license=row["license"],
            commercial_use=row["commercial_use"],
            languages=list(row["languages"] or []),
            finetune=dict(row["finetune"] or {}),
        )
    record = inspect_local_model(folder)
    record.name = _free_model_name(registry, record.name, folder)
    return BaseModel(
        ref=str(folder),
        model_name=record.name,
        version_id=None,
        source=source,
        model_type=model_type,
        task=record.task,
        license=record.license,
        commercial_use=record.commercial_use,
        languages=list(record.languages),
        finetune=dict(record.finetune),
        record_to_register=record,
    )


def _free_model_name(registry: Registry, name: str, folder: Path) -> str:
    taken = set(registry.model_names())
    if name not in taken:
        return name
    return f"{name}-{hashlib.sha256(str(folder).encode()).hexdigest()[:6]}"


def resolve_target_modules(requested: list[str] | str | None, base: BaseModel) -> list[str] | str:
    """'auto' (or nothing) -> the table by model_type, else the model's own Linear names."""
    if requested in (None, "auto"):
        known = TARGET_MODULES_BY_MODEL_TYPE.get(base.model_type or "")
        if known:
            return list(known)
        return _inspect_target_modules(base)
    if isinstance(requested, str):
        if requested == "all-linear":
            return requested
        requested = [part.strip() for part in requested.split(",") if part.strip()]
    names = linear_module_names(base)
    missing = [m for m in requested if m not in names]
    if names and missing:
        raise TransferlabError(
            f"target_modules {missing} are not Linear modules of {base.ref} ({base.model_type}).",
            f"Its Linear modules are: {', '.join(sorted(names))}; or use target_modules='auto'.",
        )
    return list(requested)


def _inspect_target_modules(base: BaseModel) -> list[str] | str:
    names = linear_module_names(base)
    for projections in _KNOWN_PROJECTIONS:
        if all(p in names for p in projections):
            return list(projections)
    return "all-linear"


def linear_module_names(base: BaseModel) -> set[str]:
    """Leaf names of the encoder's Linear (and GPT-2 style Conv1D) modules, from a weightless
    (meta device) model."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.pytorch_utils import Conv1D

    config = sources.load_config(base.source)
    with torch.device("meta"), quiet_transformers():
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=False)
    heads = set(sources.DEFAULT_HEAD_NAMES)
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear | Conv1D) and not heads & set(name.split("."))
    }


def check_max_length(max_length: int, base: BaseModel) -> None:
    if not base.source.is_local:
        return

    config = json.loads((Path(base.source.location) / "config.json").read_text(encoding="utf-8"))
    limit = config.get("max_position_embeddings")
    if isinstance(limit, int) and config.get("model_type") in ("roberta", "xlm-roberta"):
        limit -= 2  # positions start after the padding index
    if isinstance(limit, int) and max_length > limit:
        raise TransferlabError(
            f"max_length={max_length} is longer than {base.ref} can read ({limit} tokens).",
            f"Use max_length <= {limit}.",
        )
