"""The model registry: the Registry API over a backend chosen by the registry's location
(a DuckDB file by default; see backends.py), its schema and migrations."""

from transferlab.registry.api import Registry
from transferlab.registry.backends import RegistryBackend
from transferlab.registry.records import ModelRecord, VersionRecord
from transferlab.registry.refs import VersionRef, parse_version_ref

__all__ = [
    "ModelRecord",
    "Registry",
    "RegistryBackend",
    "VersionRecord",
    "VersionRef",
    "parse_version_ref",
]
