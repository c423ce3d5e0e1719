"""Discovery as a library: shortlist, cross-validated scores, ranking, recommendation, records
and bad input, on a registry with the catalog, the installed MiniLM and a tiny random BERT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transferlab import Registry, TransferlabError
from transferlab.catalog.importers import import_local
from transferlab.discovery import DiscoveryConfig, discover, finetune_command, recommendation
from transferlab.discovery.ranking import Outcome, rank_table
from transferlab.discovery.scoring import Score, cross_validate_probe, cv_folds
from transferlab.discovery.shortlist import Candidate, build_shortlist
from transferlab.initialize import initialize
from transferlab.runner import parse_cli_value

TINY = "tiny-bert"


@pytest.fixture(scope="module")
def registry(tmp_path_factory, tiny_bert_dir) -> Registry:
    registry = Registry(tmp_path_factory.mktemp("discovery") / "registry.duckdb")
    initialize(registry, profile=False)
    import_local(registry, tiny_bert_dir, name=TINY, profile=False)
    return registry


def _config(**fields) -> DiscoveryConfig:
    return DiscoveryConfig(**{"n_per_class": 8, **fields}).checked()


# -- shortlist --------------------------------------------------------------------------------


@pytest.mark.real_model
def test_shortlist_scores_local_models_and_lists_hub_ones_with_the_reason(registry):
    shortlist = build_shortlist(registry, _config(query="small English sentence encoder"))
    runnable = [c.name for c in shortlist if c.reason is None]
    listed = {c.name: c.reason for c in shortlist if c.reason}
    assert sorted(runnable) == ["all-MiniLM-L6-v2", TINY]
    assert 1 <= len(listed) <= 5
    assert all("Hub" in reason and "offline" in reason for reason in listed.values())
    tasks = {c.row["task"] for c in shortlist}
    assert tasks <= {"feature-extraction", "fill-mask", "text-classification"}
    # Semantic order: similarities never increase down the list.
    similarities = [c.similarity for c in shortlist]
    assert similarities == sorted(similarities, reverse=True)


@pytest.mark.real_model
def test_shortlist_without_runnable_here_keeps_the_best_matches_whatever_their_weights(registry):
    shortlist = build_shortlist(
        registry, _config(query="multilingual encoder", runnable_here=False, shortlist=3)
    )
    assert len(shortlist) == 3
    assert any(c.reason and c.reason.startswith("not runnable here") for c in shortlist)
    assert "multilingual" in shortlist[0].name.lower()


@pytest.mark.real_model
def test_filters_narrow_the_shortlist(registry):
    shortlist = build_shortlist(registry, _config(max_params="5M"))
    assert [c.name for c in shortlist if c.reason is None] == [TINY]
    assert all((c.row["parameters"] or 0) <= 5_000_000 for c in shortlist)
    commercial = build_shortlist(registry, _config(license="commercial", runnable_here=False))
    assert all(c.row["commercial_use"] for c in commercial)


# -- scoring ----------------------------------------------------------------------------------


def test_cross_validation_separates_clusters_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    centres = rng.normal(size=(3, 16)) * 10
    separable = centres[labels] + rng.normal(size=(30, 16))
    scores = cross_validate_probe(separable, labels)
    assert scores["folds"] == 5
    assert scores["cv_accuracy"] == 1.0 and scores["cv_accuracy_std"] == 0.0
    noise = cross_validate_probe(rng.normal(size=(30, 16)), labels)
    assert noise["cv_accuracy"] < 0.7 and noise["cv_accuracy_std"] > 0


def test_folds_follow_the_smallest_class():
    assert cv_folds([0, 0, 0, 1, 1, 1, 1, 1, 1]) == 3
    assert cv_folds([0] * 10 + [1] * 12) == 5
    with pytest.raises(TransferlabError, match="one class"):
        cv_folds([1, 1, 1])


# -- ranking ----------------------------------------------------------------------------------


def _outcome(name: str, accuracy: float, latency: float, params: int = 1000) -> Outcome:
    candidate = Candidate(name, {"parameters": params}, f"{name}:1", "/x", None, True)
    score = Score(accuracy, 0.05, accuracy, 0.05, 5, latency, "measured", 0, 0, 0)
    return Outcome(candidate, score)


def test_ranking_breaks_ties_by_latency_and_leaves_slow_models_unranked():
    outcomes = [
        _outcome("slow-tie", 0.9, 20.0),
        _outcome("fast-tie", 0.9, 5.0),
        _outcome("best-but-too-slow", 0.95, 80.0),
        _outcome("weak", 0.6, 1.0),
        Outcome(Candidate("hub-only", {}, "hub-only:1", "hf://x/y", None, False, "offline")),
    ]
    outcomes[-1].status, outcomes[-1].why = "not runnable", "offline"
    table = rank_table(outcomes, max_latency_ms=50)
    assert table["model"].tolist() == [
        "fast-tie",
        "slow-tie",
        "weak",
        "best-but-too-slow",
        "hub-only",
    ]
    assert table["rank"].tolist()[:3] == [1, 2, 3]
    assert table["rank"].isna().tolist()[3:] == [True, True]
    assert table.loc[3, "status"] == "too slow" and "max_latency_ms=50" in table.loc[3, "why"]


# -- the whole run ----------------------------------------------------------------------------


@pytest.mark.real_model
def test_discover_scores_records_and_recommends(registry):
    result = discover(registry=registry, max_params="5M", n_per_class=8, query="tiny encoder")
    table = result.table
    scored = table[table["status"] == "scored"]
    assert scored["model"].tolist() == [TINY] and scored["rank"].tolist() == [1]
    row = scored.iloc[0]
    assert 0 <= row["cv_accuracy"] <= 1 and row["cv_accuracy_std"] >= 0
    assert row["latency_p50_ms"] > 0 and row["latency_source"] == "measured"
    assert (table["status"] == "not runnable").any()
    assert table.loc[table["status"] == "not runnable", "why"].str.contains("Hub").all()

    run = registry.get_run(result.run_id)
    assert run["kind"] == "discover" and run["status"] == "succeeded"
    results = pd.DataFrame(registry.results(run_id=result.run_id))
    assert set(results["metric"]) == {
        "cv_accuracy",
        "cv_accuracy_std",
        "cv_macro_f1",
        "cv_macro_f1_std",
        "latency_p50_ms",
    }
    assert set(results["version_id"]) == {f"{TINY}:1"}
    assert set(results["split"]) == {"cv"} and set(results["n_train"]) == {40}
    assert set(results["dataset"]) == {"support_intents"}
    stored = results.set_index("metric")["value"]
    assert stored["cv_accuracy"] == pytest.approx(row["cv_accuracy"])

    rec = recommendation(registry, result.run_id)
    assert rec == result.recommendation
    assert rec["base"] == f"{TINY}:1" and rec["method"] == "auto"  # the default: LP-FT here
    assert rec["learning_rate"] == 2e-3 and rec["target_modules"] == ["query", "value"]
    assert rec["lora_r"] == 8 and rec["max_length"] == 128
    assert "epochs" not in rec  # auto scales them to the data the fine-tune gets
    assert "data" not in rec  # the sample data: the finetune template's own default

    command = finetune_command(rec)
    assert command.startswith(f"transferlab run finetune -p base {TINY}:1 -p method auto")
    assert parse_cli_value("[query, value]") == ["query", "value"]
    figures = result.figures()
    assert figures["score_vs_latency"].data[0].x[0] == pytest.approx(row["latency_p50_ms"])


@pytest.mark.real_model
def test_own_data_is_passed_on_to_the_recommendation(registry, tmp_path):
    data = tmp_path / "tickets.csv"
    rows = ["message,intent\n"] + [
        f"{word} number {i},{label}\n"
        for i in range(6)
        for word, label in (("refund please", "money"), ("parcel late", "post"))
    ]
    data.write_text("".join(rows))
    result = discover(
        registry=registry,
        data=data,
        text_column="message",
        label_column="intent",
        n_per_class=4,
        max_params="5M",
    )
    rec = result.recommendation
    assert rec["data"] == str(data)
    assert rec["text_column"] == "message" and rec["label_column"] == "intent"
    assert result.data["examples"] == 8 and result.data["dataset"] == "tickets"


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.real_model
def test_nothing_matches_names_the_filter_that_removed_most(registry):
    with pytest.raises(TransferlabError) as caught:
        discover(registry=registry, max_params="1K", license="commercial")
    message = str(caught.value)
    assert "max_params=1000 filter removes the most" in message
    assert "Raise max_params" in message
    failed = registry.runs(kind="discover", status="failed")[0]
    assert "No model matches" in failed["error"]


@pytest.mark.real_model
def test_one_class_is_refused(registry, tmp_path):
    data = tmp_path / "one.csv"
    data.write_text("text,label\n" + "".join(f"text {i},only\n" for i in range(10)))
    with pytest.raises(TransferlabError, match="only one class"):
        discover(registry=registry, data=data, max_params="5M")


@pytest.mark.real_model
def test_empty_query_and_bad_numbers_are_refused(registry):
    with pytest.raises(TransferlabError, match="search text .query. is empty"):
        discover(registry=registry, query="   ")
    with pytest.raises(TransferlabError, match="Invalid n_per_class=1"):
        discover(registry=registry, n_per_class=1)
    with pytest.raises(
        TransferlabError, match="Discovery cannot score task 'image-classification'"
    ):
        discover(registry=registry, task="image-classification")


@pytest.mark.real_model
def test_latency_limit_that_no_model_meets(registry):
    with pytest.raises(TransferlabError, match="No shortlisted model meets max_latency_ms"):
        discover(registry=registry, max_params="5M", max_latency_ms=1e-6)
    run = registry.runs(kind="discover", status="failed")[0]
    assert run["metrics"]["table"][0]["status"] == "too slow"
    with pytest.raises(TransferlabError, match="made no recommendation"):
        recommendation(registry, run["run_id"])
