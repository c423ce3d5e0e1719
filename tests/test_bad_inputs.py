"""Bad input through the CLI: a clear `error:` line with a fix, exit 2, and the registry unchanged.

One table of requests a new user or a careless script sends. Each must be refused with a message
(never a traceback), and a refused request changes nothing: every table of the registry reads the
same before and after.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from transferlab import Registry
from transferlab.cli import main

pytestmark = [pytest.mark.training]

TABLES = (
    "models",
    "model_versions",
    "aliases",
    "runs",
    "results",
    "profiles",
    "audit_log",
    "sweeps",
    "sweep_runs",
)


@pytest.fixture(scope="module")
def workspace(tiny_run, tmp_path_factory) -> dict[str, Path]:
    """A copy of the tiny fine-tune's registry, plus files that are wrong in different ways."""
    _, _, source = tiny_run
    folder = tmp_path_factory.mktemp("bad-inputs")
    registry = folder / "registry.duckdb"
    shutil.copy(source, registry)
    files = {"registry": registry, "folder": folder}
    (folder / "list.yaml").write_text("- a\n- b\n")
    (folder / "broken.yaml").write_text("name: [unclosed\n")
    (folder / "not_a_model").mkdir()
    (folder / "not_a_model" / "notes.txt").write_text("no config here")
    bad_config = folder / "bad_config"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{not json")
    (folder / "sweep_unknown_key.yaml").write_text(
        "name: s\ntemplate: finetune\nfixed:\n  max_step: 2\n"
    )
    (folder / "sweep_ok.yaml").write_text(
        "name: s\ntemplate: finetune\nfixed:\n  max_steps: 2\ngrid:\n  seed: [0, 1]\n"
    )
    (folder / "catalog_broken.yaml").write_text("models:\n  - name: x\n    task: [\n")
    (folder / "texts.txt").write_text("")
    return files


def snapshot(registry: Path) -> str:
    """A digest of every row of every table: equal digests mean nothing was written."""
    reg = Registry(registry)
    digest = hashlib.sha256()
    for table in TABLES:
        rows = reg.query(f"SELECT * FROM {table}")  # noqa: S608 (fixed table names)
        digest.update(json.dumps(sorted(map(repr, rows))).encode())
    return digest.hexdigest()


# (arguments, a phrase the error must contain). {registry}, {folder} are filled in per run.
CASES = [
    (["show", "no-such-model"], "no-such-model"),
    (["show", "tiny-intents:99"], "99"),
    (["show", "tiny-intents@garbage"], "garbage"),
    (["history", "no-such-model"], "no-such-model"),
    (["alias", "set", "no-such:1", "champion", "--reason", "x"], "no-such"),
    (["alias", "set", "tiny-intents:1", "bad alias!", "--reason", "x"], "alias"),
    (["alias", "remove", "tiny-intents", "never-set", "--reason", "x"], "never-set"),
    (["promote", "tiny-intents:99", "--to", "staging", "--reason", "x"], "99"),
    (["report", "finetune-nope"], "finetune-nope"),
    (["predict", "tiny-intents:1", "--file", "{folder}/missing.txt"], "missing.txt"),
    (["predict", "no-such:1", "hello"], "no-such"),
    (["predict", "tiny-intents:1", "--file", "{folder}/texts.txt"], "text"),
    (["card", "no-such"], "no-such"),
    (["profile", "no-such-model"], "no-such-model"),
    (["import", "local", "{folder}/missing-folder"], "missing-folder"),
    (["import", "local", "{folder}/list.yaml"], "folder"),
    (["import", "local", "{folder}/not_a_model"], "config.json"),
    (["import", "local", "{folder}/bad_config"], "config.json"),
    (["import", "tfhub", "not a url at all"], "tfhub"),
    (["search", "--max-params", "lots"], "lots"),
    (["search", "   "], "empty"),
    (["search", "--license", "bogus"], "bogus"),
    (["leaderboard", "--suite", "no-such-suite"], "no-such-suite"),
    (["run", "nosuchtemplate"], "nosuchtemplate"),
    (["run", "finetune", "-p", "nosuchparam", "1"], "nosuchparam"),
    (["run", "finetune", "-p", "max_steps", "[1,"], "max_steps"),
    (["run", "finetune", "-f", "{folder}/missing.yaml"], "missing.yaml"),
    (["run", "finetune", "-f", "{folder}/list.yaml"], "mapping"),
    (["run", "finetune", "-f", "{folder}/broken.yaml"], "YAML"),
    (["sweep", "{folder}/missing-sweep.yaml"], "missing-sweep.yaml"),
    (["sweep", "{folder}/sweep_unknown_key.yaml", "--dry-run"], "max_step"),
    (["sweep", "{folder}/sweep_ok.yaml", "--workers", "0"], "workers"),
    (["init", "--catalog", "{folder}/missing-catalog.yaml"], "missing-catalog.yaml"),
    (["init", "--catalog", "{folder}/catalog_broken.yaml"], "catalog_broken.yaml"),
]


@pytest.mark.parametrize(("arguments", "phrase"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_refused_with_a_message_and_changes_nothing(
    workspace, capsys, arguments, phrase
):
    values = {"registry": workspace["registry"], "folder": workspace["folder"]}
    argv = [a.format(**values) for a in arguments] + ["--registry", str(workspace["registry"])]
    before = snapshot(workspace["registry"])
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2, (code, captured.out[-500:], captured.err[-500:])
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.startswith("error:") or "error:" in captured.err, captured.err
    assert phrase.lower() in captured.err.lower(), captured.err
    assert snapshot(workspace["registry"]) == before, "a refused request changed the registry"
