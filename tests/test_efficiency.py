"""Data-efficiency curves: real fine-tune runs of a tiny random BERT at three sizes (incl. all)
x two seeds x two methods; the curve table against the registry's own values; the threshold
logic on hand-made tables with known answers; the curves template through papermill (runs and
sweep paths) rendering an HTML page with the plotly figure and the threshold sentences."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pandas as pd
import pytest

from transferlab import Registry
from transferlab.catalog.importers import register_local_folder
from transferlab.catalog.local import inspect_local_model
from transferlab.efficiency import (
    FULL_DATA,
    curve_table,
    data_efficiency,
    render_sweep_report,
    threshold_sentences,
    thresholds,
)
from transferlab.errors import NotFoundError, TransferlabError
from transferlab.finetune import FinetuneConfig, finetune
from transferlab.report import count_plotly_figures

LABELS = ("billing", "delivery", "refund")
WORDS = {
    "billing": ["invoice", "charged", "payment", "card", "bill"],
    "delivery": ["parcel", "courier", "shipping", "arrive", "tracking"],
    "refund": ["refund", "money back", "return", "reimburse", "credit"],
}
PER_CLASS_TRAIN, PER_CLASS_TEST = 10, 4
SIZES = (2, 4, None)  # None: all the training data
SEEDS = (0, 1)
METHODS = ("lora", "linear_probe")


def _write_csv(path: Path, per_class: int, rng: random.Random) -> Path:
    rows = [
        {
            "text": f"my {rng.choice(WORDS[label])} issue number {i} {rng.random():.3f}",
            "label": label,
        }
        for label in LABELS
        for i in range(per_class)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def curve_runs(tmp_path_factory, tiny_bert_dir):
    """12 succeeded fine-tunes (3 sizes x 2 seeds x 2 methods), one n_train run, one failed."""
    folder = tmp_path_factory.mktemp("efficiency")
    registry = Registry(folder / "registry.duckdb")
    record = inspect_local_model(tiny_bert_dir, name="tiny-bert")
    record.license, record.commercial_use = "apache-2.0", True
    base = register_local_folder(registry, record, tiny_bert_dir)
    rng = random.Random(0)
    train = _write_csv(folder / "tickets_train.csv", PER_CLASS_TRAIN, rng)
    test = _write_csv(folder / "tickets_test.csv", PER_CLASS_TEST, rng)

    def run(**overrides) -> str:
        settings = dict(
            base=base.ref,
            train=train,
            test=test,
            validation_fraction=0.0,
            early_stopping_patience=None,
            max_steps=2,
            batch_size=8,
            max_length=16,
            num_threads=1,
            output_dir=folder / "models" / f"m{len(ids) + len(extra)}",
        )
        return finetune(
            FinetuneConfig(**{**settings, **overrides}), registry, progress=False
        ).run_id

    ids: dict[tuple[str, int | None, int], str] = {}
    extra: dict[str, str] = {}
    for method in METHODS:
        for size in SIZES:
            for seed in SEEDS:
                ids[(method, size, seed)] = run(method=method, n_per_class=size, seed=seed)
    extra["n_train"] = run(method="lora", n_train=6)
    extra["failed"] = registry.start_run("finetune", parameters={"method": "lora"})
    registry.finish_run(extra["failed"], "failed", error="DataError: for the test")
    return registry, ids, extra


def _registry_value(registry: Registry, run_id: str, metric: str = "accuracy") -> float:
    rows = registry.query(
        "SELECT value FROM results WHERE run_id = ? AND split = 'test' AND metric = ?",
        [run_id, metric],
    )
    assert len(rows) == 1
    return rows[0]["value"]


# -- the curve table from real runs ----------------------------------------------------------


@pytest.mark.training
@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_the_curve_table_has_one_point_per_method_and_size_with_registry_means(curve_runs, metric):
    registry, ids, _ = curve_runs
    efficiency = data_efficiency(registry, runs=list(ids.values()), metric=metric)
    table = efficiency.table
    assert len(efficiency.points) == 12 and efficiency.notes == []
    assert len(table) == len(METHODS) * len(SIZES)
    assert set(table["model"]) == {"tiny-bert"} and set(table["dataset"]) == {"tickets"}
    for method in METHODS:
        rows = table[table["method"] == method]
        assert list(rows["n_per_class"]) == [2, 4, FULL_DATA]  # sizes in order, 'all' last
        assert list(rows["n_train"]) == [6, 12, 30]
        assert list(rows["examples_per_class"]) == [2.0, 4.0, 10.0]
        for row in rows.to_dict("records"):
            size = None if row["n_per_class"] == FULL_DATA else row["n_per_class"]
            values = [_registry_value(registry, ids[(method, size, s)], metric) for s in SEEDS]
            assert row["runs"] == 2 and row["seeds"] == SEEDS
            assert row["mean"] == pytest.approx(sum(values) / 2)
            assert row["std"] == pytest.approx(pd.Series(values).std(ddof=1))
    assert efficiency.has_curve


@pytest.mark.training
def test_selecting_by_base_model_dataset_and_fingerprint_finds_the_same_runs(curve_runs):
    registry, ids, extra = curve_runs
    by_ids = data_efficiency(registry, runs=list(ids.values())).table
    by_model = data_efficiency(registry, base_models="tiny-bert", dataset="tickets")
    pd.testing.assert_frame_equal(by_model.table, by_ids)
    # The n_train run is not a per-class size: left out, and said so.
    assert any(extra["n_train"] in note and "n_train" in note for note in by_model.notes)
    run = registry.get_run(ids[("lora", 2, 0)])
    test_fingerprint = run["parameters"]["data"]["splits"]["test"]["fingerprint"]
    by_fingerprint = data_efficiency(registry, fingerprint=test_fingerprint)
    pd.testing.assert_frame_equal(by_fingerprint.table, by_ids)
    assert data_efficiency(registry, base_models="other-model").points.empty
    assert data_efficiency(registry, dataset="other-data").points.empty


@pytest.mark.training
def test_given_runs_that_failed_are_left_out_with_a_note(curve_runs):
    registry, ids, extra = curve_runs
    efficiency = data_efficiency(registry, runs=[*ids.values(), extra["failed"]])
    assert len(efficiency.points) == 12
    assert efficiency.notes == [f"Left out 1 failed run(s): {extra['failed']}."]


@pytest.mark.training
def test_too_little_data_for_a_curve_is_said_plainly(curve_runs):
    registry, ids, _ = curve_runs
    one = data_efficiency(registry, runs=ids[("lora", 2, 0)])
    assert not one.has_curve and one.figures() == [] and one.sentences()
    assert one.shortage().startswith("Too little data for a curve: 1 fine-tune run(s)")
    assert "two sizes or more" in one.shortage()
    none = data_efficiency(registry, base_models="all-MiniLM-L6-v2")
    assert not none.has_curve and "no succeeded fine-tune run" in none.shortage()
    assert none.thresholds.empty and none.summary()["thresholds"] == []


@pytest.mark.training
def test_bad_input_is_refused_with_a_clear_message(curve_runs):
    registry, _, _ = curve_runs
    with pytest.raises(TransferlabError, match="(?s)Unknown metric 'f1'.*accuracy, macro_f1"):
        data_efficiency(registry, metric="f1")
    with pytest.raises(NotFoundError, match="No run finetune-nope"):
        data_efficiency(registry, runs="finetune-nope")
    with pytest.raises(NotFoundError, match="sweep-nope"):
        data_efficiency(registry, sweep="sweep-nope")


# -- thresholds on hand-made tables with known answers -------------------------------------


def _table(points: dict[str, list[tuple[int | str, float]]], dataset: str = "d") -> pd.DataFrame:
    rows = []
    for method, sizes in points.items():
        for size, mean in sizes:
            rows.append(
                {
                    "model": "m",
                    "dataset": dataset,
                    "method": method,
                    "n_per_class": size,
                    "n_train": 5 * (100 if size == FULL_DATA else size),
                    "mean": mean,
                }
            )
    return pd.DataFrame(rows)


def test_thresholds_find_the_smallest_size_reaching_each_level():
    table = _table(
        {
            # full 0.90: 90 % = 0.81 first reached at 32 (0.81 exactly), 95 % = 0.855 at 128.
            "lora": [(8, 0.5), (16, 0.8), (32, 0.81), (64, 0.85), (128, 0.86), ("all", 0.9)],
            # First to reach wins though larger sizes dip: 90 %, 95 % of 0.8 (0.72, 0.76) at 8.
            "full": [(8, 0.77), (16, 0.6), (32, 0.7), ("all", 0.8)],
            # Only the full data reaches 95 %: 0.95 * 0.6 = 0.57 > 0.56.
            "linear_probe": [(8, 0.55), (16, 0.56), ("all", 0.6)],
        }
    )
    found = thresholds(table).set_index("method")
    assert found.loc["lora", "n_90"] == 32 and found.loc["lora", "n_95"] == 128
    assert found.loc["full", "n_90"] == 8 and found.loc["full", "n_95"] == 8
    assert found.loc["linear_probe", "n_90"] == 8
    assert found.loc["linear_probe", "n_95"] == FULL_DATA
    assert found["full_data"].all() and (found["note"] == "").all()
    assert found.loc["lora", "reference_score"] == pytest.approx(0.9)
    assert found.loc["lora", "reference_n_train"] == 500

    sentences = threshold_sentences(table)
    assert (
        "LoRA reaches 90 % of its full-data accuracy (0.90) at 32 examples per class, "
        "95 % at 128." in sentences
    )
    assert (
        "Linear probe reaches 90 % of its full-data accuracy (0.60) at 8 examples per class, "
        "95 % only with all the data." in sentences
    )


def test_without_a_full_data_point_the_largest_size_is_the_reference_and_it_says_so():
    table = _table({"lora": [(8, 0.6), (16, 0.73), (32, 0.71), (64, 0.8)]})
    row = thresholds(table).iloc[0]
    assert (row["reference"], bool(row["full_data"])) == (64, False)
    assert row["n_90"] == 16 and row["n_95"] == 64  # 0.72 and 0.76 of the reference 0.8
    assert "no full-data run" in row["note"] and "64 per class" in row["note"]
    sentence = threshold_sentences(table, "macro_f1")[0]
    assert sentence.startswith("LoRA reaches 90 % of its best measured macro-F1 (0.80, at 64")
    assert "no full-data run" in sentence


def test_exact_float_levels_count_as_reached():
    # 0.9 * 0.9 is 0.81000000000000005 in floats: a mean of 0.81 reaches it.
    row = thresholds(_table({"lora": [(4, 0.81), ("all", 0.9)]})).iloc[0]
    assert row["n_90"] == 4


def test_a_zero_reference_gives_no_threshold_and_says_why():
    table = _table({"lora": [(8, 0.0), ("all", 0.0)]})
    row = thresholds(table).iloc[0]
    assert row["n_90"] is None and "no positive reference score" in row["note"]
    assert "no threshold" in threshold_sentences(table)[0]


def test_several_data_sets_and_models_are_named_in_the_sentences():
    table = pd.concat(
        [
            _table({"lora": [(8, 0.5), ("all", 0.9)]}, dataset="sst2"),
            _table({"lora": [(8, 0.85), ("all", 0.9)]}, dataset="trec"),
        ]
    )
    sentences = threshold_sentences(table)
    assert sentences[0].startswith("On sst2, LoRA reaches 90 %")
    assert sentences[1].startswith(
        "On trec, LoRA reaches 90 % of its full-data accuracy (0.90) at 8"
    )


def test_curve_table_aggregates_points_and_places_all_by_examples_per_class():
    points = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "model": "m",
            "dataset": "d",
            "method": "lora",
            "n_per_class": [FULL_DATA, 8, 8],
            "n_train": [90, 24, 24],
            "n_classes": [3, 3, 3],
            "seed": [0, 0, 1],
            "value": [0.9, 0.5, 0.7],
        }
    )
    table = curve_table(points)
    assert list(table["n_per_class"]) == [8, FULL_DATA]
    assert list(table["examples_per_class"]) == [8.0, 30.0]
    assert table["mean"].tolist() == pytest.approx([0.6, 0.9])
    assert math.isnan(table["std"].iloc[1]) and table["runs"].tolist() == [2, 1]


# -- the report through papermill ------------------------------------------------------------


@pytest.mark.training
def test_the_curves_template_renders_curves_and_thresholds(curve_runs, run_cli, tmp_path):
    registry, ids, _ = curve_runs
    expected = data_efficiency(registry, runs=list(ids.values()))
    code, out, err = run_cli(
        "run",
        "curves",
        "-p",
        "runs",
        ", ".join(ids.values()),
        "--registry",
        registry.path,
        "--output-dir",
        tmp_path,
        "-q",
    )
    assert code == 0, out + err
    report = Path(re.search(r"^report\s+(\S+)$", out, re.M).group(1))
    page = report.read_text(encoding="utf-8")
    assert count_plotly_figures(page) == 1
    assert "Data efficiency on tickets" in page and "import pandas" not in page
    sentences = expected.sentences()
    assert len(sentences) == 2
    for sentence in sentences:
        assert sentence in page
        assert re.fullmatch(
            r"(LoRA|Linear probe) reaches 90 % of its full-data accuracy \(\d\.\d\d\) "
            r"(at \d+ examples per class|only with all the data \(30 examples\)), "
            r"95 % (at \d+|only with all the data)\.",
            sentence,
        )
    run_id = re.search(r"^run\s+(\S+)$", out, re.M).group(1)
    run = registry.get_run(run_id)
    assert (run["kind"], run["status"]) == ("curves", "succeeded")
    assert run["metrics"]["runs"] == 12 and run["metrics"]["sentences"] == sentences
    by_method = {row["method"]: row for row in run["metrics"]["thresholds"]}
    for row in expected.thresholds.to_dict("records"):
        assert by_method[row["method"]]["n_90"] == row["n_90"]


@pytest.mark.training
def test_a_sweep_report_is_rendered_from_the_sweeps_runs(curve_runs, tmp_path):
    registry, ids, extra = curve_runs
    lora = [run_id for (method, _, _), run_id in ids.items() if method == "lora"]
    members = [*lora, extra["failed"]]
    if hasattr(registry, "start_sweep"):
        sweep = registry.start_sweep("tiny-curve", spec={"grid": {"n_per_class": [2, 4, "all"]}})
        for index, run_id in enumerate(members):
            registry.add_sweep_run(sweep, f"key-{index}", run_id)
    else:  # before the sweeps tables: a sweep's runs carry its id in runs.sweep_id
        sweep = "sweep-tiny-curve"
        registry.query(
            f"UPDATE runs SET sweep_id = ? WHERE run_id IN ({', '.join('?' for _ in members)}) "
            "RETURNING run_id",
            [sweep, *members],
        )
    page = render_sweep_report(registry, sweep, output_dir=tmp_path).read_text(encoding="utf-8")
    assert count_plotly_figures(page) == 1
    expected = data_efficiency(registry, runs=lora).sentences()
    assert len(expected) == 1 and expected[0] in page
    assert "Linear probe" not in page
    assert f"Left out 1 failed run(s): {extra['failed']}." in page
