"""templates/finetune.ipynb through `transferlab run`, then predict and merge on its version."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from transferlab import Registry

pytestmark = [pytest.mark.training]


def test_template_run_registers_an_adapter_with_lineage(tiny_run, tiny_bert_dir):
    code, result, registry = tiny_run
    assert code == 0, result["error"]
    assert result["status"] == "succeeded" and result["versions"] == ["tiny-intents:1"]
    reg = Registry(registry)
    version = reg.resolve("tiny-intents:1")
    assert version.kind == "adapter" and version.run_id == result["run_id"]
    assert version.parent_version_id is not None
    assert reg.resolve(version.parent_version_id).kind == "base"
    assert sorted(version.label_names) == [
        "account_access",
        "billing",
        "delivery",
        "refund",
        "technical_issue",
    ]
    run = reg.get_run(result["run_id"])
    assert run["status"] == "succeeded" and run["data_fingerprint"]
    assert run["parameters"]["max_steps"] == 6
    assert run["requested"] == {
        "base": str(tiny_bert_dir),
        "max_steps": 6,
        "batch_size": 8,
        "max_length": 32,
        "name": "tiny-intents",
    }
    assert run["parameters"]["learning_rate"] == 2e-3  # resolved: the LoRA default
    metrics = {(r["split"], r["metric"]) for r in reg.results(run_id=result["run_id"])}
    assert {("test", "accuracy"), ("test", "macro_f1")} <= metrics


def test_template_output_has_curves_scores_and_confusion_matrix(tiny_run):
    _, result, _ = tiny_run
    nb = nbformat.read(result["output_notebook"], as_version=4)
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    plotly = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    titles = {
        json.dumps(o["data"]["application/vnd.plotly.v1+json"]["layout"].get("title"))
        for o in plotly
    }
    assert any("Loss" in t for t in titles) and any("Confusion" in t for t in titles)
    assert any("Validation accuracy" in t for t in titles)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # plotly.js (4.8 MB) is left to the report's page: the notebook holds the figures' data
    assert "* plotly.js v" not in Path(result["output_notebook"]).read_text(encoding="utf-8")


def test_predict_and_merge_through_the_cli(tiny_run, run_cli):
    _, _, registry = tiny_run
    texts = ["I was charged twice", "where is my parcel"]
    code, out, _ = run_cli("predict", "tiny-intents:1", *texts, "--registry", registry, "--json")
    adapter = json.loads(out)
    assert code == 0 and [p["text"] for p in adapter] == texts
    assert all(abs(sum(p["scores"].values()) - 1) < 1e-5 for p in adapter)
    code, out, _ = run_cli("merge", "tiny-intents:1", "--registry", registry, "--json")
    merged = json.loads(out)
    assert (
        code == 0 and merged["kind"] == "merged" and merged["parent_version_id"] == "tiny-intents:1"
    )
    code, out, _ = run_cli(
        "predict", merged["version_id"], *texts, "--registry", registry, "--json"
    )
    for a, m in zip(adapter, json.loads(out), strict=True):
        assert a["label"] == m["label"]
        assert all(abs(a["scores"][k] - m["scores"][k]) < 1e-5 for k in a["scores"])


def test_bad_data_is_a_failed_run_with_its_notebook_kept(tmp_path, tiny_bert_dir, run_cli):
    data = tmp_path / "tickets.csv"
    data.write_text("message,intent\nhello,greeting\nbye,farewell\n")
    registry = tmp_path / "registry.duckdb"
    code, out, _ = run_cli(
        "run",
        "finetune",
        "-p",
        "base",
        tiny_bert_dir,
        "-p",
        "data",
        data,
        "--registry",
        registry,
        "--output-dir",
        tmp_path / "runs",
        "--json",
    )
    result = json.loads(out)
    assert code == 1 and result["status"] == "failed"
    assert "text" in result["error"] and "message" in result["error"]
    run = Registry(registry).get_run(result["run_id"])
    assert run["status"] == "failed" and run["error"] == result["error"]
    nb = nbformat.read(run["output_notebook"], as_version=4)
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert Registry(registry).query(
        "SELECT count(*) AS n FROM model_versions WHERE kind != 'base'"
    ) == [{"n": 0}]


def test_predict_without_text_explains(tiny_run, run_cli):
    _, _, registry = tiny_run
    code, _, err = run_cli("predict", "tiny-intents:1", "--registry", registry)
    assert code == 2 and "No text to classify" in err
