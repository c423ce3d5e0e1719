"""transferlab: a transfer-learning workbench around a DuckDB model registry."""

from transferlab.errors import TransferlabError
from transferlab.registry import ModelRecord, Registry, VersionRecord

__version__ = "0.1.0"

__all__ = ["ModelRecord", "Registry", "TransferlabError", "VersionRecord", "__version__"]
