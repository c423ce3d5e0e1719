"""What a run leaves on disk: safetensors weights (never pickles), the tokenizer, and a
`transferlab.json` that says how to rebuild the model (its method, label maps, layout).

Each fine-tuning method writes and reads its own layout (`finetuning/methods/`): a PEFT
adapter (LoRA/QLoRA), a head file (linear probe), a complete model (full fine-tuning, also
merged versions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.errors import ModelSourceError

METADATA_FILE = "transferlab.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass
class SavedModel:
    kind: str  # registry version kind: 'adapter' or 'full'
    adapter_format: str | None  # the layout: 'peft', 'head', ... or None (complete)
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


def write_metadata(folder: Path, metadata: dict[str, Any]) -> None:
    text = json.dumps(metadata, indent=2, sort_keys=True, default=str)
    (folder / METADATA_FILE).write_text(text + "\n", encoding="utf-8")


def require_no_pickles(folder: Path) -> None:
    """Fail if anything pickled was written: loading a pickle can run arbitrary code."""
    pickles = [p.name for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise ModelSourceError(
            f"Pickled files were written to {folder}: {', '.join(sorted(pickles))}.",
            "This is a bug in transferlab: weights must be saved as safetensors. Report it.",
        )
