"""Executed notebooks rendered to self-contained HTML pages for stakeholders (code hidden),
and printed to PDF by headless Chromium (reporting/chromium.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from transferlab.errors import NotFoundError, TransferlabError
from transferlab.registry import Registry
from transferlab.reporting.chromium import (  # noqa: F401 (the browser's API, re-exported)
    chromium_flags,
    find_chromium,
    print_pdf,
    rendered_dom,
    screenshot,
)

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
_PLOTLY_JS_HEADER = "* plotly.js v"  # the licence comment plotly.min.js opens with
_PLOTLY_CONFIG = "window.PlotlyConfig = {MathJaxConfig: 'local'};"  # as plotly's own pages
# Printed, a report keeps its figures' toolbars out and its tables and figures whole.
PRINT_STYLE = """<style>
@page { size: A4; margin: 12mm; }
@media print {
  .modebar-container { display: none !important; }
  .jp-OutputArea-output { overflow: visible !important; }
  .jp-OutputArea-output table { font-size: 8pt !important; max-width: 100%; }
  .jp-OutputArea-output th, .jp-OutputArea-output td {
    padding: 2px 5px !important; overflow-wrap: break-word;
  }
  .transferlab-first-screen, .transferlab-measured, tr, .js-plotly-plot { break-inside: avoid; }
  h1, h2, h3 { break-after: avoid; }
}
</style>"""


@dataclass
class RunReport:
    """The files of a run's report: the HTML page, its PDF when asked, the figures drawn."""

    run_id: str
    html: Path
    figures: int
    pdf: Path | None = None


def render_html(
    notebook: str | Path, output: str | Path | None = None, title: str | None = None
) -> Path:
    """Write `notebook` as HTML without input cells or prompts; plotly figures stay live.

    The notebook must have been executed with transferlab's renderer
    (transferlab.figures.use_offline_notebook_renderer): its figures' HTML draws them with the
    plotly.js this page carries once, so the page works offline.
    """
    notebook = Path(notebook)
    if not notebook.is_file():
        raise NotFoundError(f"No notebook at {notebook}.", "Check the run's output_notebook.")
    nb = nbformat.read(notebook, as_version=4)
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    body, _ = exporter.from_notebook_node(nb)
    body = body.replace("</head>", f"{PRINT_STYLE}\n{_plotly_script(body)}</head>", 1)
    output = Path(output) if output else notebook.with_suffix(".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(body, encoding="utf-8")
    return output


def _plotly_script(body: str) -> str:
    """plotly.js for a page that draws figures and does not carry it yet (notebooks run
    before transferlab stopped embedding it in each output notebook do)."""
    if "Plotly.newPlot(" not in body or _PLOTLY_JS_HEADER in body:
        return ""
    from plotly.offline import get_plotlyjs

    return f"<script>{_PLOTLY_CONFIG}</script>\n<script>{get_plotlyjs()}</script>\n"


def render_run_report(
    registry: Registry, run_id: str, output: str | Path | None = None, *, pdf: bool | None = None
) -> Path:
    """The HTML report of a recorded run, next to its output notebook unless told otherwise;
    its PDF beside it when `pdf` is true (None: when the run's suite asked, `pdf: true`)."""
    return write_run_report(registry, run_id, output, pdf=pdf).html


def write_run_report(
    registry: Registry, run_id: str, output: str | Path | None = None, *, pdf: bool | None = None
) -> RunReport:
    run = registry.get_run(run_id)
    notebook = run.get("output_notebook")
    if not notebook or not Path(notebook).is_file():
        raise TransferlabError(
            f"Run {run_id} has no output notebook on this machine ({notebook}).",
            "Reports are rendered from the executed notebook that `transferlab run` keeps.",
        )
    if pdf is None:
        pdf = run_asks_for_pdf(run)
    elif pdf and find_chromium() is None:  # asked for: refuse before writing anything
        raise _no_chromium_for_pdf()
    title = f"{run['kind']} run {run_id} ({run['status']})"
    html = render_html(notebook, output, title=title)
    figures = count_plotly_figures(html.read_text(encoding="utf-8"))
    report = RunReport(run_id, html, figures)
    if pdf:
        if find_chromium() is None:
            raise _no_chromium_for_pdf()
        report.pdf = print_pdf(html, html.with_suffix(".pdf"), expected_figures=figures)
    return report


def run_asks_for_pdf(run: dict) -> bool:
    """A benchmark run whose suite file says `pdf: true`."""
    if run.get("kind") != "benchmark":
        return False
    suite = (run.get("parameters") or {}).get("suite") or (run.get("requested") or {}).get("suite")
    if not suite:
        return False
    from transferlab.evaluation.suites import load_suite

    try:
        return bool(load_suite(suite).pdf)
    except TransferlabError:  # the suite file moved since: its HTML report is still wanted
        return False


def _no_chromium_for_pdf() -> TransferlabError:
    return TransferlabError(
        "A PDF report needs Chromium, and none was found (chromium, chromium-browser, "
        "google-chrome); nothing was written.",
        "Install it (Debian: apt-get install chromium), or leave out --pdf for the HTML report.",
    )


def count_plotly_figures(html: str) -> int:
    """How many plotly figures a rendered page will draw (a check for tests and the CLI)."""
    return html.count("Plotly.newPlot(") or html.count(PLOTLY_MIMETYPE)
