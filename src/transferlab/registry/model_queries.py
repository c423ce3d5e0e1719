"""Named reads of models and versions for the rest of the package (init, import, fine-tune
configuration, the demo, the runner, discovery provenance), for Registry (api.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


class ModelQueriesMixin:
    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def _rows(self, sql: str, params: Any = ()) -> list[dict]: ...

    # -- models -----------------------------------------------------------------------------

    def model_count(self) -> int:
        return self._rows("SELECT count(*) AS n FROM models")[0]["n"]

    def all_models(self) -> list[dict]:
        """Every models row (JSON columns decoded)."""
        return self._rows("SELECT * FROM models")

    def model_tasks(self) -> list[str]:
        """The tasks of the registered models, sorted."""
        return [r["task"] for r in self._rows("SELECT DISTINCT task FROM models ORDER BY 1")]

    def has_task(self, task: str) -> bool:
        return bool(self._rows("SELECT 1 FROM models WHERE task = ? LIMIT 1", [task]))

    def model_licences(self) -> list[str]:
        """The licence ids of the registered models, sorted."""
        return [
            r["license"]
            for r in self._rows(
                "SELECT DISTINCT license FROM models WHERE license IS NOT NULL ORDER BY 1"
            )
        ]

    def has_licence(self, licence: str) -> bool:
        return bool(self._rows("SELECT 1 FROM models WHERE license = ? LIMIT 1", [licence]))

    def models_from_source(self, source: str, source_ref: str) -> list[dict]:
        """name, task and license of the models imported from `source` `source_ref`, by name."""
        return self._rows(
            "SELECT name, task, license FROM models WHERE source = ? AND source_ref = ? "
            "ORDER BY name",
            [source, source_ref],
        )

    def model_origin(self, name: str) -> dict | None:
        """origin and source of the model called `name`, or None."""
        rows = self._rows("SELECT origin, source FROM models WHERE name = ?", [name])
        return rows[0] if rows else None

    # -- versions ---------------------------------------------------------------------------

    def complete_versions_at(self, uri: str) -> list[dict]:
        """Base, full and merged versions registered at `uri`, newest first, each with its
        model's task, license, commercial_use, languages, finetune and model_type."""
        return self._rows(
            "SELECT v.version_id, v.model_name, m.task, m.license, m.commercial_use, "
            "m.languages, m.finetune, m.model_type FROM model_versions v "
            "JOIN models m ON m.name = v.model_name "
            "WHERE v.uri = ? AND v.kind IN ('base', 'full', 'merged') ORDER BY v.created_at DESC",
            [uri],
        )

    def complete_versions_of(self, model_name: str) -> list[dict]:
        """version_id and uri of the model's versions that are not adapters, newest first."""
        return self._rows(
            "SELECT version_id, uri FROM model_versions WHERE model_name = ? "
            "AND kind <> 'adapter' ORDER BY version DESC",
            [model_name],
        )

    def base_version_refs(self) -> list[str]:
        """`name:N` of every base version, by model name and number."""
        return [
            f"{r['model_name']}:{r['version']}"
            for r in self._rows(
                "SELECT model_name, version FROM model_versions WHERE kind = 'base' ORDER BY 1, 2"
            )
        ]

    def run_version_ids(self, run_id: str, *, by_version: bool = False) -> list[str]:
        """The versions a run registered, in the order they were made (or by number)."""
        order = "version" if by_version else "created_at"
        return [
            r["version_id"]
            for r in self._rows(
                f"SELECT version_id FROM model_versions WHERE run_id = ? ORDER BY {order}",
                [run_id],
            )
        ]

    def latest_version_of_kinds(self, kinds: Sequence[str]) -> str | None:
        """The newest version of one of these kinds, or None."""
        kinds = list(kinds)
        if not kinds:
            return None
        marks = ", ".join("?" for _ in kinds)
        rows = self._rows(
            f"SELECT version_id FROM model_versions WHERE kind IN ({marks}) "
            "ORDER BY created_at DESC LIMIT 1",
            kinds,
        )
        return rows[0]["version_id"] if rows else None

    def version_kinds(self, version_ids: Sequence[str]) -> dict[str, dict]:
        """version_id -> its version_id, kind and parent_version_id."""
        ids = list(version_ids)
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._rows(
            "SELECT version_id, kind, parent_version_id FROM model_versions "
            f"WHERE version_id IN ({marks})",
            ids,
        )
        return {row["version_id"]: row for row in rows}

    def version_with_run(self, version_id: str) -> dict | None:
        """version_id, parent_version_id, run_id, run_kind and the run's parameters (JSON
        text) of one version, or None."""
        rows = self._rows(
            "SELECT v.version_id, v.parent_version_id, v.run_id, r.kind AS run_kind, "
            "r.parameters FROM model_versions v LEFT JOIN runs r USING (run_id) "
            "WHERE v.version_id = ?",
            [version_id],
        )
        return rows[0] if rows else None

    def version_uris(self, model_names: Sequence[str]) -> list[dict]:
        """model_name and uri of every version of these models."""
        names = list(model_names)
        if not names:
            return []
        marks = ", ".join("?" for _ in names)
        return self._rows(
            f"SELECT model_name, uri FROM model_versions WHERE model_name IN ({marks})", names
        )

    def version_uris_starting(self, prefix: str) -> list[str]:
        """The distinct uris of versions that start with `prefix` (the REST service's artefact
        store: which stored artefacts a version refers to)."""
        rows = self._rows(
            "SELECT DISTINCT uri FROM model_versions WHERE starts_with(uri, ?) ORDER BY uri",
            [prefix],
        )
        return [row["uri"] for row in rows]
