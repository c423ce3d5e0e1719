"""What a discovery run is asked (DiscoveryConfig), checked before any model is loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from transferlab.data import Source
from transferlab.errors import TransferlabError
from transferlab.search import LICENSE_POLICIES, parse_parameter_count

# Discovery scores candidates with a classifier on frozen embeddings, so its one task is text
# classification; the candidates are the registered text models that can take a
# classification head (sentence encoders, masked-LM encoders, classifiers).
DISCOVERY_TASKS = ("text-classification",)
CANDIDATE_TASKS = {
    "text-classification": (
        "text-classification",
        "feature-extraction",
        "fill-mask",
        "sentence-similarity",
    ),
}
MIN_PER_CLASS = 2  # the fewest examples of a class that cross-validation can split


@dataclass
class DiscoveryConfig:
    """A discovery request: which models to consider, and the examples to score them on.

    `data` (or `train`) holds labelled examples; `n_per_class` of each label are drawn (seeded)
    and scored by cross-validation. `test` and the column names are passed on to the
    recommended fine-tuning run. `query` ranks candidates by semantic similarity of their
    model cards; None ranks them by name.
    """

    task: str = "text-classification"
    data: Source | None = None
    train: Source | None = None
    test: Source | None = None
    text_column: str = "text"
    label_column: str = "label"
    n_per_class: int = 16
    license: str = "any"  # any | commercial | open | a licence id
    max_params: int | str | None = None  # 150M, 1.5B or a number
    max_latency_ms: float | None = None  # batch-1 p50 on this machine
    runnable_here: bool = True
    query: str | None = None
    shortlist: int = 5
    seed: int = 0

    def to_params(self) -> dict[str, Any]:
        return {f.name: _describe(getattr(self, f.name)) for f in fields(self)}

    def checked(self) -> DiscoveryConfig:
        """A copy with max_params as an integer; raises on the first bad value."""
        if self.task not in DISCOVERY_TASKS:
            raise TransferlabError(
                f"Discovery cannot score task {self.task!r}.",
                f"Use task={DISCOVERY_TASKS[0]!r}: candidates are scored with a classifier on "
                "their frozen embeddings of your labelled examples.",
            )
        if self.license not in LICENSE_POLICIES and not str(self.license).strip():
            raise TransferlabError(
                "The licence filter is empty.", f"Use {', '.join(LICENSE_POLICIES)} or an id."
            )
        if self.query is not None and not isinstance(self.query, str):
            raise TransferlabError(
                f"The search text (query) must be text, got {self.query!r}.",
                "Give it as text. On the command line, a value that reads as a number or "
                "true/false needs quotes inside the value: -p query \"'42'\".",
            )
        if self.query is not None and not str(self.query).strip():
            raise TransferlabError(
                "The search text (query) is empty.",
                "Describe what you need, e.g. query='English encoder for short support "
                "messages', or set query=None to rank candidates by name.",
            )
        checks = [
            (
                "n_per_class",
                self.n_per_class,
                isinstance(self.n_per_class, int) and self.n_per_class >= MIN_PER_CLASS,
                f">= {MIN_PER_CLASS} (cross-validation needs two examples of each class)",
            ),
            (
                "shortlist",
                self.shortlist,
                isinstance(self.shortlist, int)
                and not isinstance(self.shortlist, bool)
                and self.shortlist >= 1,
                ">= 1",
            ),
            (
                "seed",
                self.seed,
                isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
                ">= 0 (an integer)",
            ),
            (
                "runnable_here",
                self.runnable_here,
                isinstance(self.runnable_here, bool),
                "of true or false",
            ),
            (
                "max_latency_ms",
                self.max_latency_ms,
                self.max_latency_ms is None
                or (isinstance(self.max_latency_ms, int | float) and self.max_latency_ms > 0),
                "> 0 milliseconds, or None",
            ),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise TransferlabError(f"Invalid {name}={value!r}.", f"Use a value {expected}.")
        max_params = parse_parameter_count(self.max_params)
        if max_params is not None and max_params < 1:
            raise TransferlabError(
                f"Invalid max_params={self.max_params!r}.", "Use a positive count, e.g. 150M."
            )
        if self.data is not None and self.train is not None:
            raise TransferlabError(
                "Both data= and train= are set.",
                "Use data= for one labelled set, or train= (with an optional test=).",
            )
        copy = DiscoveryConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        copy.max_params = max_params
        copy.query = self.query.strip() if self.query else None
        return copy


def _describe(value: Any) -> Any:
    if hasattr(value, "shape") and hasattr(value, "columns"):
        return f"DataFrame ({len(value)} rows)"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "texts") and hasattr(value, "label_names"):
        return f"{value.name}: {value.source} ({len(value)} examples)"
    return value
