"""linear_probe is the standard probe: frozen pooled embeddings + logistic regression (C by CV),
no Trainer; a head-only version over its base; versions of the former layout still load."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from transferlab import Registry
from transferlab.cli import main as cli_main
from transferlab.data import load_labelled_data, load_splits, sample_data_path
from transferlab.finetuning.artifacts import write_metadata
from transferlab.finetuning.methods.linear_probe import NOT_USED, save_head
from transferlab.predict import load_version_model

from .conftest import make_sentence_transformers_model


@pytest.fixture(scope="module")
def st_bert_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """The tiny BERT as a sentence-transformers folder: mean pooling, then Normalize."""
    folder = tmp_path_factory.mktemp("tiny-st-bert") / "model"
    shutil.copytree(tiny_bert_dir, folder)
    return make_sentence_transformers_model(folder)


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory, st_bert_dir):
    """`transferlab run finetune -p method linear_probe` on the sample data."""
    folder = tmp_path_factory.mktemp("probe-run")
    registry = folder / "registry.duckdb"
    buffer = io.StringIO()
    args = ["run", "finetune", "-p", "base", str(st_bert_dir), "-p", "method", "linear_probe"]
    args += ["-p", "learning_rate", "0.5", "-p", "max_length", "32", "-p", "name", "tiny-probe"]
    args += ["--registry", str(registry), "--output-dir", str(folder / "runs"), "--json"]
    with contextlib.redirect_stdout(buffer):
        code = cli_main(args)
    return code, json.loads(buffer.getvalue()), Registry(registry)


@pytest.mark.training
def test_the_probe_registers_a_head_only_version_with_its_probe(probe_run):
    code, result, registry = probe_run
    assert code == 0, result.get("error")
    version = registry.resolve("tiny-probe:1")
    assert (version.kind, version.metadata["method"]) == ("adapter", "linear_probe")
    assert version.metadata["adapter_format"] == "head"
    folder = Path(version.uri)
    files = {p.name for p in folder.iterdir()}
    assert {"head.safetensors", "head.json", "transferlab.json"} <= files
    assert not files & {"model.safetensors", "adapter_config.json", "config.json"}
    probe = version.metadata["probe"]
    assert probe["folds"] == 5 and probe["C"] > 0 and 0 <= probe["cv_accuracy"] <= 1
    assert (
        probe["pooling"]["mode"] == "mean" and "sentence-transformers" in probe["pooling"]["source"]
    )

    run = registry.get_run(version.run_id)
    sources = run["parameters"]["setting_sources"]
    assert sources["learning_rate"] == NOT_USED and sources["epochs"] == NOT_USED
    assert sources["batch_size"] == NOT_USED
    resources, timings = run["metrics"]["resources"], run["metrics"]["timings"]
    assert resources["steps"] == 0 and resources["probe"]["C"] == probe["C"]
    # No Trainer: embedding 290 short texts with a 2-layer model and 9 x 5 small fits.
    assert timings["train_s"] < 15


@pytest.mark.training
def test_predict_equals_the_runs_test_predictions(probe_run):
    _, _, registry = probe_run
    version = registry.resolve("tiny-probe:1")
    run = registry.get_run(version.run_id)
    test = load_labelled_data(sample_data_path("test"))
    loaded = load_version_model(registry, version.ref, device="cpu")
    logits = loaded.logits(test.texts)
    predicted = [loaded.label_names[i] for i in logits.argmax(axis=1)]
    truth = [test.label_names[i] for i in test.labels]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    assert accuracy == pytest.approx(run["metrics"]["metrics"]["test"]["accuracy"], abs=1e-9)


@pytest.mark.training
def test_the_heads_logits_are_the_probes(st_bert_dir, tmp_path):
    """Training through the method and refitting the standard probe on the same embeddings
    give the same logits on new texts (the model's head is the probe's)."""
    from transferlab.finetune import FinetuneConfig, finetune
    from transferlab.models.embedding import embed, load_encoder
    from transferlab.models.probe import fit_probe

    registry = Registry(tmp_path / "registry.duckdb")
    config = FinetuneConfig(
        base=str(st_bert_dir),
        train=sample_data_path("train"),
        test=sample_data_path("test"),
        method="linear_probe",
        n_per_class=8,
        max_length=32,
        output_dir=tmp_path / "out",
    )
    result = finetune(config, registry, progress=False)
    splits = load_splits(
        sample_data_path("train"),
        test=sample_data_path("test"),
        test_fraction=0.0,
        validation_fraction=0.1,
        n_per_class=8,
        seed=0,
    )
    assert splits.fingerprint() == result.version.metadata["data_fingerprint"]  # the same rows
    encoder = load_encoder(st_bert_dir, max_length=32)
    probe = fit_probe(embed(encoder, splits.train.texts), splits.train.labels, seed=0)
    assert result.version.metadata["probe"]["C"] == probe.C
    expected = probe.logits(embed(encoder, splits.test.texts))
    assert np.abs(result.logits["test"] - expected).max() < 1e-4
    loaded = load_version_model(registry, result.ref, device="cpu")
    assert np.abs(loaded.logits(splits.test.texts) - result.logits["test"]).max() < 1e-4


def test_a_version_of_the_former_layout_still_predicts(tmp_path, tiny_bert_dir):
    """Former linear probe: a head over BertForSequenceClassification, no head.json."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from transferlab.catalog.importers import register_local_folder
    from transferlab.catalog.local import inspect_local_model

    registry = Registry(tmp_path / "registry.duckdb")
    record = inspect_local_model(tiny_bert_dir, name="tiny-bert")
    record.license, record.commercial_use = "apache-2.0", True
    base = register_local_folder(registry, record, tiny_bert_dir)
    labels = ["a", "b", "c"]
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=3).eval()
    folder = tmp_path / "old-probe"
    folder.mkdir()
    save_head(model, ["classifier"], folder)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokenizer.save_pretrained(folder)
    metadata = {"method": "linear_probe", "adapter_format": "head", "head_modules": ["classifier"]}
    write_metadata(folder, metadata)
    version = registry.add_version(
        "tiny-bert",
        "adapter",
        str(folder),
        parent_version_id=base.version_id,
        label_names=labels,
        metadata={**metadata, "max_length": 32},
    )
    texts = ["I was charged twice", "where is my parcel"]
    loaded = load_version_model(registry, version.ref, device="cpu")
    assert type(loaded.model).__name__ == "BertForSequenceClassification"
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs).logits.numpy()
    assert np.abs(loaded.logits(texts) - expected).max() < 1e-5
