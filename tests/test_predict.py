"""Using registered versions: predictions, loading rules, and merging adapters into complete
models that predict what the adapter predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transferlab import Registry
from transferlab.catalog.importers import register_local_folder
from transferlab.catalog.local import inspect_local_model
from transferlab.data import load_labelled_data, sample_data_path
from transferlab.errors import TransferlabError
from transferlab.finetune import FinetuneConfig, finetune
from transferlab.predict import load_version_model, merge, predict

pytestmark = [pytest.mark.training]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_bert_dir):
    registry = Registry(tmp_path_factory.mktemp("predict") / "registry.duckdb")
    base = register_local_folder(
        registry, inspect_local_model(tiny_bert_dir, name="tiny-bert"), tiny_bert_dir
    )
    results = {}
    for method in ("lora", "linear_probe"):
        config = FinetuneConfig(
            base=base.ref,
            train=sample_data_path("train"),
            test=sample_data_path("test"),
            method=method,
            n_per_class=4,
            validation_fraction=0,
            max_length=32,
            batch_size=8,
            epochs=3,
            learning_rate=0.05,  # a random tiny encoder needs a push to move off uniform logits
        )
        results[method] = finetune(config, registry, progress=False)
    return registry, base, results


@pytest.fixture(scope="module")
def test_texts() -> list[str]:
    return load_labelled_data(sample_data_path("test")).texts


def test_predict_returns_labels_with_probabilities(workspace):
    registry, _, results = workspace
    predictions = predict(registry, results["lora"].ref, ["where is my parcel", "refund??"])
    assert len(predictions) == 2
    for prediction in predictions:
        assert set(prediction) == {"label", "score", "scores"}
        assert list(prediction["scores"]) == results["lora"].label_names
        assert sum(prediction["scores"].values()) == pytest.approx(1.0)
        assert prediction["score"] == max(prediction["scores"].values())
        assert prediction["scores"][prediction["label"]] == prediction["score"]


def test_predictions_follow_the_trained_head_not_a_fresh_one(workspace, test_texts):
    registry, _, results = workspace
    result = results["lora"]
    first = load_version_model(registry, result.ref).logits(test_texts)
    second = load_version_model(registry, result.ref).logits(test_texts)
    np.testing.assert_array_equal(first, second)  # a randomly initialised head would differ
    np.testing.assert_allclose(first, result.logits["test"], atol=1e-5)


def test_a_single_string_is_refused(workspace):
    registry, _, results = workspace
    with pytest.raises(TransferlabError, match="not a list of texts"):
        predict(registry, results["lora"].ref, "where is my parcel")


def test_a_base_without_a_classifier_cannot_predict(workspace):
    registry, base, _ = workspace
    with pytest.raises(TransferlabError, match="no trained classification head") as caught:
        load_version_model(registry, base.ref)
    assert "Fine-tune it first" in caught.value.fix


@pytest.mark.parametrize("method", ["lora", "linear_probe"])
def test_merge_registers_a_standalone_model_with_the_same_predictions(
    workspace, test_texts, method
):
    registry, _, results = workspace
    adapter = registry.resolve(results[method].ref)
    merged = merge(registry, adapter.ref)
    assert (merged.kind, merged.parent_version_id) == ("merged", adapter.version_id)
    assert merged.model_name == adapter.model_name
    assert merged.label_names == adapter.label_names
    assert merged.metadata["max_abs_logit_difference"] <= 1e-5
    assert (merged.uri or "").endswith("-merged")

    files = {p.name for p in Path(merged.uri).iterdir()}
    assert "model.safetensors" in files and "adapter_model.safetensors" not in files
    merged_logits = load_version_model(registry, merged.ref).logits(test_texts)
    adapter_logits = load_version_model(registry, adapter.ref).logits(test_texts)
    np.testing.assert_allclose(merged_logits, adapter_logits, atol=1e-5)
    assert [v.version_id for v in registry.lineage(merged.ref)][1] == adapter.version_id


def test_only_adapters_merge_and_nothing_is_overwritten(workspace, tmp_path):
    registry, base, results = workspace
    with pytest.raises(TransferlabError, match="only adapters are merged"):
        merge(registry, base.ref)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("keep")
    with pytest.raises(TransferlabError, match="not empty"):
        merge(registry, results["lora"].ref, output_dir=occupied)
    assert (occupied / "notes.txt").read_text() == "keep"
