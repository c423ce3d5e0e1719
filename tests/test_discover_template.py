"""templates/discover.ipynb through `transferlab run discover`, and its recommendation passed
straight to the finetune template."""

from __future__ import annotations

import contextlib
import io
import json

import nbformat
import pandas as pd
import pytest
import yaml

from transferlab import Registry
from transferlab.catalog.importers import import_local
from transferlab.cli import main as cli_main
from transferlab.data import sample_data_path
from transferlab.discovery import recommendation
from transferlab.initialize import initialize
from transferlab.runner import run_template

pytestmark = [pytest.mark.real_model, pytest.mark.training]

TINY = "tiny-bert"


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory, tiny_bert_dir):
    path = tmp_path_factory.mktemp("discover-template") / "registry.duckdb"
    registry = Registry(path)
    initialize(registry, profile=False)
    import_local(registry, tiny_bert_dir, name=TINY, profile=False)
    return path


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """10 messages of each intent from the sample data: a fine-tune on it takes seconds."""
    frame = pd.read_csv(sample_data_path("train"))
    path = tmp_path_factory.mktemp("data") / "intents.csv"
    frame.groupby("label").head(10).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def discover_run(registry_path, small_data, tmp_path_factory):
    """One discover run of the template, through the CLI (JSON output)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli_main(
            [
                "run",
                "discover",
                "-p",
                "data",
                str(small_data),
                "-p",
                "max_params",
                "5M",
                "-p",
                "n_per_class",
                "8",
                "--registry",
                str(registry_path),
                "--output-dir",
                str(tmp_path_factory.mktemp("runs")),
                "--json",
            ]
        )
    return code, json.loads(buffer.getvalue())


def test_cli_run_records_a_discover_run_with_its_recommendation(
    discover_run, registry_path, small_data
):
    code, result = discover_run
    assert code == 0, result["error"]
    assert result["status"] == "succeeded" and result["versions"] == []
    registry = Registry(registry_path)
    run = registry.get_run(result["run_id"])
    assert run["kind"] == "discover"
    assert run["requested"] == {"data": str(small_data), "max_params": "5M", "n_per_class": 8}
    assert result["recommendation"] == recommendation(registry, result["run_id"])
    assert result["recommendation"]["base"] == f"{TINY}:1"
    assert result["recommendation"]["data"] == str(small_data)
    metrics = {r["metric"] for r in registry.results(run_id=result["run_id"])}
    assert {"cv_accuracy", "cv_accuracy_std", "latency_p50_ms"} <= metrics


def test_output_notebook_has_the_table_charts_and_command(discover_run):
    _, result = discover_run
    nb = nbformat.read(result["output_notebook"], as_version=4)
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    titles = [
        json.dumps(o["data"]["application/vnd.plotly.v1+json"]["layout"].get("title"))
        for o in outputs
        if "application/vnd.plotly.v1+json" in o.get("data", {})
    ]
    assert any("Score against latency" in t for t in titles)
    assert any("Score against size" in t for t in titles)
    text = "".join(o.get("text", "") for o in outputs) + "".join(
        o.get("data", {}).get("text/html", "") for o in outputs
    )
    assert f"transferlab run finetune -p base {TINY}:1 -p method auto" in text
    assert "not runnable here" in text and "ranks first" in text


def test_recommendation_runs_the_finetune_template_straight(
    discover_run, registry_path, tmp_path, run_cli
):
    _, result = discover_run
    registry = Registry(registry_path)
    outcome = run_template(
        "finetune",
        recommendation(registry, result["run_id"]),
        registry=registry,
        output_dir=tmp_path / "runs",
        progress_bar=False,
    )
    assert outcome.succeeded, outcome.error
    version = registry.resolve(outcome.versions[0])
    assert version.kind == "adapter" and version.parent_version_id == f"{TINY}:1"
    assert registry.get_run(outcome.run_id)["parameters"]["learning_rate"] == 2e-3

    # The same through the shell: the recommendation as a parameter file (-p wins over it).
    params = tmp_path / "recommended.yaml"
    params.write_text(yaml.safe_dump(result["recommendation"]))
    code, out, _ = run_cli(
        "run",
        "finetune",
        "-f",
        params,
        "-p",
        "max_steps",
        "3",
        "--registry",
        registry_path,
        "--output-dir",
        tmp_path / "runs",
        "--json",
    )
    assert code == 0, out
    run = registry.get_run(json.loads(out)["run_id"])
    assert run["requested"] == {**result["recommendation"], "max_steps": 3}


def test_bad_input_is_a_failed_run_with_a_clear_error(registry_path, tmp_path, run_cli):
    code, out, _ = run_cli(
        "run",
        "discover",
        "-p",
        "query",
        "",
        "--registry",
        registry_path,
        "--output-dir",
        tmp_path,
        "--json",
    )
    result = json.loads(out)
    assert code == 1 and result["status"] == "failed"
    assert "The search text (query) is empty" in result["error"]
    assert "Traceback" not in result["error"]
