"""Headless Chromium: a report's DOM after its scripts ran, a screenshot, and its PDF."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from transferlab.errors import TransferlabError

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
# Virtual time Chromium lets the page's scripts run before it dumps, shoots or prints: plotly
# draws a report's figures in well under a second of it.
VIRTUAL_TIME_MS = 15000
# Printed at this window width, plotly lays figures out no wider than an A4 page's text (the
# figures are drawn once, at load, for the window they find).
PRINT_WINDOW = "640,1000"
CHROMIUM_MISSING = TransferlabError(
    "No Chromium found to open the report (looked for chromium, chromium-browser, google-chrome).",
    "Install it (Debian: apt-get install chromium), or put one of those names on PATH.",
)


def chromium_flags() -> tuple[str, ...]:
    """Chromium's sandbox stays on; it refuses to start as root with it, so only root drops it."""
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return (*CHROMIUM_FLAGS, "--no-sandbox") if as_root else CHROMIUM_FLAGS


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(html: Path, *extra: str, timeout_s: float = 120) -> str:
    """Open `html` headless with `extra` flags; its stdout (the DOM with --dump-dom)."""
    browser = find_chromium()
    if browser is None:
        raise CHROMIUM_MISSING
    with tempfile.TemporaryDirectory(prefix="transferlab-chromium-") as profile:
        completed = subprocess.run(
            [
                browser,
                *chromium_flags(),
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                *extra,
                Path(html).resolve().as_uri(),
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
    return run_chromium(Path(html), "--dump-dom")


def screenshot(html: str | Path, png: str | Path, width: int = 1280, height: int = 3000) -> Path:
    png = Path(png)
    run_chromium(Path(html), f"--screenshot={png.resolve()}", f"--window-size={width},{height}")
    return png


def drawn_figures(dom: str) -> int:
    """How many plotly figures a rendered DOM holds drawn (one plot container each)."""
    return dom.count('class="plot-container plotly"')


def print_pdf(html: str | Path, pdf: str | Path, expected_figures: int = 0) -> Path:
    """Print `html` to `pdf` (no header or footer) once its scripts ran; the same Chromium run
    dumps the DOM, so a figure plotly had not drawn when the page was printed is an error,
    not a blank box in the PDF."""
    html, pdf = Path(html), Path(pdf)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    partial = pdf.with_name(f".{pdf.name}.partial")
    try:
        dom = run_chromium(
            html,
            f"--print-to-pdf={partial.resolve()}",
            "--no-pdf-header-footer",
            f"--window-size={PRINT_WINDOW}",
            "--dump-dom",
        )
        drawn = drawn_figures(dom)
        if drawn < expected_figures or not partial.is_file():
            raise TransferlabError(
                f"Chromium printed {html} before plotly drew its figures ({drawn} of "
                f"{expected_figures} drawn); the PDF was not written.",
                "Open the HTML report in a browser to check its figures, then retry; a slow "
                "machine may need more time (transferlab.reporting.chromium.VIRTUAL_TIME_MS).",
            )
        partial.replace(pdf)
    finally:
        partial.unlink(missing_ok=True)
    return pdf
