"""`transferlab leaderboard`: versions ranked on a suite by the mean over seeds."""

from __future__ import annotations

import json

import pytest

from tests.test_promotion import BASE, MODEL, SUITE, add_benchmark, build_registry
from transferlab import Registry

SERVED = True  # the registry suite: also through the service (conftest.py)


@pytest.fixture
def board(registry: Registry) -> Registry:
    """The base and three adapters on the suite; the base on a second suite task too."""
    reg = build_registry(registry)
    add_benchmark(reg, f"{BASE}:1", {"accuracy": [0.70], "macro_f1": [0.65], "loss": [1.2]})
    add_benchmark(
        reg, f"{MODEL}:1", {"accuracy": [0.90, 0.92], "macro_f1": [0.88, 0.90], "loss": [0.4, 0.3]}
    )
    add_benchmark(
        reg,
        f"{MODEL}:2",
        {"accuracy": [0.93, 0.95, 0.94], "macro_f1": [0.92, 0.93, 0.94], "loss": [0.5] * 3},
    )
    add_benchmark(reg, f"{MODEL}:3", {"accuracy": [0.99], "macro_f1": [0.99]}, status="failed")
    add_benchmark(reg, f"{BASE}:1", {"accuracy": [0.55]}, task="short_texts")
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.6]}, suite="other_suite")
    return reg


def test_ranking_by_mean_with_spread_n_kind_parent_and_key_metrics(board, run_cli):
    code, out, err = run_cli(
        "leaderboard", "--suite", SUITE, "--task", "intents", "--registry", board.location, "--json"
    )
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["rank"], r["version_id"]) for r in rows] == [
        (1, f"{MODEL}:2"),
        (2, f"{MODEL}:1"),
        (3, f"{BASE}:1"),
    ]  # intents-lora:3's run failed: no evidence
    best = rows[0]
    assert best["mean"] == pytest.approx(0.94) and best["std"] == pytest.approx(0.01)
    assert best["n"] == 3 and best["metric"] == "accuracy"
    assert (best["suite"], best["task"], best["split"]) == (SUITE, "intents", "test")
    assert (best["kind"], best["parent_version_id"]) == ("adapter", f"{BASE}:1")
    assert list(best["metrics"]) == ["macro_f1"]  # the policy's other key metric
    assert best["metrics"]["macro_f1"]["mean"] == pytest.approx(0.93)
    assert rows[2]["std"] is None and rows[2]["n"] == 1
    assert (rows[2]["kind"], rows[2]["parent_version_id"]) == ("base", None)


def test_human_output_groups_each_suite_task_and_split(board, run_cli):
    code, out, _ = run_cli("leaderboard", "--suite", SUITE, "--registry", board.location)
    assert code == 0
    intents, short = out.strip().split("\n\n")
    lines = intents.splitlines()
    assert lines[0].startswith("support_intents/intents/test: ranked by accuracy")
    assert lines[1].split() == [
        "rank", "version", "kind", "parent", "accuracy", "±", "n", "macro_f1"
    ]  # fmt: skip
    assert lines[3].split() == ["1", f"{MODEL}:2", "adapter", f"{BASE}:1", "0.9400", "0.0100",
                                "3", "0.9300"]  # fmt: skip
    assert lines[5].split() == ["3", f"{BASE}:1", "base", "-", "0.7000", "-", "1", "0.6500"]
    assert short.splitlines()[0].startswith("support_intents/short_texts/test")
    assert f"{BASE}:1" in short.splitlines()[3] and "-" in short.splitlines()[3]


def test_a_lower_is_better_metric_ranks_ascending(board, run_cli):
    code, out, _ = run_cli(
        "leaderboard", "--suite", SUITE, "--metric", "loss", "--registry", board.location, "--json"
    )
    assert code == 0
    rows = json.loads(out)
    assert [r["version_id"] for r in rows] == [f"{MODEL}:1", f"{MODEL}:2", f"{BASE}:1"]
    assert set(rows[0]["metrics"]) == {"accuracy", "macro_f1"}


def test_a_slice_of_a_lower_is_better_metric_ranks_ascending_too(registry, run_cli):
    reg = build_registry(registry)
    for version, value in ((f"{MODEL}:1", 0.08), (f"{MODEL}:2", 0.03), (f"{MODEL}:3", 0.05)):
        add_benchmark(reg, version, {"ece[text_length=0-70]": [value], "accuracy": [0.9]})
    code, out, _ = run_cli(
        "leaderboard", "--suite", SUITE, "--metric", "ece[text_length=0-70]",
        "--registry", reg.location, "--json",
    )  # fmt: skip
    assert code == 0
    assert [r["version_id"] for r in json.loads(out)] == [f"{MODEL}:2", f"{MODEL}:3", f"{MODEL}:1"]


@pytest.mark.parametrize(
    ("args", "problem", "fix"),
    [
        (
            ["--suite", "nope"],
            "No benchmark results for suite 'nope'",
            "Suites with results: other_suite, support_intents.",
        ),
        (["--suite", SUITE, "--metric", "f2"], "has no 'f2' results", "accuracy, loss, macro_f1"),
        (["--suite", SUITE, "--task", "x"], "no results for task 'x'", "intents, short_texts"),
        (["--suite", SUITE, "--split", "dev"], "no results for split 'dev'", "Its splits: test"),
    ],
)
def test_missing_suite_metric_task_or_split_is_explained(board, run_cli, args, problem, fix):
    code, out, err = run_cli("leaderboard", *args, "--registry", board.location)
    assert code == 2 and out == ""
    assert problem in err and fix in err


def test_an_empty_registry_says_no_suite_has_results(registry, run_cli):
    build_registry(registry)
    code, _, err = run_cli("leaderboard", "--suite", SUITE, "--registry", registry.location)
    assert code == 2 and "Suites with results: none yet" in err
