"""The catalog policy: what every entry of a synced catalog must meet (catalog_policy.yaml).

`check_policy` adds its problems to those the reader found (catalog/seed.py), each at the line
of the key at fault, so that `transferlab sync` reports everything wrong with a file at once and
writes nothing while anything is.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

from transferlab.catalog.licenses import (
    commercial_use_for_license,
    known_license_ids,
    normalize_license,
)
from transferlab.catalog.seed import CatalogEntry, CatalogFile
from transferlab.errors import CatalogError
from transferlab.registry.records import ModelRecord
from transferlab.yaml_lines import closest_line, parse_yaml

POLICY_FILE = "catalog_policy.yaml"
POLICY_ENV = "TRANSFERLAB_CATALOG_POLICY"
EXCEPTION_KEY = "license_exception"
MIN_EXCEPTION_CHARS = 10
_POLICY_KEYS = ("required_fields", "allowed_licenses")
# Fields a policy may require: the model record's, except those the format always requires.
_ALWAYS_REQUIRED = ("name", "source", "source_ref", "task")
CARD_FIELDS = tuple(f.name for f in fields(ModelRecord) if f.name not in _ALWAYS_REQUIRED)


@dataclass(frozen=True)
class CatalogPolicy:
    """Required card fields and the licences allowed without an exception."""

    path: Path
    required_fields: tuple[str, ...]
    allowed_licenses: frozenset[str]
    allowed_label: str  # how messages name the allowed set: commercial, any, or the ids

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "required_fields": list(self.required_fields),
            "allowed_licenses": self.allowed_label,
        }


def default_policy_path() -> Path:
    return Path(str(resources.files("transferlab.catalog") / POLICY_FILE))


def load_policy(path: str | os.PathLike[str] | None = None) -> CatalogPolicy:
    """Read and check a policy: an explicit path, else $TRANSFERLAB_CATALOG_POLICY, else the
    packaged default. A policy that cannot be used is refused naming its line."""
    chosen = path or os.environ.get(POLICY_ENV) or default_policy_path()
    file = Path(chosen).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError) as error:
        raise CatalogError(
            f"The catalog policy {file} does not exist.",
            f"Give a policy YAML file (--policy or {POLICY_ENV}), e.g. a copy of "
            f"{default_policy_path()}.",
        ) from error
    document, lines = parse_yaml(text, file, CatalogError, "Catalog policy", str(file))
    if not isinstance(document, dict):
        raise _policy_error(file, None, lines, "must be a mapping of keys", "required_fields")
    for key in document:
        if key not in _POLICY_KEYS:
            raise _policy_error(file, str(key), lines, "unknown key", ", ".join(_POLICY_KEYS))
    required = document.get("required_fields") or []
    if not isinstance(required, list) or any(f not in CARD_FIELDS for f in required):
        raise _policy_error(
            file, "required_fields", lines, f"must list fields of {', '.join(CARD_FIELDS)}", ""
        )
    allowed, label = _allowed_licenses(file, lines, document.get("allowed_licenses", "commercial"))
    return CatalogPolicy(file, tuple(required), allowed, label)


def _allowed_licenses(file: Path, lines: dict, value: object) -> tuple[frozenset[str], str]:
    known = known_license_ids()
    if value == "commercial":
        return frozenset(i for i in known if commercial_use_for_license(i)), "commercial"
    if value == "any":
        return frozenset(known), "any"
    if isinstance(value, list) and value and all(i in known for i in value):
        return frozenset(value), ", ".join(value)
    raise _policy_error(
        file,
        "allowed_licenses",
        lines,
        f"must be commercial, any, or a list of licence ids; got {value!r}",
        f"the known ids: {', '.join(known)}",
    )


def _policy_error(
    file: Path, key: str | None, lines: dict, problem: str, expected: str
) -> CatalogError:
    line = closest_line(lines, key or "")
    where = f"{file}:{line}" if line else str(file)
    return CatalogError(
        f"{where}: catalog policy key {key or '(top level)'}: {problem}.",
        f"Write the policy like {default_policy_path()}"
        + (f" (expected: {expected})." if expected else "."),
    )


def check_policy(catalog: CatalogFile, policy: CatalogPolicy) -> None:
    """Add the policy's problems with each entry to the catalog's problems."""
    for entry in catalog.entries:
        if not entry.fields:
            continue  # not a mapping: the reader has said so
        for key in policy.required_fields:
            value = entry.fields.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                catalog.add_problem(
                    entry,
                    key,
                    f"required by the policy ({policy.path.name}) but missing",
                    f"state the model's {key} (every entry must: required_fields).",
                )
        _check_license(catalog, entry, policy)


def _check_license(catalog: CatalogFile, entry: CatalogEntry, policy: CatalogPolicy) -> None:
    given = entry.fields.get("license")
    exception = entry.fields.get(EXCEPTION_KEY)
    if not isinstance(given, str) or not given.strip():
        if exception is not None:
            catalog.add_problem(
                entry, EXCEPTION_KEY, "an exception for no licence", "state the license first."
            )
        return
    licence = normalize_license(given)
    known = known_license_ids()
    if licence != given:
        catalog.add_problem(
            entry,
            "license",
            f"{given!r} is not written as the Hub writes licence ids",
            f"write {licence}.",
        )
    if licence not in known:
        close = difflib.get_close_matches(licence or "", known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        catalog.add_problem(
            entry,
            "license",
            f"unknown licence id {given!r}: nobody can tell whether it allows commercial use",
            f"{hint}use a Hugging Face Hub licence id (see catalog/licenses.py); for a custom "
            f"licence write 'other' and say why it is acceptable in {EXCEPTION_KEY}.",
        )
        return
    commercial = commercial_use_for_license(licence)
    stated = entry.fields.get("commercial_use")
    if isinstance(stated, bool) and commercial is not None and stated != commercial:
        catalog.add_problem(
            entry,
            "commercial_use",
            f"says {str(stated).lower()} but the licence {licence} "
            f"{'allows' if commercial else 'does not allow'} commercial use",
            f"write commercial_use: {str(commercial).lower()} (or leave it out).",
        )
    allowed = licence in policy.allowed_licenses
    if allowed and exception is not None:
        catalog.add_problem(
            entry,
            EXCEPTION_KEY,
            f"not needed: the policy allows {licence}",
            "remove it (a stale exception hides the next licence change from review).",
        )
    elif not allowed and exception is None:
        catalog.add_problem(
            entry,
            "license",
            f"{licence} is not allowed by the policy {policy.path.name} "
            f"(allowed: {policy.allowed_label} licences)",
            f"use a model with an allowed licence, or say why this one is acceptable in "
            f"`{EXCEPTION_KEY}: <reason>` on the entry (reviewed with the change).",
        )
    elif not allowed and (
        not isinstance(exception, str) or len(exception.strip()) < MIN_EXCEPTION_CHARS
    ):
        catalog.add_problem(
            entry,
            EXCEPTION_KEY,
            f"the reason {exception!r} says too little",
            f"say in at least {MIN_EXCEPTION_CHARS} characters why {licence} is acceptable "
            "(e.g. 'research use only, approved by legal 2025-03').",
        )


def license_exceptions(catalog: CatalogFile) -> dict[str, str]:
    """name -> the reason of each entry accepted through a licence exception."""
    return {
        entry.name: str(entry.fields[EXCEPTION_KEY]).strip()
        for entry in catalog.entries
        if entry.name and entry.fields.get(EXCEPTION_KEY) is not None
    }
