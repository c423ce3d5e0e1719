"""Fine-tuning on tiny random BERTs: LoRA, full and linear probe train, register versions with
exact lineage, reload to identical predictions; bad requests fail before training and leave a
failed run. One slow test fine-tunes the real MiniLM on the sample data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from transferlab import ModelRecord, Registry
from transferlab.catalog.importers import load_seed_catalog, register_local_folder
from transferlab.catalog.local import inspect_local_model
from transferlab.data import load_labelled_data, sample_data_path
from transferlab.errors import DataError, ModelSourceError, TransferlabError
from transferlab.finetune import FinetuneConfig, finetune, resolve_config
from transferlab.predict import load_version_model

INTENTS = ["account_access", "billing", "delivery", "refund", "technical_issue"]
PICKLES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _config(base: str, **overrides) -> FinetuneConfig:
    """Small and quick: 6 examples per intent, 2 epochs, short sequences."""
    settings = dict(
        base=base,
        train=sample_data_path("train"),
        test=sample_data_path("test"),
        n_per_class=6,
        validation_fraction=0.1,
        max_length=32,
        batch_size=8,
        epochs=2,
    )
    return FinetuneConfig(**{**settings, **overrides})


def _register_tiny(registry: Registry, folder: Path, name: str = "tiny-bert", **fields):
    record = inspect_local_model(folder, name=name)
    for key, value in {"license": "apache-2.0", "commercial_use": True, **fields}.items():
        setattr(record, key, value)
    return register_local_folder(registry, record, folder)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_bert_dir):
    folder = tmp_path_factory.mktemp("finetune")
    registry = Registry(folder / "registry.duckdb")
    base = _register_tiny(registry, tiny_bert_dir)
    return registry, base


@pytest.fixture(scope="module")
def trained(workspace):
    registry, base = workspace
    return {
        method: finetune(_config(base.ref, method=method), registry, progress=False)
        for method in ("lora", "full", "linear_probe")
    }


@pytest.fixture(scope="module")
def test_texts() -> list[str]:
    return load_labelled_data(sample_data_path("test")).texts


# -- what a successful run registers ----------------------------------------------------------


@pytest.mark.training
def test_lora_registers_an_adapter_version_with_exact_lineage(workspace, trained):
    registry, base = workspace
    result = trained["lora"]
    version = registry.resolve(result.ref)
    assert version.kind == "adapter"
    assert version.parent_version_id == base.version_id
    assert version.run_id == result.run_id
    assert version.label_names == INTENTS
    assert version.metadata["method"] == "lora"
    assert version.metadata["adapter_format"] == "peft"
    assert version.metadata["id2label"] == {str(i): name for i, name in enumerate(INTENTS)}
    assert version.metadata["label2id"] == {name: i for i, name in enumerate(INTENTS)}
    assert version.metadata["base_uri"] == base.uri
    assert version.metadata["target_modules"] == ["query", "value"]
    assert [v.version_id for v in registry.lineage(result.ref)][-1] == base.version_id

    model = registry.get_model(version.model_name)
    assert version.model_name == "tiny-bert-support_intents-lora"
    assert (model["task"], model["source"], model["origin"]) == (
        "text-classification",
        "local",
        "derived",
    )
    assert (model["license"], model["commercial_use"]) == ("apache-2.0", True)

    files = {p.name for p in result.output_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "transferlab.json"} <= files
    assert "tokenizer.json" in files
    assert not [p for p in result.output_dir.rglob("*") if p.suffix in PICKLES]


@pytest.mark.training
def test_the_run_records_parameters_fingerprint_and_metrics(workspace, trained):
    registry, _ = workspace
    result = trained["lora"]
    run = registry.get_run(result.run_id)
    assert (run["kind"], run["status"], run["error"]) == ("finetune", "succeeded", None)
    params = run["parameters"]
    assert params["method"] == "lora" and params["learning_rate"] == 2e-3
    assert params["setting_sources"]["learning_rate"] == "default"
    assert params["setting_sources"]["max_length"] == "config"
    assert params["base_version_id"] == "tiny-bert:1"
    assert params["data"]["splits"]["train"]["examples"] == 30
    assert len(run["data_fingerprint"]) == 64
    assert {"torch", "transformers", "peft"} <= run["package_versions"].keys()
    assert run["metrics"]["version_id"] == result.version_id
    assert run["metrics"]["timings"]["train_s"] > 0

    rows = registry.results(run_id=result.run_id)
    assert {(r["split"], r["metric"]) for r in rows} == {
        (split, metric)
        for split in ("train", "validation", "test")
        for metric in ("accuracy", "macro_f1", "loss")
    }
    assert {r["version_id"] for r in rows} == {result.version_id}
    assert {(r["dataset"], r["n_train"], r["seed"]) for r in rows} == {("support_intents", 30, 0)}
    test_accuracy = next(r for r in rows if (r["split"], r["metric"]) == ("test", "accuracy"))
    assert test_accuracy["value"] == pytest.approx(result.metrics["test"]["accuracy"])


@pytest.mark.training
def test_the_result_holds_curves_confusion_and_costs(trained):
    result = trained["lora"]
    splits = {record["split"] for record in result.history}
    assert splits == {"train", "validation"}
    assert all(record["loss"] > 0 for record in result.history)
    matrix = np.asarray(result.confusion_matrix)
    assert matrix.shape == (5, 5) and matrix.sum() == 105
    assert result.label_names == INTENTS
    assert result.timings["train_samples_per_s"] > 0
    assert result.resources["peak_rss_mb"] > 0
    assert 0 <= result.resources["padding_share"] < result.resources["padding_share_fixed_length"]
    assert result.resources["train_examples_seen"] == 30 * 2
    validation = [record for record in result.history if record["split"] == "validation"]
    best = min(validation, key=lambda record: record["loss"])
    assert result.resources["best_step"] == best["step"]
    # The best weights, not the last, are what was evaluated and saved.
    assert result.metrics["validation"]["loss"] == pytest.approx(best["loss"], rel=1e-3)
    assert 0 < result.resources["trainable_parameters"] < result.resources["total_parameters"] / 10


@pytest.mark.training
def test_early_stopping_keeps_the_best_weights_not_the_last(workspace, tmp_path, minilm_dir):
    """A learning rate far too high makes the validation loss rise after the first epoch:
    training stops after `patience` evaluations without gain, and the weights evaluated and
    saved are those of the best evaluation. The diverging trajectory must be the same on every
    run: the tiny model's weights are seeded and torch uses one thread (the order of
    floating-point sums changes with the thread count)."""
    import torch

    from tests.conftest import build_tiny_bert

    registry, _ = workspace
    torch.manual_seed(0)
    base = _register_tiny(
        registry, build_tiny_bert(tmp_path / "seeded", minilm_dir), name="tiny-bert-seeded"
    )
    config = _config(
        base.ref, method="full", learning_rate=0.5, epochs=8, early_stopping_patience=2
    )
    config.num_threads = 1
    result = finetune(config, registry, progress=False)
    validation = [record for record in result.history if record["split"] == "validation"]
    best = min(validation, key=lambda record: record["loss"])
    assert best["step"] < validation[-1]["step"]
    assert len(validation) == [r["step"] for r in validation].index(best["step"]) + 1 + 2
    assert result.resources["best_step"] == best["step"]
    assert result.metrics["validation"]["loss"] == pytest.approx(best["loss"], rel=1e-3)
    assert result.metrics["validation"]["loss"] < validation[-1]["loss"]


@pytest.mark.training
def test_full_fine_tuning_registers_a_complete_model(workspace, trained):
    registry, base = workspace
    result = trained["full"]
    version = registry.resolve(result.ref)
    assert (version.kind, version.parent_version_id) == ("full", base.version_id)
    assert (result.output_dir / "model.safetensors").is_file()
    assert result.resources["trainable_parameters"] == result.resources["total_parameters"]


@pytest.mark.training
def test_a_linear_probe_trains_only_the_head(workspace, trained, tiny_bert_dir):
    from safetensors.torch import load_file

    registry, _ = workspace
    result = trained["linear_probe"]
    version = registry.resolve(result.ref)
    assert (version.kind, version.metadata["adapter_format"]) == ("adapter", "head")
    assert result.resources["trainable_parameters"] == 32 * 5 + 5  # classifier weight + bias
    # the standard probe's head alone (head.json says how to pool); the encoder is the base's
    assert set(load_file(result.output_dir / "head.safetensors")) == {"weight", "bias"}
    assert (result.output_dir / "head.json").is_file()
    assert result.resources["steps"] == 0 and result.resources["probe"]["folds"] == 5
    loaded = load_version_model(registry, result.ref)
    base_weights = load_file(tiny_bert_dir / "model.safetensors")
    encoder = dict(loaded.model.named_parameters())
    key = "encoder.layer.0.attention.self.query.weight"
    assert np.array_equal(encoder[f"encoder.{key}"].detach().numpy(), base_weights[key].numpy())


@pytest.mark.training
@pytest.mark.parametrize("method", ["lora", "full", "linear_probe"])
def test_a_reloaded_version_predicts_exactly_like_the_trained_model(
    workspace, trained, test_texts, method
):
    registry, _ = workspace
    result = trained[method]
    loaded = load_version_model(registry, result.ref)
    assert loaded.label_names == INTENTS
    logits = loaded.logits(test_texts)
    np.testing.assert_allclose(logits, result.logits["test"], atol=1e-5)


@pytest.mark.training
def test_a_later_run_adds_a_version_to_the_same_model(workspace, trained):
    registry, base = workspace
    second = finetune(_config(base.ref, method="lora", seed=1), registry, progress=False)
    first = trained["lora"]
    assert second.version.model_name == first.version.model_name
    assert second.version.version == first.version.version + 1
    assert second.output_dir != first.output_dir
    assert (
        second.parameters["data"]["splits"]["train"]["fingerprint"]
        != (first.parameters["data"]["splits"]["train"]["fingerprint"])
    )


@pytest.mark.training
def test_a_local_folder_base_and_a_runner_started_run(tmp_path, tiny_bert_dir):
    registry = Registry(tmp_path / "registry.duckdb")
    run_id = registry.start_run(
        "finetune", template="finetune.ipynb", parameters={"notebook_param": 7}
    )
    result = finetune(
        _config(str(tiny_bert_dir), validation_fraction=0, max_steps=3),
        registry,
        run_id=run_id,
        progress=False,
    )
    assert result.run_id == run_id
    assert [r["run_id"] for r in registry.runs()] == [run_id]
    run = registry.get_run(run_id)
    # the runner that started it finishes it after the whole notebook (transferlab.run_status)
    assert run["status"] == "running" and run["template"] == "finetune.ipynb"
    assert run["metrics"]["version_id"] == result.version_id
    assert run["parameters"]["notebook_param"] == 7 and run["parameters"]["max_steps"] == 3
    parent = registry.resolve(result.version.parent_version_id)
    assert (parent.kind, parent.uri) == ("base", str(tiny_bert_dir))
    assert result.resources["steps"] == 3 and "validation" not in result.metrics


# -- requests that fail, and what they leave behind -------------------------------------------


def _only_run(registry: Registry) -> dict:
    runs = registry.runs()
    assert len(runs) == 1
    return runs[0]


def test_a_missing_label_column_fails_the_run_before_training(tmp_path, tiny_bert_dir):
    registry = Registry(tmp_path / "registry.duckdb")
    data = tmp_path / "tickets.csv"
    data.write_text("text,intent\nwhere is my parcel,delivery\nrefund please,refund\n")
    output = tmp_path / "out"
    with pytest.raises(DataError, match="no column 'label'"):
        finetune(
            _config(str(tiny_bert_dir), train=data, test=None, output_dir=output),
            registry,
            progress=False,
        )
    run = _only_run(registry)
    assert run["status"] == "failed"
    assert "no column 'label'" in run["error"] and "label_column='intent'" in run["error"]
    assert "Traceback" not in run["error"]
    assert registry.query("SELECT * FROM model_versions") == []
    assert registry.results() == []
    assert not output.exists()


@pytest.mark.training
def test_one_class_training_data_fails_the_template_run_and_registers_nothing(
    tmp_path, tiny_bert_dir, run_cli
):
    """It used to train a one-label model, register it and report test accuracy 1.0."""
    data = tmp_path / "billing_only.csv"
    data.write_text(
        "text,label\n" + "".join(f"charged twice on order {i},billing\n" for i in range(20))
    )
    registry_path = tmp_path / "registry.duckdb"
    code, out, _ = run_cli(
        "run", "finetune", "-p", "base", tiny_bert_dir, "-p", "data", data,
        "-p", "max_steps", "2", "--registry", registry_path,
        "--output-dir", tmp_path / "runs", "--json",
    )  # fmt: skip
    outcome = json.loads(out)
    assert code == 1 and outcome["status"] == "failed" and outcome["versions"] == []
    registry = Registry(registry_path)
    run = registry.get_run(outcome["run_id"])
    assert run["status"] == "failed"
    for expected in (
        str(data),
        "only one label, 'billing'",
        "at least two classes",
        "label_column",
    ):
        assert expected in run["error"]
    assert registry.query("SELECT * FROM model_versions WHERE kind <> 'base'") == []
    assert registry.results() == []
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method": "adapters"}, "Use one of: auto, lora, full, linear_probe, qlora, lp_ft"),
        ({"data": sample_data_path("train")}, "Both data= and train= are set"),
        ({"n_train": 20}, "Both n_per_class=6 and n_train=20"),
        ({"learning_rate": -1.0}, "Invalid learning_rate"),
        ({"target_modules": ["nonexistent"]}, "are not Linear modules"),
        ({"max_length": 4096}, "longer than"),
    ],
)
def test_bad_requests_fail_at_once_and_leave_a_failed_run(
    tmp_path, tiny_bert_dir, overrides, message
):
    registry = Registry(tmp_path / "registry.duckdb")
    started = time.perf_counter()
    with pytest.raises(TransferlabError, match=message):
        finetune(_config(str(tiny_bert_dir), **overrides), registry, progress=False)
    assert time.perf_counter() - started < 10
    run = _only_run(registry)
    assert run["status"] == "failed" and message.split("=")[0] in run["error"]
    assert registry.query("SELECT * FROM model_versions") == []


def test_qlora_without_cuda_fails_before_loading_anything(tmp_path, tiny_bert_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: qlora is allowed here")
    registry = Registry(tmp_path / "registry.duckdb")
    started = time.perf_counter()
    with pytest.raises(TransferlabError, match="needs a CUDA GPU") as caught:
        resolve_config(_config(str(tiny_bert_dir), method="qlora"), registry)
    assert time.perf_counter() - started < 2
    assert "method='lora'" in caught.value.fix


def test_a_non_empty_output_folder_is_never_overwritten(tmp_path, tiny_bert_dir):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(TransferlabError, match="already exists and is not empty"):
        resolve_config(
            _config(str(tiny_bert_dir), output_dir=output), Registry(tmp_path / "r.duckdb")
        )
    assert (output / "keep.txt").read_text() == "mine"


def test_unsupported_and_unreachable_bases_are_refused_by_name(tmp_path):
    registry = Registry(tmp_path / "registry.duckdb")
    load_seed_catalog(registry)
    with pytest.raises(ModelSourceError, match="'vit' model") as caught:
        resolve_config(_config("vit-base-patch16-224"), registry)
    assert "image-classification" in caught.value.problem
    started = time.perf_counter()
    with pytest.raises(ModelSourceError, match="Hub is offline") as caught:
        resolve_config(_config("bert-tiny"), registry)
    assert time.perf_counter() - started < 10
    assert "transferlab import local" in caught.value.fix


@pytest.mark.training
def test_an_adapter_is_not_a_base(workspace, trained):
    registry, _ = workspace
    with pytest.raises(TransferlabError, match="is an adapter") as caught:
        resolve_config(_config(trained["lora"].ref), registry)
    assert "merge" in caught.value.fix


@pytest.mark.training
def test_a_failure_while_registering_leaves_no_version_and_keeps_the_output(
    tmp_path, tiny_bert_dir, monkeypatch
):
    registry = Registry(tmp_path / "registry.duckdb")
    _register_tiny(registry, tiny_bert_dir)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    # The version row is written first, then the results fail: the transaction must undo both.
    monkeypatch.setattr(Registry, "add_results", disk_full)
    output = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        finetune(_config("tiny-bert", output_dir=output, max_steps=2), registry, progress=False)
    run = _only_run(registry)
    assert run["status"] == "failed" and run["error"] == "OSError: No space left on device"
    assert [v["version_id"] for v in registry.query("SELECT * FROM model_versions")] == [
        "tiny-bert:1"
    ]
    assert registry.model_names() == ["tiny-bert"]
    assert (output / "adapter_model.safetensors").is_file()  # left for inspection


# -- resolution of settings -------------------------------------------------------------------


def test_settings_come_from_the_call_then_the_catalog_then_the_method(tmp_path, tiny_bert_dir):
    registry = Registry(tmp_path / "registry.duckdb")
    block = {
        "learning_rate": 1e-3,
        "full_learning_rate": 3e-5,
        "lora_r": 4,
        "target_modules": ["query"],
        "batch_size": 4,
        "epochs": 3,
    }
    base = _register_tiny(registry, tiny_bert_dir, finetune=block)
    plain = FinetuneConfig(base=base.ref, data=sample_data_path("train"), method="lora")
    lora = resolve_config(plain, registry)
    assert (lora.learning_rate, lora.lora_r, lora.target_modules) == (1e-3, 4, ["query"])
    assert (lora.batch_size, lora.epochs, lora.max_length, lora.lora_alpha) == (4, 3.0, 128, 16.0)
    assert lora.setting_sources["lora_r"] == "catalog"
    assert lora.setting_sources["max_length"] == "default"
    assert lora.name == "tiny-bert-support_intents-lora"
    assert lora.output_dir.parent == tmp_path / "models" / "tiny-bert-support_intents-lora"
    assert lora.test_fraction == 0.2 and lora.validation_fraction == 0.1

    plain.method = "full"
    assert resolve_config(plain, registry).learning_rate == 3e-5
    plain.method = "linear_probe"
    probe = resolve_config(plain, registry)
    assert probe.learning_rate == 3e-2 and probe.target_modules is None
    plain.method, plain.learning_rate, plain.lora_r = "lora", 5e-4, 16
    given = resolve_config(plain, registry)
    assert (given.learning_rate, given.lora_r) == (5e-4, 16)
    assert given.setting_sources["learning_rate"] == "config"


def test_method_defaults_and_target_modules_by_architecture(tmp_path, tiny_bert_dir):
    registry = Registry(tmp_path / "registry.duckdb")
    config = FinetuneConfig(base=str(tiny_bert_dir), data=sample_data_path("train"))
    expected = {"lora": 2e-3, "full": 5e-5, "linear_probe": 3e-2}
    for method, rate in expected.items():
        config.method = method
        assert resolve_config(config, registry).learning_rate == rate
    config.method = "lora"
    assert resolve_config(config, registry).target_modules == ["query", "value"]


def test_target_modules_of_an_unknown_architecture_are_found_by_inspection(tmp_path):
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path / "tiny-gpt2"
    GPT2Model(
        GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=64)
    ).save_pretrained(folder)
    config = FinetuneConfig(base=str(folder), data=sample_data_path("train"), max_length=32)
    resolved = resolve_config(config, Registry(tmp_path / "r.duckdb"))
    assert resolved.base.model_type == "gpt2" and resolved.target_modules == ["c_attn"]


def test_names_of_curated_models_are_not_taken_over(tmp_path, tiny_bert_dir):
    registry = Registry(tmp_path / "registry.duckdb")
    registry.add_model(
        ModelRecord(name="taken", source="hf", source_ref="org/taken", task="fill-mask")
    )
    with pytest.raises(TransferlabError, match="is taken by a model that no fine-tuning run made"):
        resolve_config(_config(str(tiny_bert_dir), name="taken"), registry)


# -- the real model ---------------------------------------------------------------------------


@pytest.mark.real_model
@pytest.mark.training
@pytest.mark.slow
def test_the_recommended_minilm_finetune_scores_at_least_its_discovery_score(tmp_path, minilm_dir):
    """Discovery and fine-tuning agree: discovery scores MiniLM with the standard probe
    (cross-validated on 16 examples per class), and the fine-tune it recommends (`auto`, the
    settings spelled out) must do at least as well on the held-out test set."""
    from transferlab.catalog.importers import register_installed_minilm
    from transferlab.discovery import discover

    registry = Registry(tmp_path / "registry.duckdb")
    load_seed_catalog(registry)
    base = register_installed_minilm(registry)
    found = discover(
        registry=registry, train=sample_data_path("train"), test=sample_data_path("test")
    )
    top = found.table[found.table["status"] == "scored"].iloc[0]
    assert top["version"] == base.version_id, found.table
    recommended = found.recommendation
    assert recommended["base"] == base.version_id and recommended["method"] == "auto"
    settings = {k: v for k, v in recommended.items() if k not in ("base", "seed")}
    config = FinetuneConfig(base=recommended["base"], seed=recommended["seed"], **settings)
    result = finetune(config, registry, progress=False)
    test = result.metrics["test"]
    print(
        f"MiniLM: discovery cv_accuracy {top['cv_accuracy']:.3f}; recommended fine-tune "
        f"({result.method}) test accuracy {test['accuracy']:.3f}, macro-F1 "
        f"{test['macro_f1']:.3f}, train {result.timings['train_s']:.1f} s"
    )
    assert result.parameters["auto"]["chose"] == result.method == "lp_ft"
    assert test["accuracy"] >= top["cv_accuracy"]
    assert test["accuracy"] > 0.9 and test["macro_f1"] > 0.9
    assert result.version.parent_version_id == base.version_id
    assert result.resources["trainable_parameters"] < 100_000
