"""Discovery keeps going when a candidate is broken, and never ranks or recommends a version
fine-tuned on the very examples it scores."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from transferlab import Registry, TransferlabError
from transferlab.catalog.importers import import_local
from transferlab.data import sample_data_path
from transferlab.discovery import discover
from transferlab.finetune import FinetuneConfig, finetune
from transferlab.initialize import initialize

pytestmark = [pytest.mark.real_model, pytest.mark.training]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_bert_dir):
    """Catalog + a tiny BERT + a fully fine-tuned copy of it trained on the sample data."""
    folder = tmp_path_factory.mktemp("discovery-candidates")
    registry = Registry(folder / "registry.duckdb")
    initialize(registry, profile=False)
    base = import_local(registry, tiny_bert_dir, name="tiny", profile=False)
    tuned = finetune(
        FinetuneConfig(
            base=base.ref,
            method="full",
            train=sample_data_path("train"),
            test=sample_data_path("test"),
            n_per_class=6,
            validation_fraction=0,
            max_steps=2,
            batch_size=8,
            max_length=32,
            name="tiny-intents",
            output_dir=folder / "tuned",
        ),
        registry,
        progress=False,
    )
    return registry, folder, tuned.version


def test_fine_tune_of_the_scored_data_is_listed_but_never_ranked(workspace):
    registry, _, tuned = workspace
    assert tuned.kind == "full"
    result = discover(registry=registry, max_params="5M", n_per_class=8, query="tiny encoder")
    table = result.table.set_index("model")
    row = table.loc["tiny-intents"]
    assert row["status"] == "trained on this data" and pd.isna(row["rank"])
    assert "fine-tuned on these examples" in row["why"] and tuned.run_id in row["why"]
    assert table.loc["tiny", "status"] == "scored" and table.loc["tiny", "rank"] == 1
    assert result.recommendation["base"] == "tiny:1"
    scored = {r["version_id"] for r in registry.results(run_id=result.run_id)}
    assert scored == {"tiny:1"}


def test_fine_tune_is_scored_on_data_it_was_not_trained_on(workspace):
    registry, _, tuned = workspace
    result = discover(
        registry=registry,
        data=sample_data_path("test"),
        max_params="5M",
        n_per_class=8,
        query="tiny encoder",
    )
    statuses = dict(zip(result.table["version"], result.table["status"], strict=True))
    assert statuses[tuned.version_id] == "scored" and statuses["tiny:1"] == "scored"


def test_weights_damaged_after_import_skip_that_candidate_only(workspace, tiny_bert_dir):
    registry, folder, _ = workspace
    broken = shutil.copytree(tiny_bert_dir, folder / "broken")
    import_local(registry, broken, name="tiny-broken", profile=False)
    weights = broken / "model.safetensors"
    os.truncate(weights, weights.stat().st_size - 1000)
    result = discover(registry=registry, max_params="5M", n_per_class=8, query="tiny encoder")
    table = result.table.set_index("model")
    assert table.loc["tiny-broken", "status"] == "not runnable"
    assert "could not load" in table.loc["tiny-broken", "why"]
    assert "truncated" in table.loc["tiny-broken", "why"]
    assert table.loc["tiny", "rank"] == 1 and result.recommendation["base"] == "tiny:1"
    assert registry.get_run(result.run_id)["status"] == "succeeded"


def test_search_for_an_unknown_licence_says_which_licences_exist(workspace):
    registry, _, _ = workspace
    with pytest.raises(TransferlabError) as caught:
        discover(registry=registry, license="bogus")
    assert "No registered model has the licence 'bogus'" in caught.value.problem
    assert "apache-2.0" in caught.value.fix
