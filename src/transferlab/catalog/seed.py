"""The curated seed catalog: a reviewable YAML file, validated entry by entry."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from transferlab.errors import CatalogError
from transferlab.registry.records import SOURCES, ModelRecord

SEED_CATALOG = "seed_catalog.yaml"
HUB_SCHEMES = {"hf": "hf://", "torchhub": "torchhub://", "tfhub": "tfhub://"}

_REQUIRED = {"name": str, "source": str, "source_ref": str, "task": str}
_OPTIONAL = {
    "architecture": str,
    "model_type": str,
    "library": str,
    "license": str,
    "commercial_use": bool,
    "parameters": int,
    "size_bytes": int,
    "languages": list,
    "description": str,
    "card_text": str,
    "tags": list,
    "finetune": dict,
}
_LORA_KEYS = {"methods": list, "lora_r": int, "lora_alpha": int, "lora_dropout": float}
_GENERAL_KEYS = {"max_length": int, "batch_size": int, "epochs": int}


def finetune_keys() -> dict[str, type]:
    """The settings a `finetune` block may hold, with their types; the learning-rate keys are
    those of the fine-tuning methods (`learning_rate`, `full_learning_rate`, ...)."""
    from transferlab.finetuning.methods import all_methods

    rates = {method.catalog_learning_rate_key: float for method in all_methods()}
    return {**_LORA_KEYS, "target_modules": list, **rates, **_GENERAL_KEYS}


def seed_catalog_path() -> Path:
    return Path(str(resources.files("transferlab.catalog") / SEED_CATALOG))


def _entry_lines(text: str) -> list[int]:
    """1-based line number where each entry of `models:` starts."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "models" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _type_ok(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _check_entry(entry: Any, where: str) -> ModelRecord:
    fix = "Correct that entry of the catalog (keys and types are listed at the top of the file)."
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: an entry must be a mapping, got {entry!r}.", fix)
    unknown = set(entry) - set(_REQUIRED) - set(_OPTIONAL) - {"model_type"}
    if unknown:
        known = ", ".join([*_REQUIRED, *_OPTIONAL])
        raise CatalogError(f"{where}: unknown key(s) {sorted(unknown)}.", f"Known keys: {known}.")
    for key in _REQUIRED:
        if key not in entry or entry[key] in (None, ""):
            raise CatalogError(f"{where}: required key {key!r} is missing.", fix)
    for key, expected in {**_REQUIRED, **_OPTIONAL}.items():
        if entry.get(key) is not None and not _type_ok(entry[key], expected):
            raise CatalogError(
                f"{where}: {key!r} must be {expected.__name__}, got {entry[key]!r}.", fix
            )
    if entry["source"] not in SOURCES:
        raise CatalogError(
            f"{where}: source {entry['source']!r} is not one of {', '.join(SOURCES)}.", fix
        )
    known_settings = finetune_keys()
    for key, value in (entry.get("finetune") or {}).items():
        if key not in known_settings:
            raise CatalogError(
                f"{where}: unknown finetune setting {key!r}.",
                f"Known settings: {', '.join(known_settings)}.",
            )
        if not _type_ok(value, known_settings[key]):
            raise CatalogError(
                f"{where}: finetune.{key} must be {known_settings[key].__name__}, got {value!r}.",
                fix,
            )
    _check_methods((entry.get("finetune") or {}).get("methods") or [], where)
    fields = {key: entry[key] for key in entry if entry[key] is not None}
    fields.setdefault("languages", [])
    fields.setdefault("tags", [])
    return ModelRecord(**fields)


def _check_methods(listed: list, where: str) -> None:
    """Every name in `finetune.methods` is a method of the table (built-in or installed)."""
    from transferlab.finetuning.methods import method_names

    known = method_names()
    unknown = [name for name in listed if name not in known]
    if unknown:
        raise CatalogError(
            f"{where}: finetune.methods lists unknown method(s) {unknown}.",
            f"Known methods: {', '.join(known)} (`transferlab methods`); install the package "
            "that provides a plug-in method, or remove it from the list.",
        )


def read_catalog(path: str | Path | None = None) -> list[ModelRecord]:
    """Parse and validate a catalog file; errors name the file, the line and the key."""
    path = Path(path) if path else seed_catalog_path()
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except FileNotFoundError as error:
        raise CatalogError(f"Catalog file {path} does not exist.", "Check the path.") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise CatalogError(
            f"{path}{line}: not valid YAML ({getattr(error, 'problem', error)}).",
            "Fix the YAML syntax there (indentation, quotes, colons).",
        ) from error
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise CatalogError(
            f"{path}: expected a top-level 'models:' list.",
            "Start the file with 'models:' followed by one '- name: ...' entry per model.",
        )
    lines = _entry_lines(text)
    records, seen = [], {}
    for index, entry in enumerate(document["models"]):
        line = lines[index] if index < len(lines) else "?"
        label = entry.get("name") if isinstance(entry, dict) else None
        where = f"{path} line {line}" + (f" (entry {label!r})" if label else "")
        record = _check_entry(entry, where)
        if record.name in seen:
            raise CatalogError(
                f"{where}: duplicate name {record.name!r} (first at line {seen[record.name]}).",
                "Give each entry a unique name.",
            )
        seen[record.name] = line
        records.append(record)
    return records


def hub_uri(record: ModelRecord) -> str | None:
    """Where a catalog model's weights live on its hub, as a version URI."""
    scheme = HUB_SCHEMES.get(record.source)
    return f"{scheme}{record.source_ref}" if scheme else None
