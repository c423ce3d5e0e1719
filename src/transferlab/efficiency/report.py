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
) -> Path:
    """Run the curves template on a sweep's runs (a recorded 'curves' run) and return the path
    of its HTML report. Raises TransferlabError, with the run's error line, if it fails."""
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
    return outcome.report
