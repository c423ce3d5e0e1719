"""Experiment trackers through the finetune template, with the real packages: an MLflow run in
a local store, a W&B run in offline mode and TensorBoard event files, each named after the
transferlab run, with its parameters, curves, final scores per split and registered version."""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

import pytest

from transferlab import Registry
from transferlab.data import sample_data_path
from transferlab.errors import TransferlabError
from transferlab.finetune import FinetuneConfig, finetune

TRACKER_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_ALLOW_FILE_STORE",
    "MLFLOW_EXPERIMENT_NAME",
    "WANDB_DIR",
    "WANDB_PROJECT",
    "TENSORBOARD_LOGGING_DIR",
)


@pytest.fixture(autouse=True)
def clean_tracker_env(monkeypatch, tmp_path):
    for name in TRACKER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRANSFERLAB_OUTPUTS", str(tmp_path / "outputs"))


def _run_template(run_cli, tmp_path: Path, base: Path, report_to: str) -> tuple[dict, Registry]:
    registry_path = tmp_path / "registry.duckdb"
    code, out, _ = run_cli(
        "run", "finetune", "-p", "base", base, "-p", "report_to", report_to, "-p", "method", "lora",
        "-p", "n_per_class", "4", "-p", "max_steps", "4", "-p", "batch_size", "8",
        "-p", "max_length", "32", "--registry", registry_path,
        "--output-dir", tmp_path / "runs", "--json",
    )  # fmt: skip
    outcome = json.loads(out)
    assert (code, outcome["status"]) == (0, "succeeded"), outcome["error"]
    return outcome, Registry(registry_path)


def _scores(registry: Registry, run_id: str) -> dict[str, float]:
    return {
        f"final/{r['split']}/{r['metric']}": r["value"] for r in registry.results(run_id=run_id)
    }


@pytest.mark.training
def test_mlflow_gets_a_run_named_after_the_transferlab_run_in_a_local_store(
    tmp_path, tiny_bert_dir, run_cli, monkeypatch
):
    outcome, registry = _run_template(run_cli, tmp_path, tiny_bert_dir, "mlflow")
    run = registry.get_run(outcome["run_id"])
    store = (tmp_path / "runs" / "mlruns").as_uri()
    assert run["parameters"]["tracker"]["tracking_uri"] == store

    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read the file store back
    client = MlflowClient(tracking_uri=store)
    tracked = client.get_run(run["parameters"]["tracker"]["run_id"])
    assert tracked.info.run_name == outcome["run_id"] and tracked.info.status == "FINISHED"
    assert client.get_experiment(tracked.info.experiment_id).name == "transferlab"
    params, tags, metrics = tracked.data.params, tracked.data.tags, tracked.data.metrics
    assert params["transferlab.method"] == "lora" and params["transferlab.max_steps"] == "4"
    assert params["transferlab.base"] == str(tiny_bert_dir)
    assert tags["transferlab.run_id"] == outcome["run_id"]
    assert tags["transferlab.data_fingerprint"] == run["data_fingerprint"]
    assert tags["transferlab.version_id"] == outcome["versions"][0]
    assert outcome["versions"][0] in tags["mlflow.note.content"]
    for name, value in _scores(registry, outcome["run_id"]).items():
        assert metrics[name] == pytest.approx(value)
    assert {"final/train/accuracy", "final/validation/macro_f1", "final/test/loss"} <= set(metrics)
    # the Trainer's curves, per step
    assert len(client.get_metric_history(tracked.info.run_id, "eval_loss")) >= 2
    assert client.get_metric_history(tracked.info.run_id, "loss")


@pytest.mark.training
def test_a_tracking_uri_the_user_sets_wins(tmp_path, tiny_bert_dir, monkeypatch):
    store = (tmp_path / "team-store").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "intents")
    config = FinetuneConfig(
        base=str(tiny_bert_dir),
        train=sample_data_path("train"),
        n_per_class=2,
        validation_fraction=0,
        max_steps=1,
        max_length=32,
        report_to="mlflow",
    )
    result = finetune(config, Registry(tmp_path / "registry.duckdb"), progress=False)
    tracker = result.parameters["tracker"]
    assert tracker["tracking_uri"] == store
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    tracked = client.get_run(tracker["run_id"])
    assert tracked.info.run_name == result.run_id
    assert client.get_experiment(tracked.info.experiment_id).name == "intents"
    assert not (tmp_path / "outputs").exists()


def _wandb_records(path: Path):
    """The records of a .wandb file (a LevelDB-style log of protobuf records after a 7-byte
    ':W&B' header): wandb 0.31 has no API that reads offline runs back."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk  # full/first, middle/last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


@pytest.mark.training
def test_wandb_offline_run_carries_the_run_id_params_curves_scores_and_version(
    tmp_path, tiny_bert_dir, run_cli, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    outcome, registry = _run_template(run_cli, tmp_path, tiny_bert_dir, "wandb")
    tracker = registry.get_run(outcome["run_id"])["parameters"]["tracker"]
    run_dir = Path(tracker["run_dir"])
    assert run_dir.parent == tmp_path / "runs" / "wandb" and tracker["url"] is None
    records = list(_wandb_records(run_dir / f"run-{tracker['run_id']}.wandb"))

    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert runs[-1].display_name == outcome["run_id"] and runs[-1].project == "transferlab"
    assert f"version:{outcome['versions'][0]}" in runs[-1].tags
    config = {u.key: json.loads(u.value_json) for u in runs[0].config.update}
    assert config["transferlab"]["method"] == "lora" and config["transferlab"]["max_steps"] == 4
    history = [
        {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert any("train/loss" in step for step in history)
    assert sum("eval/loss" in step for step in history) >= 2
    summary = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            for u in record.summary.update:
                summary["/".join(u.nested_key) or u.key] = json.loads(u.value_json)
    for name, value in _scores(registry, outcome["run_id"]).items():
        assert summary[name] == pytest.approx(value)
    assert summary["transferlab/version_id"] == outcome["versions"][0]
    assert (
        summary["transferlab/data_fingerprint"]
        == registry.get_run(outcome["run_id"])["data_fingerprint"]
    )
    exits = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert exits and exits[-1].exit_code == 0


@pytest.mark.training
def test_tensorboard_events_are_kept_beside_the_output_notebook(tmp_path, tiny_bert_dir, run_cli):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    outcome, registry = _run_template(run_cli, tmp_path, tiny_bert_dir, "tensorboard")
    logs = tmp_path / "runs" / f"{outcome['run_id']}-tensorboard"
    assert Path(outcome["output_notebook"]).parent == logs.parent
    run = registry.get_run(outcome["run_id"])
    assert run["parameters"]["tracker"] == {"tracker": "tensorboard", "logging_dir": str(logs)}
    events = EventAccumulator(str(logs))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "eval/loss"} <= scalars
    assert len(events.Scalars("eval/loss")) >= 2
    for name, value in _scores(registry, outcome["run_id"]).items():
        assert events.Scalars(name)[-1].value == pytest.approx(value)
    texts = set(events.Tags()["tensors"])
    assert {"transferlab/text_summary", "transferlab/version/text_summary"} <= texts


@pytest.mark.parametrize("report_to", ["mlflow", "wandb", "tensorboard"])
def test_a_missing_tracker_package_fails_before_training_naming_the_extra(
    tmp_path, tiny_bert_dir, monkeypatch, report_to
):
    monkeypatch.setitem(sys.modules, report_to, None)  # as if it were not installed
    registry = Registry(tmp_path / "registry.duckdb")
    config = FinetuneConfig(
        base=str(tiny_bert_dir), train=sample_data_path("train"), report_to=report_to
    )
    started = time.perf_counter()
    with pytest.raises(TransferlabError, match=rf"pip install 'transferlab\[{report_to}\]'"):
        finetune(config, registry, progress=False)
    assert time.perf_counter() - started < 10
    (run,) = registry.runs()
    assert run["status"] == "failed" and f"transferlab[{report_to}]" in run["error"]
    assert registry.query("SELECT * FROM model_versions") == []


def test_a_tracking_store_mlflow_refuses_fails_before_training(
    tmp_path, tiny_bert_dir, monkeypatch
):
    """A store MLflow cannot open used to fail inside the Trainer. (A sqlite URI was the case
    met first, but mlflow-skinny opens it once SQLAlchemy is installed, as optuna brings it.)"""
    uri = "unknownscheme://nowhere/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    registry = Registry(tmp_path / "registry.duckdb")
    config = FinetuneConfig(
        base=str(tiny_bert_dir), train=sample_data_path("train"), report_to="mlflow"
    )
    with pytest.raises(
        TransferlabError, match="Cannot start an MLflow run in unknownscheme"
    ) as caught:
        finetune(config, registry, progress=False)
    assert "MLFLOW_TRACKING_URI" in caught.value.fix
    (run,) = registry.runs()
    assert run["status"] == "failed" and uri in run["error"]
    assert registry.query("SELECT * FROM model_versions") == []
    assert not (tmp_path / "models").exists()  # refused before the output folder is made
