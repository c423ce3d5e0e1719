"""Labelled text data: loading (CSV, TSV, JSONL, JSON, Parquet, Hugging Face datasets), splits,
few-shot samples and fingerprints.

Every problem with the data is raised as a DataError naming the file and what to do, before any
model is loaded: a run should not spend minutes loading weights to then trip over a typo in a
column name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlab.errors import DataError

SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
SAMPLE_DATA_SPLITS = ("train", "test")
SAMPLE_DATA_NAME = "support_intents"
HUB_PREFIX = "hf://"
# Words in file names that say which split a file holds, not which data set it is.
_SPLIT_WORDS = frozenset({"train", "training", "test", "testing", "dev", "valid", "validation"})
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?(:[\w.\-]+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_SHOWN = 5


@dataclass
class LabelledData:
    """Texts with integer label ids; `label_names[i]` names label id i."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    source: str
    name: str

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return (
            f"LabelledData({self.name!r}, {len(self)} examples, "
            f"{len(self.label_names)} labels, source={self.source!r})"
        )

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    def label_counts(self) -> dict[str, int]:
        """Examples per label name, in label id order (labels without examples included)."""
        counts = Counter(self.labels)
        return {name: counts.get(i, 0) for i, name in enumerate(self.label_names)}

    def present_labels(self) -> list[str]:
        """Label names that have at least one example."""
        return [name for name, count in self.label_counts().items() if count]

    def subset(self, indices: Sequence[int], source: str | None = None) -> LabelledData:
        return LabelledData(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            label_names=list(self.label_names),
            source=source or self.source,
            name=self.name,
        )

    def with_label_names(self, label_names: Sequence[str], *, role: str = "data") -> LabelledData:
        """The same examples with ids renumbered to `label_names` (e.g. the training labels)."""
        target = {name: i for i, name in enumerate(label_names)}
        unknown = sorted({self.label_names[i] for i in self.labels} - target.keys())
        if unknown:
            raise DataError(
                f"The {role} set {self.source} has labels the training data never has: "
                f"{_listing(unknown)}.",
                "Train on data that covers every label you evaluate on (a larger n_per_class or "
                "n_train, or a different split), or drop those rows from the "
                f"{role} set. Training labels: {_listing(list(label_names))}.",
            )
        return LabelledData(
            texts=list(self.texts),
            labels=[target[self.label_names[i]] for i in self.labels],
            label_names=list(label_names),
            source=self.source,
            name=self.name,
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "text": self.texts,
                "label": self.labels,
                "label_name": [self.label_names[i] for i in self.labels],
            }
        )


Source = str | os.PathLike[str] | pd.DataFrame | LabelledData


@dataclass
class DataSplits:
    """The examples a fine-tuning run uses; validation and test share the training label ids."""

    train: LabelledData
    validation: LabelledData | None
    test: LabelledData | None
    name: str

    @property
    def label_names(self) -> list[str]:
        return self.train.label_names

    def items(self) -> list[tuple[str, LabelledData]]:
        named = (("train", self.train), ("validation", self.validation), ("test", self.test))
        return [(split, data) for split, data in named if data is not None]

    def fingerprints(self) -> dict[str, str]:
        return {split: fingerprint(data) for split, data in self.items()}

    def fingerprint(self) -> str:
        """One digest over every split's fingerprint (a changed test set changes it too)."""
        payload = json.dumps(self.fingerprints(), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label_names": self.label_names,
            "splits": {
                split: {
                    "source": data.source,
                    "examples": len(data),
                    "label_counts": data.label_counts(),
                    "fingerprint": fingerprint(data),
                }
                for split, data in self.items()
            },
        }


# -- the project's sample data --------------------------------------------------------------


def sample_data_path(split: str = "train") -> Path:
    """Path of the bundled customer-support intents data set ('train' or 'test')."""
    if split not in SAMPLE_DATA_SPLITS:
        raise DataError(
            f"The sample data has no {split!r} split.",
            f"Use one of: {', '.join(SAMPLE_DATA_SPLITS)}.",
        )
    resource = resources.files("transferlab.sample_data") / f"{SAMPLE_DATA_NAME}_{split}.csv"
    return Path(str(resource))


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
    from transferlab.finetuning.sources import hub_status

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


# -- splits, samples, fingerprints ------------------------------------------------------------


def stratified_holdout(
    data: LabelledData, fraction: float, seed: int = 0, max_examples: int | None = None
) -> tuple[LabelledData, LabelledData]:
    """(kept, held out): about `fraction` of each label's examples held out, seeded, and no
    more than `max_examples` in all (the fraction shrinks to fit, classes keep their shares).

    A label keeps at least one example on the kept side; both sides keep the file order.
    """
    if not 0 < fraction < 1:
        raise DataError(
            f"Invalid holdout fraction {fraction}.", "Use a fraction between 0 and 1, e.g. 0.2."
        )
    if max_examples is not None and fraction * len(data) > max_examples:
        fraction = max_examples / len(data)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in range(len(data.label_names)):
        members = np.flatnonzero(np.asarray(data.labels) == label)
        count = min(int(np.floor(fraction * len(members) + 0.5)), len(members) - 1)
        if count > 0:
            held.extend(rng.permutation(members)[:count].tolist())
    held_set = set(held)
    kept = [i for i in range(len(data)) if i not in held_set]
    return (
        data.subset(kept, f"{data.source} (kept after holding out {fraction:g})"),
        data.subset(sorted(held_set), f"{data.source} (held out {fraction:g}, seed {seed})"),
    )


# A validation split held out of a large pool is capped: it is evaluated at every epoch, and
# 10 % of SST-2's 67k training sentences (6.7k) took longer to evaluate than a few-shot run
# takes to train. 500 examples are plenty to pick the best epoch for early stopping.
MAX_HELD_OUT_VALIDATION = 500


def split_data(
    train: LabelledData,
    *,
    validation: LabelledData | None = None,
    test: LabelledData | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.0,
    seed: int = 0,
) -> DataSplits:
    """Use the given validation/test sets, or hold out stratified fractions of `train`.

    The test set is held out first, then validation (at most MAX_HELD_OUT_VALIDATION examples)
    from what remains. Validation and test labels are renumbered to the training label ids;
    labels that training never has are an error.
    """
    if test is None and test_fraction > 0:
        train, test = stratified_holdout(train, test_fraction, seed)
        _require_examples(test, "test", test_fraction, train)
    if validation is None and validation_fraction > 0:
        train, validation = stratified_holdout(
            train, validation_fraction, seed + 1, max_examples=MAX_HELD_OUT_VALIDATION
        )
        _require_examples(validation, "validation", validation_fraction, train)
    return _aligned(DataSplits(train, validation, test, train.name))


def _require_examples(held: LabelledData, role: str, fraction: float, rest: LabelledData) -> None:
    if not len(held):
        raise DataError(
            f"Holding out {fraction:g} of {rest.source} for {role} leaves no {role} examples "
            f"({len(rest)} examples, at most one per label).",
            f"Give a {role} file, or use more data.",
        )


def _aligned(splits: DataSplits) -> DataSplits:
    seen = splits.train.present_labels()
    for role in ("validation", "test"):
        data = getattr(splits, role)
        if data is None:
            continue
        data = data.with_label_names(splits.label_names, role=role)
        unseen = [name for name in data.present_labels() if name not in seen]
        if unseen:
            raise DataError(
                f"The {role} set {data.source} has labels the training examples never show: "
                f"{_listing(unseen)}.",
                "Train with examples of every label (raise n_per_class or n_train, or use "
                f"more training data), or remove those rows from the {role} set. Labels in "
                f"training: {_listing(seen)}.",
            )
        setattr(splits, role, data)
    return splits


def sample_few_shot(
    data: LabelledData,
    n_per_class: int | None = None,
    n_train: int | None = None,
    seed: int = 0,
) -> LabelledData:
    """A stratified sample: `n_per_class` examples of each label, or `n_train` in all.

    Each label's examples are drawn from its own seeded permutation, so with one seed the
    sample for n=8 is contained in the sample for n=16 (nested data-efficiency curves).
    `n_train` splits the examples in proportion to the label counts, at least one per label.
    """
    if n_per_class is None and n_train is None:
        return data
    if n_per_class is not None and n_train is not None:
        raise DataError(
            f"Both n_per_class={n_per_class} and n_train={n_train} are set.", "Set only one."
        )
    present = Counter(data.labels)
    counts = {label: present[label] for label in sorted(present)}
    if n_per_class is not None:
        if n_per_class < 1:
            raise DataError(f"Invalid n_per_class {n_per_class}.", "Use a positive number.")
        short = {data.label_names[i]: c for i, c in counts.items() if c < n_per_class}
        if short:
            listed = ", ".join(f"{name!r} has {count}" for name, count in short.items())
            raise DataError(
                f"{data.source} has fewer than n_per_class={n_per_class} examples of "
                f"{len(short)} label(s): {listed}.",
                f"Use n_per_class <= {min(short.values())}, or add examples of those labels.",
            )
        quota = dict.fromkeys(counts, n_per_class)
    else:
        quota = _proportional_quota(counts, int(n_train or 0), data)
    chosen: list[int] = []
    labels = np.asarray(data.labels)
    for label, take in quota.items():
        members = np.flatnonzero(labels == label)
        order = np.random.default_rng([seed, label]).permutation(members)
        chosen.extend(order[:take].tolist())
    spec = f"{n_per_class} per class" if n_per_class is not None else f"{n_train} examples"
    return data.subset(sorted(chosen), f"{data.source} (sample of {spec}, seed {seed})")


def _proportional_quota(counts: dict[int, int], n_train: int, data: LabelledData) -> dict[int, int]:
    total = sum(counts.values())
    if n_train < len(counts) or n_train > total:
        raise DataError(
            f"Invalid n_train {n_train} for {data.source}: it has {total} examples of "
            f"{len(counts)} labels.",
            f"Use n_train between {len(counts)} (one per label) and {total}.",
        )
    # One example per label first, the rest split in proportion to what each label has left.
    quota = dict.fromkeys(counts, 1)
    spare = {label: count - 1 for label, count in counts.items()}
    remaining = n_train - len(counts)
    spare_total = sum(spare.values())
    if remaining and spare_total:
        shares = {label: remaining * s / spare_total for label, s in spare.items()}
        floors = {label: int(np.floor(share)) for label, share in shares.items()}
        leftover = remaining - sum(floors.values())
        by_remainder = sorted(shares, key=lambda label: (floors[label] - shares[label], label))
        for label in by_remainder[:leftover]:
            floors[label] += 1
        for label in quota:
            quota[label] += min(floors[label], spare[label])
    return quota


def fingerprint(data: LabelledData) -> str:
    """sha256 over the exact (text, label name) examples, in order."""
    digest = hashlib.sha256()
    for text, label in zip(data.texts, data.labels, strict=True):
        digest.update(json.dumps([text, data.label_names[label]], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def load_splits(
    train: Source,
    *,
    validation: Source | None = None,
    test: Source | None = None,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.0,
    n_per_class: int | None = None,
    n_train: int | None = None,
    seed: int = 0,
) -> DataSplits:
    """Load the sources, hold out what is not given, then draw the few-shot training sample.

    Held-out validation/test examples are taken from the full training pool before sampling,
    so a few-shot run is evaluated on the same examples whatever its training size. Hub ids
    load their 'train', 'validation' and 'test' splits for the three roles.
    """
    options = {"text_column": text_column, "label_column": label_column, "label_names": label_names}
    pool = load_labelled_data(train, split="train", **options)
    require_two_classes(pool, label_column)
    given_validation = (
        load_labelled_data(validation, split="validation", **options)
        if _given(validation)
        else None
    )
    given_test = load_labelled_data(test, split="test", **options) if _given(test) else None
    for role, given in (("validation", given_validation), ("test", given_test)):
        if given is not None and not len(given):
            raise DataError(
                f"The {role} set {given.source} has no examples.",
                f"Give a {role} set with examples, or none ({role}_fraction of the training "
                "data is then held out).",
            )
    splits = split_data(
        pool,
        validation=given_validation,
        test=given_test,
        test_fraction=test_fraction,
        validation_fraction=validation_fraction,
        seed=seed,
    )
    splits.train = sample_few_shot(
        splits.train, n_per_class=n_per_class, n_train=n_train, seed=seed
    )
    return _aligned(splits)


def require_two_classes(data: LabelledData, label_column: str = "label") -> None:
    """Refuse training data whose examples show fewer than two labels: a classifier trained
    on one label predicts it for everything and scores 1.0 on a test set of that label."""
    present = data.present_labels()
    if len(present) >= 2:
        return
    found = f"only one label, {present[0]!r}" if present else "no labels"
    named = ""
    if len(data.label_names) > len(present):
        named = f" (its label names list {len(data.label_names)}: {_listing(data.label_names)})"
    raise DataError(
        f"The training data {data.source} has {found}, in all {len(data)} examples{named}: "
        "a classifier needs examples of at least two classes.",
        f"Add examples of the other classes, or check that label_column={label_column!r} is "
        "the column that holds the classes.",
    )


def _given(source: Source | None) -> bool:
    """A validation/test source was passed (an empty string counts as none; a DataFrame has
    no truth value, so `if source` cannot tell)."""
    return source is not None and not (isinstance(source, str) and not source.strip())


def _listing(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _rows(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_SHOWN])
    return shown + (f" and {len(numbers) - _SHOWN} more" if len(numbers) > _SHOWN else "")
