"""What a sweep's search study and its pruning rule read and write (schema 5): the scores
each run reports while training, and the earlier runs of a sweep by its name."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from transferlab.registry.rows import utc_now

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


def _decoded_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class StudyQueriesMixin:
    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def _rows(self, sql: str, params: Any = ()) -> list[dict]: ...

    def record_training_score(self, run_id: str, step: int, metric: str, value: float) -> None:
        """One score a run reported while training (its validation loss at step 20, say);
        reported again for the same step and metric, the newer value wins."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO training_scores (run_id, step, metric, value, recorded_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, step, metric) "
                "DO UPDATE SET value = excluded.value, recorded_at = excluded.recorded_at",
                [run_id, int(step), metric, float(value), utc_now()],
            )

    def training_scores(self, run_ids: Sequence[str], metric: str | None = None) -> list[dict]:
        """run_id, step, metric and value of the scores these runs reported (of `metric`
        only, if given), by run and step."""
        if not run_ids:
            return []
        marks = ", ".join("?" for _ in run_ids)
        sql = f"SELECT run_id, step, metric, value FROM training_scores WHERE run_id IN ({marks})"
        params: list[Any] = list(run_ids)
        if metric is not None:
            sql += " AND metric = ?"
            params.append(metric)
        return self._rows(sql + " ORDER BY run_id, step, metric", params)

    def search_trials(self, sweep_name: str) -> list[dict]:
        """Every run any invocation of the sweep `sweep_name` started (each once, oldest
        first): run_id, status, requested and metrics (decoded), pruned_step, sweep_id."""
        rows = self._rows(
            "SELECT r.run_id, r.status, r.requested, r.metrics, r.pruned_step, r.sweep_id, "
            "r.started_at FROM runs r JOIN sweeps s ON s.sweep_id = r.sweep_id "
            "WHERE s.name = ? ORDER BY r.started_at, r.run_id",
            [sweep_name],
        )
        for row in rows:
            row["requested"] = _decoded_json(row["requested"]) or {}
            row["metrics"] = _decoded_json(row["metrics"]) or {}
        return rows
