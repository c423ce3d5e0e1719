"""The model picker driven headlessly: filter values in, table, selection and parameters out."""

from __future__ import annotations

import pytest

from transferlab import Registry
from transferlab.catalog.importers import import_local
from transferlab.initialize import initialize
from transferlab.widgets import ModelPicker, finetune_parameters

pytestmark = [pytest.mark.real_model]

TINY = "tiny-bert"
RUN_SETTINGS = {"max_steps": 4, "batch_size": 8, "max_length": 32, "name": "tiny-picked"}


@pytest.fixture(scope="module")
def picker_registry(tmp_path_factory, tiny_bert_dir) -> Registry:
    """The curated catalog, the installed MiniLM and a tiny random BERT with weights here."""
    registry = Registry(tmp_path_factory.mktemp("picker") / "registry.duckdb")
    initialize(registry, profile=False)
    import_local(registry, tiny_bert_dir, name=TINY, profile=True)
    registry.set_alias(f"{TINY}:1", "champion", reason="picker test")
    return registry


@pytest.fixture
def picker(picker_registry, tmp_path) -> ModelPicker:
    return ModelPicker(picker_registry, run_parameters=RUN_SETTINGS, output_dir=tmp_path / "runs")


def test_every_model_is_listed_until_a_filter_narrows_the_table(picker, picker_registry):
    total = len(picker_registry.model_names())
    assert len(picker.outcome.rows) == total
    assert picker.selected == picker.outcome.names[0]
    assert "transferlab-picker-results" in picker.results.value

    picker.runnable_here.value = True
    assert sorted(picker.outcome.names) == ["all-MiniLM-L6-v2", TINY]
    assert all(row["runnable"] for row in picker.outcome.rows)
    assert picker.results.value.count("<tr data-name=") == 2

    picker.license.value = "commercial"  # the tiny model's card names no licence
    assert picker.outcome.names == ["all-MiniLM-L6-v2"]
    assert picker.selected == "all-MiniLM-L6-v2"

    picker.license.value = "any"
    picker.source.value = "local"
    assert picker.outcome.names == [TINY]
    picker.source.value = "any"
    picker.runnable_here.value = False
    picker.task.value = "image-classification"
    assert picker.outcome.rows
    assert {row["task"] for row in picker.outcome.rows} == {"image-classification"}
    assert "all-MiniLM-L6-v2" not in picker.results.value


def test_selection_fills_the_detail_panel(picker):
    picker.runnable_here.value = True
    picker.select(TINY)
    html = picker.details_html.value
    assert picker.details.model["name"] == TINY
    assert picker.version.options == (f"{TINY}:1",)
    assert picker.version.value == f"{TINY}:1"
    assert "champion" in html  # aliases
    assert "latency_ms_p50" in html and "not profiled" not in html  # profile
    assert "Versions and lineage" in html
    assert 'data-name="tiny-bert"' in picker.results.value
    with pytest.raises(Exception, match="not among the models shown"):
        picker.select("bert-base-uncased")


def test_small_settings_keep_their_significant_digits(picker):
    picker.select("all-MiniLM-L6-v2")
    html = picker.details_html.value
    assert "<td" in html and ">5e-05<" in html  # full_learning_rate, not "0.000"
    assert ">0.002<" in html  # learning_rate
    assert ">0.000<" not in html


def test_no_match_says_which_filter_removed_the_most(picker):
    picker.runnable_here.value = True
    picker.max_params.value = "1K"
    assert picker.outcome.rows == []
    assert "the max_params filter alone removes" in picker.message
    assert "max_params filter" in picker.results.value
    assert picker.selected is None
    assert picker.details_html.value == ""
    assert picker.use_button.disabled


def test_bad_size_and_empty_search_text_are_messages_not_exceptions(picker):
    picker.max_params.value = "lots"
    assert "Invalid parameter count 'lots'" in picker.message
    assert picker.outcome.is_error
    picker.max_params.value = "150M"
    assert picker.outcome.rows and not picker.outcome.is_error

    picker.search("   ")
    assert "The search text is empty" in picker.message
    assert picker.outcome.rows == []
    picker.runnable_here.value = True  # the next change searches without the empty text again
    assert "all-MiniLM-L6-v2" in picker.outcome.names


def test_search_text_ranks_by_similarity(picker):
    picker.query.value = "multilingual sentence embeddings for many languages"
    picker.search_button.click()
    rows = picker.outcome.rows
    assert rows and all(row["score"] is not None for row in rows)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert "multilingual" in rows[0]["name"]
    assert "<th" in picker.results.value and "score" in picker.results.value
    picker.query.value = ""  # clearing the box drops the ranking
    assert all(row["score"] is None for row in picker.outcome.rows)


def test_use_this_model_fills_the_finetune_parameters(picker):
    picker.select("all-MiniLM-L6-v2")
    assert picker.version.value == "all-MiniLM-L6-v2:2"  # the local version, not hf://
    assert picker.run_button.disabled
    picker.use_button.click()
    params = picker.finetune_parameters
    assert params == {
        "base": "all-MiniLM-L6-v2:2",
        "method": "auto",  # the default method
        "batch_size": 8,
        "epochs": 5,
        "learning_rate": 0.002,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "lora_r": 8,
        "max_length": 32,
        "target_modules": ["query", "value"],
        "max_steps": 4,
        "name": "tiny-picked",
    }
    assert not picker.run_button.disabled
    assert "learning_rate" in picker.parameters_html.value

    picker.version.value = "all-MiniLM-L6-v2:1"  # the hub reference
    picker.use_button.click()
    assert picker.finetune_parameters["base"] == "all-MiniLM-L6-v2:1"
    assert "not on this machine" in picker.parameters_html.value


def test_run_finetune_from_the_picker_records_a_run_and_ends_the_progress(picker, picker_registry):
    picker.runnable_here.value = True
    picker.select(TINY)
    picker.use_button.click()
    assert picker.finetune_parameters["base"] == f"{TINY}:1"
    seen: list[int] = []
    picker.progress.bar.observe(lambda change: seen.append(change["new"]), names="value")
    steps: list[tuple[str, int, int]] = []  # the step bar's (unit, value, max) as it moved
    step_bar = picker.progress.step_bar
    step_bar.observe(
        lambda change: steps.append((step_bar.description, step_bar.value, step_bar.max)),
        names="value",
    )

    picker.run_button.click()
    assert picker.progress.running and picker.run_button.disabled
    outcome = picker.progress.wait(timeout=240)

    assert outcome is not None and outcome.succeeded, picker.progress.status.value
    run = picker_registry.get_run(outcome.run_id)
    assert run["status"] == "succeeded" and run["kind"] == "finetune"
    assert run["parameters"]["base_version_id"] == f"{TINY}:1"
    assert picker.progress.bar.value == picker.progress.bar.max
    assert picker.progress.bar.bar_style == "success"
    assert len(set(seen)) >= 3, seen  # it moved cell by cell, not only at the end
    assert ("step", 4, 4) in steps, steps  # and through the training's steps inside a cell
    assert outcome.run_id in picker.progress.status.value
    assert outcome.output_notebook.is_file()

    picker.refresh()
    picker.select("tiny-picked")
    version = picker.details.versions[-1]
    assert version["lineage"] == [version["version_id"], f"{TINY}:1"]
    assert "tiny-bert:1" in picker.details_html.value
    assert picker.details.results  # the run's scores per split


def test_the_picker_resolves_its_request_as_the_run_does(picker_registry):
    """The picker's parameters come from the one resolution the run uses: what `auto` derives
    from the data (the scaled schedule) is left to the run, and every setting it spells out is
    the value the run resolves."""
    from transferlab.finetuning.config import resolve_config
    from transferlab.parameters import finetune_config

    params = finetune_parameters(picker_registry, "all-MiniLM-L6-v2:2", {"name": "tiny-resolved"})
    resolved = resolve_config(finetune_config(params), picker_registry)
    assert "epochs" not in params and resolved.setting_sources["epochs"].startswith("auto")
    for key in ("lora_r", "learning_rate", "max_length", "batch_size", "target_modules"):
        assert params[key] == getattr(resolved, key), key
