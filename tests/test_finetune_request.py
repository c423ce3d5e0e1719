"""A finetune request is built in one place (`transferlab.parameters.finetune_config`) from the
finetune template's parameters: the template's parameters cell and `FinetuneConfig` must stay
in step, and the sample-data default is applied there only."""

from __future__ import annotations

import ast
from dataclasses import MISSING, fields
from pathlib import Path

import nbformat
import papermill

from transferlab.data import sample_data_path
from transferlab.finetuning.config import FinetuneConfig
from transferlab.parameters import RUNNER_PARAMETERS, finetune_config

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "finetune.ipynb"
# FinetuneConfig fields a notebook user does not set (Python callers and benchmarks do).
PYTHON_ONLY = {
    "label_names",
    "test_fraction",
    "validation_fraction",
    "weight_decay",
    "warmup_ratio",
    "group_by_length",
    "num_threads",
    "registry",
}
# Defaults that differ on purpose: Python needs a base; the template asks for LoRA target
# modules per architecture where Python's None takes the catalog's list first.
DIFFERENT_DEFAULTS = {"base": "all-MiniLM-L6-v2", "target_modules": "auto"}


def _template_defaults() -> dict:
    described = papermill.inspect_notebook(str(TEMPLATE))
    return {name: ast.literal_eval(p["default"]) for name, p in described.items()}


def _config_defaults() -> dict:
    defaults = {}
    for f in fields(FinetuneConfig):
        if f.default is not MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not MISSING:
            defaults[f.name] = f.default_factory()
        else:
            defaults[f.name] = MISSING
    return defaults


def test_the_template_parameters_and_finetune_config_agree():
    template = _template_defaults()
    config = _config_defaults()
    requested = set(template) - set(RUNNER_PARAMETERS)
    assert requested - set(config) == set(), "template parameters FinetuneConfig lacks"
    assert set(config) - requested - PYTHON_ONLY == set(), "FinetuneConfig fields not in template"
    for name in sorted(requested):
        expected = DIFFERENT_DEFAULTS.get(name, config[name])
        assert template[name] == expected, (name, template[name], config[name])


def test_the_template_builds_its_request_with_the_one_builder():
    code = "\n".join(c.source for c in nbformat.read(TEMPLATE, 4).cells if c.cell_type == "code")
    assert "finetune_config(globals()" in code
    assert "FinetuneConfig(" not in code and "sample_data_path" not in code


def test_no_data_means_the_sample_data_and_other_names_are_ignored(tmp_path):
    parameters = {**_template_defaults(), "run_id": "r1", "registry_path": "x", "pd": object()}
    config = finetune_config(parameters, registry=tmp_path / "r.duckdb")
    assert config.train == sample_data_path("train") and config.test == sample_data_path("test")
    assert config.registry == tmp_path / "r.duckdb" and config.method == "auto"
    given = finetune_config({**parameters, "data": "tickets.csv", "n_per_class": 8})
    assert given.data == "tickets.csv" and given.train is None and given.n_per_class == 8


def test_the_sweep_reuse_fingerprint_needs_no_model(tmp_path, monkeypatch):
    """A sweep's reuse check hashes the examples a run will train on from the data settings
    alone: the base model is neither resolved nor read (here it does not exist anywhere, and
    no registry is opened), and the result is the fingerprint of those exact splits."""
    from transferlab.data import load_splits
    from transferlab.sweeps.plan import finetune_data_fingerprint

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "tickets.csv"
    rows = [
        f"ticket {i} about {'billing' if i % 2 else 'login'},{'b' if i % 2 else 'l'}"
        for i in range(40)
    ]
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    request = {"data": str(data), "n_per_class": 5, "seed": 3, "base": "nobody/no-such-model"}
    found = finetune_data_fingerprint(request)
    assert found == finetune_data_fingerprint({**request, "base": "all-MiniLM-L6-v2"})
    assert found != finetune_data_fingerprint({**request, "seed": 4})
    defaults = _template_defaults()
    expected = load_splits(
        str(data),
        test_fraction=defaults.get("test_fraction", FinetuneConfig.test_fraction),
        validation_fraction=FinetuneConfig.validation_fraction,
        n_per_class=5,
        seed=3,
    ).fingerprint()
    assert found == expected
    assert list(tmp_path.iterdir()) == [data], "nothing (no registry) was created"
