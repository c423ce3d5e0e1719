"""Promotion with gates (`transferlab promote`) and the audit trail it leaves (`history`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transferlab import ModelRecord, Registry, TransferlabError
from transferlab.promotion import DEFAULT_POLICY_PATH, load_policy, promote

SERVED = True  # the registry suite: also through the service (conftest.py)

BASE = "minilm"
BASE_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL = "intents-lora"
SUITE = "support_intents"
LABELS = ["account_access", "billing", "delivery", "refund", "technical_issue"]


# -- helpers shared with test_leaderboard.py and test_card.py ----------------------------------


def build_registry(
    registry: Registry,
    *,
    versions: int = 3,
    base_license: str | None = "apache-2.0",
    base_commercial: bool | None = True,
    derived_license: str | None = None,
    derived_commercial: bool | None = None,
    uri: str | Path | None = None,
) -> Registry:
    """A Hub base model and `versions` LoRA adapters of MODEL trained on it (no weights)."""
    registry.add_model(
        ModelRecord(
            name=BASE,
            source="hf",
            source_ref=BASE_HUB_ID,
            task="feature-extraction",
            license=base_license,
            commercial_use=base_commercial,
            languages=["en"],
        )
    )
    base = registry.add_version(BASE, "base", f"hf://{BASE_HUB_ID}")
    registry.add_model(
        ModelRecord(
            name=MODEL,
            source="local",
            source_ref=str(uri or "/nowhere/intents-lora"),
            task="text-classification",
            library="peft",
            license=derived_license,
            commercial_use=derived_commercial,
            description="LoRA fine-tune of minilm for support intents.",
            tags=["fine-tuned", "lora"],
        )
    )
    for _ in range(versions):
        registry.add_version(
            MODEL,
            "adapter",
            str(uri or "/nowhere/intents-lora"),
            parent_version_id=base.version_id,
            label_names=LABELS,
            metadata={"method": "lora", "adapter_format": "peft", "base_uri": base.uri},
        )
    return registry


def add_benchmark(
    registry: Registry,
    version_id: str,
    metrics: dict[str, list[float]],
    *,
    suite: str = SUITE,
    task: str = "intents",
    split: str = "test",
    status: str = "succeeded",
    kind: str = "benchmark",
) -> str:
    """One benchmark run with one result row per metric and seed (seed = list position)."""
    run_id = registry.start_run(kind, parameters={"suite": suite})
    registry.add_results(
        {
            "run_id": run_id,
            "version_id": version_id,
            "suite": suite,
            "task": task,
            "dataset": "support_intents",
            "split": split,
            "metric": metric,
            "value": value,
            "n_train": 320,
            "seed": seed,
        }
        for metric, values in metrics.items()
        for seed, value in enumerate(values)
    )
    registry.finish_run(run_id, status)
    return run_id


def write_policy(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- state the tests compare before and after ---------------------------------------------------


def _state(registry: Registry) -> tuple[list, int]:
    aliases = [(a["alias"], a["version_id"]) for a in registry.aliases(MODEL)]
    return aliases, len(registry.history())


@pytest.fixture
def reg(registry: Registry) -> Registry:
    return build_registry(registry)


@pytest.fixture
def no_staging_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default policy without the staging-before-production rule, through the env var."""
    text = DEFAULT_POLICY_PATH.read_text().replace(
        "require_staging_before_production: true", "require_staging_before_production: false"
    )
    policy = write_policy(tmp_path / "policy.yaml", text)
    monkeypatch.setenv("TRANSFERLAB_PROMOTION_POLICY", str(policy))
    return policy


def _promote(run_cli, reg: Registry, version: str, to: str, *extra: str):
    return run_cli(
        "promote", version, "--to", to, "--reason", f"test {to}", "--registry", reg.location, *extra
    )


# -- the packaged policy -----------------------------------------------------------------------


def test_packaged_policy_requires_the_intents_suite_for_text_classification():
    policy = load_policy()
    task = policy.tasks["text-classification"]
    assert task.suite == SUITE and task.metrics == ("accuracy", "macro_f1")
    assert policy.default_margin == 0.01 and policy.require_staging_before_production
    assert not policy.higher_is_better("loss") and policy.higher_is_better("macro_f1")


# -- gates that hold --------------------------------------------------------------------------


def test_promotion_to_staging_moves_the_alias_and_is_audited(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.90, 0.92], "macro_f1": [0.88, 0.90]})
    code, out, err = _promote(run_cli, reg, f"{MODEL}:1", "staging")
    assert code == 0, err
    assert f"promoted {MODEL}@staging: (unset) -> {MODEL}:1" in out
    assert "passed  evidence" in out and "accuracy 0.910 (2 seeds)" in out
    assert "nothing to compare with" in out
    assert reg.resolve(f"{MODEL}@staging").version_id == f"{MODEL}:1"
    (event,) = reg.history(MODEL)
    assert event["action"] == "promote" and event["alias"] == "staging"
    assert (event["from_version"], event["to_version"]) == (None, f"{MODEL}:1")
    assert event["reason"] == "test staging" and event["forced"] is False
    assert event["actor"] and event["occurred_at"] is not None
    assert event["details"]["failed_gates"] == [] and event["details"]["suite"] == SUITE


def test_a_version_within_the_margin_of_the_holder_passes(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.900], "macro_f1": [0.880]})
    add_benchmark(reg, f"{MODEL}:2", {"accuracy": [0.891], "macro_f1": [0.870]})  # -0.009, -0.01
    assert _promote(run_cli, reg, f"{MODEL}:1", "staging")[0] == 0
    code, out, err = _promote(run_cli, reg, f"{MODEL}:2", "staging")
    assert code == 0, err
    assert f"{MODEL}:1 -> {MODEL}:2" in out
    assert "macro_f1 0.870 vs staging 0.880 (-0.010, margin 0.01" in out


def test_production_after_staging_with_a_licence_inherited_from_the_base(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.9], "macro_f1": [0.9]})
    assert _promote(run_cli, reg, f"{MODEL}:1", "staging")[0] == 0
    code, out, err = _promote(run_cli, reg, f"{MODEL}:1", "production", "--json")
    assert code == 0, err
    promoted = json.loads(out)
    assert promoted["moved"] and not promoted["forced"] and promoted["to"] == f"{MODEL}:1"
    gates = {g["name"]: g for g in promoted["gates"]}
    assert list(gates) == ["evidence", "no_regression", "licence", "staging_first"]
    assert all(g["status"] == "passed" for g in gates.values())
    assert gates["licence"]["lines"] == [
        "licence apache-2.0 (inherited from minilm) allows commercial use"
    ]


def test_promoting_the_current_holder_changes_nothing(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.9], "macro_f1": [0.9]})
    assert _promote(run_cli, reg, f"{MODEL}:1", "staging")[0] == 0
    before = _state(reg)
    code, out, _ = _promote(run_cli, reg, f"{MODEL}@staging", "staging")
    assert code == 0 and "is already intents-lora:1: nothing to do" in out
    assert _state(reg) == before


# -- refusals ---------------------------------------------------------------------------------


def test_no_benchmark_result_refuses_and_changes_nothing(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.95]}, suite="other_suite")
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.95], "macro_f1": [0.9]}, status="failed")
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.95], "macro_f1": [0.9]}, kind="finetune")
    before = _state(reg)
    code, out, err = _promote(run_cli, reg, f"{MODEL}:1", "staging")
    assert code == 1
    assert "Refused to promote intents-lora:1 to staging: 1 gate failed; nothing changed." in err
    assert "--force" in err
    assert "FAILED  evidence" in out
    assert (
        "no accuracy, macro_f1 result for intents-lora:1 from a succeeded benchmark run on "
        "suite support_intents (required for task text-classification); it has benchmark "
        "results on: other_suite"
    ) in out
    assert "passed  no_regression  no current staging: nothing to compare with" in out
    assert _state(reg) == before


def test_a_regression_beyond_the_margin_is_refused_with_the_numbers(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.90, 0.92], "macro_f1": [0.84, 0.85]})
    add_benchmark(reg, f"{MODEL}:2", {"accuracy": [0.91, 0.91], "macro_f1": [0.80, 0.824]})
    assert _promote(run_cli, reg, f"{MODEL}:1", "staging")[0] == 0
    before = _state(reg)
    code, out, err = _promote(run_cli, reg, f"{MODEL}:2", "staging")
    assert code == 1 and "1 gate failed" in err
    assert f"{MODEL}@staging stays {MODEL}:1" in out
    assert (
        "FAILED  no_regression  macro_f1 0.812 vs staging 0.845: worse by 0.033 > margin 0.01 "
        "(support_intents/intents/test; staging is intents-lora:1; 2 vs 2 seeds)"
    ) in out
    assert "accuracy" not in out.split("no_regression")[1]  # only what failed is listed
    assert _state(reg) == before


def test_the_refusal_raised_by_the_api_lists_every_failed_gate(registry):
    reg = build_registry(registry, base_license="cc-by-nc-4.0", base_commercial=False)
    with pytest.raises(TransferlabError) as raised:
        promote(reg, f"{MODEL}:1", "production", "ship it")
    problem = raised.value.problem
    assert problem.startswith("Refused to promote intents-lora:1 to production: 3 gates failed")
    assert "  evidence: no accuracy, macro_f1 result" in problem
    assert (
        "  licence: licence cc-by-nc-4.0 of minilm, which intents-lora derives from, does not "
        "allow commercial use"
    ) in problem
    assert "  staging_first: intents-lora:1 has never been intents-lora@staging" in problem
    assert "require_staging_before_production: true" in problem
    assert reg.history() == []


def test_comparison_uses_the_same_split_and_the_mean_over_seeds(reg, run_cli):
    # The holder's higher scores are on validation only: nothing on test to compare with.
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.99], "macro_f1": [0.99]}, split="validation")
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.80], "macro_f1": [0.80]})
    reg.set_alias(f"{MODEL}:1", "staging", reason="by hand")
    # 0.79 and 0.83 average to 0.81: within 0.01 of 0.80 even though seed 0 alone is not.
    add_benchmark(reg, f"{MODEL}:2", {"accuracy": [0.79, 0.83], "macro_f1": [0.81, 0.81]})
    add_benchmark(reg, f"{MODEL}:2", {"accuracy": [0.50], "macro_f1": [0.50]}, split="validation")
    # Re-running seed 0 does not count as a third seed.
    add_benchmark(reg, f"{MODEL}:2", {"accuracy": [0.79], "macro_f1": [0.81]})
    code, out, err = _promote(run_cli, reg, f"{MODEL}:2", "staging", "--json")
    assert code == 1, err
    decision = json.loads(out)
    numbers = {
        (n["split"], n["metric"]): n
        for n in decision["gates"][1]["numbers"]  # no_regression
    }
    assert numbers[("test", "accuracy")]["value"] == pytest.approx(0.81)
    assert numbers[("test", "accuracy")]["passed"] is True
    assert numbers[("validation", "accuracy")]["worse_by"] == pytest.approx(0.49)
    assert decision["failed_gates"] == ["no_regression"]
    evidence = {(n["split"], n["metric"]): n for n in decision["gates"][0]["numbers"]}
    assert evidence[("test", "accuracy")]["n"] == 2
    assert evidence[("test", "accuracy")]["mean"] == pytest.approx(0.81)


def test_production_needs_staging_first_and_says_which_policy_option(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.9], "macro_f1": [0.9]})
    code, out, _ = _promote(run_cli, reg, f"{MODEL}:1", "production")
    assert code == 1
    assert "FAILED  staging_first" in out and "require_staging_before_production: true" in out
    assert "transferlab promote intents-lora:1 --to staging" in out


@pytest.mark.parametrize(
    ("licences", "expected"),
    [
        (
            {"base_license": "cc-by-nc-4.0", "base_commercial": False},
            "licence cc-by-nc-4.0 of minilm, which intents-lora derives from, does not allow",
        ),
        (
            {"base_license": None, "base_commercial": None},
            "no licence recorded for intents-lora or the models it derives from "
            "(intents-lora, minilm)",
        ),
        (
            {"derived_license": "acme-internal", "derived_commercial": None},
            "licence acme-internal: whether it allows commercial use is not recorded",
        ),
    ],
)
def test_production_needs_a_licence_that_allows_commercial_use(
    registry, run_cli, no_staging_rule, licences, expected
):
    reg = build_registry(registry, **licences)
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.9], "macro_f1": [0.9]})
    code, out, _ = _promote(run_cli, reg, f"{MODEL}:1", "production")
    assert code == 1 and "FAILED  licence" in out and expected in out
    assert "staging_first" not in out  # switched off by the policy in the environment
    # Staging does not look at the licence.
    assert _promote(run_cli, reg, f"{MODEL}:1", "staging")[0] == 0


def test_a_derived_licence_wins_over_the_base(registry, run_cli, no_staging_rule):
    reg = build_registry(registry, derived_license="mit", derived_commercial=True)
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.9], "macro_f1": [0.9]})
    code, out, _ = _promote(run_cli, reg, f"{MODEL}:1", "production")
    assert code == 0 and "licence mit allows commercial use" in out


# -- --force and the audit log ----------------------------------------------------------------


def test_force_moves_and_the_audit_log_records_it_as_forced(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.95], "macro_f1": [0.95]})
    add_benchmark(reg, f"{MODEL}:2", {"accuracy": [0.90], "macro_f1": [0.95]})
    assert _promote(run_cli, reg, f"{MODEL}:1", "staging")[0] == 0
    code, out, err = _promote(run_cli, reg, f"{MODEL}:2", "staging", "--force")
    assert code == 0, err
    assert out.startswith(f"FORCED {MODEL}@staging: {MODEL}:1 -> {MODEL}:2")
    assert "FAILED  no_regression  accuracy 0.900 vs staging 0.950" in out
    assert reg.resolve(f"{MODEL}@staging").version_id == f"{MODEL}:2"

    code, out, _ = run_cli("history", MODEL, "--registry", reg.location, "--json")
    events = json.loads(out)
    assert [(e["action"], e["from_version"], e["to_version"], e["forced"]) for e in events] == [
        ("promote", None, f"{MODEL}:1", False),
        ("promote", f"{MODEL}:1", f"{MODEL}:2", True),
    ]
    (failed,) = events[1]["details"]["failed_gates"]
    assert failed["gate"] == "no_regression"
    (number,) = [n for n in failed["numbers"] if not n["passed"]]
    assert number["metric"] == "accuracy" and number["worse_by"] == pytest.approx(0.05)
    assert events[1]["details"]["compared_with"] == f"{MODEL}:1"

    code, out, _ = run_cli("history", MODEL, "--registry", reg.location)
    header, _, first, second = out.splitlines()
    assert header.split() == [
        "occurred_at", "actor", "action", "model_name", "alias", "move", "reason", "forced"
    ]  # fmt: skip
    assert "promote" in first and "FORCED" not in first
    assert f"{MODEL}:1 -> {MODEL}:2" in second and "test staging" in second
    assert second.rstrip().endswith("FORCED")


def test_force_when_every_gate_holds_is_not_recorded_as_forced(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.9], "macro_f1": [0.9]})
    code, out, _ = _promote(run_cli, reg, f"{MODEL}:1", "staging", "--force")
    assert code == 0 and out.startswith("promoted")
    assert reg.history(MODEL)[0]["forced"] is False


def test_history_mixes_manual_alias_moves_and_promotions(reg, run_cli):
    add_benchmark(reg, f"{MODEL}:2", {"accuracy": [0.9], "macro_f1": [0.9]})
    run_cli(
        "alias", "set", f"{MODEL}:1", "staging", "--reason", "by hand", "--registry", reg.location
    )
    assert _promote(run_cli, reg, f"{MODEL}:2", "staging")[0] == 0
    code, out, _ = run_cli("history", "--registry", reg.location, "--json")
    assert [(e["action"], e["to_version"], e["reason"]) for e in json.loads(out)] == [
        ("alias.set", f"{MODEL}:1", "by hand"),
        ("promote", f"{MODEL}:2", "test staging"),
    ]


# -- policies and bad input -------------------------------------------------------------------


def test_policy_option_sets_suite_metrics_margins_and_direction(reg, run_cli, tmp_path):
    policy = write_policy(
        tmp_path / "strict.yaml",
        "default_margin: 0.0\n"
        "require_staging_before_production: false\n"
        "lower_is_better: [ece]\n"
        "tasks:\n"
        "  text-classification:\n"
        "    suite: intents_v2\n"
        "    metrics: [macro_f1, ece]\n"
        "    margins: {macro_f1: 0.05}\n"
        "    split: test\n",
    )
    add_benchmark(reg, f"{MODEL}:1", {"macro_f1": [0.90], "ece": [0.05]}, suite="intents_v2")
    add_benchmark(reg, f"{MODEL}:2", {"macro_f1": [0.86], "ece": [0.04]}, suite="intents_v2")
    add_benchmark(reg, f"{MODEL}:3", {"macro_f1": [0.90], "ece": [0.07]}, suite="intents_v2")
    assert _promote(run_cli, reg, f"{MODEL}:1", "staging", "--policy", policy)[0] == 0
    code, out, _ = _promote(run_cli, reg, f"{MODEL}:2", "staging", "--policy", policy)
    assert code == 0 and "(-0.040, margin 0.05;" in out  # macro_f1 within its own margin
    code, out, _ = _promote(run_cli, reg, f"{MODEL}:3", "staging", "--policy", policy)
    assert code == 1
    assert "ece 0.070 vs staging 0.040: worse by 0.030 > margin 0" in out  # lower is better


def test_a_task_the_policy_does_not_cover_is_refused(registry, run_cli, tmp_path):
    reg = build_registry(registry)
    policy = write_policy(
        tmp_path / "p.yaml", "tasks:\n  token-classification:\n    suite: ner\n    metrics: [f1]\n"
    )
    code, out, _ = _promote(run_cli, reg, f"{MODEL}:1", "staging", "--policy", policy)
    assert code == 1
    assert f"the policy {policy} names no suite for task 'text-classification'" in out
    assert "(it covers: token-classification)" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tasks: {}\n", "`tasks` must be a mapping of model task -> {suite, metrics}"),
        ("default_margin: -1\ntasks: {}\n", "`default_margin` must be a number >= 0, not -1"),
        (
            "require_staging_before_prod: true\ntasks: {}\n",
            "`require_staging_before_prod` must be one of",
        ),
        (
            "tasks:\n  text-classification:\n    suite: s\n    metrics: accuracy\n",
            "`tasks.text-classification.metrics` must be a non-empty list of metric names",
        ),
        (
            "tasks:\n  t:\n    suite: s\n    metrics: [a]\n    margins: {a: big}\n",
            "`tasks.t.margins.a` must be a number >= 0, not 'big'",
        ),
        ("tasks: [\n", "is not valid YAML"),
    ],
)
def test_bad_policy_files_name_the_file_and_key(reg, run_cli, tmp_path, text, expected):
    policy = write_policy(tmp_path / "bad.yaml", text)
    before = _state(reg)
    code, out, err = _promote(run_cli, reg, f"{MODEL}:1", "staging", "--policy", policy)
    assert code == 2 and out == ""
    assert str(policy) in err and expected in err and "fix:" in err
    assert _state(reg) == before


def test_a_missing_policy_file_from_the_environment_is_named(reg, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_PROMOTION_POLICY", str(tmp_path / "gone.yaml"))
    code, _, err = _promote(run_cli, reg, f"{MODEL}:1", "staging")
    assert code == 2
    assert "gone.yaml (from TRANSFERLAB_PROMOTION_POLICY) does not exist" in err


def test_unknown_versions_and_missing_reasons_are_clear_errors(reg, run_cli):
    code, _, err = _promote(run_cli, reg, f"{MODEL}:9", "staging")
    assert code == 2 and "intents-lora:9 does not name a version" in err
    with pytest.raises(SystemExit):  # argparse: --reason is required
        run_cli("promote", f"{MODEL}:1", "--to", "staging", "--registry", reg.location)
    with pytest.raises(SystemExit):
        run_cli("promote", f"{MODEL}:1", "--to", "champion", "--reason", "x")
    with pytest.raises(TransferlabError, match="needs a reason"):
        promote(reg, f"{MODEL}:1", "staging", "  ")
    with pytest.raises(TransferlabError, match="Cannot promote to 'champion'"):
        promote(reg, f"{MODEL}:1", "champion", "why not")
    assert reg.history() == []
