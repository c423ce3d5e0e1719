"""Sparse saves (transferlab.sparse_saves): a sweep run's output notebook is saved when the run
starts and ends and every few seconds, not at every cell, and still whatever way the run ends:
succeeded, failed in a cell, or its kernel died."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import write_template
from transferlab import Registry
from transferlab.runner import run_template

pytestmark = pytest.mark.training

# The second cell looks at the output notebook on disk: was the first cell's output saved?
LOOK = """\
import json, os, pathlib
saved = pathlib.Path(f"{run_id}.ipynb").read_text()
output = "first cell ran" + chr(92) + "n"  # as the saved JSON holds the printed line
pathlib.Path(f"{run_id}.json").write_text(json.dumps(output in saved))
if end == "fail":
    raise ValueError("boom")
if end == "die":
    os._exit(1)
"""


def _template(folder: Path) -> Path:
    path = write_template(folder / "saves.ipynb", "end = 'ok'\n", "print('first cell ran')")
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(LOOK))
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize(
    ("end", "every_cell", "status"),
    [
        ("ok", True, "succeeded"),
        ("ok", False, "succeeded"),
        ("fail", False, "failed"),
        ("die", False, "failed"),
    ],
)
def test_a_sweep_run_saves_its_notebook_at_the_end_not_at_every_cell(
    tmp_path, end, every_cell, status
):
    registry = Registry(tmp_path / "registry.duckdb")
    outcome = run_template(
        str(_template(tmp_path)),
        {"end": end},
        registry=registry,
        output_dir=tmp_path,
        progress_bar=False,
        save_every_cell=every_cell,
    )
    assert outcome.status == status, outcome.error
    first_cell_saved_before_second = json.loads((tmp_path / f"{outcome.run_id}.json").read_text())
    assert first_cell_saved_before_second == every_cell
    # The notebook on disk is the whole run, however it ended.
    saved = nbformat.read(outcome.output_notebook, as_version=4)
    outputs = [o.get("text", "") for c in saved.cells if c.cell_type == "code" for o in c.outputs]
    assert "first cell ran\n" in outputs
    if end == "fail":
        errors = [o for c in saved.cells if c.cell_type == "code" for o in c.outputs]
        assert any(o.get("ename") == "ValueError" for o in errors)
