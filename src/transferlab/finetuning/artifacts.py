"""What a run leaves on disk: safetensors weights (never pickles), the tokenizer, and a
`transferlab.json` that says how to rebuild the model.

Three layouts: a PEFT adapter (LoRA/QLoRA: adapter_model.safetensors + adapter_config.json,
classifier head included), a head file (linear probe: only the trained head modules, applied
on top of the base), and a complete model (full fine-tuning, merged versions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.errors import ModelSourceError

METADATA_FILE = "transferlab.json"
HEAD_FILE = "head.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
ADAPTER_FORMATS = ("peft", "head")


@dataclass
class SavedModel:
    kind: str  # registry version kind: 'adapter' or 'full'
    adapter_format: str | None  # 'peft', 'head', or None for a complete model
    folder: Path
    metadata: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())


def label_maps(label_names: list[str]) -> dict[str, dict]:
    return {
        "id2label": {str(i): name for i, name in enumerate(label_names)},
        "label2id": {name: i for i, name in enumerate(label_names)},
    }


def save_trained_model(
    model: Any,
    tokenizer: Any,
    folder: Path,
    *,
    method: str,
    head_modules: list[str],
    metadata: dict[str, Any],
) -> SavedModel:
    """Write the weights for `method` with safetensors, the tokenizer and the metadata file."""
    folder.mkdir(parents=True, exist_ok=True)
    if method in ("lora", "qlora"):
        model.save_pretrained(str(folder), safe_serialization=True)
        kind, adapter_format = "adapter", "peft"
    elif method == "linear_probe":
        save_head(model, head_modules, folder)
        kind, adapter_format = "adapter", "head"
    else:
        model.save_pretrained(str(folder))
        kind, adapter_format = "full", None
    tokenizer.save_pretrained(str(folder))
    metadata = {**metadata, "adapter_format": adapter_format, "head_modules": head_modules}
    write_metadata(folder, metadata)
    require_no_pickles(folder)
    return SavedModel(kind=kind, adapter_format=adapter_format, folder=folder, metadata=metadata)


def write_metadata(folder: Path, metadata: dict[str, Any]) -> None:
    text = json.dumps(metadata, indent=2, sort_keys=True, default=str)
    (folder / METADATA_FILE).write_text(text + "\n", encoding="utf-8")


def save_head(model: Any, head_modules: list[str], folder: Path) -> Path:
    """The head modules' weights (and buffers) as one safetensors file, keyed by model path."""
    from safetensors.torch import save_file

    modules = dict(model.named_modules())
    state = {
        f"{name}.{key}": tensor.detach().cpu().contiguous()
        for name in head_modules
        for key, tensor in modules[name].state_dict().items()
    }
    target = folder / HEAD_FILE
    save_file(state, str(target), metadata={"format": "pt", "modules": ",".join(head_modules)})
    return target


def load_head(model: Any, folder: Path) -> None:
    """Put the saved head weights into `model`; every saved tensor must find its place."""
    from safetensors.torch import load_file

    head_file = folder / HEAD_FILE
    if not head_file.is_file():
        raise ModelSourceError(
            f"No {HEAD_FILE} in {folder}: the linear-probe version's head weights are missing.",
            "Re-run the fine-tuning, or point the version at the folder the run wrote.",
        )
    state = load_file(str(head_file))
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ModelSourceError(
            f"{head_file} holds weights the base model has no place for: "
            f"{', '.join(sorted(result.unexpected_keys)[:5])}.",
            "Load it on the base version it was trained from (its parent_version_id).",
        )


def require_no_pickles(folder: Path) -> None:
    """Fail if anything pickled was written: loading a pickle can run arbitrary code."""
    pickles = [p.name for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise ModelSourceError(
            f"Pickled files were written to {folder}: {', '.join(sorted(pickles))}.",
            "This is a bug in transferlab: weights must be saved as safetensors. Report it.",
        )
