"""Paths a user types start where the user stands, not in the output folder the kernel runs in."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import write_template
from tests.test_sweep import _write_data
from transferlab import Registry

pytestmark = [pytest.mark.training]

PATH_NAMES = ("data", "train", "validation", "test", "output_dir", "base", "suite")


def _echo_template(path: Path) -> Path:
    """A light template with the bundled templates' path parameters: it prints what it got and
    whether each value exists from the kernel's working folder."""
    return write_template(
        path,
        "run_id = None\nregistry_path = None\n" + "".join(f"{n} = None\n" for n in PATH_NAMES),
        "import json, os\n"
        f"names = {PATH_NAMES!r}\n"
        "print(json.dumps({n: [globals()[n], globals()[n] is not None and "
        "os.path.exists(str(globals()[n]))] for n in names}))",
    )


def test_relative_paths_start_at_the_current_folder_and_are_recorded_absolute(
    tmp_path, monkeypatch, run_cli
):
    here = tmp_path / "project"
    (here / "data").mkdir(parents=True)
    (here / "data" / "tickets.csv").write_text("text,label\nhi,greeting\n")
    (here / "my-model").mkdir()
    (here / "my_suite.yaml").write_text("name: mine\n")
    template = _echo_template(tmp_path / "echo.ipynb")
    monkeypatch.chdir(here)
    code, out, err = run_cli(
        "run",
        template,
        *("-p", "train", "data/tickets.csv"),
        *("-p", "test", "./data/tickets.csv"),
        *("-p", "validation", "imdb"),  # a Hugging Face dataset id: not a path
        *("-p", "data", "hf://org/set"),
        *("-p", "output_dir", "new_out"),  # a folder that does not exist yet
        *("-p", "base", "./my-model"),
        *("-p", "suite", "my_suite.yaml"),
        *("--registry", tmp_path / "registry.duckdb"),
        *("--output-dir", tmp_path / "runs"),
        "--json",
    )
    assert code == 0, out + err
    result = json.loads(out)
    executed = nbformat.read(result["output_notebook"], as_version=4)
    seen = json.loads(executed.cells[-1].outputs[0]["text"])
    expected = {
        "train": [str(here / "data" / "tickets.csv"), True],
        "test": [str(here / "data" / "tickets.csv"), True],
        "validation": ["imdb", False],
        "data": ["hf://org/set", False],
        "output_dir": [str(here / "new_out"), False],
        "base": [str(here / "my-model"), True],
        "suite": [str(here / "my_suite.yaml"), True],
    }
    assert seen == expected
    requested = Registry(tmp_path / "registry.duckdb").get_run(result["run_id"])["requested"]
    assert requested == {name: value for name, (value, _) in expected.items()}

    # Registry names, bundled suites and Hub ids are names, not paths, when nothing here
    # has their name.
    code, out, err = run_cli(
        "run",
        template,
        *("-p", "base", "all-MiniLM-L6-v2:2"),
        *("-p", "suite", "support_intents"),
        *("-p", "data", "glue/sst2"),
        *("--registry", tmp_path / "registry.duckdb"),
        *("--output-dir", tmp_path / "runs"),
        "--json",
    )
    assert code == 0, out + err
    run = Registry(tmp_path / "registry.duckdb").get_run(json.loads(out)["run_id"])
    assert run["requested"] == {
        "base": "all-MiniLM-L6-v2:2",
        "suite": "support_intents",
        "data": "glue/sst2",
    }


def test_the_readme_finetune_example_reads_data_from_the_current_folder(
    tmp_path, monkeypatch, tiny_bert_dir, run_cli
):
    here = tmp_path / "work"
    here.mkdir()
    _write_data(here / "tickets.csv")
    (here / "existing_out").mkdir()
    (here / "existing_out" / "keep.txt").write_text("not to be overwritten")
    monkeypatch.chdir(here)
    common = [
        *("-p", "base", tiny_bert_dir),
        *("-p", "data", "tickets.csv"),
        *("-p", "max_steps", "2"),
        *("-p", "batch_size", "8"),
        *("-p", "max_length", "32"),
        *("--registry", tmp_path / "registry.duckdb"),
        *("--output-dir", tmp_path / "runs"),
        "--json",
    ]
    # An existing, non-empty output folder here is refused, not quietly replaced by one
    # under the output folder.
    code, out, _ = run_cli("run", "finetune", *common, "-p", "output_dir", "existing_out")
    refused = json.loads(out)
    assert code == 1 and str(here / "existing_out") in refused["error"]
    assert "already exists and is not empty" in refused["error"]

    code, out, err = run_cli("run", "finetune", *common, "-p", "output_dir", "new_out")
    result = json.loads(out)
    assert code == 0, result["error"] or err
    registry = Registry(tmp_path / "registry.duckdb")
    run = registry.get_run(result["run_id"])
    assert run["requested"]["data"] == str(here / "tickets.csv")
    assert run["requested"]["output_dir"] == str(here / "new_out")
    version = registry.resolve(result["versions"][0])
    assert Path(version.uri) == here / "new_out"
    assert any((here / "new_out").iterdir())
