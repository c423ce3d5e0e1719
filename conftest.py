"""Loaded first by every pytest run here (tests and nbval notebooks alike).

Hubs are offline (without it a hub id takes ~46 s of retries) and the registry defaults to a
throw-away file, so neither the tests nor the notebook kernels they start write into the checkout.

Notebooks run by nbval (`pytest templates notebooks --nbval-lax`) do not depend on each other or
on their order: each gets a registry of its own, prepared here before its first cell runs, and
its parameters cell is followed (in memory, as papermill injects parameters; the file is left
alone) by `registry_path = <that registry>` and any shorter settings below. benchmark.ipynb's
default (`versions = None`: the latest fine-tuned version) finds a short fine-tune of the
installed MiniLM made for it, not the one finetune.ipynb made.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFERLAB_USER", "pytest")
_SCRATCH = Path(tempfile.mkdtemp(prefix="transferlab-tests-"))
os.environ["TRANSFERLAB_REGISTRY"] = str(_SCRATCH / "registry.duckdb")

# Steps of the MiniLM fine-tunes nbval runs: enough to go through every phase (lp_ft's probe, then
# the whole model) and fill every cell; how well the real recommended run scores is
# tests/test_finetune.py's real_model test.
NBVAL_MAX_STEPS = 10


def _with_a_minilm_finetune(registry_path: Path) -> None:
    """The catalog and the installed MiniLM (as the templates' ensure_initialized adds them), and
    a short fine-tune of that MiniLM on the sample data."""
    from transferlab import Registry
    from transferlab.data import sample_data_path
    from transferlab.finetune import FinetuneConfig, finetune
    from transferlab.initialize import ensure_initialized

    registry = Registry(registry_path)
    ensure_initialized(registry)
    config = FinetuneConfig(
        base="all-MiniLM-L6-v2",
        train=sample_data_path("train"),
        test=sample_data_path("test"),
        max_steps=NBVAL_MAX_STEPS,
        registry=registry_path,
    )
    finetune(config, registry, progress=False)


# Per notebook: how its registry is prepared, the parameters set after its parameters cell, and
# its test tiers (markers; see pyproject.toml). A notebook not listed here gets a new empty
# registry and is marked as the heaviest tier, real_model and training.
NBVAL_NOTEBOOKS = {
    "discover.ipynb": (None, {}, ("real_model", "training")),
    "finetune.ipynb": (None, {"max_steps": NBVAL_MAX_STEPS}, ("real_model", "training")),
    "benchmark.ipynb": (_with_a_minilm_finetune, {}, ("real_model", "training")),
    "curves.ipynb": (None, {}, ("training",)),
    "explore_registry.ipynb": (None, {}, ("real_model", "training")),
    "walkthrough.ipynb": (None, {}, ("real_model", "training")),
}
_DEFAULT = (None, {}, ("real_model", "training"))
_prepared: dict[Path, BaseException | None] = {}


def _is_nbval_cell(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb" and hasattr(item, "cell")


def _nbval_registry(notebook: Path) -> Path:
    return _SCRATCH / "nbval" / f"{notebook.parent.name}-{notebook.stem}" / "registry.duckdb"


def pytest_collection_modifyitems(items):
    for item in items:
        if not _is_nbval_cell(item):
            continue
        _, parameters, markers = NBVAL_NOTEBOOKS.get(item.path.name, _DEFAULT)
        for marker in markers:
            item.add_marker(marker)
        if "parameters" in item.cell.metadata.get("tags", []):
            settings = {"registry_path": str(_nbval_registry(item.path)), **parameters}
            lines = [f"{name} = {value!r}" for name, value in settings.items()]
            item.cell.source += "\n# Set by conftest.py for this nbval run\n" + "\n".join(lines)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Prepare a notebook's registry before its kernel starts and its first cell runs."""
    if not _is_nbval_cell(item):
        return
    if item.path not in _prepared:
        prepare, _, _ = NBVAL_NOTEBOOKS.get(item.path.name, _DEFAULT)
        registry_path = _nbval_registry(item.path)
        registry_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if prepare is not None:
                prepare(registry_path)
            _prepared[item.path] = None
        except Exception as error:  # reported by every cell of that notebook
            _prepared[item.path] = error
    if _prepared[item.path] is not None:
        raise _prepared[item.path]
