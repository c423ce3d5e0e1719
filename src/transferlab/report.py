"""Executed notebooks rendered to self-contained HTML pages for stakeholders (code hidden)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from transferlab.errors import NotFoundError, TransferlabError
from transferlab.registry import Registry

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"


def render_html(
    notebook: str | Path, output: str | Path | None = None, title: str | None = None
) -> Path:
    """Write `notebook` as HTML without input cells or prompts; plotly figures stay live.

    The notebook must have been executed with the plotly mimetype renderer
    (transferlab.figures.use_offline_notebook_renderer), which embeds plotly.js, so the page
    works offline.
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
    output = Path(output) if output else notebook.with_suffix(".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(body, encoding="utf-8")
    return output


def render_run_report(registry: Registry, run_id: str, output: str | Path | None = None) -> Path:
    """The HTML report of a recorded run, next to its output notebook unless told otherwise."""
    run = registry.get_run(run_id)
    notebook = run.get("output_notebook")
    if not notebook or not Path(notebook).is_file():
        raise TransferlabError(
            f"Run {run_id} has no output notebook on this machine ({notebook}).",
            "Reports are rendered from the executed notebook that `transferlab run` keeps.",
        )
    title = f"{run['kind']} run {run_id} ({run['status']})"
    return render_html(notebook, output, title=title)


def count_plotly_figures(html: str) -> int:
    """How many plotly figures a rendered page will draw (a check for tests and the CLI)."""
    return html.count("Plotly.newPlot(") or html.count(PLOTLY_MIMETYPE)


CHROMIUM_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium_flags() -> tuple[str, ...]:
    """Chromium's sandbox stays on; it refuses to start as root with it, so only root drops it."""
    import os

    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return (*CHROMIUM_FLAGS, "--no-sandbox") if as_root else CHROMIUM_FLAGS


def find_chromium() -> str | None:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(html: Path, *extra: str, timeout_s: float = 120) -> str:
    import subprocess
    import tempfile

    browser = find_chromium()
    if browser is None:
        raise TransferlabError(
            "No Chromium found to open the report.", "apt-get install chromium (Debian)."
        )
    with tempfile.TemporaryDirectory(prefix="transferlab-chromium-") as profile:
        completed = subprocess.run(
            [
                browser,
                *chromium_flags(),
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                *extra,
                html.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if completed.returncode != 0:
        raise TransferlabError(
            f"Chromium failed on {html} (exit {completed.returncode}): {completed.stderr[-500:]}",
            "Check that Chromium runs headless on this machine.",
        )
    return completed.stdout


def rendered_dom(html: str | Path) -> str:
    """The page's DOM after its scripts ran in headless Chromium."""
    return _chromium(Path(html), "--dump-dom")


def screenshot(html: str | Path, png: str | Path, width: int = 1280, height: int = 3000) -> Path:
    png = Path(png)
    _chromium(Path(html), f"--screenshot={png.resolve()}", f"--window-size={width},{height}")
    return png
