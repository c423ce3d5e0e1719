"""templates/benchmark.ipynb through `transferlab run`: results, report, leaderboard, failures."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from transferlab import Registry

pytestmark = [pytest.mark.training]


@pytest.fixture(scope="module")
def benchmarked(tiny_run, tmp_path_factory):
    """A copy of the tiny fine-tune's registry with one benchmark run of its adapter."""
    from transferlab.cli import main

    _, _, source = tiny_run
    folder = tmp_path_factory.mktemp("benchmark")
    registry = folder / "registry.duckdb"
    shutil.copy(source, registry)
    out = folder / "out.json"
    with open(out, "w") as handle, contextlib.redirect_stdout(handle):
        code = main(
            [
                "run",
                "benchmark",
                "-p",
                "versions",
                "tiny-intents:1",
                "-p",
                "bootstrap",
                "200",
                "--registry",
                str(registry),
                "--output-dir",
                str(folder / "runs"),
                "--json",
            ]
        )
    return code, json.loads(out.read_text()), registry


def test_benchmark_run_records_results_and_renders_a_report(benchmarked):
    code, result, registry = benchmarked
    assert code == 0, result["error"]
    reg = Registry(registry)
    run = reg.get_run(result["run_id"])
    assert run["kind"] == "benchmark" and run["status"] == "succeeded"
    rows = reg.results(run_id=result["run_id"])
    metrics = {(r["version_id"], r["suite"], r["task"], r["metric"]) for r in rows}
    for metric in ("accuracy", "macro_f1", "mcc", "ece", "latency_ms_p50", "throughput_per_s"):
        assert ("tiny-intents:1", "support_intents", "intents", metric) in metrics
    page = Path(result["report"]).read_text(encoding="utf-8")
    assert "Benchmark report" in page and "import pandas" not in page
    assert page.count("plotly-graph-div") >= 3
    assert "95% CI" in page
    # the suite's length slices are computed, stored and shown in the report
    assert any(r["metric"] == "accuracy[text_length=0-70]" for r in rows)
    assert "Slices" in page and "text_length=0-70" in page


def test_leaderboard_lists_the_benchmarked_version(benchmarked, run_cli):
    _, _, registry = benchmarked
    code, out, _ = run_cli(
        "leaderboard", "--suite", "support_intents", "--registry", registry, "--json"
    )
    assert code == 0
    assert "tiny-intents:1" in out


def test_unknown_version_is_a_failed_benchmark_run(benchmarked, run_cli, tmp_path):
    _, _, registry = benchmarked
    code, out, _ = run_cli(
        "run",
        "benchmark",
        "-p",
        "versions",
        "tiny-intents:9",
        "--registry",
        registry,
        "--output-dir",
        tmp_path,
        "--json",
    )
    result = json.loads(out)
    assert code == 1 and result["status"] == "failed"
    assert "tiny-intents:9 does not name a version" in result["error"]
    assert Registry(registry).get_run(result["run_id"])["status"] == "failed"
    assert Registry(registry).results(run_id=result["run_id"]) == []


def test_a_suite_with_a_missing_column_fails_before_evaluating(benchmarked, run_cli, tmp_path):
    _, _, registry = benchmarked
    data = tmp_path / "tickets.csv"
    data.write_text("message,label\nhello,billing\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: broken\ntasks:\n  - name: t\n    data: tickets.csv\n    metrics: [accuracy]\n"
    )
    code, out, _ = run_cli(
        "run",
        "benchmark",
        "-p",
        "versions",
        "tiny-intents:1",
        "-p",
        "suite",
        suite,
        "--registry",
        registry,
        "--output-dir",
        tmp_path,
        "--json",
    )
    result = json.loads(out)
    assert code == 1 and "text" in result["error"] and "message" in result["error"]
    assert Registry(registry).results(run_id=result["run_id"]) == []


def test_the_benchmark_compares_the_version_with_its_bases_probe_and_tfidf(benchmarked, tiny_run):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import make_pipeline

    from transferlab.data import load_labelled_data, load_splits, sample_data_path

    code, result, registry = benchmarked
    assert code == 0, result["error"]
    reg = Registry(registry)
    summary = reg.get_run(result["run_id"])["metrics"]
    block = summary["best_finetuned"]
    trained = reg.get_run(tiny_run[1]["run_id"])["parameters"]["data"]["splits"]["train"]
    assert block["version"] == "tiny-intents:1" and block["re_derived"]
    assert block["n_train"] == trained["examples"]
    for relation in ("base_probe", "tfidf"):
        compared = block[relation]
        assert compared["ci_low"] <= compared["difference"] <= compared["ci_high"]
        assert compared["difference"] == pytest.approx(block["value"] - compared["value"])
        assert compared["train_seconds"] > 0
    # the TF-IDF reference is an ordinary scikit-learn pipeline on the run's training rows
    # (the finetune template's sample data: the test file given, 10 % held out for validation)
    train = load_splits(
        sample_data_path("train"), test=sample_data_path("test"), validation_fraction=0.1
    ).train
    assert len(train) == trained["examples"]
    test = load_labelled_data(sample_data_path("test"))
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(C=block["tfidf"]["C"], max_iter=3000),
    ).fit(train.texts, [train.label_names[i] for i in train.labels])
    expected = accuracy_score(
        [test.label_names[i] for i in test.labels], pipeline.predict(test.texts)
    )
    assert block["tfidf"]["value"] == pytest.approx(expected)
    first = summary["text"].split(". ", 1)[0]
    assert first.startswith("tiny-intents:1, the best fine-tuned version, scores accuracy")
    for relation, named in (("base_probe", "standard probe of its base"), ("tfidf", "TF-IDF")):
        points = f"{block[relation]['difference'] * 100:+.1f} points (95% CI"
        assert points in first and named in first
    assert f"answers in {block['latency_ms_p50']:.1f} ms (p50)" in first
    assert f"took {block['train_seconds']:.1f} s to train, against" in first
    page = Path(result["report"]).read_text(encoding="utf-8")
    assert "Trained on the same examples" in page
    assert "Base's standard probe" in page and "TF-IDF + LR" in page  # roles, read by people
    assert trained["fingerprint"][:8] in page
    # the first screen answers before the evidence: sentences, comparison table, the box
    first_screen = page.index("transferlab-first-screen")
    assert first_screen < page.index("Trained on the same examples")
    assert "Established?" in page and "How this was measured" in page
