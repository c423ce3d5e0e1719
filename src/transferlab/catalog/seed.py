"""Catalog files: reviewable YAML, every entry checked, every problem named with its line.

`parse_catalog` reads a file into entries and problems without stopping at the first one, each
problem pointing at the line of the key at fault (`FILE:LINE: entry NAME: key KEY: what is
wrong; the fix`); `read_catalog` is the strict form `transferlab init` loads (all or nothing).
The sync's policy (catalog/policy.py) adds its own problems to the same list.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from transferlab.errors import CatalogError
from transferlab.registry.records import SOURCES, ModelRecord
from transferlab.registry.refs import NAME_PATTERN
from transferlab.yaml_lines import closest_line, parse_yaml

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
# Keys a catalog entry may hold that are not stored in the model record: read by the sync's
# policy (catalog/policy.py) and recorded with the sync.
POLICY_KEYS = {"license_exception": str}
_LORA_KEYS = {"methods": list, "lora_r": int, "lora_alpha": int, "lora_dropout": float}
_GENERAL_KEYS = {"max_length": int, "batch_size": int, "epochs": int}
_TYPE_NAMES = {
    str: "text",
    int: "a whole number (int)",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


def finetune_keys() -> dict[str, type]:
    """The settings a `finetune` block may hold, with their types; the learning-rate keys are
    those of the fine-tuning methods (`learning_rate`, `full_learning_rate`, ...)."""
    from transferlab.finetuning.methods import all_methods

    rates = {method.catalog_learning_rate_key: float for method in all_methods()}
    return {**_LORA_KEYS, "target_modules": list, **rates, **_GENERAL_KEYS}


def seed_catalog_path() -> Path:
    return Path(str(resources.files("transferlab.catalog") / SEED_CATALOG))


@dataclass(frozen=True)
class CatalogProblem:
    """One thing wrong with one entry: where (file, line, entry, key), what, and the fix."""

    path: str
    line: int | None
    entry: str
    key: str | None
    problem: str
    fix: str

    def __str__(self) -> str:
        line = f":{self.line}" if self.line else ""
        key = f" key {self.key}:" if self.key else ""
        return f"{self.path}{line}: entry {self.entry}:{key} {self.problem}; {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": str(self)}


@dataclass
class CatalogEntry:
    """One entry of a catalog file as written, and its record once it has no problem."""

    index: int
    fields: dict[str, Any]
    lines: dict[str, int] = field(repr=False)
    record: ModelRecord | None = None

    @property
    def name(self) -> str | None:
        name = self.fields.get("name")
        return name if isinstance(name, str) and name else None

    @property
    def label(self) -> str:
        """How messages name the entry: its name, else its position (#3)."""
        return self.name or f"#{self.index + 1}"

    @property
    def line(self) -> int | None:
        return self.line_of(None)

    def line_of(self, key: str | None) -> int | None:
        """The line of `key` in this entry (`license`, `finetune.methods`), else of its nearest
        parent the entry has, else of the entry itself."""
        path = f"models[{self.index}]" + (f".{key}" if key else "")
        return closest_line(self.lines, path)


@dataclass
class CatalogFile:
    """A catalog file read entry by entry, with every problem found."""

    path: Path
    entries: list[CatalogEntry]
    problems: list[CatalogProblem] = field(default_factory=list)

    def add_problem(self, entry: CatalogEntry, key: str | None, problem: str, fix: str) -> None:
        self.problems.append(
            CatalogProblem(str(self.path), entry.line_of(key), entry.label, key, problem, fix)
        )

    @property
    def records(self) -> list[ModelRecord]:
        return [entry.record for entry in self.entries if entry.record is not None]


def _type_ok(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _wrong_type(catalog: CatalogFile, entry: CatalogEntry, key: str, expected: type) -> None:
    value = entry.fields
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    catalog.add_problem(
        entry,
        key,
        f"must be {_TYPE_NAMES.get(expected, expected.__name__)}, got {value!r}",
        f"write {key} as {_TYPE_NAMES.get(expected, expected.__name__)}.",
    )


def _check_entry(catalog: CatalogFile, entry: CatalogEntry) -> None:
    """Add every problem of one entry; give it its record when it has none."""
    before = len(catalog.problems)
    fields = entry.fields
    known = {**_REQUIRED, **_OPTIONAL, **POLICY_KEYS}
    for key in fields:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            catalog.add_problem(
                entry, str(key), "unknown key", f"{hint}known keys: {', '.join(known)}."
            )
    for key in _REQUIRED:
        if fields.get(key) in (None, ""):
            catalog.add_problem(entry, key, "required key is missing", f"give the entry its {key}.")
    for key, expected in known.items():
        if fields.get(key) not in (None, "") and not _type_ok(fields[key], expected):
            _wrong_type(catalog, entry, key, expected)
    name = fields.get("name")
    if isinstance(name, str) and name and not NAME_PATTERN.match(name):
        catalog.add_problem(
            entry,
            "name",
            f"{name!r} is not a valid registry name",
            "use letters, digits, '.', '_', '-' or '/', starting with a letter or digit "
            "(':' and '@' are reserved for versions and aliases).",
        )
    source = fields.get("source")
    if isinstance(source, str) and source and source not in SOURCES:
        catalog.add_problem(
            entry, "source", f"{source!r} is not a source", f"use one of {', '.join(SOURCES)}."
        )
    settings = fields.get("finetune")
    if isinstance(settings, dict):
        _check_finetune(catalog, entry, settings)
    if len(catalog.problems) == before:
        values = {k: v for k, v in fields.items() if v is not None and k not in POLICY_KEYS}
        values.setdefault("languages", [])
        values.setdefault("tags", [])
        entry.record = ModelRecord(**values)


def _check_finetune(catalog: CatalogFile, entry: CatalogEntry, settings: dict) -> None:
    from transferlab.finetuning.methods import method_names

    known_settings = finetune_keys()
    for key, value in settings.items():
        if key not in known_settings:
            catalog.add_problem(
                entry,
                f"finetune.{key}",
                "unknown finetune setting",
                f"known settings: {', '.join(known_settings)}.",
            )
        elif not _type_ok(value, known_settings[key]):
            _wrong_type(catalog, entry, f"finetune.{key}", known_settings[key])
    listed = settings.get("methods")
    if isinstance(listed, list):
        known = method_names()
        unknown = [name for name in listed if name not in known]
        if unknown:
            catalog.add_problem(
                entry,
                "finetune.methods",
                f"unknown method(s) {unknown}",
                f"known methods: {', '.join(known)} (`transferlab methods`); install the "
                "package that provides a plug-in method, or remove it from the list.",
            )


def parse_catalog(path: str | Path | None = None) -> CatalogFile:
    """Read a catalog file and check every entry, collecting the problems with their lines.

    A file that cannot be read, is not YAML or has no `models:` list raises CatalogError.
    """
    path = Path(path) if path else seed_catalog_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise CatalogError(f"Catalog file {path} does not exist.", "Check the path.") from error
    except IsADirectoryError as error:
        raise CatalogError(
            f"{path} is a folder, not a catalog file.", "Give the YAML file."
        ) from error
    except UnicodeDecodeError as error:
        raise CatalogError(f"{path} is not UTF-8 text.", "Save the catalog as UTF-8.") from error
    document, lines = parse_yaml(text, path, CatalogError, "Catalog", str(seed_catalog_path()))
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise CatalogError(
            f"{path}: expected a top-level 'models:' list.",
            "Start the file with 'models:' followed by one '- name: ...' entry per model.",
        )
    entries = [
        CatalogEntry(index, item if isinstance(item, dict) else {}, lines)
        for index, item in enumerate(document["models"])
    ]
    catalog = CatalogFile(path, entries)
    first_line: dict[str, int | None] = {}
    for entry, item in zip(entries, document["models"], strict=True):
        if not isinstance(item, dict):
            catalog.add_problem(
                entry,
                None,
                f"an entry must be a mapping of keys, got {item!r}",
                "write the entry as '- name: ...' followed by its keys.",
            )
            continue
        _check_entry(catalog, entry)
        name = entry.name
        if name in first_line:
            catalog.add_problem(
                entry,
                "name",
                f"duplicate name {name!r} (first at line {first_line[name]})",
                "give each entry a unique name.",
            )
            entry.record = None
        elif name:
            first_line[name] = entry.line_of("name")
    return catalog


def catalog_error(catalog: CatalogFile, problems: list[CatalogProblem]) -> CatalogError:
    """One error listing every problem (all or nothing: nothing was loaded)."""
    listed = "\n".join(f"  {problem}" for problem in problems)
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return CatalogError(
        f"{count} in the catalog {catalog.path}; nothing was loaded:\n{listed}",
        "Correct each entry named above (the keys and their types are listed at the top of "
        f"{seed_catalog_path()}).",
    )


def read_catalog(path: str | Path | None = None) -> list[ModelRecord]:
    """The records of a catalog file; any problem raises CatalogError listing them all."""
    catalog = parse_catalog(path)
    if catalog.problems:
        raise catalog_error(catalog, catalog.problems)
    return catalog.records


def hub_uri(record: ModelRecord) -> str | None:
    """Where a catalog model's weights live on its hub, as a version URI."""
    scheme = HUB_SCHEMES.get(record.source)
    return f"{scheme}{record.source_ref}" if scheme else None
