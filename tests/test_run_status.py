"""One rule for a run's status (`transferlab.run_status`): under the papermill runner the
runner finishes the run after the whole notebook has executed, so a cell failing after the
training cell fails the run; called from Python, the call finishes its own run."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import nbformat
import pytest

from transferlab import Registry
from transferlab.cli import main as cli_main
from transferlab.runner import template_path

pytestmark = [pytest.mark.training]

FAILURE = "the report step broke after training"


def _finetune_template_failing_at_the_end(folder: Path) -> Path:
    nb = nbformat.read(template_path("finetune"), as_version=4)
    status = "print('status after training:', registry.get_run(run_id)['status'])"
    nb.cells.append(nbformat.v4.new_code_cell(status))
    nb.cells.append(nbformat.v4.new_code_cell(f"raise RuntimeError({FAILURE!r})"))
    path = folder / "finetune.ipynb"  # the finetune template's name: its parameters are typed
    nbformat.write(nb, path)
    return path


def test_a_template_whose_last_cell_fails_after_training_ends_failed(tmp_path, tiny_bert_dir):
    template = _finetune_template_failing_at_the_end(tmp_path)
    registry_path = tmp_path / "registry.duckdb"
    arguments = ["run", str(template), "-p", "base", str(tiny_bert_dir), "-p", "max_steps", "2"]
    arguments += ["-p", "batch_size", "8", "-p", "max_length", "32", "-p", "name", "tiny-late"]
    arguments += ["--registry", str(registry_path), "--output-dir", str(tmp_path / "runs")]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main([*arguments, "--json"])
    assert code != 0
    outcome = json.loads(buffer.getvalue())
    assert outcome["status"] == "failed" and FAILURE in outcome["error"]
    registry = Registry(registry_path)
    run = registry.get_run(outcome["run_id"])
    assert run["status"] == "failed" and FAILURE in run["error"]
    assert run["finished_at"] is not None
    # the training cell did run: its metrics and its version are recorded on the failed run
    assert run["metrics"]["version_id"] == "tiny-late:1" and run["metrics"]["confusion_matrix"]
    assert registry.resolve("tiny-late:1").run_id == outcome["run_id"]
    notebook = nbformat.read(run["output_notebook"], as_version=4)  # the output notebook is kept
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[-1]["evalue"] == FAILURE
    printed = [o.get("text", "") for c in notebook.cells for o in c.get("outputs", [])]
    assert "status after training: running\n" in printed  # not finished by the training cell


def test_a_python_call_finishes_its_own_run(tmp_path, tiny_bert_dir):
    from transferlab.data import sample_data_path
    from transferlab.finetune import FinetuneConfig, finetune

    registry = Registry(tmp_path / "registry.duckdb")
    config = FinetuneConfig(
        base=str(tiny_bert_dir),
        train=sample_data_path("train"),
        test=sample_data_path("test"),
        max_steps=2,
        batch_size=8,
        max_length=32,
        output_dir=tmp_path / "model",
    )
    result = finetune(config, registry, progress=False)
    run = registry.get_run(result.run_id)
    assert run["status"] == "succeeded" and run["finished_at"] is not None and run["metrics"]
