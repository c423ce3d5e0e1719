"""Every entry notebook and template runs top to bottom through papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
    (ROOT / "templates").glob("*.ipynb")
)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_are_committed_without_outputs_and_with_a_parameters_cell(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs"
    assert any("parameters" in c.metadata.get("tags", []) for c in code)


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(json.dumps(output.get("data", {})))
    return "\n".join(parts)


@pytest.mark.real_model
@pytest.mark.training
def test_explore_registry_notebook_runs_through_papermill(tmp_path):
    registry = tmp_path / "registry.duckdb"
    out = tmp_path / "explore.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "explore_registry.ipynb"),
        str(out),
        parameters={"registry_path": str(registry), "query": "multilingual embeddings"},
        cwd=str(tmp_path),
        progress_bar=False,
    )
    text = _outputs_text(nbformat.read(out, as_version=4))
    assert "runnable here: all-MiniLM-L6-v2" in text
    assert "application/vnd.plotly.v1+json" in text
    assert "multilingual" in text
    assert registry.exists()
