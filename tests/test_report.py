"""The HTML report of a run, opened in a real headless Chromium, and its PDF."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from transferlab.evaluation.suites import SuiteError, parse_suite
from transferlab.registry import Registry
from transferlab.report import chromium_flags, find_chromium, rendered_dom, screenshot
from transferlab.reporting.answer import _verdict_sentence
from transferlab.reporting.tables import metric_column
from transferlab.reporting.training import wilson_interval

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)"
)
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
    reason="poppler-utils is not installed (apt-get install poppler-utils)",
)


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    """The tiny fine-tune's report: HTML, and its PDF where Chromium can print it."""
    from transferlab.cli import main

    _, result, registry = tiny_run
    html = tmp_path_factory.mktemp("report") / "finetune-report.html"
    args = ["report", result["run_id"], "--registry", str(registry), "--output", str(html)]
    assert main(args + (["--pdf"] if find_chromium() else [])) == 0
    return html


@pytest.mark.training
def test_report_is_self_contained_and_hides_the_code(report):
    page = report.read_text(encoding="utf-8")
    assert page.count("plotly-graph-div") >= 3
    assert "cdn.plot.ly/plotly" not in page.split("<body")[0]  # plotly.js embedded, not fetched
    assert page.count("* plotly.js v") == 1  # once for the page, not once per figure
    assert "from transferlab" not in page  # code cells are hidden
    assert "Fine-tune a registered model" in page
    # the first screen: the answer, its table and the box; tables with units, no index column
    assert page.index("transferlab-first-screen") < page.index("plotly-graph-div")
    assert "How this was measured" in page and "Accuracy (%)" in page
    assert 'class="blank level0"' not in page and "row_heading" not in page


@pytest.mark.browser
@pytest.mark.training
@needs_chromium
@needs_poppler
def test_report_first_screen_and_pdf_in_headless_chromium(report):
    dom = rendered_dom(report)
    assert dom.count('class="main-svg"') >= 3, "plotly did not draw the figures"
    assert "Confusion matrix" in dom
    shot = screenshot(report, report.with_name("first-screen.png"), height=900)  # an artefact
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    pdf = report.with_suffix(".pdf")
    first_page = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-layout", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "The answer" in first_page and "95 % interval" in first_page
    assert "How this was measured" in first_page
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", str(pdf), str(report.with_name("page"))], check=True
    )
    pages = sorted(report.parent.glob("page-*.png"))
    assert pages and pages[0].stat().st_size > 5_000  # page 1 kept as an artefact
    shares = [coloured_share(page) for page in pages]
    # a page with a drawn bar chart or heat map is a few % colour; text-only pages ~0
    assert max(shares) > 0.01, f"no page of {pdf} shows a drawn figure: {shares}"
    print(f"artefacts: {shot}, {pages[0]}")


def coloured_share(png: Path) -> float:
    """The share of a page's pixels that are colours, not white, grey or black: drawn marks
    (traces, bars, a heat map's cells). Text, axes, grids and an empty plot area are grey or
    white whatever plotly template the figure uses, so a page whose figures were not drawn
    stays near 0."""
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return float(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).mean())


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
    assert payload["pdf"] is None


@pytest.mark.training
def test_a_pdf_without_chromium_is_refused_and_writes_nothing(
    tiny_run, run_cli, tmp_path, monkeypatch
):
    _, result, registry = tiny_run
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    html = tmp_path / "r.html"
    code, _, err = run_cli(
        "report", result["run_id"], "--registry", registry, "--output", html, "--pdf"
    )
    assert code == 2 and "needs Chromium" in err and "apt-get install chromium" in err
    assert not html.exists() and not html.with_suffix(".pdf").exists()


def test_chromium_keeps_its_sandbox_unless_it_runs_as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--no-sandbox" not in chromium_flags() and "--headless" in chromium_flags()
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # Chromium refuses root with its sandbox
    assert "--no-sandbox" in chromium_flags()


def comparison(difference, low, high, verdict, resamples=1000):
    return {
        "relation": "base_probe",
        "reference": "probe on base:1",
        "value": 0.9,
        "reference_value": 0.9 - difference,
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict,
        "resamples": resamples,
    }


def test_the_answer_says_a_difference_whose_interval_spans_zero_is_not_established():
    accuracy = metric_column("accuracy")
    spans = _verdict_sentence(
        "tuned:1", comparison(0.019, -0.01, 0.048, "no clear difference"), accuracy, 1, "intents"
    )
    assert "not shown to be better" in spans and "not established" in spans
    assert "+1.9 points" in spans and "−1.0 to +4.8" in spans
    better = _verdict_sentence(
        "tuned:1", comparison(0.133, 0.067, 0.2, "better"), accuracy, 1, "intents"
    )
    assert "is better than its base's standard probe" in better and "gain is established" in better
    worse = _verdict_sentence(
        "tuned:1", comparison(-0.1, -0.15, -0.05, "worse"), accuracy, 1, "intents"
    )
    assert "is worse than" in worse and "loss is established" in worse
    untested = _verdict_sentence(
        "tuned:1", comparison(0.1, np.nan, np.nan, "no clear difference", 0), accuracy, 1, "intents"
    )
    assert "not established" in untested


def test_the_test_accuracy_interval_is_wilsons():
    low, high = wilson_interval(104, 105)  # 99.0 % of 105
    assert 0.94 < low < 0.95 and 0.998 < high < 1.0


def test_a_suite_may_ask_for_a_pdf_and_must_say_it_with_a_boolean():
    task = {
        "name": "t",
        "data": "package:sample_data/support_intents_test.csv",
        "metrics": ["accuracy"],
    }
    assert parse_suite({"name": "s", "tasks": [task], "pdf": True}).pdf is True
    assert parse_suite({"name": "s", "tasks": [task]}).pdf is False
    with pytest.raises(SuiteError, match="pdf"):
        parse_suite({"name": "s", "tasks": [task], "pdf": "yes"})


def test_a_sweep_asking_for_a_pdf_is_refused_before_any_run_without_chromium(
    tmp_path, run_cli, monkeypatch
):
    from transferlab.sweeps import load_sweep

    sweep = tmp_path / "curve.yaml"
    sweep.write_text("pdf: true\ngrid: {n_per_class: [2, 4]}\n", encoding="utf-8")
    assert load_sweep(sweep).pdf is True
    registry = tmp_path / "registry.duckdb"
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    code, _, err = run_cli("sweep", sweep, "--registry", registry)
    assert code == 2 and "asks for a PDF report (pdf: true)" in err
    assert not registry.exists() or Registry(registry).runs() == []
    sweep.write_text("pdf: sure\ngrid: {n_per_class: [2, 4]}\n", encoding="utf-8")
    code, _, err = run_cli("sweep", sweep, "--registry", registry, "--dry-run")
    assert code == 2 and "pdf" in err and "true or false" in err


def test_styled_tables_have_one_header_row_units_and_no_index():
    import pandas as pd

    from transferlab.reporting.tables import styled

    frame = pd.DataFrame(
        {"version": ["a:1", "b:1"], "accuracy": [0.91234, 0.8], "latency_ms_p50": [12.345, 9.0]}
    ).set_index("version")
    page = styled(frame).to_html()
    assert "Accuracy (%)" in page and "Latency p50 (ms) ↓" in page and "lower is better" in page
    assert ">91.2<" in page and ">12.3<" in page and "0.91234" not in page
    assert "row_heading" not in page and page.count("<tr>") == 3  # one header row, two rows
    stacked = pd.DataFrame(
        [[0.9, 0.02]], columns=pd.MultiIndex.from_tuples([("score", "acc"), ("score", "ece")])
    )
    page = styled(stacked).to_html()
    assert page.count("<tr>") == 2 and "Score acc" in page  # levels joined into one header row


def test_a_benchmark_run_of_a_suite_with_pdf_true_asks_for_its_pdf(tmp_path):
    from transferlab.report import run_asks_for_pdf

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: s\npdf: true\ntasks:\n  - name: t\n"
        "    data: package:sample_data/support_intents_test.csv\n    metrics: [accuracy]\n",
        encoding="utf-8",
    )
    assert run_asks_for_pdf({"kind": "benchmark", "parameters": {"suite": str(suite)}})
    assert not run_asks_for_pdf({"kind": "benchmark", "parameters": {"suite": "support_intents"}})
    assert not run_asks_for_pdf({"kind": "finetune", "parameters": {"suite": str(suite)}})
    suite.unlink()  # moved since the run: the HTML report is still written, without a PDF
    assert not run_asks_for_pdf({"kind": "benchmark", "parameters": {"suite": str(suite)}})
