"""method: auto resolves, at config resolution, to a concrete method from the training examples
per class (methods/auto.py's rule), and the run records what it chose and why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from transferlab import Registry
from transferlab.data import sample_data_path
from transferlab.finetune import FinetuneConfig, finetune, resolve_config
from transferlab.finetuning.methods import get_method, method_names
from transferlab.finetuning.methods.auto import FALLBACK, FINETUNE, choose

from .conftest import make_sentence_transformers_model


@pytest.fixture(scope="module")
def st_bert_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    folder = tmp_path_factory.mktemp("tiny-st-bert-auto") / "model"
    shutil.copytree(tiny_bert_dir, folder)
    return make_sentence_transformers_model(folder, normalize=False)


def test_the_rule():
    many = {"a": 8, "b": 8}
    assert choose(many, finetune_available=True).method == FINETUNE
    assert choose(many, finetune_available=True).settings == {"early_stopping_patience": None}
    assert choose({"a": 8, "b": 1}, finetune_available=True).method == FALLBACK
    assert choose(many, finetune_available=False).method == FALLBACK
    blocked = choose(many, finetune_available=True, finetune_blocked="no Linear modules")
    assert blocked.method == FALLBACK and "no Linear modules" in blocked.because


def test_auto_is_in_the_table_and_never_trains_itself():
    method = get_method("auto")
    assert "auto" in method_names()
    with pytest.raises(Exception, match="not resolved"):
        method.prepare(None, [])


@pytest.mark.training
def test_auto_on_the_sample_data_records_its_choice_and_reason(tmp_path, st_bert_dir):
    registry = Registry(tmp_path / "registry.duckdb")
    config = FinetuneConfig(
        base=str(st_bert_dir),
        train=sample_data_path("train"),
        test=sample_data_path("test"),
        method="auto",
        n_per_class=4,
        max_length=32,
        output_dir=tmp_path / "out",
    )
    result = finetune(config, registry, progress=False)
    expected = FINETUNE if FINETUNE in method_names() else FALLBACK
    auto = registry.get_run(result.run_id)["parameters"]["auto"]
    assert auto["chose"] == expected == result.method
    assert auto["classes"] == 5 and set(auto["examples_per_class"].values()) == {4}
    assert auto["because"]
    assert result.version.metadata["method"] == expected  # the concrete method, never 'auto'
    if expected == FINETUNE:
        resolved = registry.get_run(result.run_id)["parameters"]
        assert resolved["early_stopping_patience"] is None
        assert resolved["setting_sources"]["early_stopping_patience"] == "auto"


@pytest.mark.training
def test_auto_with_one_example_in_a_class_picks_the_probe(tmp_path, st_bert_dir):
    frame = pd.read_csv(sample_data_path("train"))
    refund = frame[frame["label"] == "refund"].head(1)
    frame = pd.concat([frame[frame["label"] != "refund"].head(40), refund])
    registry = Registry(tmp_path / "registry.duckdb")
    config = FinetuneConfig(
        base=str(st_bert_dir),
        train=frame,
        test=sample_data_path("test"),
        validation_fraction=0.0,
        method="auto",
        max_length=32,
    )
    resolved = resolve_config(config, registry)
    assert resolved.method == FALLBACK
    assert resolved.auto["examples_per_class"]["refund"] == 1
    assert "fewer than 2" in resolved.auto["because"] and "refund" in resolved.auto["because"]
    result = finetune(config, registry, progress=False)
    assert result.version.metadata["method"] == FALLBACK
    assert registry.get_run(result.run_id)["parameters"]["auto"]["chose"] == FALLBACK
