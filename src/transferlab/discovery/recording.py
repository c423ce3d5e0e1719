"""A discovery run in the registry: one result row per scored candidate and metric (split
'cv'), the ranked table and the recommendation in the run, readable back by run id."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from transferlab.errors import TransferlabError
from transferlab.registry import Registry

RUN_KIND = "discover"
RESULT_SPLIT = "cv"
RESULT_METRICS = (
    "cv_accuracy",
    "cv_accuracy_std",
    "cv_macro_f1",
    "cv_macro_f1_std",
    "latency_p50_ms",
)


def result_rows(
    run_id: str, table: pd.DataFrame, *, task: str, dataset: str, n_train: int, seed: int
) -> list[dict[str, Any]]:
    rows = []
    for record in table.to_dict("records"):
        if record["status"] not in ("scored", "too slow"):
            continue
        for metric in RESULT_METRICS:
            value = record.get(metric)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            rows.append(
                {
                    "run_id": run_id,
                    "version_id": record["version"],
                    "suite": None,
                    "task": task,
                    "dataset": dataset,
                    "split": RESULT_SPLIT,
                    "metric": metric,
                    "value": float(value),
                    "n_train": n_train,
                    "seed": seed,
                }
            )
    return rows


def table_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The table as JSON-able rows (NaN and pandas NA as None)."""
    records = []
    for record in table.astype(object).to_dict("records"):
        records.append({k: (None if _missing(v) else v) for k, v in record.items()})
    return records


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def record_discovery(
    registry: Registry,
    run_id: str,
    table: pd.DataFrame,
    recommendation: dict[str, Any] | None,
    summary: dict[str, Any],
    *,
    task: str,
    dataset: str,
    n_train: int,
    seed: int,
) -> None:
    """Results rows, then the table, recommendation and summary in the run's metrics (the
    recommendation also in its parameters, beside the request)."""
    registry.add_results(
        result_rows(run_id, table, task=task, dataset=dataset, n_train=n_train, seed=seed)
    )
    parameters = registry.get_run(run_id)["parameters"] or {}
    registry.update_run(
        run_id,
        parameters={**parameters, "recommendation": recommendation},
        metrics={"table": table_records(table), "recommendation": recommendation, **summary},
    )


def recommendation(registry: Registry, run_id: str) -> dict[str, Any]:
    """The finetune-template parameters a discovery run recommended.

    `run_template("finetune", recommendation(registry, run_id))` fine-tunes the recommended
    base with the recommended settings.
    """
    run = registry.get_run(run_id)
    if run["kind"] != RUN_KIND:
        raise TransferlabError(
            f"Run {run_id} is a {run['kind']} run, not a discovery run.",
            "Pass the run id of a discover run (`transferlab runs`).",
        )
    found = (run.get("metrics") or {}).get("recommendation") or run["parameters"].get(
        "recommendation"
    )
    if not found:
        status = run["status"]
        why = f" (it {status}: {run['error']})" if run.get("error") else f" (status {status})"
        raise TransferlabError(
            f"Discovery run {run_id} made no recommendation{why}.",
            "Run discovery again with looser filters; its output notebook says what was scored.",
        )
    return dict(found)
