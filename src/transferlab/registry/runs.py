"""Runs and sweeps in the registry, and runs whose process is gone.

A run is `running` from `start_run` until `finish_run`. A process killed with SIGKILL (or a
machine that lost power) never finishes its run, so every run records the host, pid and start
time of the process that started it (schema 3), and a command that opens the registry marks
the runs of this host whose process is gone as `interrupted` ("process PID on HOST ended
without finishing the run"). Runs of other hosts are left alone: their processes cannot be
seen from here. An interrupted fine-tune leaves no unfinished model folder behind.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import secrets
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.errors import NotFoundError, TransferlabError
from transferlab.registry.processes import (
    gone_reason,
    interrupted_error,
    this_host,
    this_process,
)
from transferlab.registry.records import RUN_STATUSES, SWEEP_STATUSES
from transferlab.registry.rows import Connection, dict_rows, to_json, utc_now

if TYPE_CHECKING:
    from collections.abc import Sequence

    from transferlab.registry.backends import RegistryBackend

TRACKED_PACKAGES = (
    "transferlab",
    "torch",
    "transformers",
    "peft",
    "datasets",
    "duckdb",
    "papermill",
    "scikit-learn",
    "numpy",
)
# Written last by a fine-tune's save (transferlab.finetuning.artifacts.METADATA_FILE): a folder
# holding it is a finished artefact and is never removed.
ARTEFACT_MARKER = "transferlab.json"
# The kinds of run that write a model folder, named by their `output_dir` parameter.
MODEL_FOLDER_KINDS = ("finetune",)


@functools.cache
def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def new_run_id(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _decoded(row: dict) -> dict:
    row["parameters"] = json.loads(row["parameters"]) if row["parameters"] else {}
    return row


def gone_runs(con: Connection) -> list[dict]:
    """Runs of this host still `running` whose process is gone, each with the error to record.

    One scan of the status column (no index: see migration 0003); /proc is read only for the
    few rows still running here.
    """
    host = this_host()
    found = []
    for row in dict_rows(
        con,
        "SELECT run_id, pid, process_start FROM runs WHERE status = 'running' AND host = ?",
        [host],
    ):
        note = gone_reason(row["pid"], row["process_start"])
        if note is not None:
            row["error"] = interrupted_error(row["pid"], host, note)
            found.append(row)
    return found


def remove_unfinished_model_folder(folder: Path, models_root: Path | None) -> bool:
    """Remove a fine-tune's output folder that holds no finished artefact: empty, or a save cut
    short (no ARTEFACT_MARKER). A folder with sub-folders is not what a save writes and is left
    alone. The empty `<models>/<name>` folder above it goes too. True if removed."""
    try:
        if not folder.is_dir() or (folder / ARTEFACT_MARKER).exists():
            return False
        entries = list(folder.iterdir())
        if any(entry.is_dir() and not entry.is_symlink() for entry in entries):
            return False
        for entry in entries:
            entry.unlink()
        folder.rmdir()
    except OSError:
        return False
    parent = folder.parent
    if parent.parent == models_root:
        with contextlib.suppress(OSError):
            parent.rmdir()  # only when empty
    return True


class RunsMixin:
    """The run and sweep methods of Registry (registry/api.py)."""

    path: Path | None
    #: whether an interrupted fine-tune's unfinished folder is removed (off in the service)
    removes_model_folders: bool = True

    if TYPE_CHECKING:

        def connect(self, *, read_only: bool = False) -> AbstractContextManager: ...

        def _unchecked(self) -> AbstractContextManager: ...

        def _rows(self, sql: str, params: Any = ()) -> list[dict]: ...

    backend: RegistryBackend
    display_location: str
    _models_dir: Path | None

    # -- runs -------------------------------------------------------------------------------

    def start_run(
        self,
        kind: str,
        *,
        template: str | None = None,
        parameters: dict | None = None,
        data_fingerprint: str | None = None,
        output_notebook: str | None = None,
        sweep_id: str | None = None,
        run_id: str | None = None,
        process: Sequence[Any] | None = None,
    ) -> str:
        """Record a run as `running`, with the host, pid and start time of this process, or
        of `process` (host, pid, start): the REST service records its client's, so that the
        run is the client's to finish and only a gone client process interrupts it."""
        run_id = run_id or new_run_id(kind)
        host, pid, started = process if process is not None else this_process()
        with self.connect() as con:
            con.execute(
                "INSERT INTO runs (run_id, kind, template, requested, parameters, status, "
                "started_at, output_notebook, data_fingerprint, package_versions, sweep_id, host, "
                "pid, process_start) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    kind,
                    template,
                    to_json(parameters or {}),
                    to_json(parameters or {}),
                    utc_now(),
                    output_notebook,
                    data_fingerprint,
                    to_json(package_versions()),
                    sweep_id,
                    host,
                    pid,
                    started,
                ],
            )
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change a running run's parameters, fingerprint, metrics, notebook path or the step
        it was pruned at (`pruned_step`, recorded before the run is finished as `pruned`)."""
        allowed = {
            "parameters",
            "data_fingerprint",
            "metrics",
            "output_notebook",
            "template",
            "pruned_step",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise TransferlabError(
                f"Cannot update run field(s) {sorted(unknown)}.", f"Use {sorted(allowed)}."
            )
        if not fields:
            return
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = [
            to_json(v) if name in ("parameters", "metrics") else v for name, v in fields.items()
        ]
        with self.connect() as con:
            self._require_run(con, run_id)
            con.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values, run_id])

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        metrics: dict | None = None,
        output_notebook: str | None = None,
    ) -> None:
        """Record how a run ended. An interrupted fine-tune's unfinished model folder goes."""
        if status not in RUN_STATUSES or status == "running":
            raise TransferlabError(
                f"Cannot finish a run as {status!r}.",
                "Use succeeded, failed, interrupted or pruned.",
            )
        with self.connect() as con:
            self._require_run(con, run_id)
            con.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = coalesce(?, error), "
                "metrics = coalesce(?, metrics), output_notebook = coalesce(?, output_notebook) "
                "WHERE run_id = ?",
                [status, utc_now(), error, to_json(metrics), output_notebook, run_id],
            )
            if status == "interrupted":
                self._remove_unfinished_folders(con, [run_id])

    def interrupt_gone_runs(self) -> list[str]:
        """Mark the runs of this host whose process is gone as interrupted; their ids.

        Nothing is marked in a registry this process may not write."""
        if not self.backend.writable():
            return []
        # housekeeping, not a user's act: also on a team registry without a token
        with self._unchecked(), self.connect() as con:
            return self._interrupt(con, gone_runs(con))

    def _interrupt(self, con: Connection, gone: list[dict]) -> list[str]:
        if not gone:
            return []
        now = utc_now()
        with self.backend.transaction(con):
            for row in gone:
                con.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ? "
                    "WHERE run_id = ? AND status = 'running'",
                    [now, row["error"], row["run_id"]],
                )
        ids = [row["run_id"] for row in gone]
        self._remove_unfinished_folders(con, ids)
        return ids

    def _remove_unfinished_folders(self, con: Connection, run_ids: list[str]) -> None:
        """Remove the model folders of these (interrupted) runs that hold no finished artefact
        and that no registered version points into (not in the REST service, whose disk is
        not where its clients' runs write: `removes_model_folders` off)."""
        if not self.removes_model_folders:
            return
        marks = ", ".join("?" for _ in run_ids)
        for row in dict_rows(
            con,
            f"SELECT run_id, parameters FROM runs WHERE run_id IN ({marks}) "
            f"AND {self.backend.dialect.list_contains('?', 'kind')}",
            [*run_ids, list(MODEL_FOLDER_KINDS)],
        ):
            folder = _decoded(row)["parameters"].get("output_dir")
            if not isinstance(folder, str) or not folder:
                continue
            folder_path = Path(folder)
            registered = con.execute(
                "SELECT count(*) FROM model_versions WHERE run_id = ? OR uri = ? "
                "OR starts_with(uri, ?)",
                [row["run_id"], str(folder_path), str(folder_path) + os.sep],
            ).fetchall()[0][0]
            if not registered:
                remove_unfinished_model_folder(folder_path, self._models_dir)

    def _require_run(self, con: Connection, run_id: str) -> None:
        if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
            raise NotFoundError(
                f"No run {run_id!r} in the registry {self.display_location}.",
                "List runs with `transferlab runs`.",
            )

    def get_run(self, run_id: str) -> dict:
        with self.connect(read_only=True) as con:
            self._require_run(con, run_id)
            return _decoded(dict_rows(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])[0])

    def runs(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        sweep_id: str | None = None,
        limit: int = 1000,
    ) -> list[dict]:
        """Runs, newest first. Runs of this host whose process is gone are marked interrupted
        first, so that nothing listed as `running` is dead."""
        if status is not None and status not in RUN_STATUSES:
            raise TransferlabError(
                f"Unknown run status {status!r}.", f"Use one of: {', '.join(RUN_STATUSES)}."
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise TransferlabError(
                f"Invalid limit {limit!r}: it must be a whole number of at least 1.",
                "Give e.g. --limit 50.",
            )
        clauses, params = [], []
        for column, value in (("kind", kind), ("status", status), ("sweep_id", sweep_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM runs{where} ORDER BY started_at DESC, run_id LIMIT ?"
        with self.connect(read_only=True) as con:
            gone = gone_runs(con)
            if not gone:
                return [_decoded(row) for row in dict_rows(con, sql, [*params, limit])]
        self.interrupt_gone_runs()
        return [_decoded(row) for row in self._rows(sql, [*params, limit])]

    def run_kinds(self) -> list[str]:
        """The kinds of run recorded (finetune, benchmark, discover, ...), sorted."""
        return [r["kind"] for r in self._rows("SELECT DISTINCT kind FROM runs ORDER BY kind")]

    # -- sweeps -----------------------------------------------------------------------------

    def start_sweep(
        self,
        name: str,
        *,
        spec: dict | None = None,
        file_path: str | None = None,
        template: str | None = None,
        workers: int | None = None,
        sweep_id: str | None = None,
    ) -> str:
        """Record a sweep (one invocation of `transferlab sweep`) as running."""
        sweep_id = sweep_id or new_run_id("sweep")
        with self.connect() as con:
            con.execute(
                "INSERT INTO sweeps (sweep_id, name, template, spec, file_path, status, "
                "created_at, workers, host, pid) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                [
                    sweep_id,
                    name,
                    template,
                    to_json(spec or {}),
                    file_path,
                    utc_now(),
                    workers,
                    this_host(),
                    os.getpid(),
                ],
            )
        return sweep_id

    def add_sweep_run(
        self, sweep_id: str, run_key: str, run_id: str, *, reused: bool = False
    ) -> None:
        """Link a planned run (its stable key) of a sweep to the run that holds its result."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO sweep_runs (sweep_id, run_key, run_id, reused) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (sweep_id, run_key) DO UPDATE SET run_id = excluded.run_id, "
                "reused = excluded.reused",
                [sweep_id, run_key, run_id, reused],
            )

    def finish_sweep(self, sweep_id: str, status: str, *, summary: dict | None = None) -> None:
        if status not in SWEEP_STATUSES or status == "running":
            raise TransferlabError(
                f"Cannot finish a sweep as {status!r}.", "Use succeeded, failed or interrupted."
            )
        with self.connect() as con:
            self._require_sweep_id(con, sweep_id)
            con.execute(
                "UPDATE sweeps SET status = ?, finished_at = ?, summary = coalesce(?, summary) "
                "WHERE sweep_id = ?",
                [status, utc_now(), to_json(summary), sweep_id],
            )

    def _require_sweep_id(self, con: Connection, sweep_id: str) -> None:
        if not con.execute("SELECT 1 FROM sweeps WHERE sweep_id = ?", [sweep_id]).fetchall():
            raise NotFoundError(
                f"No sweep {sweep_id!r} in the registry {self.display_location}.",
                "Run one with `transferlab sweep SWEEP.yaml`.",
            )

    def sweeps(self, name: str | None = None) -> list[dict]:
        """Sweeps, newest first (all of them, or those with this name)."""
        sql = "SELECT * FROM sweeps"
        params: list[Any] = []
        if name is not None:
            sql += " WHERE name = ?"
            params.append(name)
        rows = self._rows(sql + " ORDER BY created_at DESC, sweep_id DESC", params)
        for row in rows:
            for key in ("spec", "summary"):
                if isinstance(row[key], str):
                    row[key] = json.loads(row[key])
        return rows

    def latest_sweep(self, name: str) -> dict | None:
        """The newest sweep called `name`, or None."""
        rows = self.sweeps(name)
        return rows[0] if rows else None

    def get_sweep(self, sweep_id_or_name: str) -> dict:
        """A sweep by id, else the newest sweep with that name."""
        rows = [row for row in self.sweeps() if row["sweep_id"] == sweep_id_or_name]
        if not rows:
            latest = self.latest_sweep(sweep_id_or_name)
            rows = [latest] if latest else []
        if not rows:
            known = sorted({row["name"] for row in self.sweeps()})
            raise NotFoundError(
                f"No sweep with id or name {sweep_id_or_name!r} in the registry "
                f"{self.display_location}.",
                "Known sweeps: "
                + (", ".join(known) or "none yet")
                + ". Run one with `transferlab sweep SWEEP.yaml`.",
            )
        return rows[0]

    def sweep_runs(self, sweep_id_or_name: str) -> list[dict]:
        """The runs of a sweep (by id, or its newest invocation by name), one per planned run.

        Each row is a `runs` row (parameters and requested as dicts) plus `run_key` and
        `reused` (an earlier succeeded run the sweep took instead of running again). Planned
        runs that never started have no row.
        """
        sweep = self.get_sweep(sweep_id_or_name)
        rows = self._rows(
            "SELECT r.*, s.run_key, s.reused FROM sweep_runs s JOIN runs r USING (run_id) "
            "WHERE s.sweep_id = ? ORDER BY r.started_at, s.run_key",
            [sweep["sweep_id"]],
        )
        for row in rows:
            row["parameters"] = json.loads(row["parameters"]) if row["parameters"] else {}
        return rows
