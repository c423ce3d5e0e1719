"""Loading labelled text data (CSV, TSV, JSONL, JSON, Parquet, Hugging Face datasets) into
LabelledData, with a DataError naming the file and the fix for every problem."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlab.data.labelled import (
    _HUB_ID,
    _INTEGER,
    _SPLIT_WORDS,
    HUB_PREFIX,
    SUFFIX_FORMATS,
    LabelledData,
    Source,
    _listing,
    _rows,
)
from transferlab.errors import DataError

# -- loading ----------------------------------------------------------------------------------


def load_labelled_data(
    source: Source,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split: str | None = None,
    label_names: Sequence[str] | None = None,
) -> LabelledData:
    """Read labelled texts from a file, a DataFrame or a Hugging Face dataset id.

    Files are read by suffix (.csv, .tsv, .jsonl/.ndjson, .json, .parquet/.pq). Integer labels
    take their names from `label_names`, else from a `labels.txt` beside the file (line i names
    label i; `labels_<suffix>.txt` is preferred for a file called `<split>_<suffix>.csv`), else
    they are named '0', '1', ... String labels are numbered in sorted order. A Hugging Face id
    (`org/name`, `name:config`, or with an `hf://` prefix) loads `split` (default 'train').
    """
    if isinstance(source, LabelledData):
        return source if label_names is None else source.with_label_names(label_names)
    if isinstance(source, pd.DataFrame):
        return _from_frame(
            source, text_column, label_column, label_names, "DataFrame", "dataframe", None
        )
    text = os.fspath(source)
    if text.startswith(HUB_PREFIX):
        return _load_hub_dataset(
            text.removeprefix(HUB_PREFIX), split, text_column, label_column, label_names
        )
    path = Path(text).expanduser()
    if path.exists():
        return _load_file(path, text_column, label_column, label_names)
    if path.suffix.lower() not in SUFFIX_FORMATS and _HUB_ID.match(text) and not path.is_absolute():
        return _load_hub_dataset(text, split, text_column, label_column, label_names)
    raise DataError(f"Data file {path} does not exist.", _missing_file_hint(path))


def _missing_file_hint(path: Path) -> str:
    folder = path.parent if str(path.parent) else Path(".")
    if folder.is_dir():
        near = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in SUFFIX_FORMATS)
        if near:
            return f"Files with data suffixes in {folder.resolve()}: {_listing(near)}."
    return f"Check the path (relative paths start at {Path.cwd()})."


def _load_file(
    path: Path, text_column: str, label_column: str, label_names: Sequence[str] | None
) -> LabelledData:
    if path.is_dir():
        raise DataError(
            f"{path} is a folder, not a data file.",
            "Pass a file (.csv, .jsonl, .parquet ...): give train, validation and test files "
            "separately (train=..., validation=..., test=...).",
        )
    kind = SUFFIX_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"Cannot read {path}: unknown file type {path.suffix or '(no suffix)'!r}.",
            f"Use one of {', '.join(SUFFIX_FORMATS)} (save a DataFrame with "
            "df.to_csv(path, index=False) or df.to_parquet(path)).",
        )
    if path.stat().st_size == 0:
        raise DataError(
            f"Data file {path} is empty (0 bytes).",
            f"Write the examples into it with a header row: {text_column},{label_column}.",
        )
    frame = read_parquet(path) if kind == "parquet" else read_text_file(path, kind)
    names = label_names if label_names is not None else _label_names_beside(path)
    return _from_frame(frame, text_column, label_column, names, str(path), dataset_name(path), path)


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(
            f"{path} is not a readable Parquet file: {exc}",
            "Re-write it with df.to_parquet(path), or give the data as CSV or JSONL.",
        ) from exc


def read_text_file(path: Path, kind: str) -> pd.DataFrame:
    raw = path.read_bytes()
    content = _decode_utf8(raw, path)
    if not content.strip():
        raise DataError(
            f"Data file {path} is empty (only whitespace).",
            "Write the examples into it with a header row, e.g. text,label.",
        )
    if kind in ("csv", "tsv"):
        try:
            return pd.read_csv(
                path,
                sep="\t" if kind == "tsv" else ",",
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(
                f"{path} is not a well-formed {kind.upper()} file: {exc}",
                "Quote fields that hold the separator or line breaks (pandas' to_csv does), "
                "and give every row as many fields as the header.",
            ) from exc
    if kind == "json":
        try:
            loaded = json.loads(content)
        except json.JSONDecodeError:
            return _read_json_lines(content, path)
        if isinstance(loaded, list) and all(isinstance(row, dict) for row in loaded):
            return pd.DataFrame(loaded)
        if isinstance(loaded, dict) and all(isinstance(v, list) for v in loaded.values()):
            return pd.DataFrame(loaded)
        raise DataError(
            f"{path} holds JSON that is neither a list of objects nor an object of columns.",
            'Write [{"text": ..., "label": ...}, ...] or one object per line (.jsonl).',
        )
    return _read_json_lines(content, path)


def _read_json_lines(content: str, path: Path) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"Line {number} of {path} is not valid JSON: {exc.msg} (column {exc.colno}).",
                'Write one JSON object per line, e.g. {"text": "...", "label": "..."}.',
            ) from exc
        if not isinstance(row, dict):
            raise DataError(
                f"Line {number} of {path} holds a JSON {type(row).__name__}, not an object.",
                'Write one JSON object per line, e.g. {"text": "...", "label": "..."}.',
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _decode_utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            guess, codec = "it starts with a UTF-16 byte-order mark", "UTF-16"
        else:
            guess, codec = "it looks like Windows-1252 / Latin-1 text", "WINDOWS-1252"
        raise DataError(
            f"{path} is not UTF-8: byte 0x{byte} on line {line} cannot be decoded ({guess}).",
            f"Convert it to UTF-8, e.g. `iconv -f {codec} -t UTF-8 {path.name} > "
            f"{path.stem}.utf8{path.suffix}`, or in Python: pd.read_csv(path, "
            f"encoding='{codec.lower()}').to_csv(new_path, index=False).",
        ) from exc


def _label_names_beside(path: Path) -> list[str] | None:
    """`labels_<suffix>.txt` for `<split>_<suffix>.csv`, else `labels.txt`, else None."""
    parts = path.stem.split("_")
    candidates = [f"labels_{'_'.join(parts[i:])}.txt" for i in range(1, len(parts))]
    candidates += [f"{path.stem}.labels.txt", "labels.txt"]
    for candidate in candidates:
        names_file = path.parent / candidate
        if names_file.is_file():
            return _read_label_names(names_file)
    return None


def _read_label_names(names_file: Path) -> list[str]:
    names = _decode_utf8(names_file.read_bytes(), names_file).splitlines()
    while names and not names[-1].strip():
        names.pop()
    names = [name.strip() for name in names]
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates or not all(names):
        raise DataError(
            f"Label names file {names_file} has "
            + (f"duplicate names {_listing(duplicates)}." if duplicates else "blank lines."),
            "Write one distinct name per line: line i names label i.",
        )
    return names


def _from_frame(
    frame: pd.DataFrame,
    text_column: str,
    label_column: str,
    label_names: Sequence[str] | None,
    source: str,
    name: str,
    path: Path | None,
) -> LabelledData:
    columns = [str(c) for c in frame.columns]
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        which = "column" if len(missing) == 1 else "columns"
        raise DataError(
            f"{source} has no {which} {_listing(missing)}; its columns are: "
            f"{_listing(columns) or 'none'}.",
            _column_hint(missing, columns, text_column, label_column),
        )
    if frame.empty:
        raise DataError(
            f"{source} has a header but no rows.",
            f"Add examples below the header, one per row ({text_column}, {label_column}).",
        )
    # CSV rows start at line 2 (after the header); other sources count rows from 1.
    first_row = 2 if path is not None and path.suffix.lower() in (".csv", ".tsv") else 1
    texts = _texts(frame[text_column].tolist(), source, text_column, first_row)
    labels, names = _encode_labels(
        frame[label_column].tolist(), label_names, source, label_column, first_row
    )
    return LabelledData(texts=texts, labels=labels, label_names=names, source=source, name=name)


def _column_hint(
    missing: list[str], columns: list[str], text_column: str, label_column: str
) -> str:
    lowered = {c.lower(): c for c in columns}
    guesses = {
        text_column: ("text", "sentence", "content", "message", "review", "description"),
        label_column: ("label", "labels", "class", "category", "intent", "target"),
    }
    suggestions = []
    for wanted, argument in ((text_column, "text_column"), (label_column, "label_column")):
        if wanted not in missing:
            continue
        found = next((lowered[g] for g in guesses[wanted] if g in lowered), None)
        if found:
            suggestions.append(f"{argument}={found!r}")
    if suggestions:
        return f"Pass {', '.join(suggestions)}, or rename the columns."
    return "Pass text_column=... and label_column=... naming the columns that hold them."


def _texts(values: list[Any], source: str, column: str, first_row: int) -> list[str]:
    texts = ["" if _is_missing(v) else str(v) for v in values]
    blank = [i + first_row for i, t in enumerate(texts) if not t.strip()]
    if blank:
        raise DataError(
            f"{source} has {len(blank)} row(s) with an empty {column!r}: rows {_rows(blank)}.",
            "Fill in or delete those rows.",
        )
    return texts


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _encode_labels(
    values: list[Any],
    label_names: Sequence[str] | None,
    source: str,
    column: str,
    first_row: int,
) -> tuple[list[int], list[str]]:
    empty = [i + first_row for i, v in enumerate(values) if _is_missing(v) or str(v).strip() == ""]
    if empty:
        raise DataError(
            f"{source} has {len(empty)} row(s) without a {column!r}: rows {_rows(empty)}.",
            "Label those rows or delete them.",
        )
    integers = [_as_int(v) for v in values]
    if all(i is not None for i in integers):
        return _integer_labels([int(i) for i in integers if i is not None], label_names, source)
    strings = [str(v).strip() for v in values]
    if label_names is None:
        names = sorted(set(strings))
    else:
        names = list(label_names)
        unknown = sorted(set(strings) - set(names))
        if unknown:
            raise DataError(
                f"{source} has labels that are not among the given label names: "
                f"{_listing(unknown)}.",
                f"Known label names: {_listing(names)}. Fix the labels or the names.",
            )
    ids = {name: i for i, name in enumerate(names)}
    return [ids[s] for s in strings], names


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return int(value) if float(value).is_integer() else None
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    return None


def _integer_labels(
    ids: list[int], label_names: Sequence[str] | None, source: str
) -> tuple[list[int], list[str]]:
    negative = sorted({i for i in ids if i < 0})
    if negative:
        raise DataError(
            f"{source} has negative label ids {_listing([str(i) for i in negative])} "
            "(-1 often marks unlabelled rows, as in hidden test sets).",
            "Drop the unlabelled rows, or use a split that has labels.",
        )
    names = list(label_names) if label_names is not None else [str(i) for i in range(max(ids) + 1)]
    out_of_range = sorted({i for i in ids if i >= len(names)})
    if out_of_range:
        raise DataError(
            f"{source} has label ids {_listing([str(i) for i in out_of_range])} but only "
            f"{len(names)} label names ({_listing(names)}).",
            "Add the missing names to labels.txt (line i names label i), or fix the labels.",
        )
    return ids, names


def _load_hub_dataset(
    dataset_id: str,
    split: str | None,
    text_column: str,
    label_column: str,
    label_names: Sequence[str] | None,
) -> LabelledData:
    from transferlab.models.sources import hub_status

    name, _, config = dataset_id.partition(":")
    split = split or "train"
    described = f"Hugging Face dataset {dataset_id!r} (split {split!r})"
    status = hub_status()
    if status != "online":
        raise DataError(
            f"Cannot load {described}: no file {dataset_id!r} exists here and the Hugging Face "
            f"Hub is {status}.",
            "Export the data set to a file where the Hub is reachable "
            "(datasets.load_dataset(...).to_csv('data.csv')) and pass that file, or check the "
            "path if you meant a local file.",
        )
    import datasets

    try:
        loaded = datasets.load_dataset(name, config or None, split=split)
    except ValueError as exc:
        raise DataError(
            f"Cannot load {described}: {exc}", "Pick one of the splits the data set has."
        ) from exc
    except Exception as exc:  # datasets raises many types: not found, gated, connection ...
        raise DataError(
            f"Cannot load {described}: {type(exc).__name__}: {exc}",
            "Check the data set id (org/name, or org/name:config) and your access to it.",
        ) from exc
    feature = loaded.features.get(label_column)
    if label_names is None and isinstance(feature, datasets.ClassLabel):
        label_names = list(feature.names)
    data_name = re.sub(
        r"[^A-Za-z0-9._\-]", "-", name.split("/")[-1] + (f"-{config}" if config else "")
    )
    return _from_frame(
        loaded.to_pandas(), text_column, label_column, label_names, described, data_name, None
    )


def dataset_name(source: Source) -> str:
    """A short name for a data source: the file name without split words, or the hub id."""
    if isinstance(source, LabelledData):
        return source.name
    if isinstance(source, pd.DataFrame):
        return "dataframe"
    text = os.fspath(source).removeprefix(HUB_PREFIX)
    path = Path(text)
    if path.suffix.lower() not in SUFFIX_FORMATS and not path.exists() and _HUB_ID.match(text):
        name, _, config = text.partition(":")
        return _clean_name(name.split("/")[-1] + (f"-{config}" if config else ""))
    tokens = [t for t in re.split(r"[_\-.\s]+", path.stem) if t]
    kept = [t for t in tokens if t.lower() not in _SPLIT_WORDS]
    folder = path.resolve().parent.name if path.exists() else path.parent.name
    if not kept:
        return _clean_name(folder or "data")
    if tokens[0].lower() in _SPLIT_WORDS and folder:
        return _clean_name("_".join([folder, *kept]))
    return _clean_name("_".join(kept))


def _clean_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._\-]+", "-", name).strip("-._")
    return cleaned or "data"
