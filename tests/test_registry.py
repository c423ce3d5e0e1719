"""The Registry API: schema, versions, aliases, audit, runs, results, atomicity. Tests taking the
`registry` fixture run on a DuckDB file and on a PostgreSQL database; the first three are about
the DuckDB file itself (its creation, its path, the bytes of a refused file) and stay DuckDB-only
(the PostgreSQL counterparts are in test_registry_postgres.py)."""

from __future__ import annotations

import duckdb
import pytest

from tests.conftest import database_error, is_served
from transferlab import ModelRecord, Registry
from transferlab.errors import NotFoundError, RegistryError, TransferlabError
from transferlab.registry.migrate import latest_schema_version

SERVED = True  # the registry suite: also through the service (conftest.py)


def _model(name: str = "enc", **fields) -> ModelRecord:
    base = dict(name=name, source="hf", source_ref=f"org/{name}", task="feature-extraction")
    return ModelRecord(**{**base, **fields})


def test_registry_file_is_created_on_first_use_with_the_latest_schema(tmp_path):
    path = tmp_path / "sub" / "reg.duckdb"
    registry = Registry(path)
    assert not path.exists()
    assert registry.schema_version() == latest_schema_version()
    assert path.exists()
    tables = {r["table_name"] for r in registry.query("SELECT table_name FROM duckdb_tables()")}
    assert {"models", "model_versions", "aliases", "runs", "results", "audit_log"} <= tables


def test_registry_path_comes_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_REGISTRY", str(tmp_path / "env.duckdb"))
    assert Registry().path == tmp_path / "env.duckdb"
    assert Registry(tmp_path / "explicit.duckdb").path == tmp_path / "explicit.duckdb"


def test_registry_from_a_newer_schema_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "reg.duckdb"
    Registry(path).schema_version()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version (version, name) VALUES (999, '0999_future.sql')")
    con.close()
    size_before = path.stat().st_size
    with pytest.raises(RegistryError) as caught:
        Registry(path).model_names()
    assert "schema version 999" in caught.value.problem
    assert "newer transferlab" in caught.value.problem
    assert "Upgrade" in caught.value.fix
    assert path.stat().st_size == size_before


def test_upsert_is_idempotent_and_reports_changes(registry):
    assert registry.upsert_models([_model("a"), _model("b")])["inserted"] == ["a", "b"]
    again = registry.upsert_models([_model("a"), _model("b", license="mit")])
    assert again == {"inserted": [], "updated": ["b"], "unchanged": ["a"]}
    assert registry.get_model("b")["license"] == "mit"


def test_a_failed_multi_row_write_leaves_the_registry_as_it_was(registry):
    registry.upsert_models([_model("a")])
    with pytest.raises(TransferlabError):
        registry.upsert_models([_model("c"), _model("bad", source="ftp")])
    assert registry.model_names() == ["a"]
    if is_served(registry):  # a transaction of the caller's own exists only on a database
        return
    with pytest.raises(database_error(registry)), registry.transaction() as con:
        registry.upsert_models([_model("d")], con=con)
        con.execute("INSERT INTO models (name) VALUES (NULL)")
    assert registry.model_names() == ["a"]


def test_versions_lineage_and_references(registry):
    registry.upsert_models([_model("enc"), _model("enc-intents", task="text-classification")])
    base = registry.add_version("enc", "base", "hf://org/enc")
    adapter = registry.add_version(
        "enc-intents",
        "adapter",
        "/tmp/adapter",
        parent_version_id=base.version_id,
        label_names=["billing", "refund"],
    )
    assert (base.version_id, adapter.version_id) == ("enc:1", "enc-intents:1")
    assert registry.resolve("enc-intents").label_names == ["billing", "refund"]
    assert [v.version_id for v in registry.lineage("enc-intents:1")] == ["enc-intents:1", "enc:1"]
    with pytest.raises(NotFoundError, match="enc:7 does not name a version"):
        registry.resolve("enc:7")
    with pytest.raises(NotFoundError) as caught:
        registry.resolve("enk")
    assert "Did you mean enc" in caught.value.fix
    with pytest.raises(TransferlabError, match="Invalid version"):
        registry.resolve("enc:latest")


def test_alias_moves_are_audited_with_who_when_from_to_why(registry):
    registry.upsert_models([_model("enc")])
    registry.add_version("enc", "base", "hf://org/enc")
    registry.add_version("enc", "full", "/tmp/full")
    registry.set_alias("enc:1", "production", reason="first release")
    moved = registry.set_alias("enc:2", "production", reason="better F1")
    assert moved == {"model": "enc", "alias": "production", "from": "enc:1", "to": "enc:2"}
    assert registry.resolve("enc@production").version_id == "enc:2"
    registry.remove_alias("enc", "production", reason="rollback drill")
    history = registry.history("enc")
    assert [(h["action"], h["from_version"], h["to_version"]) for h in history] == [
        ("alias.set", None, "enc:1"),
        ("alias.set", "enc:1", "enc:2"),
        ("alias.remove", "enc:2", None),
    ]
    # the claimed name on a file; a service allowing anonymous calls names `anonymous`
    assert {h["actor"] for h in history} == {"anonymous" if is_served(registry) else "pytest"}
    assert history[1]["reason"] == "better F1"
    assert all(h["occurred_at"] is not None for h in history)
    with pytest.raises(NotFoundError):
        registry.resolve("enc@production")


def test_runs_and_results_round_trip(registry):
    registry.upsert_models([_model("enc")])
    version = registry.add_version("enc", "base", "hf://org/enc")
    run_id = registry.start_run("benchmark", parameters={"suite": "s"}, data_fingerprint="abc")
    run = registry.get_run(run_id)
    assert run["status"] == "running" and run["parameters"] == {"suite": "s"}
    assert "torch" in run["package_versions"] and "duckdb" in run["package_versions"]
    rows = [
        dict(
            run_id=run_id,
            version_id=version.version_id,
            suite="s",
            dataset="d",
            split="test",
            metric=metric,
            value=value,
            n_train=64,
            seed=seed,
        )
        for metric, value in (("accuracy", 0.8), ("f1_macro", 0.7))
        for seed in (1, 2)
    ]
    assert registry.add_results(rows) == 4
    registry.finish_run(run_id, "succeeded", metrics={"accuracy": 0.8})
    assert registry.get_run(run_id)["status"] == "succeeded"
    board = registry.leaderboard("s", "accuracy")
    assert board[0]["version_id"] == "enc:1" and board[0]["score"] == pytest.approx(0.8)
    with pytest.raises(TransferlabError, match="lack value"):
        registry.add_results([dict(run_id=run_id, dataset="d", split="t", metric="m")])
    with pytest.raises(NotFoundError):
        registry.add_results([dict(run_id="nope", dataset="d", split="t", metric="m", value=1)])
    assert len(registry.results(run_id=run_id)) == 4
    with pytest.raises(TransferlabError, match="Cannot finish a run as 'running'"):
        registry.finish_run(run_id, "running")


def test_a_model_with_versions_and_aliases_can_still_be_updated(registry):
    registry.upsert_models([_model("enc", tags=["a"])])
    registry.add_version("enc", "base", "hf://org/enc")
    registry.set_alias("enc:1", "production")
    changed = registry.upsert_models([_model("enc", tags=["a", "b"], source_ref="org/enc-v2")])
    assert changed["updated"] == ["enc"]
    model = registry.get_model("enc")
    assert (model["tags"], model["source_ref"]) == (["a", "b"], "org/enc-v2")
    assert registry.resolve("enc@production").version_id == "enc:1"


def test_leaderboard_ignores_results_of_failed_runs(registry):
    registry.upsert_models([_model("enc")])
    registry.add_version("enc", "base", "hf://org/enc")
    for status, value in (("succeeded", 0.7), ("failed", 0.99)):
        run_id = registry.start_run("benchmark")
        registry.add_results(
            [
                dict(
                    run_id=run_id,
                    version_id="enc:1",
                    suite="s",
                    dataset="d",
                    split="test",
                    metric="accuracy",
                    value=value,
                )
            ]
        )
        registry.finish_run(run_id, status)
    (row,) = registry.leaderboard("s", "accuracy")
    assert row["score"] == pytest.approx(0.7) and row["n_results"] == 1
