"""Which fine-tune runs make a curve, and one point per run: (model, data set, method, size,
seed, score), read from the registry's runs and results."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from transferlab.errors import NotFoundError, TransferlabError
from transferlab.registry import Registry

METRICS = ("accuracy", "macro_f1")
FULL_DATA = "all"
POINT_COLUMNS = [
    "run_id",
    "model",
    "dataset",
    "method",
    "n_per_class",
    "n_train",
    "n_classes",
    "seed",
    "value",
]


def normalise_run_ids(runs: str | Sequence[str] | None) -> list[str]:
    """A template parameter given as a list, as 'id1, id2', or as None."""
    if runs is None:
        return []
    if isinstance(runs, str):
        return [r.strip() for r in runs.split(",") if r.strip()]
    return [str(r) for r in runs]


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise TransferlabError(
            f"Unknown metric {metric!r} for a data-efficiency curve.",
            f"Use one of: {', '.join(METRICS)} (what every fine-tune run records).",
        )
    return metric


def sweep_run_ids(registry: Registry, sweep: str) -> list[str]:
    """The runs of a sweep, by id or name.

    Uses `Registry.sweep_runs` (the sweeps tables) when this registry API has it, else the
    runs' own `sweep_id` column, which every run started for a sweep carries.
    """
    lookup = getattr(registry, "sweep_runs", None)
    rows: Iterable[Any] = (
        lookup(sweep) if lookup is not None else registry.runs(sweep_id=sweep, limit=1_000_000)
    )
    ids = [row["run_id"] if isinstance(row, dict) else str(row) for row in rows]
    if not ids:
        raise NotFoundError(
            f"No runs recorded for sweep {sweep!r} in {registry.display_location}.",
            "Check the sweep's id or name (`transferlab runs --json` shows each run's sweep_id), "
            "or give the runs themselves: -p runs RUN_ID,RUN_ID.",
        )
    return ids


def collect_points(
    registry: Registry,
    *,
    run_ids: Sequence[str] | None = None,
    base_models: Iterable[str] | None = None,
    dataset: str | None = None,
    fingerprint: str | None = None,
    metric: str = "accuracy",
    split: str = "test",
) -> tuple[pd.DataFrame, list[str]]:
    """One row per fine-tune run with its score, and notes on the runs left out.

    `run_ids` names the runs exactly (unknown ids are an error; failed, unfinished and
    non-fine-tune runs are left out with a note). Without them, every succeeded fine-tune run
    of `base_models` (all when None) is used. `dataset` keeps one data set (its recorded name);
    `fingerprint` keeps runs whose test split (the evaluation examples) or whole data has that
    fingerprint.
    """
    check_metric(metric)
    notes: list[str] = []
    if run_ids:
        rows = _rows_for_ids(registry, list(dict.fromkeys(run_ids)), metric, split, notes)
    else:
        rows = _rows_matching(registry, base_models, fingerprint, metric, split)
    records, no_score, by_total = [], [], []
    for row in rows:
        if row["value"] is None:
            no_score.append(row["run_id"])
            continue
        record = _point(row)
        if record is None:
            by_total.append(row["run_id"])
            continue
        records.append(record)
    if no_score:
        notes.append(
            f"{len(no_score)} run(s) have no {split} {metric} recorded and are left out: "
            f"{_listing(no_score)}."
        )
    if by_total:
        notes.append(
            f"{len(by_total)} run(s) sampled a total number of training examples (n_train) "
            f"rather than examples per class, and are left out: {_listing(by_total)}."
        )
    points = pd.DataFrame(records, columns=POINT_COLUMNS)
    if dataset is not None:
        points = points[points["dataset"] == dataset].reset_index(drop=True)
    return points, notes


def _rows_for_ids(
    registry: Registry, run_ids: list[str], metric: str, split: str, notes: list[str]
) -> list[dict]:
    rows = registry.run_scores(run_ids, metric, split)
    missing = sorted(set(run_ids) - {row["run_id"] for row in rows})
    if missing:
        raise NotFoundError(
            f"No run {_listing(missing)} in the registry {registry.display_location}.",
            "List runs with `transferlab runs --kind finetune`.",
        )
    kept, left_out = [], {}
    for row in rows:
        if row["kind"] != "finetune":
            left_out.setdefault(f"{row['kind']} run(s)", []).append(row["run_id"])
        elif row["status"] != "succeeded":
            left_out.setdefault(f"{row['status']} run(s)", []).append(row["run_id"])
        else:
            kept.append(row)
    for what, ids in left_out.items():
        notes.append(f"Left out {len(ids)} {what}: {_listing(ids)}.")
    return kept


def _rows_matching(
    registry: Registry,
    base_models: Iterable[str] | None,
    fingerprint: str | None,
    metric: str,
    split: str,
) -> list[dict]:
    return registry.finetune_scores(metric, split, base_models=base_models, fingerprint=fingerprint)


def _point(row: dict) -> dict | None:
    """The run as a curve point, or None when it sampled a total n_train instead."""
    parameters = json.loads(row["parameters"]) if row["parameters"] else {}
    n_per_class = parameters.get("n_per_class")
    if n_per_class in (None, FULL_DATA):
        if parameters.get("n_train") is not None:
            return None
        size: int | str = FULL_DATA
    else:
        size = int(n_per_class)
    labels = (parameters.get("data") or {}).get("label_names") or []
    n_train = int(row["n_train"])
    n_classes = len(labels) or (n_train // size if isinstance(size, int) else None)
    seed = row["seed"] if row["seed"] is not None else parameters.get("seed")
    return {
        "run_id": row["run_id"],
        "model": parameters.get("base_model") or parameters.get("base") or "?",
        "dataset": row["dataset"],
        "method": parameters.get("method") or "?",
        "n_per_class": size,
        "n_train": n_train,
        "n_classes": n_classes,
        "seed": seed,
        "value": float(row["value"]),
    }


def _listing(ids: Sequence[str], shown: int = 5) -> str:
    text = ", ".join(ids[:shown])
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
