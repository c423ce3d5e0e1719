"""Loaded first by every pytest run here (tests and nbval notebooks alike).

Hubs are offline (without it a hub id takes ~46 s of retries) and the registry defaults to a
throw-away file, so neither the tests nor the notebook kernels they start write into the checkout.
"""

import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFERLAB_USER", "pytest")
os.environ["TRANSFERLAB_REGISTRY"] = str(
    Path(tempfile.mkdtemp(prefix="transferlab-tests-")) / "registry.duckdb"
)

# Templates share the session's registry when nbval runs them, so they run in the order of the
# flow a data scientist follows: benchmark evaluates the version that finetune made.
_FLOW = ("discover.ipynb", "finetune.ipynb", "benchmark.ipynb", "curves.ipynb")


def pytest_collection_modifyitems(items):
    def flow_position(item):
        name = item.path.name
        return (_FLOW.index(name) if name in _FLOW else -1) if item.path.suffix == ".ipynb" else -1

    items.sort(key=flow_position)
