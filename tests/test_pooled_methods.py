"""Heads that fit the encoder: on a sentence-transformers base, `lora` and `full` train a
PooledClassifier (the model's own pooling + normalisation + a linear head), saved with
head.json, reloaded and merged to the same predictions; other bases keep their usual head;
`lp_ft` starts that head from the standard probe, then trains with LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from transferlab import Registry
from transferlab.data import load_labelled_data, sample_data_path
from transferlab.finetune import FinetuneConfig, finetune
from transferlab.finetuning.methods import get_method
from transferlab.finetuning.methods.schedule import scaled_epochs, scaled_steps
from transferlab.models.heads import HEAD_CONFIG, HEAD_FILE
from transferlab.predict import load_version_model, merge

from .conftest import build_tiny_bert, make_sentence_transformers_model


@pytest.fixture(scope="module")
def tiny_st_dir(tmp_path_factory, minilm_dir) -> Path:
    """The tiny random BERT as a sentence-transformers model: mean pooling, then Normalize."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny-st"), minilm_dir)
    return make_sentence_transformers_model(folder)


def _config(base: Path, **overrides) -> FinetuneConfig:
    settings = dict(
        base=str(base),
        train=sample_data_path("train"),
        test=sample_data_path("test"),
        method="lora",
        n_per_class=6,
        validation_fraction=0.1,
        max_length=32,
        batch_size=8,
        max_steps=4,
    )
    return FinetuneConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_st_dir, tiny_bert_dir):
    folder = tmp_path_factory.mktemp("pooled")
    registry = Registry(folder / "registry.duckdb")
    runs = {
        "lora": finetune(_config(tiny_st_dir, name="st-lora"), registry, progress=False),
        "full": finetune(
            _config(tiny_st_dir, name="st-full", method="full"), registry, progress=False
        ),
        "plain": finetune(_config(tiny_bert_dir, name="plain-lora"), registry, progress=False),
    }
    return registry, runs


def _test_texts(count: int = 12) -> list[str]:
    return load_labelled_data(sample_data_path("test")).texts[:count]


@pytest.mark.training
def test_lora_on_a_sentence_transformers_base_trains_the_pooled_head(workspace, run_cli):
    registry, runs = workspace
    result = runs["lora"]
    version = result.version
    folder = Path(version.uri)
    assert (folder / HEAD_CONFIG).is_file() and (folder / HEAD_FILE).is_file()
    assert (folder / "adapter_config.json").is_file()
    assert version.metadata["head"] == "pooled"
    assert version.metadata["pooling"]["mode"] == "mean"
    assert version.metadata["head_learning_rate"] == pytest.approx(1e-2)
    head = json.loads((folder / HEAD_CONFIG).read_text())
    assert head["label_names"] == version.label_names
    assert registry.get_model("st-lora")["architecture"] == "PooledClassifier"
    texts = _test_texts()
    code, out, _ = run_cli("predict", version.ref, *texts, "--registry", registry.path, "--json")
    assert code == 0
    expected = [result.label_names[i] for i in result.logits["test"][: len(texts)].argmax(axis=1)]
    assert [p["label"] for p in json.loads(out)] == expected


@pytest.mark.training
def test_merging_a_pooled_adapter_keeps_its_predictions(workspace):
    registry, runs = workspace
    adapter = runs["lora"].version
    merged = merge(registry, adapter.ref)
    assert merged.kind == "merged" and merged.metadata["max_abs_logit_difference"] <= 1e-5
    files = {p.name for p in Path(merged.uri).iterdir()}
    assert {HEAD_CONFIG, HEAD_FILE, "model.safetensors", "modules.json"} <= files
    assert "adapter_config.json" not in files
    texts = _test_texts()
    np.testing.assert_allclose(
        load_version_model(registry, merged.ref).logits(texts),
        load_version_model(registry, adapter.ref).logits(texts),
        atol=1e-5,
    )


@pytest.mark.training
def test_full_fine_tuning_saves_a_complete_pooled_model(workspace):
    registry, runs = workspace
    result = runs["full"]
    folder = Path(result.version.uri)
    assert result.version.kind == "full" and result.version.metadata["head"] == "pooled"
    assert {HEAD_CONFIG, HEAD_FILE, "model.safetensors", "modules.json"} <= {
        p.name for p in folder.iterdir()
    }
    texts = load_labelled_data(sample_data_path("test")).texts
    logits = load_version_model(registry, result.version.ref).logits(texts)
    np.testing.assert_allclose(logits, result.logits["test"], atol=1e-4)


@pytest.mark.training
def test_a_base_without_a_pooling_config_keeps_its_usual_head(workspace):
    registry, runs = workspace
    version = runs["plain"].version
    assert "head" not in version.metadata
    assert not (Path(version.uri) / HEAD_CONFIG).is_file()
    assert registry.get_model("plain-lora")["architecture"] == "BertForSequenceClassification"
    loaded = load_version_model(registry, version.ref)
    assert loaded.logits(_test_texts(3)).shape == (3, len(version.label_names))


@pytest.mark.training
def test_lp_ft_through_the_template_starts_from_the_probe(tmp_path, tiny_st_dir, run_cli):
    registry = tmp_path / "registry.duckdb"
    args = ["-p", "method", "lp_ft", "-p", "base", str(tiny_st_dir), "-p", "max_steps", "3"]
    args += ["-p", "batch_size", "8", "-p", "max_length", "32", "-p", "name", "st-lpft"]
    code, out, err = run_cli(
        "run",
        "finetune",
        *args,
        "--registry",
        registry,
        "--output-dir",
        tmp_path / "runs",
        "--json",
    )
    assert code == 0, err
    version = Registry(registry).resolve("st-lpft:1")
    assert version.kind == "adapter" and version.metadata["method"] == "lp_ft"
    assert version.metadata["head"] == "pooled"
    probe = version.metadata["probe"]
    assert probe["C"] > 0 and probe["pooling"]["is_fallback"] is False
    assert (Path(version.uri) / HEAD_CONFIG).is_file()
    code, out, _ = run_cli(
        "predict", "st-lpft:1", "I was charged twice", "--registry", registry, "--json"
    )
    assert code == 0 and json.loads(out)[0]["label"] in version.label_names


def test_lp_ft_is_in_the_table():
    method = get_method("lp_ft")
    assert method.version_kind == "adapter" and method.uses_lora_settings


@pytest.mark.parametrize(
    ("n", "batch", "epochs", "steps"),
    [
        (16, 16, 100, 100),
        (40, 16, 34, 102),
        (320, 16, 10, 200),
        (640, 16, 7, 280),
        (5000, 16, 1, 313),
    ],
)
def test_the_scaled_schedule(n, batch, epochs, steps):
    assert scaled_epochs(n, batch) == epochs
    assert scaled_steps(n, batch) == steps
