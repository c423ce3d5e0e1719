"""The HTML report of a run, opened in a real headless Chromium."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from transferlab.report import chromium_flags, find_chromium, rendered_dom, screenshot


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    from transferlab.cli import main

    _, result, registry = tiny_run
    html = tmp_path_factory.mktemp("report") / "finetune-report.html"
    assert (
        main(["report", result["run_id"], "--registry", str(registry), "--output", str(html)]) == 0
    )
    return html


@pytest.mark.training
def test_report_is_self_contained_and_hides_the_code(report):
    page = report.read_text(encoding="utf-8")
    assert page.count("plotly-graph-div") >= 3
    assert "cdn.plot.ly/plotly" not in page.split("<body")[0]  # plotly.js embedded, not fetched
    assert "from transferlab" not in page  # code cells are hidden
    assert "Fine-tune a registered model" in page


@pytest.mark.browser
@pytest.mark.training
@pytest.mark.skipif(
    find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)"
)
def test_report_figures_render_in_headless_chromium(report):
    dom = rendered_dom(report)
    assert dom.count('class="main-svg"') >= 3, "plotly did not draw the figures"
    assert "Confusion matrix" in dom
    png = screenshot(report, report.with_suffix(".png"))
    assert png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.training
def test_report_of_an_unknown_run_explains(tiny_run, run_cli):
    _, _, registry = tiny_run
    code, _, err = run_cli("report", "finetune-nope", "--registry", registry)
    assert code == 2 and "No run 'finetune-nope'" in err


@pytest.mark.training
def test_report_json_names_the_file(tiny_run, run_cli, tmp_path):
    _, result, registry = tiny_run
    code, out, _ = run_cli(
        "report",
        result["run_id"],
        "--registry",
        registry,
        "--output",
        tmp_path / "r.html",
        "--json",
    )
    payload = json.loads(out)
    assert code == 0 and Path(payload["report"]).is_file() and payload["figures"] >= 3


def test_chromium_keeps_its_sandbox_unless_it_runs_as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--no-sandbox" not in chromium_flags() and "--headless" in chromium_flags()
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # Chromium refuses root with its sandbox
    assert "--no-sandbox" in chromium_flags()
