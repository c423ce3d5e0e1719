"""Parsing of the ways a user names a model version: `name`, `name:3`, `name@production`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from transferlab.errors import TransferlabError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")


@dataclass(frozen=True)
class VersionRef:
    model_name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.model_name}:{self.version}"
        if self.alias is not None:
            return f"{self.model_name}@{self.alias}"
        return self.model_name


def validate_name(name: str, what: str = "model name") -> str:
    if not NAME_PATTERN.match(name or ""):
        raise TransferlabError(
            f"Invalid {what} {name!r}.",
            "Use letters, digits, '.', '_', '-' or '/', starting with a letter or digit "
            "(':' and '@' are reserved for versions and aliases).",
        )
    return name


def parse_version_ref(text: str) -> VersionRef:
    """`name` (latest version), `name:N` (version N) or `name@alias`."""
    text = text.strip()
    if "@" in text:
        name, alias = text.rsplit("@", 1)
        return VersionRef(validate_name(name), alias=validate_name(alias, "alias"))
    if ":" in text:
        name, number = text.rsplit(":", 1)
        if not number.isdigit():
            raise TransferlabError(
                f"Invalid version {number!r} in {text!r}.",
                "Write name:N with a version number, e.g. all-MiniLM-L6-v2:1, or name@alias.",
            )
        return VersionRef(validate_name(name), version=int(number))
    return VersionRef(validate_name(text))
