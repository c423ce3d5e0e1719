"""Labelled text data and its splits (the records every loader returns), the bundled sample
data, and the constants the loaders share."""

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


def _listing(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _rows(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_SHOWN])
    return shown + (f" and {len(numbers) - _SHOWN} more" if len(numbers) > _SHOWN else "")


def fingerprint(data: LabelledData) -> str:
    """sha256 over the exact (text, label name) examples, in order."""
    digest = hashlib.sha256()
    for text, label in zip(data.texts, data.labels, strict=True):
        digest.update(json.dumps([text, data.label_names[label]], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()
