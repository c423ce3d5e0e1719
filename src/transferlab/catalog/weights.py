"""Check that a model folder's weights can be read, before anything is registered.

safetensors files: the header parses, every tensor's byte range matches its dtype and shape,
the file is exactly as long as the header says (a truncated download is caught here, not at
the first load), and the safetensors library opens every tensor. pytorch_model*.bin files are
read only with torch's restricted loader (`weights_only=True`): a pickle that would run code is
refused, never executed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.catalog.local import read_safetensors_header, safetensors_files
from transferlab.errors import ModelSourceError

_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_RESAVE = (
    "Download the model again (the file is damaged or incomplete), or re-save it with "
    "`model.save_pretrained(DIR)`, which writes model.safetensors."
)


@dataclass
class WeightsCheck:
    """What was checked: the weight files and the number of tensors they hold."""

    format: str  # 'safetensors' or 'pytorch'
    files: list[Path]
    tensors: int


def _broken(file: Path, why: str) -> ModelSourceError:
    return ModelSourceError(f"The weights file {file} is unusable: {why}.", _RESAVE)


def _declared_data_bytes(file: Path, header: dict[str, Any]) -> int:
    """Bytes of tensor data the header declares (the largest end offset), each range checked."""
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and o >= 0 for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise _broken(file, f"tensor {name!r} has no valid data_offsets in its header")
        itemsize = _DTYPE_BYTES.get(str(entry.get("dtype", "")).upper())
        shape = entry.get("shape")
        if itemsize and isinstance(shape, list) and all(isinstance(d, int) for d in shape):
            expected = math.prod(shape) * itemsize
            if offsets[1] - offsets[0] != expected:
                raise _broken(
                    file,
                    f"tensor {name!r} ({entry.get('dtype')} {shape}) should take {expected} "
                    f"bytes, its header gives it {offsets[1] - offsets[0]}",
                )
        end = max(end, offsets[1])
    return end


def check_safetensors_file(file: Path) -> int:
    """Raise ModelSourceError unless the file is a complete, readable safetensors file.

    Returns the number of tensors. Reads the header and maps the file; tensor data is not
    copied.
    """
    header = read_safetensors_header(file)
    with file.open("rb") as fh:
        header_length = int.from_bytes(fh.read(8), "little")
    data_bytes = _declared_data_bytes(file, header)
    expected = 8 + header_length + data_bytes
    actual = file.stat().st_size
    if actual < expected:
        raise _broken(
            file,
            f"it is truncated: its header declares {data_bytes:,} bytes of tensor data, so the "
            f"file should be {expected:,} bytes long, but it is {actual:,}",
        )
    if actual > expected:
        raise _broken(
            file,
            f"it has {actual - expected:,} bytes after the tensor data its header declares "
            f"(expected {expected:,} bytes, found {actual:,})",
        )
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as opened:
            names = list(opened.keys())
            for name in names:
                opened.get_slice(name).get_shape()
    except Exception as exc:  # SafetensorError and friends: the library's own verdict
        raise _broken(file, f"the safetensors library cannot open it ({exc})") from exc
    return len(names)


def check_pytorch_file(file: Path) -> int:
    """Load a pytorch_model*.bin with torch's restricted unpickler (weights_only=True) only.

    Returns the number of tensors; anything but a mapping of tensors is refused.
    """
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols it refuses
            try:
                state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                # Files not written as zip archives (old torch, plain pickles) cannot be mapped.
                state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, ...: refused, not run
        raise ModelSourceError(
            f"{file} cannot be read as plain PyTorch weights: torch's safe loader "
            f"(weights_only=True) refused it ({_refusal(exc)}). transferlab "
            "never unpickles arbitrary objects, which could run code on this machine.",
            "Use a copy of the model with model.safetensors (most Hub models have one), or "
            "convert the checkpoint to safetensors on a machine where you trust the file.",
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelSourceError(
            f"{file} does not hold a state dict (a mapping of names to tensors), so it is not "
            "a model's weights.",
            "Use the folder written by `model.save_pretrained(DIR)`.",
        )
    return len(state)


def _refusal(exc: Exception) -> str:
    """The reason inside torch's long weights_only message (e.g. 'Unsupported global: ...')."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0]
    text = " ".join(text.split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_weights(folder: str | Path) -> WeightsCheck:
    """Check every weight file of a model folder (safetensors first, as transformers loads).

    Raises ModelSourceError naming the file and what is wrong with it.
    """
    folder = Path(folder)
    files = safetensors_files(folder)
    if files:
        return WeightsCheck("safetensors", files, sum(check_safetensors_file(f) for f in files))
    files = sorted(folder.glob("pytorch_model*.bin"))
    if files:
        return WeightsCheck("pytorch", files, sum(check_pytorch_file(f) for f in files))
    raise ModelSourceError(
        f"No weights file in {folder}: expected *.safetensors or pytorch_model.bin.",
        "Copy the weights next to config.json, or re-save the model with "
        "`model.save_pretrained(DIR)` (which writes model.safetensors).",
    )
