"""Fine-tuned versions against references trained on their own training examples: the base's
standard probe and TF-IDF + logistic regression (evaluation/references.py), through run_suite."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from transferlab import Registry
from transferlab.catalog.importers import register_local_folder
from transferlab.catalog.local import inspect_local_model
from transferlab.data import fingerprint, load_splits, sample_data_path
from transferlab.evaluation import paired_bootstrap, run_suite
from transferlab.finetune import FinetuneConfig, finetune
from transferlab.registry import ModelRecord

from .conftest import build_tiny_bert, make_sentence_transformers_model

pytestmark = [pytest.mark.training]

INTENTS = ["account_access", "billing", "delivery", "refund", "technical_issue"]
SEED = 3
PER_CLASS = 8
RESAMPLES = 200


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_bert_dir, minilm_dir):
    """A sentence-transformers base; a LoRA and a linear-probe version trained on the same
    sample (one shared pair of references); two versions whose training file is then removed
    or changed; one whose test file is then removed (its training examples do not depend on
    it); and an imported version with no fine-tuning run."""
    import torch

    folder = tmp_path_factory.mktemp("references")
    registry = Registry(folder / "registry.duckdb")
    base_dir = make_sentence_transformers_model(
        Path(shutil.copytree(tiny_bert_dir, folder / "tiny-st"))
    )
    base = register_local_folder(registry, inspect_local_model(base_dir, name="tiny-st"), base_dir)
    files = {}
    for key in ("kept", "removed", "changed"):
        files[key] = folder / f"{key}_train.csv"
        shutil.copy(sample_data_path("train"), files[key])

    test_copy = shutil.copy(sample_data_path("test"), folder / "test_copy.csv")

    def tune(name: str, train: Path, method: str, test: Path | None = None, **settings):
        config = FinetuneConfig(
            base=base.ref,
            train=train,
            test=test or sample_data_path("test"),
            n_per_class=PER_CLASS,
            validation_fraction=0,
            method=method,
            seed=SEED,
            name=name,
            output_dir=folder / name,
            **settings,
        )
        return finetune(config, registry, progress=False)

    lora = dict(max_length=32, batch_size=8, max_steps=6, learning_rate=0.05)
    tuned = tune("tiny-lora", files["kept"], "lora", **lora)
    probed = tune("tiny-probe", files["kept"], "linear_probe")
    removed = tune("tiny-removed", files["removed"], "lora", **lora)
    changed = tune("tiny-changed", files["changed"], "lora", **lora)
    test_gone = tune("tiny-test-gone", files["kept"], "linear_probe", test=Path(test_copy))
    files["removed"].unlink()
    Path(test_copy).unlink()
    lines = files["changed"].read_text(encoding="utf-8").splitlines(keepends=True)
    files["changed"].write_text("".join([lines[0], *lines[2:]]), encoding="utf-8")

    torch.manual_seed(0)
    full_dir = build_tiny_bert(folder / "imported", minilm_dir, num_labels=len(INTENTS))
    registry.upsert_models(
        [ModelRecord("tiny-imported", "local", str(full_dir), "text-classification")]
    )
    imported = registry.add_version("tiny-imported", "full", str(full_dir), label_names=INTENTS)
    report = run_suite(
        registry,
        "support_intents",
        [tuned.version.ref, probed.version.ref, imported.ref],
        seed=SEED,
        bootstrap=RESAMPLES,
        latency_samples=3,
    )
    return SimpleNamespace(
        registry=registry,
        folder=folder,
        base=base,
        base_dir=base_dir,
        train_file=files["kept"],
        tuned=tuned,
        probed=probed,
        removed=removed,
        changed=changed,
        test_gone=test_gone,
        imported=imported,
        report=report,
    )


def training_rows(train_file: Path):
    """The sample a run with these settings trains on, drawn here from the files directly."""
    return load_splits(
        train_file,
        test=sample_data_path("test"),
        n_per_class=PER_CLASS,
        test_fraction=0.0,
        validation_fraction=0.0,
        seed=SEED,
    ).train


def rows_of(report, version: str, relation: str):
    table = report.comparisons
    return table[(table["version"] == version) & (table["relation"] == relation)]


def accuracy_row(report, version: str, relation: str):
    rows = rows_of(report, version, relation)
    return rows[rows["metric"] == "accuracy"].iloc[0]


def test_training_examples_are_drawn_again_and_match_the_run(lab):
    table = lab.report.training_data.set_index("version")
    expected = training_rows(lab.train_file)
    for result in (lab.tuned, lab.probed):
        row = table.loc[result.version_id]
        assert row["re_derived"] and row["reason"] is None
        assert row["run_id"] == result.run_id and row["base"] == lab.base.version_id
        assert row["n_train"] == len(expected) == PER_CLASS * len(INTENTS)
        recorded = result.data["splits"]["train"]
        assert row["train_fingerprint"] == recorded["fingerprint"] == fingerprint(expected)
        run = lab.registry.get_run(result.run_id)
        assert row["train_seconds"] == pytest.approx(run["metrics"]["timings"]["train_s"])
    assert lab.imported.version_id not in table.index  # imported: no run, no references


def test_each_version_gets_probe_and_tfidf_rows_with_intervals(lab):
    report = lab.report
    for result in (lab.tuned, lab.probed):
        for relation in ("base_probe", "tfidf"):
            rows = rows_of(report, result.version_id, relation)
            assert sorted(rows["metric"]) == sorted(
                ["accuracy", "macro_f1", "micro_f1", "mcc", "ece"]
            )
            assert (rows["resamples"] == RESAMPLES).all()
            assert (rows["ci_low"] <= rows["difference"] + 1e-9).all()
            assert (rows["difference"] <= rows["ci_high"] + 1e-9).all()
            assert np.allclose(rows["difference"], rows["value"] - rows["reference_value"])
    imported = report.comparisons[report.comparisons["version"] == lab.imported.version_id]
    assert set(imported["relation"]) == {"majority_baseline"}


def test_one_pair_of_references_serves_both_versions_of_the_same_sample(lab):
    models = lab.report.reference_models.set_index("relation")
    assert sorted(models.index) == ["base_probe", "tfidf"]
    both = f"{lab.tuned.version_id}, {lab.probed.version_id}"
    assert (models["versions"] == both).all()
    assert (models["n_train"] == PER_CLASS * len(INTENTS)).all()
    assert (models["train_seconds"] > 0).all()
    assert models.loc["base_probe", "base"] == lab.base.version_id
    for relation in ("base_probe", "tfidf"):
        references = {
            accuracy_row(lab.report, r.version_id, relation)["reference"]
            for r in (lab.tuned, lab.probed)
        }
        assert references == {models.loc[relation, "reference"]}


def test_the_tfidf_reference_is_an_ordinary_sklearn_pipeline_on_the_same_rows(lab):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    from transferlab.data import load_labelled_data
    from transferlab.metrics import metric_function

    train = training_rows(lab.train_file)
    test = load_labelled_data(sample_data_path("test"))
    truth = lab.report.references["intents"]
    model = lab.report.reference_models.set_index("relation").loc["tfidf"]
    chosen = float(model["C"])

    def pipeline(c: float):
        return make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            LogisticRegression(C=c, max_iter=3000),
        )

    # C: the best mean accuracy of the probe's grid over the same stratified folds
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    cv = {
        c: cross_val_score(pipeline(c), train.texts, train.labels, cv=folds).mean()
        for c in np.logspace(-2, 2, 9)
    }
    assert model["folds"] == 5 and cv[min(cv, key=lambda c: abs(c - chosen))] == pytest.approx(
        max(cv.values())
    )
    fitted = pipeline(chosen).fit(train.texts, train.labels)
    names = [train.label_names[c] for c in fitted.classes_]
    predicted = np.array(
        [INTENTS.index(names[i]) for i in fitted.predict_proba(test.texts).argmax(1)]
    )
    row = accuracy_row(lab.report, lab.tuned.version_id, "tfidf")
    assert row["reference_value"] == pytest.approx(accuracy_score(truth, predicted))

    # the interval is the paired bootstrap of the version against these predictions
    version = lab.report.probabilities[(lab.tuned.version_id, "intents")].argmax(axis=1)

    def accuracy(p, t):
        return metric_function("accuracy")(p, t)["accuracy"]

    expected = paired_bootstrap(accuracy, version, predicted, truth, resamples=RESAMPLES, seed=SEED)
    assert (row["difference"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (expected.value, expected.ci_low, expected.ci_high)
    )
    assert row["verdict"] == expected.verdict


def test_the_probe_reference_is_logistic_regression_on_the_bases_embeddings(lab):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    from transferlab.data import load_labelled_data
    from transferlab.models.embedding import embed, load_encoder

    train = training_rows(lab.train_file)
    test = load_labelled_data(sample_data_path("test"))
    encoder = load_encoder(lab.base_dir)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    model = lab.report.reference_models.set_index("relation").loc["base_probe"]
    classifier = LogisticRegression(C=float(model["C"]), max_iter=3000)
    classifier.fit(unit(embed(encoder, train.texts)), train.labels)
    predicted = classifier.predict(unit(embed(encoder, test.texts)))
    names = np.array(train.label_names)[predicted]
    truth = np.array(INTENTS)[lab.report.references["intents"]]
    row = accuracy_row(lab.report, lab.tuned.version_id, "base_probe")
    assert row["reference_value"] == pytest.approx(accuracy_score(truth, names))
    # the linear-probe version is this probe on a head: no gain over its own reference
    same = accuracy_row(lab.report, lab.probed.version_id, "base_probe")
    assert abs(same["difference"]) <= 1 / 105 + 1e-9


def test_the_summary_opens_with_the_gain_over_probe_and_tfidf_latency_and_cost(lab):
    report = lab.report
    block = report.summary["best_finetuned"]
    finetuned = report.metrics_table().loc[[lab.tuned.version_id, lab.probed.version_id]]
    best = str(finetuned["accuracy"].idxmax())
    assert block["version"] == best
    first = report.summary["text"].split("; it ", 1)[0]
    assert first.startswith(f"{best}, the best fine-tuned version, scores accuracy")
    for relation, words in (("base_probe", "standard probe of its base"), ("tfidf", "TF-IDF")):
        row = accuracy_row(report, best, relation)
        gain = f"{row['difference'] * 100:+.1f} points (95% CI {row['ci_low'] * 100:+.1f} to"
        assert gain in first and words in first
        assert block[relation]["difference"] == pytest.approx(row["difference"])
    assert f"trained on the same {PER_CLASS * len(INTENTS)} examples" in first
    sentence = report.summary["text"].split(". ", 1)[0]
    latency = report.latency.set_index("version").loc[best, "latency_ms_p50"]
    assert f"answers in {latency:.1f} ms (p50) per text" in sentence
    seconds = report.training_data.set_index("version").loc[best, "train_seconds"]
    probe_seconds = report.reference_models.set_index("relation").loc["base_probe", "train_seconds"]
    assert f"took {seconds:.1f} s to train, against {probe_seconds:.1f} s for the probe" in sentence
    assert block["train_seconds"] == pytest.approx(seconds)
    # the rest of the summary is still there
    assert f"{report.summary['winner']} wins on accuracy" in report.summary["text"]
    run = lab.registry.get_run(report.run_id)
    assert run["metrics"]["best_finetuned"]["tfidf"]["reference"] == block["tfidf"]["reference"]


def test_a_removed_or_changed_training_file_is_said_and_the_run_completes(lab):
    report = run_suite(
        lab.registry,
        "support_intents",
        [lab.removed.version.ref, lab.changed.version.ref],
        seed=SEED,
        bootstrap=50,
        latency_samples=2,
    )
    assert lab.registry.get_run(report.run_id)["status"] == "succeeded"
    assert set(report.comparisons["relation"]) == {"majority_baseline"}
    assert report.reference_models.empty
    table = report.training_data.set_index("version")
    removed = table.loc[lab.removed.version_id]
    changed = table.loc[lab.changed.version_id]
    assert not removed["re_derived"] and not changed["re_derived"]
    assert "cannot re-derive training examples" in removed["reason"]
    assert "removed_train.csv does not exist" in removed["reason"]
    assert "the data changed since it was trained" in changed["reason"]
    assert f"the run recorded {PER_CLASS * len(INTENTS)}" in changed["reason"]
    for version in (lab.removed.version_id, lab.changed.version_id):
        assert any(
            note.startswith(f"{version} is not compared with its base's probe or TF-IDF")
            and "cannot re-derive training examples" in note
            for note in report.notes
        )
    first = report.summary["text"].split(". ", 1)[0]
    assert "the best fine-tuned version" in first and "cannot re-derive training examples" in first
    assert "points" not in first and "to train" in first


def test_the_report_keeps_its_new_tables_as_plain_data(lab):
    import json

    payload = json.loads(json.dumps(lab.report.to_dict()))
    relations = {row["relation"] for row in payload["comparisons"]}
    assert {"base_probe", "tfidf", "majority_baseline"} <= relations
    assert {row["relation"] for row in payload["reference_models"]} == {"base_probe", "tfidf"}
    assert len(payload["training_data"]) == 2


def test_a_removed_test_file_does_not_stop_the_training_examples_being_drawn_again(lab):
    report = run_suite(
        lab.registry, "support_intents", [lab.test_gone.version.ref], seed=SEED, bootstrap=50
    )
    row = report.training_data.set_index("version").loc[lab.test_gone.version_id]
    assert (
        row["re_derived"]
        and row["train_fingerprint"] == lab.tuned.data["splits"]["train"]["fingerprint"]
    )
    for relation in ("base_probe", "tfidf"):
        again = accuracy_row(report, lab.test_gone.version_id, relation)["reference_value"]
        first = accuracy_row(lab.report, lab.tuned.version_id, relation)["reference_value"]
        assert again == pytest.approx(first)  # the same rows, the same reference
