"""Which candidate versions were fine-tuned on the very data discovery scores them on.

Such a version has seen the labels of the examples it is scored on: its cross-validated score
is inflated, and recommending it "as a base" would recommend the fine-tune of this data itself.

A fine-tuning run records the fingerprint of its training split (exact texts and labels) and
how it drew that split from its source (held-out fractions, few-shot size, seed). Discovery
draws the same way from its own pool of examples: when the fingerprints agree, the version was
trained on examples of this pool. Versions derived from such a version (merged adapters,
fine-tunes of fine-tunes) inherit the finding through their lineage.
"""

from __future__ import annotations

import json
from typing import Any

from transferlab.data import LabelledData, fingerprint, load_splits
from transferlab.errors import TransferlabError
from transferlab.registry import Registry

TRAINED_ON_DATA = "trained on this data"


def _given(value: Any) -> bool:
    return value is not None and value != ""


def drawn_from(pool: LabelledData, parameters: dict[str, Any]) -> bool:
    """Whether a fine-tuning run's training split is a draw from `pool` (same examples)."""
    splits = (parameters.get("data") or {}).get("splits") or {}
    recorded = (splits.get("train") or {}).get("fingerprint")
    if not recorded:
        return False
    if fingerprint(pool) == recorded:
        return True
    try:
        redrawn = load_splits(
            pool,
            label_names=parameters.get("label_names"),
            test_fraction=0.0
            if _given(parameters.get("test"))
            else float(parameters.get("test_fraction") or 0.0),
            validation_fraction=0.0
            if _given(parameters.get("validation"))
            else float(parameters.get("validation_fraction") or 0.0),
            n_per_class=parameters.get("n_per_class"),
            n_train=parameters.get("n_train"),
            seed=int(parameters.get("seed") or 0),
        )
    except (TransferlabError, TypeError, ValueError):
        return False  # the run's draw does not fit this pool: it was not drawn from it
    return fingerprint(redrawn.train) == recorded


class TrainedOnData:
    """`check(version_id)` -> why the version was trained on `pool`'s examples, or None.

    Results are cached per run, so a discovery over many derived versions reads each run once.
    """

    def __init__(self, registry: Registry, pool: LabelledData):
        self.registry = registry
        self.pool = pool
        self._runs: dict[str, bool] = {}

    def _lineage(self, version_id: str) -> list[dict[str, Any]]:
        """The version and its ancestors (parent_version_id), each with its run's parameters."""
        chain: list[dict[str, Any]] = []
        current: str | None = version_id
        while current and all(row["version_id"] != current for row in chain):
            row = self.registry.version_with_run(current)
            if row is None:
                break
            chain.append(row)
            current = row["parent_version_id"]
        return chain

    def _run_trained_on_pool(self, row: dict[str, Any]) -> bool:
        run_id = row["run_id"]
        if run_id not in self._runs:
            parameters = row["parameters"]
            if isinstance(parameters, str):
                parameters = json.loads(parameters)
            self._runs[run_id] = isinstance(parameters, dict) and drawn_from(self.pool, parameters)
        return self._runs[run_id]

    def __call__(self, version_id: str) -> str | None:
        for row in self._lineage(version_id):
            if row["run_id"] and row["run_kind"] == "finetune" and self._run_trained_on_pool(row):
                via = "" if row["version_id"] == version_id else f" (through {row['version_id']})"
                return (
                    f"{TRAINED_ON_DATA}: fine-tuned on these examples by run "
                    f"{row['run_id']}{via}, so its score here would be inflated; not scored and "
                    "never recommended as a base"
                )
        return None
