"""transferlab: a transfer-learning workbench around a DuckDB model registry.

Heavy parts (torch, transformers) load on first use, so `import transferlab` stays quick.
"""

from typing import Any

from transferlab.deferred_imports import defer_iri_grammar

defer_iri_grammar()  # before anything imports jsonschema (nbformat, papermill)

from transferlab.errors import TransferlabError  # noqa: E402
from transferlab.registry import ModelRecord, Registry, VersionRecord  # noqa: E402

__version__ = "0.1.0"

_LAZY = {
    "FinetuneConfig": "transferlab.finetune",
    "finetune": "transferlab.finetune",
    "predict": "transferlab.predict",
    "merge": "transferlab.predict",
    "load_labelled_data": "transferlab.data",
    "run_template": "transferlab.runner",
    "DiscoveryConfig": "transferlab.discovery",
    "discover": "transferlab.discovery",
}

__all__ = ["ModelRecord", "Registry", "TransferlabError", "VersionRecord", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transferlab' has no attribute {name!r}")
