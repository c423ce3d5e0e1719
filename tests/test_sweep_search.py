"""Search strategies (random, bayes), a study kept in the registry, and pruning (schema 5)."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest

from tests.conftest import write_template
from tests.test_sweep import _running, _started, _sweep_cli, _wait_for, _write_yaml
from transferlab import Registry
from transferlab.sweeps import load_sweep

# A light template: its "validation loss" is a known function of x and k; it waits for a gate
# file when given one (so a test can stop a sweep while runs are in flight).
SCORE_BODY = """
import math, pathlib, time
from transferlab import Registry
deadline = time.time() + 120
while gate and not pathlib.Path(gate).exists() and time.time() < deadline:
    time.sleep(0.2)
loss = (math.log10(x) + 3) ** 2 + k / 10
Registry(registry_path).update_run(run_id, metrics={"metrics": {"validation": {"loss": loss}}})
"""


def _score_template(folder: Path) -> Path:
    parameters = "run_id = None\nregistry_path = None\ngate = ''\nx = 0.5\nk = 1\nseed = 0"
    return write_template(folder / "score.ipynb", parameters, SCORE_BODY)


def _search_file(folder: Path, strategy: str, budget: int, gate: str = "") -> Path:
    template = _score_template(folder)
    return _write_yaml(
        folder / f"{strategy}.yaml",
        f"template: {template}\n"
        f"strategy: {strategy}\n"
        f"budget: {budget}\n"
        "seed: 3\n"
        f"fixed: {{gate: '{gate}'}}\n"
        "grid: {seeds: [7]}\n"  # a one-item grid: fixed, as a choice the sampler draws
        "search:\n"
        "  x: {log_uniform: [1.0e-5, 1.0]}\n"
        "  k: {choice: [1, 5]}\n"
        "objective: {metric: validation_loss, direction: minimize}\n",
    )


# -- the sweep file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("strategy: smart\nsearch: {learning_rate: {uniform: [0.1, 1]}}\n", ["strategy", "smart"]),
        ("strategy: random\nsearch: {learning_rate: {uniform: [0.1, 1]}}\n", ["budget", "line 1"]),
        (
            "strategy: bayes\nbudget: 4\nsearch:\n  learning_rate: {log_uniform: [0, 1]}\n",
            ["line 4", "search.learning_rate", "not above 0"],
        ),
        (
            "strategy: bayes\nbudget: 4\nsearch:\n  learning_rate: {normal: [0, 1]}\n",
            ["search.learning_rate", "log_uniform"],
        ),
        (
            "strategy: random\nbudget: 2\nsearch:\n  lora_rank: {choice: [4, 8]}\n",
            ["search.lora_rank", "unknown parameter"],
        ),
        (
            "strategy: random\nbudget: 2\nsearch:\n  lora_r: {int_uniform: [4, 8.5]}\n",
            ["search.lora_r", "8.5"],
        ),
        (
            "strategy: random\nbudget: 2\nsearch: {lora_r: {choice: [4, 8]}}\n"
            "objective: {metric: test_accuracy}\npruning: {rule: median}\n",
            ["line 5", "pruning", "validation"],
        ),
        (
            "strategy: random\nbudget: 2\nsearch: {lora_r: {choice: [4, 8]}}\n"
            "pruning: {rule: median, patience: 3}\n",
            ["pruning.patience", "unknown key"],
        ),
        ("grid: {seeds: [0]}\nbudget: 3\n", ["budget", "strategy: random or bayes"]),
        (
            "strategy: random\nbudget: 2\nsearch: {lora_r: {choice: [4, 8]}}\n"
            "runs:\n  - {seed: 1}\n",
            ["runs", "strategy: grid"],
        ),
    ],
)
def test_bad_search_settings_are_refused_before_any_run(tmp_path, run_cli, text, expected):
    sweep = _write_yaml(tmp_path / "bad.yaml", text)
    registry = tmp_path / "registry.duckdb"
    code, out, err = run_cli("sweep", sweep, "--registry", registry)
    assert code == 2, out + err
    assert str(sweep) in err
    for part in expected:
        assert part in err, (part, err)
    assert not registry.exists() or Registry(registry).runs() == []


def test_a_search_file_is_read_with_its_defaults(tmp_path):
    sweep = _write_yaml(
        tmp_path / "lr.yaml",
        "strategy: bayes\nbudget: 12\nfixed: {max_steps: 4}\n"
        "search:\n  learning_rate: {log_uniform: [1.0e-5, 1.0e-2]}\n  lora_r: {choice: [4, 8]}\n"
        "pruning: {rule: asha, min_resource: 2}\n",
    )
    search = load_sweep(sweep).search
    assert search.strategy == "bayes" and search.budget == 12 and search.seed == 0
    assert (search.objective.metric, search.objective.direction) == ("validation_loss", "minimize")
    assert [(d.parameter, d.distribution) for d in search.dimensions] == [
        ("learning_rate", "log_uniform"),
        ("lora_r", "choice"),
    ]
    assert search.pruning.rule == "asha" and search.pruning.min_resource == 2


def test_a_dry_run_of_a_search_shows_its_space_and_budget(tmp_path, run_cli):
    sweep = _write_yaml(
        tmp_path / "lr.yaml",
        "strategy: random\nbudget: 5\nsearch: {learning_rate: {log_uniform: [1.0e-5, 1.0e-2]}}\n",
    )
    registry = tmp_path / "registry.duckdb"
    code, out, err = run_cli("sweep", sweep, "--dry-run", "--json", "--registry", registry)
    assert code == 0, err
    described = json.loads(out)
    assert (described["strategy"], described["budget"], described["to_run"]) == ("random", 5, 5)
    assert described["search"] == {"learning_rate": {"log_uniform": [1e-5, 1e-2]}}
    assert not registry.exists()


# -- random and bayes: the budget, drawn from the space, resumed ---------------------------------


@pytest.mark.training
@pytest.mark.parametrize("strategy", ["random", "bayes"])
def test_an_interrupted_search_resumes_its_study_to_the_budget(tmp_path, strategy):
    """Stopped with two runs in flight, the next invocation rebuilds the study from the
    registry, tries the interrupted parameters again, and ends at the budget."""
    gate = tmp_path / "open"
    sweep = _search_file(tmp_path, strategy, budget=3, gate=str(gate))
    registry_path = tmp_path / "registry.duckdb"
    with _started(sweep, registry_path, tmp_path) as process:
        _wait_for(lambda: len(_running(registry_path)) == 2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    registry = Registry(registry_path)
    interrupted = [r["requested"] for r in registry.runs(status="interrupted")]
    assert len(interrupted) == 2 and registry.runs(status="running") == []

    gate.touch()
    completed = _sweep_cli(sweep, registry_path, tmp_path, "--workers", "2")
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["counts"] == {"succeeded": 3}
    finished = [r for r in registry.search_trials(strategy) if r["status"] == "succeeded"]
    assert len(finished) == 3
    drawn = [r["requested"] for r in finished]
    for earlier in interrupted:  # tried again first
        assert earlier in drawn
    for parameters in drawn:  # drawn from the file's space, the grid's one item kept
        assert 1e-5 <= parameters["x"] <= 1.0 and parameters["k"] in (1, 5)
        assert parameters["seed"] == 7
        loss = finished[drawn.index(parameters)]["metrics"]["metrics"]["validation"]["loss"]
        assert math.isclose(loss, (math.log10(parameters["x"]) + 3) ** 2 + parameters["k"] / 10)
    assert len({p["x"] for p in drawn}) == 3  # no draw repeated after the resume

    again = _sweep_cli(sweep, registry_path, tmp_path)  # the budget is spent: nothing runs
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["counts"] == {"succeeded": 3}
    assert len(registry.search_trials(strategy)) == 5  # 3 succeeded + 2 interrupted


# -- pruning -------------------------------------------------------------------------------------


@pytest.mark.training
def test_a_run_far_worse_than_the_others_is_pruned_with_its_step_and_no_version(
    tmp_path, tiny_bert_dir
):
    sweep = _write_yaml(
        tmp_path / "pruned.yaml",
        f"fixed: {{base: {tiny_bert_dir}, method: full, max_steps: 8, batch_size: 8, "
        "max_length: 32, n_per_class: 16}\n"
        "runs:\n"  # one after the other: a sane rate first, then one that blows up
        "  - {learning_rate: 1.0e-4, seed: 0}\n"
        "  - {learning_rate: 5.0, seed: 1}\n"
        "pruning: {rule: median, startup_runs: 1}\n",
    )
    registry_path = tmp_path / "registry.duckdb"
    completed = _sweep_cli(sweep, registry_path, tmp_path, "--workers", "1")
    summary = json.loads(completed.stdout)
    counts = summary["counts"]
    assert counts == {"succeeded": 1, "pruned": 1}, completed.stderr
    assert completed.returncode == 0, completed.stderr
    registry = Registry(registry_path)
    pruned = registry.runs(status="pruned")
    for run in pruned:
        assert run["parameters"]["learning_rate"] == 5.0
        assert 0 < run["pruned_step"] < 8
        assert registry.run_version_ids(run["run_id"]) == []
        scores = registry.training_scores([run["run_id"]])
        assert scores[-1]["step"] == run["pruned_step"]
        assert scores[-1]["metric"] == "validation_loss"
    by_status = {row["status"]: row for row in summary["runs"]}
    assert by_status["pruned"]["pruned_step"] == pruned[0]["pruned_step"]
    assert by_status["pruned"]["version"] is None


# -- migration 5 ---------------------------------------------------------------------------------


def test_a_schema_4_registry_upgrades_and_keeps_its_runs_versions_and_results(registry_location):
    from transferlab.registry.migrate import available_migrations

    if registry_location.startswith("http"):
        pytest.skip("a service migrates its own database (the duckdb and postgresql cases)")
    engine = "duckdb" if "://" not in registry_location else "postgresql"
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect(registry_location)
    else:
        import psycopg

        con = psycopg.connect(registry_location, autocommit=True)
    run = con.execute
    run("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")  # fmt: skip
    for number, name, sql in available_migrations(engine):
        if number <= 4:
            run(sql)
            run(f"INSERT INTO schema_version (version, name) VALUES ({number}, '{name}')")
    run(
        "INSERT INTO models (name, source, source_ref, task, content_hash) "
        "VALUES ('old', 'hf', 'org/old', 'feature-extraction', 'x')"
    )
    run(
        "INSERT INTO runs (run_id, kind, status, requested, host, pid, process_start) "
        "VALUES ('old-run', 'finetune', 'succeeded', '{}', 'h', 7, 'boot/1/2')"
    )
    run(
        "INSERT INTO model_versions (version_id, model_name, version, kind, run_id) "
        "VALUES ('old:1', 'old', 1, 'base', NULL), ('old:2', 'old', 2, 'adapter', 'old-run')"
    )
    run("UPDATE model_versions SET parent_version_id = 'old:1' WHERE version_id = 'old:2'")
    run("INSERT INTO aliases (model_name, alias, version_id) VALUES ('old', 'staging', 'old:2')")
    run(
        "INSERT INTO results (run_id, version_id, dataset, split, metric, value) "
        "VALUES ('old-run', 'old:2', 'd', 'test', 'accuracy', 0.75)"
    )
    con.close()
    registry = Registry(registry_location)
    assert registry.schema_version() == 5
    kept = registry.get_run("old-run")
    assert kept["status"] == "succeeded" and kept["process_start"] == "boot/1/2"
    assert registry.run_version_ids("old-run") == ["old:2"]
    assert registry.alias_holder("old", "staging") == "old:2"
    assert [r["value"] for r in registry.results(run_id="old-run")] == [0.75]
    # what schema 5 adds: a pruned run with its step, and the scores of training
    new = registry.start_run("finetune")
    registry.record_training_score(new, 3, "validation_loss", 1.5)
    registry.record_training_score(new, 3, "validation_loss", 1.25)  # the newer value wins
    registry.update_run(new, pruned_step=3)
    registry.finish_run(new, "pruned", error="Pruned at step 3")
    assert registry.get_run(new)["pruned_step"] == 3
    assert [r["run_id"] for r in registry.runs(status="pruned")] == [new]
    assert [(r["step"], r["value"]) for r in registry.training_scores([new])] == [(3, 1.25)]
    new_result = registry.start_run("benchmark")  # the results sequence goes on
    assert new_result and registry.get_run(new_result)["status"] == "running"


def test_a_sweep_is_never_finished_as_pruned(registry):
    sweep_id = registry.start_sweep("s")
    with pytest.raises(Exception, match="Cannot finish a sweep as 'pruned'"):
        registry.finish_sweep(sweep_id, "pruned")
    assert registry.get_sweep(sweep_id)["status"] == "running"


def test_the_cli_lists_pruned_runs(tmp_path, run_cli):
    registry = Registry(tmp_path / "registry.duckdb")
    run_id = registry.start_run("finetune")
    registry.finish_run(run_id, "pruned")
    code, out, err = run_cli("runs", "--status", "pruned", "--registry", registry.path, "--json")
    assert code == 0, err
    assert [r["run_id"] for r in json.loads(out)] == [run_id]


# -- the pruning rule, judged from the registry's records ----------------------------------------


def _scored_sweep(tmp_path, rule: dict, finished: dict[str, list[float]]) -> Registry:
    """A sweep with pruning `rule` whose runs `finished` (name -> losses at steps 2, 4, ...)
    succeeded with their last loss as the objective."""
    registry = Registry(tmp_path / "registry.duckdb")
    spec = {"search": {"strategy": "grid", "objective": {"metric": "validation_loss",
            "direction": "minimize"}, "pruning": rule}}  # fmt: skip
    sweep_id = registry.start_sweep("scored", spec=spec)
    for losses in finished.values():
        run_id = registry.start_run("finetune", sweep_id=sweep_id)
        for i, loss in enumerate(losses):
            registry.record_training_score(run_id, 2 * (i + 1), "validation_loss", loss)
        metrics = {"metrics": {"validation": {"loss": losses[-1]}}}
        registry.finish_run(run_id, "succeeded", metrics=metrics)
    return registry


@pytest.mark.parametrize(
    ("rule", "losses", "pruned"),
    [
        ({"rule": "median", "startup_runs": 2}, [1.5], True),
        ({"rule": "median", "startup_runs": 2}, [0.5], False),
        ({"rule": "median", "startup_runs": 3}, [1.5], False),  # too few finished runs yet
        ({"rule": "median", "startup_runs": 1, "warmup_steps": 4}, [1.5], False),  # warming up
        ({"rule": "median", "startup_runs": 1, "warmup_steps": 4}, [1.5, 1.5], True),
        ({"rule": "asha", "min_resource": 2, "reduction_factor": 2}, [1.5], True),
        ({"rule": "asha", "min_resource": 2, "reduction_factor": 2}, [0.1], False),
    ],
)
def test_the_pruning_rule_judges_a_run_against_the_sweeps_other_runs(
    tmp_path, rule, losses, pruned
):
    from transferlab.finetuning.pruning import should_prune
    from transferlab.sweeps.search import Objective, Pruning

    registry = _scored_sweep(tmp_path, rule, {"a": [1.0, 0.8], "b": [1.1, 0.9]})
    sweep_id = registry.latest_sweep("scored")["sweep_id"]
    run_id = registry.start_run("finetune", sweep_id=sweep_id)
    for i, loss in enumerate(losses):
        registry.record_training_score(run_id, 2 * (i + 1), "validation_loss", loss)
    objective = Objective("validation_loss", "minimize")
    assert should_prune(registry, run_id, "scored", objective, Pruning(**rule)) is pruned
