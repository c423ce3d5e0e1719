"""Named reads of results for evaluation, promotion, model cards, `show` and data-efficiency
curves, for Registry (api.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from transferlab.registry.backends import RegistryBackend

# A fine-tune run with its score on one metric and split (NULLs when it recorded none).
_RUN_SCORES = (
    "SELECT u.run_id, u.kind, u.status, u.parameters, r.dataset, r.value, r.n_train, r.seed "
    "FROM runs u LEFT JOIN results r ON r.run_id = u.run_id AND r.metric = ? AND r.split = ?"
)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class ResultQueriesMixin:
    backend: RegistryBackend

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def _rows(self, sql: str, params: Any = ()) -> list[dict]: ...

    def evidence_rows(
        self,
        run_kind: str,
        suite: str | None = None,
        version_ids: Sequence[str] | None = None,
    ) -> list[dict]:
        """version_id, suite, task, split, metric, seed and value of the results of succeeded
        runs of `run_kind` (of one suite, of some versions)."""
        sql = (
            "SELECT r.version_id, r.suite, r.task, r.split, r.metric, r.seed, r.value "
            "FROM results r JOIN runs u ON u.run_id = r.run_id "
            "WHERE r.version_id IS NOT NULL AND r.suite IS NOT NULL "
            "AND u.kind = ? AND u.status = 'succeeded'"
        )
        params: list[Any] = [run_kind]
        if suite is not None:
            sql += " AND r.suite = ?"
            params.append(suite)
        if version_ids is not None:
            ids = [v for v in version_ids if v]
            if not ids:
                return []
            sql += f" AND r.version_id IN ({_marks(ids)})"
            params += ids
        return self._rows(sql, params)

    def alias_holders_with_results(self, alias: str, suite: str) -> list[str]:
        """Versions that hold `alias` of their model and have results on `suite`."""
        rows = self._rows(
            "SELECT a.version_id FROM aliases a WHERE a.alias = ? AND EXISTS "
            "(SELECT 1 FROM results r WHERE r.version_id = a.version_id AND r.suite = ?) "
            "ORDER BY a.model_name",
            [alias, suite],
        )
        return [row["version_id"] for row in rows]

    def training_examples(self, version_id: str, run_id: str) -> int | None:
        """The largest n_train the run recorded for the version (None when none)."""
        rows = self._rows(
            "SELECT max(n_train) AS n FROM results WHERE version_id = ? AND run_id = ?",
            [version_id, run_id],
        )
        return rows[0]["n"] if rows else None

    def result_means_of_model(self, model_name: str) -> list[dict]:
        """The mean value and count of the results of each version of a model, per version,
        suite, dataset, split and metric."""
        return self._rows(
            "SELECT version_id, suite, dataset, split, metric, avg(value) AS value, "
            "count(*) AS n FROM results WHERE version_id IN (SELECT version_id FROM "
            "model_versions WHERE model_name = ?) "
            "GROUP BY version_id, suite, dataset, split, metric "
            "ORDER BY version_id, suite, dataset, split, metric, value, n",
            [model_name],
        )

    def succeeded_results_of_version(self, version_id: str) -> list[dict]:
        """suite, task, dataset, split, metric, seed and value of the version's results from
        succeeded runs."""
        return self._rows(
            "SELECT r.suite, r.task, r.dataset, r.split, r.metric, r.seed, r.value "
            "FROM results r JOIN runs u ON u.run_id = r.run_id "
            "WHERE r.version_id = ? AND u.status = 'succeeded'",
            [version_id],
        )

    def run_scores(self, run_ids: Sequence[str], metric: str, split: str) -> list[dict]:
        """These runs, oldest first, each with its `metric` on `split`: run_id, kind, status,
        parameters (JSON text), dataset, value, n_train and seed (NULL without a score)."""
        ids = list(run_ids)
        if not ids:
            return []
        return self._rows(
            f"{_RUN_SCORES} WHERE u.run_id IN ({_marks(ids)}) ORDER BY u.started_at",
            [metric, split, *ids],
        )

    def finetune_scores(
        self,
        metric: str,
        split: str,
        *,
        base_models: Iterable[str] | None = None,
        fingerprint: str | None = None,
    ) -> list[dict]:
        """Succeeded fine-tune runs (of these base models; whose data or test split has this
        fingerprint), oldest first, with their score as in `run_scores`."""
        clauses = ["u.kind = 'finetune'", "u.status = 'succeeded'"]
        params: list[Any] = [metric, split]
        models = sorted(set(base_models)) if base_models is not None else None
        if models is not None:
            if not models:
                return []
            base_model = self.backend.dialect.json_text("u.parameters", ["base_model"])
            clauses.append(f"{base_model} IN ({_marks(models)})")
            params.extend(models)
        if fingerprint is not None:
            test_fingerprint = self.backend.dialect.json_text(
                "u.parameters", ["data", "splits", "test", "fingerprint"]
            )
            clauses.append(f"(u.data_fingerprint = ? OR {test_fingerprint} = ?)")
            params.extend([fingerprint, fingerprint])
        return self._rows(
            f"{_RUN_SCORES} WHERE {' AND '.join(clauses)} ORDER BY u.started_at", params
        )
