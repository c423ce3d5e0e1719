"""Fine-tuning methods as plug-ins: the table, `transferlab methods`, loading old versions by
their layout, and a method from another package (entry point) trained and used end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import install_plugin_package, run_transferlab_with
from transferlab import Registry, VersionRecord
from transferlab.errors import TransferlabError
from transferlab.finetuning.methods import (
    FinetuneMethod,
    get_method,
    method_for_version,
    method_names,
    register_method,
)
from transferlab.finetuning.methods import registry as table

# the default first
BUILT_INS = ["auto", "lora", "full", "linear_probe", "qlora", "lp_ft", "setfit", "setfit_lora"]

# A real small method from "another package": BitFit trains only the bias terms (and the new
# head), and saves just those in a layout of its own, so only its own `load` can read them.
PLUGIN_SOURCE = """
import os
from pathlib import Path

from transferlab.finetuning.methods import FinetuneMethod
from transferlab.finetuning.methods.base import (
    adapter_tokenizer,
    load_adapter_base,
    load_for_training,
)

WEIGHTS = "bitfit.safetensors"


class BitFit(FinetuneMethod):
    name = "bitfit"
    display_name = "BitFit"
    description = "only the bias terms and the head trained"
    default_learning_rate = 1e-2
    catalog_learning_rate_key = "bitfit_learning_rate"
    version_kind = "adapter"
    adapter_format = "bitfit"

    def prepare(self, resolved, label_names):
        model, tokenizer, head = load_for_training(resolved, label_names)
        for name, parameter in model.named_parameters():
            in_head = any(name.startswith(module + ".") for module in head)
            parameter.requires_grad = in_head or name.endswith(".bias")
        return model, tokenizer, head

    def save(self, outcome, folder, metadata):
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {
            name: parameter.detach().cpu().contiguous()
            for name, parameter in outcome.model.named_parameters()
            if parameter.requires_grad
        }
        save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
        return self.saved(outcome, folder, metadata)

    def load(self, registry, version, device, quantized):
        from safetensors.torch import load_file

        model, folder, base, labels = load_adapter_base(registry, version, device, False)
        state = load_file(str(Path(folder.location) / WEIGHTS))
        result = model.load_state_dict(state, strict=False)
        assert not result.unexpected_keys, result.unexpected_keys
        mark = os.environ.get("TL_EXTRA_METHOD_MARK")
        if mark:
            Path(mark).write_text(version.ref)
        return model.to(device), adapter_tokenizer(folder, base), labels
"""
ENTRY_POINTS = """\
[transferlab.methods]
bitfit = tl_extra_method:BitFit
broken = tl_extra_method:DoesNotExist
"""


@pytest.fixture
def restored_table():
    """Methods registered by a test are gone afterwards."""
    saved = table.TABLE.snapshot()
    yield
    table.TABLE.restore(saved)


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A folder for PYTHONPATH holding an 'installed' package that declares two methods: a
    working one and one whose entry point cannot be loaded."""
    return install_plugin_package(tmp_path / "site", "tl_extra_method", PLUGIN_SOURCE, ENTRY_POINTS)


def test_the_table_lists_the_built_ins(run_cli):
    code, out, _ = run_cli("methods", "--json")
    rows = json.loads(out)
    assert code == 0 and [row["name"] for row in rows][: len(BUILT_INS)] == BUILT_INS
    lora, full, probe, qlora = rows[1:5]
    assert (lora["display_name"], lora["default_learning_rate"]) == ("LoRA", 2e-3)
    assert (full["version_kind"], full["catalog_learning_rate_key"]) == (
        "full",
        "full_learning_rate",
    )
    assert (probe["display_name"], probe["version_kind"]) == ("linear probe", "adapter")
    assert "CUDA" in qlora["device_needs"] and "CUDA" not in lora["device_needs"]
    assert lora["uses_lora_settings"] and not probe["uses_lora_settings"]
    assert all(row["origin"] == "built-in" and row["description"] for row in rows[: len(BUILT_INS)])
    code, out, _ = run_cli("methods")
    assert code == 0 and "linear probe" in out and "version_kind" in out


def test_an_unknown_method_is_refused_with_the_known_names():
    with pytest.raises(TransferlabError, match="Unknown fine-tuning method 'adapters'") as caught:
        get_method("adapters")
    assert caught.value.fix == f"Use one of: {', '.join(BUILT_INS)}."


def test_a_method_not_fitting_the_interface_is_refused(restored_table):
    class Nameless:
        name = "Not A Name"

    with pytest.raises(TransferlabError, match="no valid name"):
        register_method(Nameless)

    class Abstract(FinetuneMethod):
        name = "abstract"

    with pytest.raises(TransferlabError, match="Abstract cannot be created"):
        register_method(Abstract)

    class Incomplete:
        name = "incomplete"
        display_name = "incomplete"
        description = "lacks nearly everything"
        catalog_learning_rate_key = "learning_rate"
        default_learning_rate = 0
        version_kind = "merged"

    with pytest.raises(TransferlabError, match="does not fit the interface") as caught:
        register_method(Incomplete())
    for problem in ("default_learning_rate", "version_kind", "prepare() is missing"):
        assert problem in caught.value.problem
    with pytest.raises(TransferlabError, match="already registered"):
        register_method(type(get_method("lora")))
    assert "incomplete" not in method_names()


def _version(kind: str, metadata: dict, uri: str | None = None) -> VersionRecord:
    return VersionRecord("m:1", "m", 1, kind, uri, metadata=metadata)


@pytest.mark.parametrize(
    ("kind", "metadata", "expected"),
    [
        ("adapter", {"method": "lora", "adapter_format": "peft"}, "lora"),
        ("adapter", {"method": "qlora", "adapter_format": "peft"}, "qlora"),
        ("adapter", {"method": "linear_probe", "adapter_format": "head"}, "linear_probe"),
        ("full", {"method": "full"}, "full"),
        # written by a method this machine lacks, in a layout a built-in owns
        ("adapter", {"method": "lora_plus", "adapter_format": "peft"}, "lora"),
        ("adapter", {"adapter_format": "head"}, "linear_probe"),
        ("adapter", {}, "linear_probe"),  # no adapter_config.json: a head file
        ("merged", {"method": "lora"}, "full"),  # merged: a complete model, whatever it was
        ("base", {}, "full"),
    ],
)
def test_versions_are_loaded_by_the_method_owning_their_layout(kind, metadata, expected):
    assert method_for_version(_version(kind, metadata)).name == expected


def test_a_peft_folder_without_a_recorded_layout_is_a_lora_adapter(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    assert method_for_version(_version("adapter", {}, str(tmp_path))).name == "lora"


def test_a_version_of_a_method_not_installed_here_says_so():
    version = _version("adapter", {"method": "bitfit", "adapter_format": "bitfit"})
    with pytest.raises(TransferlabError, match="method 'bitfit'.*not installed here"):
        method_for_version(version)


@pytest.mark.training
def test_a_plugin_method_is_listed_trained_and_loaded_by_its_own_code(
    tmp_path, plugin_path, tiny_bert_dir
):
    listed = run_transferlab_with(["methods", "--json"], plugin_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert list(rows)[: len(BUILT_INS)] == BUILT_INS and rows["bitfit"]["display_name"] == "BitFit"
    assert "bitfit = tl_extra_method:BitFit" in rows["bitfit"]["origin"]
    # the broken entry point is named, and breaks nothing else
    assert "broken = tl_extra_method:DoesNotExist" in listed.stderr and "broken" not in rows

    refused = run_transferlab_with(["run", "finetune", "-p", "method", "broken"], plugin_path)
    assert refused.returncode == 2
    assert "'broken' could not be loaded" in refused.stderr
    assert "broken = tl_extra_method:DoesNotExist" in refused.stderr

    registry = tmp_path / "registry.duckdb"
    run = run_transferlab_with(
        [
            "run", "finetune",
            "-p", "method", "bitfit",
            "-p", "base", tiny_bert_dir,
            "-p", "max_steps", "2",
            "-p", "batch_size", "8",
            "-p", "max_length", "32",
            "-p", "name", "tiny-bitfit",
            "--registry", registry,
            "--output-dir", tmp_path / "runs",
            "--json",
        ],
        plugin_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "succeeded" and result["versions"] == ["tiny-bitfit:1"]
    version = Registry(registry).resolve("tiny-bitfit:1")
    assert version.kind == "adapter" and version.parent_version_id is not None
    assert (version.metadata["method"], version.metadata["adapter_format"]) == ("bitfit", "bitfit")
    parameters = Registry(registry).get_run(result["run_id"])["parameters"]
    assert parameters["learning_rate"] == 1e-2 and parameters["lora_r"] is None
    files = {p.name for p in Path(version.uri).iterdir()}
    assert "bitfit.safetensors" in files
    assert not files & {"adapter_config.json", "head.safetensors", "config.json"}
    model = Registry(registry).get_model("tiny-bitfit")
    assert model["description"].startswith("BitFit fine-tune of ")

    mark = tmp_path / "loaded-by-bitfit"
    texts = ["I was charged twice", "where is my parcel"]
    predicted = run_transferlab_with(
        ["predict", "tiny-bitfit:1", *texts, "--registry", registry, "--json"],
        plugin_path,
        TL_EXTRA_METHOD_MARK=str(mark),
    )
    assert predicted.returncode == 0, predicted.stderr
    assert [p["text"] for p in json.loads(predicted.stdout)] == texts
    assert mark.read_text() == "tiny-bitfit:1"  # BitFit's own load() rebuilt the model
