"""run_suite end to end on tiny models: rows in the registry, comparisons with bootstrap
intervals, costs, and bad input that fails the run before any model loads."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from transferlab import Registry
from transferlab.catalog.importers import register_local_folder
from transferlab.catalog.local import inspect_local_model
from transferlab.data import sample_data_path
from transferlab.errors import NotFoundError, TransferlabError
from transferlab.evaluation import (
    BASELINE,
    SuiteError,
    majority_baseline,
    paired_bootstrap,
    predict_probabilities,
    run_suite,
)
from transferlab.finetune import FinetuneConfig, finetune
from transferlab.metrics import metric_function
from transferlab.predict import load_version_model, merge
from transferlab.registry import ModelRecord

from .conftest import build_tiny_bert

INTENTS = ["account_access", "billing", "delivery", "refund", "technical_issue"]
SCALARS = ["accuracy", "macro_f1", "micro_f1", "mcc", "ece"]
SLICES = ["text_length=0-70", "text_length=70-90", "text_length=90-1000"]
COSTS = ["latency_ms_p50", "latency_ms_p95", "throughput_per_s", "peak_memory_mb"]
SAMPLE = "package:sample_data/support_intents_test.csv"


def write_suite(folder: Path, body: str, name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


SUITE = f"""
name: intents-suite
description: the sample data, every metric, length slices, latency
tasks:
  - name: intents
    data: {SAMPLE}
    label_names: [{", ".join(INTENTS)}]
    metrics: [{", ".join(SCALARS)}, per_class]
    slices:
      - {{by: text_length, bins: [0, 70, 90, 1000]}}
    latency: true
"""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine two threads that
    wait for each other slow every call of the latency measurement tenfold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_bert_dir, minilm_dir):
    """A bare base, a LoRA adapter on it, the adapter merged, and an unrelated 'full' model."""
    import torch

    folder = tmp_path_factory.mktemp("evaluation")
    registry = Registry(folder / "registry.duckdb")
    base = register_local_folder(
        registry, inspect_local_model(tiny_bert_dir, name="tiny-bert"), tiny_bert_dir
    )
    adapter = finetune(
        FinetuneConfig(
            base=base.ref,
            train=sample_data_path("train"),
            test=sample_data_path("test"),
            n_per_class=4,
            validation_fraction=0,
            max_length=32,
            batch_size=8,
            max_steps=6,
            learning_rate=0.05,
            name="tiny-intents",
            output_dir=folder / "adapter",
        ),
        registry,
        progress=False,
    ).version
    merged = merge(registry, adapter.ref)
    torch.manual_seed(0)
    full_dir = build_tiny_bert(folder / "full", minilm_dir, num_labels=len(INTENTS))
    registry.upsert_models(
        [ModelRecord("tiny-full", "local", str(full_dir), "text-classification")]
    )
    full = registry.add_version("tiny-full", "full", str(full_dir), label_names=INTENTS)
    suite = write_suite(folder, SUITE)
    return SimpleNamespace(
        registry=registry,
        folder=folder,
        base=base,
        adapter=adapter,
        merged=merged,
        full=full,
        suite=suite,
    )


@pytest.fixture(scope="module")
def first_run(workspace):
    w = workspace
    return run_suite(
        w.registry,
        w.suite,
        [w.base.ref, w.adapter.ref, w.merged.ref, w.full.ref],
        seed=7,
        bootstrap=300,
        latency_samples=3,
    )


def evaluated(w) -> list[str]:
    return [w.adapter.version_id, w.merged.version_id, w.full.version_id]


@pytest.mark.training
def test_one_result_row_per_version_task_split_metric(workspace, first_run):
    w, report = workspace, first_run
    rows = w.registry.results(run_id=report.run_id)
    assert len(rows) == report.rows_written
    expected_metrics = (
        SCALARS
        + [f"{m}[{s}]" for m in SCALARS for s in SLICES]
        + [f"{m}[label={label}]" for m in ("precision", "recall", "f1") for label in INTENTS]
        + COSTS
    )
    found = sorted((r["version_id"], r["metric"]) for r in rows)
    assert found == sorted((v, m) for v in evaluated(w) for m in expected_metrics)
    for row in rows:
        assert (row["suite"], row["task"], row["split"], row["seed"]) == (
            "intents-suite",
            "intents",
            "test",
            7,
        )
        assert row["dataset"] == "support_intents"
    n_train = {r["version_id"]: r["n_train"] for r in rows}
    assert n_train[w.adapter.version_id] == 20 and n_train[w.merged.version_id] == 20
    assert n_train[w.full.version_id] is None


@pytest.mark.training
def test_the_run_is_recorded_with_its_summary(workspace, first_run):
    run = workspace.registry.get_run(first_run.run_id)
    assert run["kind"] == "benchmark" and run["status"] == "succeeded"
    assert run["parameters"]["seed"] == 7 and run["data_fingerprint"]
    assert run["metrics"]["winner"] == first_run.summary["winner"]
    assert first_run.summary["winner"] in evaluated(workspace)
    assert first_run.summary["metric"] == "accuracy" and first_run.summary["text"]
    board = workspace.registry.leaderboard("intents-suite")
    assert {row["version_id"] for row in board} == set(evaluated(workspace))


@pytest.mark.training
def test_a_bare_base_is_not_evaluable_and_says_why(workspace, first_run):
    table = first_run.not_evaluable
    assert table["version"].tolist() == [workspace.base.version_id]
    assert "classification head" in table["reason"].iloc[0]
    assert first_run.summary["not_evaluable"] == [workspace.base.version_id]
    assert any(
        workspace.adapter.version_id in note and "its parent" in note for note in first_run.notes
    )


@pytest.mark.training
def test_merged_matches_its_adapter_parent_within_noise(workspace, first_run):
    rows = first_run.comparisons[
        (first_run.comparisons["version"] == workspace.merged.version_id)
        & (first_run.comparisons["relation"] == "parent")
    ]
    assert set(rows["reference"]) == {workspace.adapter.version_id}
    assert sorted(rows["metric"]) == sorted(SCALARS)
    assert (rows["difference"].abs() < 1e-6).all()
    assert (rows["verdict"] == "no clear difference").all()


@pytest.mark.training
def test_every_version_is_compared_with_the_majority_baseline(workspace, first_run):
    table = first_run.comparisons
    baseline = table[table["relation"] == "majority_baseline"]
    assert set(baseline["version"]) == set(evaluated(workspace))
    assert (baseline["reference"] == BASELINE).all()
    accuracy = baseline[baseline["metric"] == "accuracy"]
    assert np.allclose(accuracy["reference_value"], 21 / 105)  # 21 examples per intent


@pytest.mark.training
def test_bootstrap_intervals_contain_the_point_difference(first_run):
    table = first_run.comparisons
    assert (table["resamples"] > 0).all()
    assert (table["ci_low"] <= table["difference"] + 1e-9).all()
    assert (table["difference"] <= table["ci_high"] + 1e-9).all()
    assert (table["ci_low"] < table["ci_high"]).any()  # not every interval is degenerate


@pytest.mark.training
def test_reported_metrics_agree_with_the_scripts_and_sklearn(workspace, first_run):
    from sklearn.metrics import accuracy_score, f1_score

    truth = first_run.references["intents"]
    for version in evaluated(workspace):
        probabilities = first_run.probabilities[(version, "intents")]
        predicted = probabilities.argmax(axis=1)
        table = first_run.metrics_table().loc[version]
        assert table["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
        assert table["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"))
        assert table["ece"] == pytest.approx(metric_function("ece")(probabilities, truth)["ece"])
        matrix = first_run.confusion[(version, "intents")]
        assert list(matrix.index) == INTENTS and matrix.to_numpy().sum() == 105
        assert np.trace(matrix.to_numpy()) == pytest.approx(table["accuracy"] * 105)
    per_class = first_run.per_class
    assert per_class.groupby("version")["support"].sum().tolist() == [105, 105, 105]


@pytest.mark.training
def test_costs_are_measured_for_each_evaluated_version(workspace, first_run):
    latency = first_run.latency.set_index("version")
    assert sorted(latency.index) == sorted(evaluated(workspace))
    assert (latency["latency_ms_p50"] <= latency["latency_ms_p95"]).all()
    assert (latency["throughput_per_s"] > 0).all()
    assert latency.loc[workspace.adapter.version_id, "adapter_size_mb"] > 0
    assert np.isnan(latency.loc[workspace.merged.version_id, "adapter_size_mb"])
    assert (latency["model_size_mb"] > 0).all()


@pytest.mark.training
def test_production_of_the_same_suite_is_compared(workspace, first_run):
    w = workspace
    w.registry.set_alias(w.full.ref, "production", reason="test")
    try:
        run_id = w.registry.start_run("benchmark", parameters={"from": "test"})
        report = run_suite(w.registry, w.suite, [w.adapter.ref], run_id=run_id, bootstrap=200)
    finally:
        w.registry.remove_alias("tiny-full", "production")
    assert report.production == [w.full.version_id]
    rows = report.comparisons[report.comparisons["relation"] == "production"]
    assert set(rows["reference"]) == {w.full.version_id}
    assert set(rows["version"]) == {w.adapter.version_id}
    run = w.registry.get_run(run_id)
    assert run["status"] == "running"  # the caller (the papermill runner) finishes it
    assert run["parameters"]["from"] == "test" and run["metrics"]["production"]


@pytest.mark.training
def test_a_suite_may_list_the_labels_in_another_order(workspace, first_run, tmp_path):
    reordered = list(reversed(INTENTS))
    path = write_suite(
        tmp_path,
        f"""
        name: reordered
        tasks:
          - name: intents
            data: {SAMPLE}
            label_names: [{", ".join(reordered)}]
            metrics: [accuracy, ece, per_class]
        """,
    )
    report = run_suite(workspace.registry, path, [workspace.full.ref], bootstrap=0)
    version = workspace.full.version_id
    assert report.label_names["intents"] == reordered
    before = first_run.metrics_table().loc[version]
    after = report.metrics_table().loc[version]
    assert after["accuracy"] == pytest.approx(before["accuracy"])
    assert after["ece"] == pytest.approx(before["ece"])
    matrix = report.confusion[(version, "intents")]
    assert list(matrix.index) == reordered
    assert (report.comparisons["resamples"] == 0).all()
    assert report.comparisons["ci_low"].isna().all()


@pytest.mark.training
def test_the_report_is_plain_data(first_run):
    import json

    payload = json.loads(json.dumps(first_run.to_dict()))
    assert payload["summary"]["winner"] == first_run.summary["winner"]
    assert len(payload["comparisons"]) == len(first_run.comparisons)
    assert {c["task"] for c in payload["confusion"]} == {"intents"}


# -- bad input: a clear error, a failed run, nothing written, no model loaded -----------------


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("transferlab.predict.load_version_model", refuse)


def failed_run(registry: Registry, run_id: str) -> dict:
    run = registry.get_run(run_id)
    assert run["status"] == "failed" and run["error"]
    assert registry.results(run_id=run_id) == []
    return run


def benchmark_run_ids(registry: Registry) -> set[str]:
    return {r["run_id"] for r in registry.runs(kind="benchmark")}


def the_new_run(registry: Registry, before: set[str]) -> str:
    """The one benchmark run started since `before` (run_suite called without a run_id
    starts its own run and finishes it: transferlab.run_status)."""
    (new,) = benchmark_run_ids(registry) - before
    return new


@pytest.mark.training
def test_label_names_that_differ_from_the_models_fail_naming_both(
    workspace, tmp_path, no_model_loads
):
    (tmp_path / "other.csv").write_text(
        "text,label\nwhere is it,delivery\nmoney back,refund\nhello,greeting\n", encoding="utf-8"
    )
    path = write_suite(
        tmp_path,
        """
        name: other
        tasks:
          - {name: t, data: other.csv, metrics: [accuracy],
             label_names: [delivery, refund, greeting]}
        """,
    )
    before = benchmark_run_ids(workspace.registry)
    with pytest.raises(SuiteError) as caught:
        run_suite(workspace.registry, path, [workspace.adapter.ref])
    run_id = the_new_run(workspace.registry, before)
    message = str(caught.value)
    assert "tasks[0].label_names" in message and str(path) in message
    assert str(INTENTS) in message and "['delivery', 'refund', 'greeting']" in message
    assert "label_names" in failed_run(workspace.registry, run_id)["error"]


@pytest.mark.training
def test_data_labels_unknown_to_the_model_fail(workspace, tmp_path, no_model_loads):
    (tmp_path / "other.csv").write_text("text,label\nhello,greeting\nbye,refund\n")
    path = write_suite(
        tmp_path, "name: other\ntasks:\n  - {name: t, data: other.csv, metrics: [accuracy]}\n"
    )
    before = benchmark_run_ids(workspace.registry)
    with pytest.raises(SuiteError, match=r"\['greeting'\] unknown to the model"):
        run_suite(workspace.registry, path, [workspace.adapter.ref])
    failed_run(workspace.registry, the_new_run(workspace.registry, before))


@pytest.mark.training
def test_a_missing_column_fails_before_any_model_loads(workspace, tmp_path, no_model_loads):
    path = write_suite(
        tmp_path,
        f"name: s\ntasks:\n  - {{name: t, data: {SAMPLE}, text_column: body, metrics: [mcc]}}\n",
    )
    before = benchmark_run_ids(workspace.registry)
    with pytest.raises(SuiteError, match=r"tasks\[0\]\.text_column: .*no column 'body'"):
        run_suite(workspace.registry, path, [workspace.adapter.ref])
    failed_run(workspace.registry, the_new_run(workspace.registry, before))


@pytest.mark.training
def test_an_unknown_metric_fails_the_run(workspace, tmp_path, no_model_loads):
    path = write_suite(
        tmp_path, f"name: s\ntasks:\n  - {{name: t, data: {SAMPLE}, metrics: [f1_macro]}}\n"
    )
    before = {r["run_id"] for r in workspace.registry.runs(kind="benchmark")}
    with pytest.raises(SuiteError, match=r"tasks\[0\]\.metrics\[0\]: unknown metric 'f1_macro'"):
        run_suite(workspace.registry, path, [workspace.adapter.ref])
    (new,) = [r for r in workspace.registry.runs(kind="benchmark") if r["run_id"] not in before]
    assert "f1_macro" in failed_run(workspace.registry, new["run_id"])["error"]


@pytest.mark.training
def test_a_version_that_does_not_exist_fails_the_run(workspace, no_model_loads):
    before = benchmark_run_ids(workspace.registry)
    with pytest.raises(NotFoundError, match="tiny-intents:99"):
        run_suite(workspace.registry, workspace.suite, ["tiny-intents:99"])
    failed_run(workspace.registry, the_new_run(workspace.registry, before))


@pytest.mark.training
def test_only_a_bare_base_has_nothing_to_score(workspace, no_model_loads):
    before = benchmark_run_ids(workspace.registry)
    with pytest.raises(TransferlabError, match="None of the versions can be scored"):
        run_suite(workspace.registry, workspace.suite, [workspace.base.ref])
    failed_run(workspace.registry, the_new_run(workspace.registry, before))


@pytest.mark.training
def test_a_run_passed_in_is_left_to_its_runner_to_finish(workspace, no_model_loads):
    run_id = workspace.registry.start_run("benchmark")  # as runner.run_template starts one
    with pytest.raises(NotFoundError, match="tiny-intents:99"):
        run_suite(workspace.registry, workspace.suite, ["tiny-intents:99"], run_id=run_id)
    run = workspace.registry.get_run(run_id)
    assert run["status"] == "running" and workspace.registry.results(run_id=run_id) == []


# -- the pieces --------------------------------------------------------------------------------


@pytest.mark.training
def test_sorted_batches_give_the_plain_loops_probabilities_in_input_order(workspace):
    from transferlab.data import load_labelled_data
    from transferlab.models.logits import softmax

    texts = load_labelled_data(sample_data_path("test")).texts
    loaded = load_version_model(workspace.registry, workspace.full.ref)
    inference = predict_probabilities(loaded, texts, batch_size=8)
    expected = softmax(loaded.logits(texts, batch_size=8).astype(np.float64))
    np.testing.assert_allclose(inference.probabilities, expected, atol=1e-5)
    assert inference.padded_tokens < inference.real_tokens * 1.5  # little padding once sorted
    assert inference.examples_per_s > 0


def test_paired_bootstrap_separates_a_real_gain_from_noise():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, size=400)
    good = np.where(rng.random(400) < 0.9, truth, (truth + 1) % 3)
    weak = np.where(rng.random(400) < 0.6, truth, (truth + 1) % 3)

    def accuracy(predicted, references):
        return metric_function("accuracy")(predicted, references)["accuracy"]

    gain = paired_bootstrap(accuracy, good, weak, truth, resamples=500, seed=1)
    assert gain.verdict == "better" and gain.ci_low <= gain.value <= gain.ci_high
    assert gain.value == pytest.approx(accuracy(good, truth) - accuracy(weak, truth))
    same = paired_bootstrap(accuracy, good, good, truth, resamples=200)
    assert (same.value, same.ci_low, same.ci_high, same.verdict) == (
        0.0,
        0.0,
        0.0,
        "no clear difference",
    )


def test_the_majority_baseline_predicts_the_most_frequent_label():
    rows = majority_baseline(np.array([2, 2, 0, 1, 2]), 4)
    assert rows.shape == (5, 4) and (rows.argmax(axis=1) == 2).all()
    np.testing.assert_allclose(rows[0], [0.2, 0.2, 0.6, 0.0])


def test_peak_memory_sees_a_temporary_allocation():
    from transferlab.evaluation import PeakMemory

    with PeakMemory("cpu") as memory:
        block = np.ones(25_000_000)  # 191 MiB, freed before the block ends
        del block
    # margin for the few tens of MiB other threads may free or take meanwhile
    assert 150 < memory.megabytes < 700
