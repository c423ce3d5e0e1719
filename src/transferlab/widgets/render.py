"""HTML for the picker's result table, detail panel and messages (every value escaped)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from transferlab.cli.output import human_size
from transferlab.registry.records import MODEL_DISPLAY_FIELDS, PROFILE_DISPLAY_FIELDS
from transferlab.widgets.state import ModelDetails, SearchOutcome

RESULT_COLUMNS = ("name", "task", "params", "license", "source", "runnable", "score")
_TABLE_STYLE = "border-collapse:collapse;font-size:12px"
_CELL_STYLE = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left"


def _number(value: float) -> str:
    """Three decimals for scores; learning rates such as 5e-05 keep their significant digits."""
    if value != 0 and not 1e-3 <= abs(value) < 1e6:
        return f"{value:.3g}"
    return f"{value:.3f}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def table(
    rows: Sequence[dict],
    columns: Sequence[str],
    *,
    css_class: str = "",
    highlight: str | None = None,
    key: str = "name",
) -> str:
    head = "".join(f'<th style="{_CELL_STYLE}">{html.escape(c)}</th>' for c in columns)
    body = []
    for row in rows:
        selected = highlight is not None and row.get(key) == highlight
        style = ' style="background:#e3f2fd;font-weight:bold"' if selected else ""
        cells = "".join(
            f'<td style="{_CELL_STYLE}">{html.escape(_text(row.get(c)))}</td>' for c in columns
        )
        body.append(f'<tr data-name="{html.escape(str(row.get(key)))}"{style}>{cells}</tr>')
    return (
        f'<table class="{css_class}" style="{_TABLE_STYLE}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def message(text: str, *, is_error: bool = False) -> str:
    colour = "#b71c1c" if is_error else "#6d4c41"
    lines = "<br>".join(html.escape(line) for line in text.splitlines())
    return f'<div class="transferlab-picker-message" style="color:{colour}">{lines}</div>'


def results_html(outcome: SearchOutcome, selected: str | None = None) -> str:
    if not outcome.rows:
        return message(outcome.message or "No model matches.", is_error=outcome.is_error)
    rows = [{**row, "params": human_size(row.get("parameters"))} for row in outcome.rows]
    columns = (
        RESULT_COLUMNS if any(r.get("score") is not None for r in rows) else RESULT_COLUMNS[:-1]
    )
    count = f"<div>{len(rows)} model(s)</div>"
    return count + table(rows, columns, css_class="transferlab-picker-results", highlight=selected)


def _section(title: str, body: str) -> str:
    return f"<h4 style='margin:8px 0 2px'>{html.escape(title)}</h4>{body}"


def details_html(details: ModelDetails) -> str:
    model = details.model
    meta = []
    for key in MODEL_DISPLAY_FIELDS:
        value = model.get(key)
        if key == "parameters" and value:
            value = f"{human_size(value)} ({value})"
        elif key == "size_bytes":
            value = human_size(value, "B") if value else None
        meta.append({"field": key, "value": value})
    parts = [
        f"<h3 style='margin:4px 0'>{html.escape(model['name'])}</h3>",
        f"<p>{html.escape(model.get('description') or '')}</p>",
        table(meta, ("field", "value"), key="field"),
    ]
    if model.get("finetune"):
        settings = [{"setting": k, "value": v} for k, v in model["finetune"].items()]
        parts.append(
            _section("Recommended fine-tuning", table(settings, ("setting", "value"), key="x"))
        )
    versions = [
        {
            "version": v["version_id"],
            "kind": v["kind"],
            "weights": v["uri"] if v["local"] else (v["uri"] or "") + " (not on this machine)",
            "lineage": " → ".join(v["lineage"]),
            "run": v["run_id"],
        }
        for v in details.versions
    ]
    parts.append(
        _section(
            "Versions and lineage",
            table(versions, ("version", "kind", "lineage", "weights", "run"), key="version")
            if versions
            else "<p>No version registered.</p>",
        )
    )
    aliases = [{"alias": a["alias"], "version": a["version_id"]} for a in details.aliases]
    parts.append(
        _section(
            "Aliases",
            table(aliases, ("alias", "version"), key="alias") if aliases else "<p>none</p>",
        )
    )
    parts.append(
        _section(
            "Profile",
            table(details.profiles, PROFILE_DISPLAY_FIELDS, key="version_id")
            if details.profiles
            else "<p>not profiled (run <code>transferlab profile</code>)</p>",
        )
    )
    result_columns = ("version_id", "suite", "dataset", "split", "metric", "value", "n")
    parts.append(
        _section(
            "Benchmark results",
            table(details.results, result_columns, key="version_id")
            if details.results
            else "<p>no results yet</p>",
        )
    )
    return f'<div class="transferlab-picker-details">{"".join(parts)}</div>'


def parameters_html(parameters: dict[str, Any], warning: str | None = None) -> str:
    rows = [{"parameter": k, "value": v} for k, v in parameters.items()]
    note = message(warning) if warning else ""
    return (
        "<div class='transferlab-picker-parameters'><b>Fine-tuning parameters</b>"
        + table(rows, ("parameter", "value"), key="parameter")
        + note
        + "</div>"
    )
