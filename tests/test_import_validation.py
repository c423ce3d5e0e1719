"""`transferlab import` refuses what it cannot use before writing anything: damaged or hostile
weights, models that do not load, name clashes, unknown licences and malformed references; and
hub references get readable names and the licence table's verdict on commercial use."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from transferlab import Registry
from transferlab.initialize import initialize

pytestmark = [pytest.mark.real_model]


@pytest.fixture(scope="module")
def initialized(tmp_path_factory) -> Path:
    """A registry with the catalog and the installed MiniLM, copied by each test."""
    path = tmp_path_factory.mktemp("imports") / "registry.duckdb"
    initialize(Registry(path), profile=False)
    return path


@pytest.fixture
def reg_path(initialized, tmp_path) -> str:
    target = tmp_path / "registry.duckdb"
    shutil.copy(initialized, target)
    return str(target)


def _contents(path: str) -> dict:
    """Every row an import could write: models, versions, profiles, search embeddings."""
    registry = Registry(path)
    return {
        table: registry.query(f"SELECT * FROM {table} ORDER BY ALL")
        for table in ("models", "model_versions", "profiles", "model_embeddings")
    }


def _copy(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    return target


def _refused(run_cli, reg_path, *args) -> str:
    """Run `transferlab ARGS`, expect exit 2 and an unchanged registry; return stderr."""
    before = _contents(reg_path)
    code, _, err = run_cli(*args, "--registry", reg_path)
    assert code == 2, err
    assert err.startswith("error: ") and "fix: " in err
    assert _contents(reg_path) == before
    return err


# -- weights ------------------------------------------------------------------------------------


def test_truncated_safetensors_is_refused_before_anything_is_written(
    reg_path, tiny_bert_dir, tmp_path, run_cli
):
    folder = _copy(tiny_bert_dir, tmp_path / "truncated")
    weights = folder / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)  # the header is intact, the data is not
    err = _refused(run_cli, reg_path, "import", "local", folder, "--name", "truncated")
    assert "model.safetensors" in err and "truncated" in err
    assert "Download the model again" in err
    # Without profiling, the weights are still checked.
    err = _refused(run_cli, reg_path, "import", "local", folder, "--no-profile")
    assert "truncated" in err


def test_hostile_pickle_is_refused_and_never_run(reg_path, tiny_bert_dir, tmp_path, run_cli):
    marker = tmp_path / "pickle-ran"

    class Hostile:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "hostile"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_bert_dir / name, folder / name)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Hostile()))
    for extra in ([], ["--no-profile"]):
        err = _refused(run_cli, reg_path, "import", "local", folder, *extra)
        assert "pytorch_model.bin" in err and "weights_only=True" in err
        assert "never unpickles" in err and "safetensors" in err
    assert not marker.exists()


def test_text_model_that_does_not_load_is_not_registered(
    reg_path, tiny_bert_dir, tmp_path, run_cli
):
    folder = _copy(tiny_bert_dir, tmp_path / "frob")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="frobnicator", architectures=["FrobnicatorModel"])
    (folder / "config.json").write_text(json.dumps(config))
    err = _refused(run_cli, reg_path, "import", "local", folder)
    assert "Not registered" in err and "frobnicator" in err and "--no-profile" in err


def test_model_without_tokenizer_is_registered_unprofiled(
    reg_path, tiny_bert_dir, tmp_path, run_cli
):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert_dir / name, folder / name)
    code, out, err = run_cli("import", "local", folder, "--registry", reg_path)
    assert code == 0, err
    assert "registered no-tokenizer:1" in out and "not profiled: no tokenizer" in out
    assert Registry(reg_path).profiles("no-tokenizer:1") == []


def test_profile_of_weights_damaged_after_import_is_a_clear_error(
    reg_path, tiny_bert_dir, tmp_path, run_cli
):
    folder = _copy(tiny_bert_dir, tmp_path / "later-damaged")
    code, _, err = run_cli("import", "local", folder, "--no-profile", "--registry", reg_path)
    assert code == 0, err
    (folder / "model.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b'{"a": 1}')
    err = _refused(run_cli, reg_path, "profile", "later-damaged")
    assert "later-damaged/model.safetensors" in err


# -- names and licences --------------------------------------------------------------------


def test_folder_under_the_name_of_another_registered_model_is_refused(
    reg_path, tiny_bert_dir, run_cli
):
    err = _refused(
        run_cli, reg_path, "import", "local", tiny_bert_dir, "--name", "bert-base-uncased"
    )
    assert "already registered (catalog)" in err and "not a copy of it" in err
    assert "--name NAME" in err


def test_hub_import_cannot_take_over_a_registered_name(reg_path, run_cli):
    err = _refused(run_cli, reg_path, "import", "torchhub", "pytorch/vision:foo",
                   "--name", "all-MiniLM-L6-v2", "--task", "image-classification")  # fmt: skip
    assert "already registered for hf sentence-transformers/all-MiniLM-L6-v2" in err
    err = _refused(run_cli, reg_path, "import", "torchhub", "pytorch/vision:resnet18",
                   "--task", "text-classification")  # fmt: skip
    assert "tv-resnet18 is already registered with task 'image-classification'" in err
    model = Registry(reg_path).get_model("all-MiniLM-L6-v2")
    assert model["source"] == "hf" and model["task"] == "feature-extraction"


def test_hub_references_get_readable_names_and_commercial_use_from_the_licence(reg_path, run_cli):
    code, out, err = run_cli("import", "torchhub", "pytorch/vision:resnet34", "--task",
                             "image-classification", "--license", "bsd-3-clause", "--json",
                             "--registry", reg_path)  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["version_id"] == "resnet34:1"
    code, out, err = run_cli("import", "tfhub",
                             "https://tfhub.dev/google/universal-sentence-encoder-large/5",
                             "--task", "feature-extraction", "--license", "Apache-2.0",
                             "--json", "--registry", reg_path)  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["version_id"] == "universal-sentence-encoder-large-5:1"
    code, out, _ = run_cli("search", "--license", "commercial", "--source", "torchhub",
                           "--json", "--registry", reg_path)  # fmt: skip
    found = {row["name"]: row for row in json.loads(out)}
    assert found["resnet34"]["commercial_use"] is True
    use = Registry(reg_path).get_model("universal-sentence-encoder-large-5")
    assert use["license"] == "apache-2.0" and use["commercial_use"] is True


def test_unknown_licence_is_refused_with_the_known_ids(reg_path, tiny_bert_dir, run_cli):
    err = _refused(run_cli, reg_path, "import", "torchhub", "pytorch/vision:resnet101",
                   "--task", "image-classification", "--license", "bogus")  # fmt: skip
    assert "Unknown licence id 'bogus'" in err
    assert "apache-2.0" in err and "bsd-3-clause" in err and "'other'" in err
    err = _refused(run_cli, reg_path, "import", "tfhub", "google/universal-sentence-encoder/4",
                   "--task", "feature-extraction", "--license", "apache2")  # fmt: skip
    assert "Did you mean apache-2.0" in err
    err = _refused(run_cli, reg_path, "import", "local", tiny_bert_dir, "--license", "bogus")
    assert "Unknown licence id 'bogus'" in err


def test_licence_option_fills_in_a_local_model_without_one(reg_path, tiny_bert_dir, run_cli):
    code, _, err = run_cli("import", "local", tiny_bert_dir, "--name", "tiny-mit", "--license",
                           "MIT", "--no-profile", "--registry", reg_path)  # fmt: skip
    assert code == 0, err
    model = Registry(reg_path).get_model("tiny-mit")
    assert model["license"] == "mit" and model["commercial_use"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["torchhub", "resnet34", "--task", "image-classification"], "not a torchhub reference"),
        (["torchhub", "   ", "--task", "image-classification"], "not a torchhub reference"),
        (["tfhub", "ftp://models/x", "--task", "feature-extraction"], "not a tfhub reference"),
        (["hf", "not a valid id!!"], "not a valid Hugging Face model id"),
        (["torchhub", "pytorch/vision:resnet18", "--name", "my-resnet"], "already registered"),
    ],
)
def test_malformed_references_are_refused(reg_path, run_cli, args, message):
    assert message in _refused(run_cli, reg_path, "import", *args)


def test_a_failed_write_leaves_no_model_without_version(reg_path, tiny_bert_dir, monkeypatch):
    from transferlab.catalog.importers import import_local

    def failing_add_version(self, *args, **kwargs):
        raise RuntimeError("disk full")

    before = _contents(reg_path)
    monkeypatch.setattr(Registry, "add_version", failing_add_version)
    with pytest.raises(RuntimeError, match="disk full"):
        import_local(Registry(reg_path), tiny_bert_dir, name="half-written", profile=False)
    assert _contents(reg_path) == before
