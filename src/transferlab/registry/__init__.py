"""The DuckDB model registry: schema, migrations and the Registry API."""

from transferlab.registry.api import Registry
from transferlab.registry.records import ModelRecord, VersionRecord
from transferlab.registry.refs import VersionRef, parse_version_ref

__all__ = ["ModelRecord", "Registry", "VersionRecord", "VersionRef", "parse_version_ref"]
