"""`setfit` and `setfit_lora`: contrastive fine-tuning of the body with the setfit package, then
the standard probe; a complete pooled model that reloads to the run's predictions. The pair /
step rule stays bounded for many classes; without the package the method says how to get it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from transferlab import Registry
from transferlab.data import load_labelled_data, sample_data_path
from transferlab.errors import TransferlabError
from transferlab.finetune import FinetuneConfig, finetune
from transferlab.finetuning.config import resolve_config
from transferlab.finetuning.methods import get_method, method_for_version
from transferlab.finetuning.methods.setfit import (
    MAX_PAIR_EXAMPLES,
    MAX_STEPS,
    pair_examples,
    pair_schedule,
)
from transferlab.models.heads import HEAD_CONFIG, HEAD_FILE
from transferlab.models.logits import classification_metrics
from transferlab.predict import load_version_model

from .conftest import build_tiny_bert, make_sentence_transformers_model

needs_setfit = pytest.mark.skipif(
    importlib.util.find_spec("setfit") is None,
    reason="the setfit extra is not installed (pip install 'transferlab[setfit]')",
)


@pytest.fixture(scope="module")
def tiny_st_dir(tmp_path_factory, minilm_dir) -> Path:
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny-st"), minilm_dir)
    return make_sentence_transformers_model(folder)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_st_dir):
    """`transferlab run finetune -p method setfit` (papermill) on the sample data."""
    from transferlab.cli import main as cli_main

    folder = tmp_path_factory.mktemp("setfit-cli")
    registry = folder / "registry.duckdb"
    args = ["run", "finetune", "-p", "method", "setfit", "-p", "base", str(tiny_st_dir)]
    args += ["-p", "n_per_class", "6", "-p", "max_steps", "4", "-p", "batch_size", "8"]
    args += ["-p", "max_length", "32", "-p", "name", "st-setfit"]
    args += ["--registry", str(registry), "--output-dir", str(folder / "runs"), "--json"]
    code = cli_main(args)
    return code, Registry(registry)


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _test_texts(count: int = 12) -> list[str]:
    return load_labelled_data(sample_data_path("test")).texts[:count]


@pytest.mark.training
@needs_setfit
def test_setfit_through_the_template_registers_a_complete_pooled_model(
    cli_run, tiny_st_dir, run_cli, capsys
):
    code, registry = cli_run
    assert code == 0, capsys.readouterr().err
    version = registry.resolve("st-setfit:1")
    assert version.kind == "full" and version.metadata["method"] == "setfit"
    assert method_for_version(version).name == "setfit"
    assert version.metadata["head"] == "pooled" and version.metadata["pooling"]["mode"] == "mean"
    recorded = version.metadata["setfit"]
    assert recorded["body"] == "full" and recorded["steps"] == 4
    assert recorded["rule"] == "max_steps (config)" and recorded["learning_rate"] == 2e-5
    assert version.metadata["probe"]["C"] > 0
    folder = Path(version.uri)
    files = {p.name for p in folder.iterdir()}
    assert {HEAD_CONFIG, HEAD_FILE, "model.safetensors", "modules.json"} <= files
    assert "adapter_config.json" not in files

    # the body was trained: its weights are no longer the base's
    base, tuned = _weights(tiny_st_dir), _weights(folder)
    key = "encoder.layer.0.attention.self.query.weight"
    assert key in tuned and not np.allclose(base[key].numpy(), tuned[key].numpy())

    # reloaded, it scores the test split as the run did (same predictions, same loss)
    recorded_test = registry.get_run(version.run_id)["metrics"]["metrics"]["test"]
    data = load_labelled_data(sample_data_path("test"))
    logits = load_version_model(registry, version.ref).logits(data.texts)
    truth = [version.label_names.index(data.label_names[i]) for i in data.labels]
    rescored = classification_metrics(np.asarray(truth), logits)
    assert rescored["accuracy"] == pytest.approx(recorded_test["accuracy"])
    assert rescored["loss"] == pytest.approx(recorded_test["loss"], abs=1e-4)

    some = _test_texts()
    code, out, _ = run_cli("predict", version.ref, *some, "--registry", registry.path, "--json")
    assert code == 0
    expected = [version.label_names[i] for i in logits[: len(some)].argmax(axis=1)]
    assert [p["label"] for p in json.loads(out)] == expected


@pytest.mark.training
@needs_setfit
def test_setfit_lora_merges_its_adapters_into_a_complete_model(tmp_path, tiny_st_dir):
    registry = Registry(tmp_path / "registry.duckdb")
    config = FinetuneConfig(
        base=str(tiny_st_dir),
        train=sample_data_path("train"),
        test=sample_data_path("test"),
        method="setfit_lora",
        n_per_class=6,
        max_steps=4,
        batch_size=8,
        max_length=32,
        num_threads=1,
        name="st-setfit-lora",
    )
    result = finetune(config, registry, progress=False)
    version = result.version
    assert version.kind == "full" and version.metadata["setfit"]["body"] == "lora"
    assert (
        version.metadata["setfit"]["learning_rate"]
        == get_method("setfit_lora").default_learning_rate
    )
    assert result.resources["trainable_parameters"] < result.resources["total_parameters"] / 10
    folder = Path(version.uri)
    assert not (folder / "adapter_config.json").exists()
    base, tuned = _weights(tiny_st_dir), _weights(folder)
    assert set(tuned) == set(base)  # no lora_A / lora_B left: merged
    adapted = "encoder.layer.0.attention.self.query.weight"  # a LoRA target: merged update
    untouched = "encoder.layer.0.intermediate.dense.weight"  # not a target
    assert not np.allclose(base[adapted].numpy(), tuned[adapted].numpy())
    np.testing.assert_array_equal(base[untouched].numpy(), tuned[untouched].numpy())

    texts = load_labelled_data(sample_data_path("test")).texts
    logits = load_version_model(registry, version.ref).logits(texts)
    np.testing.assert_allclose(logits, result.logits["test"], atol=1e-4)
    assert list(logits.argmax(axis=1)) == list(result.logits["test"].argmax(axis=1))


@pytest.mark.parametrize(
    ("n", "classes", "batch", "steps", "iterations"),
    [
        (16, 2, 16, 40, 20),  # 8 per class: SetFit's 20 iterations, 40 steps
        (30, 5, 8, 100, 14),  # capped at max(80, 20 x 5) = 100 steps
        (320, 5, 16, 100, 3),  # the sample data: 100 steps, 3 iterations
        (384, 6, 16, 120, 3),  # TREC coarse at 64 per class
        (50 * 64, 50, 16, MAX_STEPS, 2),  # TREC fine at 64 per class: capped at 300
        (50 * 8, 50, 16, MAX_STEPS, 6),
    ],
)
def test_the_pair_rule_scales_with_examples_and_classes_and_is_capped(
    n, classes, batch, steps, iterations
):
    schedule = pair_schedule(n, classes, batch)
    assert (schedule.steps, schedule.num_iterations) == (steps, iterations)
    assert schedule.pairs == 2 * iterations * schedule.examples
    assert (
        schedule.steps * batch <= schedule.pairs <= schedule.steps * batch + 2 * schedule.examples
    )
    assert schedule.steps <= MAX_STEPS and schedule.examples <= MAX_PAIR_EXAMPLES


def test_many_classes_do_not_explode_the_pairs():
    """50 classes x 64: SetFit's default would draw 40 x 3,200 = 128,000 pairs, all pairs are
    5.1 million; the rule trains on 300 x 16 = 4,800 pairs drawn from 2,048 examples."""
    schedule = pair_schedule(50 * 64, 50, 16)
    assert schedule.steps == MAX_STEPS and schedule.examples == MAX_PAIR_EXAMPLES
    assert schedule.pairs <= 10_000
    assert pair_schedule(50 * 64, 50, 16, max_steps=7).steps == 7  # the request wins


def test_pair_examples_are_seeded_and_class_balanced_above_the_limit():
    labels = np.repeat(np.arange(50), 64)
    labels[64:74] = 0  # a larger class 0, a smaller class 1
    chosen = pair_examples(labels, 1000, seed=0)
    assert len(chosen) == 1000 and len(set(chosen.tolist())) == 1000
    counts = np.bincount(labels[chosen], minlength=50)
    assert counts.min() >= 19 and counts.max() <= 21
    assert not np.array_equal(chosen, pair_examples(labels, 1000, seed=1))
    small = pair_examples(np.array([0, 1, 0, 1]), 1000, seed=3)
    assert sorted(small.tolist()) == [0, 1, 2, 3]


def test_without_the_setfit_package_the_method_says_how_to_install_it(
    monkeypatch, tmp_path, tiny_st_dir, run_cli
):
    monkeypatch.setitem(sys.modules, "setfit", None)  # `import setfit` fails, find_spec: None
    registry = Registry(tmp_path / "registry.duckdb")
    for name in ("setfit", "setfit_lora"):
        with pytest.raises(TransferlabError, match="needs the setfit package") as caught:
            get_method(name).check_environment()
        assert "pip install 'transferlab[setfit]'" in caught.value.fix
    config = FinetuneConfig(
        base=str(tiny_st_dir), data=sample_data_path("train"), method="setfit", n_per_class=4
    )
    with pytest.raises(TransferlabError, match="needs the setfit package"):
        resolve_config(config, registry)
    # the table still lists it, and auto still resolves to a method that runs
    code, out, _ = run_cli("methods", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0 and "setfit package" in rows["setfit"]["device_needs"]
    config.method = "auto"
    assert resolve_config(config, registry).method in ("lp_ft", "linear_probe")
