"""Named reads a sweep needs (resume, stale runs, its summary), for Registry (api.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class SweepQueriesMixin:
    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def _rows(self, sql: str, params: Any = ()) -> list[dict]: ...

    def run_exists(self, run_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM runs WHERE run_id = ?", [run_id]))

    def succeeded_runs_of(self, kind: str) -> list[dict]:
        """run_id, requested and data_fingerprint of the succeeded runs of `kind`, newest
        first (what a sweep may reuse)."""
        return self._rows(
            "SELECT run_id, requested, data_fingerprint FROM runs "
            "WHERE kind = ? AND status = 'succeeded' ORDER BY started_at DESC",
            [kind],
        )

    def running_sweep_runs(self, sweep_name: str, host: str) -> list[dict]:
        """run_id and pid of the runs of sweeps called `sweep_name` still `running` on `host`."""
        return self._rows(
            "SELECT r.run_id, r.pid FROM runs r JOIN sweeps s USING (sweep_id) "
            "WHERE s.name = ? AND r.status = 'running' AND r.host = ?",
            [sweep_name, host],
        )

    def running_sweeps(self, sweep_name: str, host: str) -> list[dict]:
        """sweep_id and pid of the sweeps called `sweep_name` still `running` on `host`."""
        return self._rows(
            "SELECT sweep_id, pid FROM sweeps WHERE name = ? AND status = 'running' AND host = ?",
            [sweep_name, host],
        )

    def still_running(self, run_ids: Sequence[str]) -> list[str]:
        """The ids among `run_ids` whose run is still `running`."""
        if not run_ids:
            return []
        rows = self._rows(
            f"SELECT run_id FROM runs WHERE status = 'running' AND run_id IN ({_marks(run_ids)})",
            list(run_ids),
        )
        return [row["run_id"] for row in rows]

    def run_outcomes(self, run_ids: Sequence[str]) -> dict[str, dict]:
        """Per run id: status, error, output_notebook, pruned_step, seconds, version_id
        (the first version it registered) and test_accuracy (None where it has none)."""
        if not run_ids:
            return {}
        ids, marks = list(run_ids), _marks(run_ids)
        outcomes = {
            row["run_id"]: {**row, "version_id": None, "test_accuracy": None}
            for row in self._rows(
                "SELECT run_id, status, error, output_notebook, pruned_step, "
                "CAST(extract(epoch FROM finished_at - started_at) AS DOUBLE PRECISION) "
                "AS seconds "
                f"FROM runs WHERE run_id IN ({marks})",
                ids,
            )
        }
        for row in self._rows(
            f"SELECT run_id, version_id FROM model_versions WHERE run_id IN ({marks}) "
            "ORDER BY created_at DESC",
            ids,
        ):
            outcomes[row["run_id"]]["version_id"] = row["version_id"]  # the oldest is last
        for row in self._rows(
            f"SELECT run_id, value FROM results WHERE run_id IN ({marks}) "
            "AND split = 'test' AND metric = 'accuracy'",
            ids,
        ):
            outcomes[row["run_id"]]["test_accuracy"] = row["value"]
        return outcomes
