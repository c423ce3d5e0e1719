"""The curves report of a sweep: templates/curves.ipynb run through the runner, as HTML."""

from __future__ import annotations

from pathlib import Path

from transferlab.errors import TransferlabError
from transferlab.registry import Registry


def render_sweep_report(
    registry: Registry,
    sweep_id: str,
    *,
    metric: str = "accuracy",
    split: str = "test",
    output_dir: str | Path | None = None,
    pdf: bool = False,
) -> Path:
    """Run the curves template on a sweep's runs (a recorded 'curves' run) and return the path
    of its HTML report (and print it to PDF beside it with `pdf`). Raises TransferlabError,
    with the run's error line, if it fails."""
    from transferlab.runner import run_template

    outcome = run_template(
        "curves",
        {"sweep": sweep_id, "metric": metric, "split": split},
        registry=registry,
        output_dir=output_dir,
        progress_bar=False,
    )
    if not outcome.succeeded or outcome.report is None:
        raise TransferlabError(
            f"The curves report of sweep {sweep_id} failed: {outcome.error}",
            f"Open its output notebook {outcome.output_notebook} to see where.",
        )
    if pdf:
        from transferlab.report import count_plotly_figures, print_pdf

        figures = count_plotly_figures(outcome.report.read_text(encoding="utf-8"))
        print_pdf(outcome.report, outcome.report.with_suffix(".pdf"), expected_figures=figures)
    return outcome.report
