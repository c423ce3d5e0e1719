"""`transferlab sync CATALOG.yaml`: a catalog file checked against the policy (every problem
with its file, line and key; nothing written while any entry is refused), diffed against the
registry, applied in one transaction, its local weights imported and profiled, idempotent, and
recorded; plus the CI workflow that runs it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import transferlab
from transferlab import Registry
from transferlab.catalog.local import count_safetensors_parameters
from transferlab.catalog.policy import check_policy, load_policy
from transferlab.catalog.seed import parse_catalog

SERVED = True  # the registry suite: also through the service (conftest.py)

REPOSITORY = Path(__file__).resolve().parents[1]
WORKFLOW = REPOSITORY / ".github" / "workflows" / "catalog-sync.yml"
TABLES = ("models", "model_versions", "profiles", "model_embeddings", "runs", "audit_log")
DESCRIPTION = "A tiny random BERT encoder, synced from the team catalog to test imports."


def catalog_text(folder: Path, parameters: int, **changes: str) -> str:
    """A catalog of a local tiny BERT (`tiny-encoder`) and a Hub encoder with no weights on this
    machine (`remote-encoder`); `changes` replace whole lines by key, e.g.
    remote_license='license: apache-2.0'."""
    lines = {
        "tiny_license": "license: apache-2.0",
        "tiny_description": f"description: {DESCRIPTION}",
        "tiny_parameters": f"parameters: {parameters}",
        "tiny_methods": "methods: [auto, lora]",
        "tiny_source_ref": f"source_ref: {folder}",
        "remote_license": "license: mit",
        "remote_description": "description: A Hub sentence encoder registered by reference.",
        **changes,
    }
    return (
        "# The team's catalog\n"
        "models:\n"
        "  - name: tiny-encoder\n"
        "    source: local\n"
        f"    {lines['tiny_source_ref']}\n"
        "    task: feature-extraction\n"
        "    architecture: BertModel\n"
        "    model_type: bert\n"
        f"    {lines['tiny_license']}\n"
        f"    {lines['tiny_parameters']}\n"
        "    languages: [en]\n"
        f"    {lines['tiny_description']}\n"
        "    tags: [tiny, test]\n"
        "    finetune:\n"
        f"      {lines['tiny_methods']}\n"
        "  - name: remote-encoder\n"
        "    source: hf\n"
        "    source_ref: example-org/remote-encoder\n"
        "    task: feature-extraction\n"
        "    architecture: BertModel\n"
        f"    {lines['remote_license']}\n"
        "    parameters: 22713216\n"
        "    languages: [en]\n"
        f"    {lines['remote_description']}\n"
    )


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line of `text` holding `fragment`."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def snapshot(path: Path) -> dict:
    """Every row of every table a sync could write, and the file's bytes."""
    registry = Registry(path)
    rows = {table: registry.query(f"SELECT * FROM {table} ORDER BY ALL") for table in TABLES}
    return {"rows": rows, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def tiny_parameters(tiny_bert_dir) -> int:
    return count_safetensors_parameters(tiny_bert_dir)


@pytest.fixture
def catalog(tmp_path, tiny_bert_dir, tiny_parameters):
    """write(**changes) -> (path, text) of the team catalog in tmp_path."""

    def write(**changes: str) -> tuple[Path, str]:
        path = tmp_path / "team_catalog.yaml"
        text = catalog_text(tiny_bert_dir, tiny_parameters, **changes)
        path.write_text(text)
        return path, text

    return write


@pytest.fixture(scope="module")
def synced(tmp_path_factory, tiny_bert_dir, tiny_parameters) -> Path:
    """A registry after a first sync of the team catalog (profiled), copied by each test."""
    from transferlab.cli import main

    folder = tmp_path_factory.mktemp("synced")
    path = folder / "team_catalog.yaml"
    path.write_text(catalog_text(tiny_bert_dir, tiny_parameters))
    registry = folder / "registry.duckdb"
    assert main(["sync", str(path), "--registry", str(registry), "--json"]) == 0
    return registry


@pytest.fixture
def reg_path(synced, tmp_path) -> Path:
    target = tmp_path / "registry.duckdb"
    shutil.copy(synced, target)
    return target


# -- checks that need no registry ---------------------------------------------------------------


def test_the_seed_catalog_meets_the_default_policy():
    catalog = parse_catalog()
    check_policy(catalog, load_policy())
    assert catalog.problems == []
    assert len(catalog.records) == 38


def test_a_refused_file_names_every_problem_and_creates_no_registry(catalog, tmp_path, run_cli):
    path, text = catalog(
        tiny_license="license: cc-by-nc-4.0",
        tiny_methods="methods: [auto, adapters]",
        remote_description="tags: [no-description]",
        remote_license="license: MIT",
    )
    registry = tmp_path / "new" / "registry.duckdb"
    code, out, err = run_cli("sync", path, "--registry", registry)
    assert code == 1 and out == ""
    expected = [
        f"{path}:{line_of(text, 'cc-by-nc-4.0')}: entry tiny-encoder: key license: "
        "cc-by-nc-4.0 is not allowed by the policy",
        f"{path}:{line_of(text, 'adapters')}: entry tiny-encoder: key finetune.methods: "
        "unknown method(s) ['adapters']",
        f"{path}:{line_of(text, 'name: remote-encoder')}: entry remote-encoder: key "
        "description: required by the policy",
        f"{path}:{line_of(text, 'license: MIT')}: entry remote-encoder: key license: 'MIT' is "
        "not written as the Hub writes licence ids; write mit.",
    ]
    lines = err.splitlines()
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, err)
    assert "license_exception: <reason>" in err  # the way out of a licence refusal
    assert lines[-1] == (
        f"sync refused: 4 problems in 2 of 2 entries of {path}; nothing was changed."
    )
    assert not registry.parent.exists()  # nothing created either


def test_a_licence_exception_with_a_reason_is_accepted_and_kept_honest(catalog, tmp_path, run_cli):
    exception = "    license_exception: research prototype, approved by legal in review 42\n"
    path, text = catalog(tiny_license="license: cc-by-nc-4.0")
    path.write_text(text.replace("    parameters:", exception + "    parameters:", 1))
    registry = tmp_path / "registry.duckdb"
    code, out, _ = run_cli("sync", path, "--dry-run", "--json", "--registry", registry)
    assert code == 0 and json.loads(out)["status"] == "planned"
    # A reason that says nothing, and an exception for an allowed licence, are refused.
    path.write_text(
        text.replace("    parameters:", "    license_exception: ok\n    parameters:", 1)
    )
    code, _, err = run_cli("sync", path, "--dry-run", "--registry", registry)
    assert code == 1 and "key license_exception: the reason 'ok' says too little" in err
    allowed = catalog()[1].replace("    parameters:", exception + "    parameters:", 1)
    path.write_text(allowed)
    code, _, err = run_cli("sync", path, "--dry-run", "--registry", registry)
    assert code == 1 and "key license_exception: not needed: the policy allows apache-2.0" in err
    assert not registry.exists()


def test_a_policy_file_lists_the_licences_and_fields_it_requires(catalog, tmp_path, run_cli):
    policy = tmp_path / "policy.yaml"
    policy.write_text("required_fields: [license, card_text]\nallowed_licenses: [mit]\n")
    path, text = catalog()
    code, _, err = run_cli("sync", path, "--dry-run", "--policy", policy)
    assert code == 1
    assert "entry tiny-encoder: key license: apache-2.0 is not allowed" in err
    assert "(allowed: mit licences)" in err
    assert "entry remote-encoder: key card_text: required by the policy (policy.yaml)" in err
    policy.write_text("required_fields: [licence]\n")
    code, _, err = run_cli("sync", path, "--dry-run", "--policy", policy)
    assert code == 2 and f"{policy}:1: catalog policy key required_fields" in err


def test_dry_run_json_shape_on_a_new_registry(catalog, tmp_path, tiny_bert_dir, run_cli):
    path, _ = catalog()
    registry = tmp_path / "registry.duckdb"
    code, out, _ = run_cli("sync", path, "--dry-run", "--json", "--registry", registry)
    assert code == 0 and not registry.exists()
    report = json.loads(out)
    assert set(report) == {
        "status", "catalog", "registry", "policy", "dry_run", "profile", "summary", "entries",
        "not_in_file", "problems", "run_id", "actor", "imported", "profiled", "failed", "embedded",
    }  # fmt: skip
    assert report["status"] == "planned" and report["dry_run"] is True
    assert report["summary"] == {
        "added": 2, "updated": 0, "unchanged": 0, "imported": 1, "profiled": 1, "refused": 0,
        "failed": 0, "not_in_file": 0,
    }  # fmt: skip
    tiny, remote = report["entries"]
    assert tiny["change"] == "add" and tiny["weights"] == "import" and tiny["profile"] is True
    assert tiny["folder"] == str(tiny_bert_dir.resolve())
    assert remote["weights"] is None and remote["note"].startswith("metadata only")
    assert report["run_id"] is None and report["problems"] == []


def test_the_ci_workflow_plans_on_pull_requests_and_syncs_main():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    catalog_file = workflow["env"]["CATALOG"]
    assert (REPOSITORY / catalog_file).is_file()
    assert catalog_file in triggers["pull_request"]["paths"]
    assert catalog_file in triggers["push"]["paths"] and triggers["push"]["branches"] == ["main"]
    assert workflow["env"]["TRANSFERLAB_REGISTRY"] == "${{ secrets.TRANSFERLAB_REGISTRY }}"
    assert workflow["env"]["TRANSFERLAB_TOKEN"] == "${{ secrets.TRANSFERLAB_TOKEN }}"
    steps = workflow["jobs"]["sync"]["steps"]
    plan = next(s for s in steps if s.get("if") == "github.event_name == 'pull_request'")
    apply = next(s for s in steps if s.get("if") == "github.event_name != 'pull_request'")
    assert 'transferlab sync "$CATALOG" --dry-run' in plan["run"]
    assert 'transferlab sync "$CATALOG" >' in apply["run"] and "--dry-run" not in apply["run"]
    assert any("pip install" in (s.get("run") or "") for s in steps)


# -- syncs that write (the real MiniLM embeds the new model cards for search) --------------------


@pytest.mark.real_model
def test_first_sync_adds_imports_and_profiles_then_a_second_sync_writes_nothing(
    catalog, tmp_path, tiny_bert_dir, run_cli
):
    path, _ = catalog()
    registry_path = tmp_path / "registry.duckdb"
    code, out, err = run_cli("sync", path, "--registry", registry_path)
    assert code == 0, err
    assert "add     tiny-encoder" in out and "import  tiny-encoder" in out
    assert "added 2, updated 0, unchanged 0, imported 1, profiled 1, refused 0" in out
    assert "metadata only: the weights are not in this machine's Hugging Face cache" in out

    registry = Registry(registry_path)
    (version,) = registry.versions("tiny-encoder")
    assert version.uri == str(tiny_bert_dir.resolve()) and version.kind == "base"
    assert registry.profiles(version.version_id)[0]["latency_ms_p50"] > 0
    (run,) = registry.runs(kind="sync")
    assert run["status"] == "succeeded" and version.metadata["synced_by"] == run["run_id"]
    assert run["parameters"]["actor"] == registry.actor
    assert run["parameters"]["catalog"] == str(path.resolve())
    events = registry.history()
    assert [(e["action"], e["model_name"]) for e in events] == [
        ("catalog.add", "tiny-encoder"),
        ("catalog.add", "remote-encoder"),
    ]
    assert registry.get_model("tiny-encoder")["origin"] == "catalog"

    before = snapshot(registry_path)
    code, out, _ = run_cli("sync", path, "--registry", registry_path)
    assert code == 0 and "nothing to change" in out
    assert "added 0, updated 0, unchanged 2, imported 0, profiled 0, refused 0" in out
    code, out, _ = run_cli("sync", path, "--registry", registry_path, "--json")
    assert code == 0 and json.loads(out)["status"] == "unchanged"
    assert snapshot(registry_path) == before  # no row, no timestamp, no byte changed


@pytest.mark.real_model
def test_an_edited_entry_is_diffed_by_key_then_applied(catalog, reg_path, run_cli):
    path, _ = catalog(
        remote_license="license: apache-2.0",
        remote_description="description: A Hub sentence encoder, now under Apache-2.0.",
    )
    before = snapshot(reg_path)
    code, out, _ = run_cli("sync", path, "--dry-run", "--registry", reg_path)
    assert code == 0 and "dry run: nothing is written" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("update")]
    assert ["update", "remote-encoder", "license", "mit", "apache-2.0"] in rows
    assert [r[:3] for r in rows] == [
        ["update", "remote-encoder", "license"],
        ["update", "remote-encoder", "description"],
    ]
    assert "planned: added 0, updated 1, unchanged 1" in out
    code, out, _ = run_cli("sync", path, "--dry-run", "--json", "--registry", reg_path)
    changes = json.loads(out)["entries"][1]["changes"]
    assert changes["license"] == {"old": "mit", "new": "apache-2.0"}
    assert snapshot(reg_path) == before

    code, out, _ = run_cli("sync", path, "--registry", reg_path)
    assert code == 0 and "added 0, updated 1, unchanged 1, imported 0, profiled 0" in out
    registry = Registry(reg_path)
    assert registry.get_model("remote-encoder")["license"] == "apache-2.0"
    models = {row["name"]: row for row in before["rows"]["models"]}
    assert registry.get_model("tiny-encoder")["updated_at"] == models["tiny-encoder"]["updated_at"]
    assert (
        registry.get_model("remote-encoder")["updated_at"] > models["remote-encoder"]["updated_at"]
    )
    update = registry.history("remote-encoder")[-1]
    assert update["action"] == "catalog.update"
    assert update["reason"].startswith("changed license, description")
    assert update["details"]["changes"]["license"] == ["mit", "apache-2.0"]
    assert len(registry.runs(kind="sync")) == 2
    code, out, _ = run_cli("sync", path, "--registry", reg_path)
    assert "nothing to change" in out


@pytest.mark.real_model
def test_a_policy_breaking_file_leaves_the_registry_byte_for_byte_unchanged(
    catalog, reg_path, run_cli
):
    path, text = catalog(
        tiny_license="license: cc-by-nc-4.0",
        tiny_description="tags: [no-description-here]",
        tiny_methods="methods: [auto, adapters]",
        remote_license="license: apache-2.0",  # a good change: refused with the rest
    )
    before = snapshot(reg_path)
    code, out, err = run_cli("sync", path, "--registry", reg_path, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["status"] == "refused" and report["summary"]["refused"] == 1
    assert report["summary"]["updated"] == 0
    found = {(p["line"], p["entry"], p["key"]) for p in report["problems"]}
    assert found == {
        (line_of(text, "cc-by-nc-4.0"), "tiny-encoder", "license"),
        (line_of(text, "name: tiny-encoder"), "tiny-encoder", "description"),
        (line_of(text, "adapters"), "tiny-encoder", "finetune.methods"),
    }
    assert all(p["message"].startswith(f"{path}:{p['line']}: ") for p in report["problems"])
    assert snapshot(reg_path) == before


@pytest.mark.real_model
def test_entries_that_contradict_their_weights_or_the_registry_are_refused(
    catalog, reg_path, tmp_path, tiny_bert_dir, run_cli
):
    moved = shutil.copytree(tiny_bert_dir, tmp_path / "elsewhere")
    path, text = catalog(tiny_source_ref=f"source_ref: {moved}", tiny_parameters="parameters: 5")
    before = snapshot(reg_path)
    code, _, err = run_cli("sync", path, "--registry", reg_path)
    assert code == 1
    assert (
        f"{path}:{line_of(text, 'source_ref: ' + str(moved))}: entry tiny-encoder: key "
        f"source_ref: tiny-encoder is registered from local {tiny_bert_dir.resolve()} with 1 "
        "version(s); a sync does not point a registered model at other weights"
    ) in err
    # A new entry whose folder is not the model it describes.
    path.write_text(text.replace("name: tiny-encoder", "name: tiny-copy"))
    code, _, err = run_cli("sync", path, "--registry", reg_path)
    assert code == 1
    assert (
        f"{path}:{line_of(text, 'parameters: 5')}: entry tiny-copy: key parameters: says 5" in err
    )
    assert snapshot(reg_path) == before


@pytest.mark.real_model
def test_no_profile_imports_and_a_later_sync_profiles(catalog, tmp_path, run_cli):
    path, _ = catalog()
    registry_path = tmp_path / "registry.duckdb"
    code, out, _ = run_cli("sync", path, "--no-profile", "--registry", registry_path)
    assert code == 0 and "imported 1, profiled 0" in out
    registry = Registry(registry_path)
    (version,) = registry.versions("tiny-encoder")
    assert registry.profiles(version.version_id) == []
    code, out, _ = run_cli("sync", path, "--dry-run", "--json", "--registry", registry_path)
    tiny = json.loads(out)["entries"][0]
    assert tiny["change"] == "unchanged" and tiny["weights"] == "profile"
    code, out, _ = run_cli("sync", path, "--registry", registry_path)
    assert code == 0 and "unchanged 2, imported 0, profiled 1" in out
    assert registry.profiles(version.version_id)


@pytest.mark.real_model
def test_a_hub_entry_with_cached_weights_is_imported_and_profiled(
    catalog, tmp_path, tiny_bert_dir, tiny_parameters, run_cli, monkeypatch
):
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    snapshot_dir = cache / "models--example-org--remote-encoder" / "snapshots" / "abc123"
    shutil.copytree(tiny_bert_dir, snapshot_dir)
    (cache / "models--example-org--remote-encoder" / "refs").mkdir()
    (cache / "models--example-org--remote-encoder" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    path, text = catalog()
    path.write_text(text.replace("parameters: 22713216", f"parameters: {tiny_parameters}"))
    registry_path = tmp_path / "registry.duckdb"
    code, out, err = run_cli("sync", path, "--registry", registry_path)
    assert code == 0, err
    assert "imported 2, profiled 2" in out
    hub, cached = Registry(registry_path).versions("remote-encoder")
    assert hub.uri == "hf://example-org/remote-encoder"
    assert cached.uri == str(snapshot_dir.resolve())
    assert cached.metadata["same_weights_as"] == hub.uri


@pytest.mark.real_model
def test_an_offline_hub_entry_is_metadata_only_and_never_waits_on_the_network(catalog, tmp_path):
    """In a separate process, offline, with a proxy that would swallow any request."""
    path, _ = catalog()
    registry = tmp_path / "registry.duckdb"
    source = str(Path(transferlab.__file__).resolve().parents[1])
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "HTTPS_PROXY": "http://10.255.255.1:9",
        "HTTP_PROXY": "http://10.255.255.1:9",
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from transferlab.cli import main; sys.exit(main())",
         "sync", str(path), "--registry", str(registry), "--no-profile", "--json"],
        capture_output=True, text=True, env=environment, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 240
    report = json.loads(result.stdout)
    remote = next(e for e in report["entries"] if e["name"] == "remote-encoder")
    assert remote["weights"] is None
    assert "HF_HUB_OFFLINE is set" in remote["note"] and "hf download" in remote["note"]
    (version,) = Registry(registry).versions("remote-encoder")
    assert version.uri == "hf://example-org/remote-encoder"
