"""YAML files whose errors name the line: key paths mapped to lines, and parsing that reports
syntax errors with the line and a pointer to a working example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from transferlab.errors import TransferlabError

TOP = "(top level)"


def parse_yaml(
    text: str, path: Path, error: type[TransferlabError], kind: str, example: str
) -> tuple[Any, dict[str, int]]:
    """The document and its key-path -> line index; a syntax error raises `error` naming the
    line, with `example` (a working file) as the fix."""
    try:
        return yaml.safe_load(text), line_index(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise error(
            f"{kind} {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}.",
            f"Fix the YAML syntax (indentation, quotes, colons); see {example}.",
        ) from exc


def closest_line(lines: dict[str, int], key: str) -> int | None:
    """The line of `key`, else of its nearest parent that the file has (a missing key)."""
    while key:
        if key in lines:
            return lines[key]
        key = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", key) if re.search(r"[.\[]", key) else ""
    return lines.get(TOP)


def line_index(text: str) -> dict[str, int]:
    """Key path (`tasks[1].metrics[2]`) -> 1-based line, from the YAML node tree."""
    root = yaml.compose(text)
    found: dict[str, int] = {}

    def walk(node: yaml.Node, key: str) -> None:
        if key:
            found[key] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for name, value in node.value:
                walk(value, f"{key}.{name.value}" if key else str(name.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{key}[{i}]")

    if root is not None:
        found[TOP] = root.start_mark.line + 1
        walk(root, "")
    return found
