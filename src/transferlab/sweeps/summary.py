"""The table printed at the end of a sweep, and the same as JSON for scripts."""

from __future__ import annotations

from typing import Any

from transferlab.sweeps.plan import display_value
from transferlab.sweeps.run import RunRow, SweepResult

# Statuses in the order the summary lists them: what needs attention first.
STATUS_ORDER = ("failed", "interrupted", "pending", "pruned", "succeeded", "reused")


def summary_rows(result: SweepResult) -> list[dict[str, Any]]:
    """One dict per planned run: its varying parameters, then the outcome."""
    ordered = sorted(
        result.rows,
        key=lambda r: STATUS_ORDER.index(r.status) if r.status in STATUS_ORDER else 0,
    )
    return [_row(row) for row in ordered]


def _row(row: RunRow) -> dict[str, Any]:
    return {
        **{name: display_value(name, value) for name, value in row.varying.items()},
        "status": row.status,
        "run_id": row.run_id,
        "version": row.version,
        "test_accuracy": row.test_accuracy,
        "pruned_step": row.pruned_step,
        "seconds": round(row.seconds, 1) if row.seconds is not None else None,
        "error": _first_line(row.error),
    }


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    return text.strip().splitlines()[0]


def summary_columns(result: SweepResult) -> list[str]:
    varying = list(result.rows[0].varying) if result.rows else []
    pruned = ["pruned_step"] if any(row.status == "pruned" for row in result.rows) else []
    return [*varying, "status", "run_id", "version", "test_accuracy", *pruned, "seconds", "error"]


def format_summary(result: SweepResult) -> str:
    from transferlab.cli.output import format_table

    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts().items()))
    head = (
        f"sweep {result.name} ({result.sweep_id}): {result.status}; {len(result.rows)} runs: "
        f"{counts}; {result.workers} worker(s) x {result.threads_per_worker} thread(s); "
        f"{result.wall_s:.1f} s"
    )
    table = format_table(summary_rows(result), summary_columns(result), max_width=80)
    lines = [head, "", table]
    if result.report:
        lines += ["", f"report  {result.report}"]
    lines += [f"note    {note}" for note in result.notes]
    return "\n".join(lines)


def summary_json(result: SweepResult) -> dict[str, Any]:
    return {
        "sweep_id": result.sweep_id,
        "name": result.name,
        "template": result.template,
        "executor": result.executor,
        "status": result.status,
        "workers": result.workers,
        "threads_per_worker": result.threads_per_worker,
        "wall_s": round(result.wall_s, 2),
        "counts": result.counts(),
        "report": result.report,
        "notes": result.notes,
        "runs": [
            {
                "key": row.key,
                "label": row.label,
                "parameters": row.parameters,
                "status": row.status,
                "run_id": row.run_id,
                "version": row.version,
                "test_accuracy": row.test_accuracy,
                "pruned_step": row.pruned_step,
                "seconds": row.seconds,
                "error": row.error,
                "output_notebook": row.output_notebook,
            }
            for row in result.rows
        ],
    }
