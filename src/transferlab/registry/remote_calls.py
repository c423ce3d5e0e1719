"""The Registry methods a client may call over HTTP, and how their values travel as JSON.

Both ends import this module: the REST service serves `POST /v1/registry/{method}` for the
methods named here and no other (service/routes_calls.py), and `RemoteRegistry` (remote.py)
calls them. One table keeps the two in step, so the CLI, the Python API and the templates run
the same code against a served registry as against a file: the service runs the very Registry
method, for the request's authenticated caller, and its rules (identity.py) decide.

Left out on purpose: the SQL escape hatch (`query`), connections and transactions, and
`authenticate` (a client learns who its token is with `whoami`).

Values are JSON with tags for what JSON lacks: `{"$dt": iso}` datetimes, `{"$date": iso}`,
`{"$tuple": [...]}`, `{"$dict": {...}}` (a dict with a key that starts with `$`), and
`{"$dc": "VersionRecord", "fields": {...}}` for the registry's dataclasses (only those
`_dataclasses` names are rebuilt); NaN and infinities as Python's json writes them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any
from uuid import UUID

#: read-only methods (a client retries them when the connection drops)
READS = frozenset(
    {
        "alias_holder",
        "alias_holders_with_results",
        "aliases",
        "all_models",
        "base_version_refs",
        "candidate_filter_counts",
        "candidate_models",
        "complete_versions_at",
        "complete_versions_of",
        "count_models_matching",
        "embedding_hashes",
        "evidence_rows",
        "exists",
        "filter_is_set",
        "finetune_scores",
        "get_model",
        "get_run",
        "get_sweep",
        "has_held_alias",
        "has_licence",
        "has_task",
        "history",
        "latest_sweep",
        "latest_version_of_kinds",
        "leaderboard",
        "lineage",
        "model_count",
        "model_licences",
        "model_names",
        "model_origin",
        "model_tasks",
        "models_from_source",
        "profiles",
        "promotion_request",
        "promotion_requests",
        "resolve",
        "result_means_of_model",
        "results",
        "run_exists",
        "run_kinds",
        "run_outcomes",
        "run_scores",
        "run_version_ids",
        "running_sweep_runs",
        "running_sweeps",
        "runs",
        "schema_version",
        "search_rows",
        "search_trials",
        "still_running",
        "succeeded_results_of_version",
        "succeeded_runs_of",
        "sweep_runs",
        "sweeps",
        "team_mode",
        "tokens",
        "training_examples",
        "training_scores",
        "users",
        "version_kinds",
        "version_uris",
        "version_uris_starting",
        "version_with_run",
        "versions",
        "whoami",
    }
)
#: methods that write (each checks its caller's role in its own transaction)
WRITES = frozenset(
    {
        "add_model",
        "add_results",
        "add_sweep_run",
        "add_user",
        "add_version",
        "approve_promotion_request",
        "create_token",
        "disable_user",
        "ensure_version",
        "finish_run",
        "finish_sweep",
        "interrupt_gone_runs",
        "load_catalog",
        "record_training_score",
        "open_promotion_request",
        "record_derived_version",
        "register_import",
        "reject_promotion_request",
        "remove_alias",
        "require_action",
        "revoke_token",
        "save_embeddings",
        "save_profile",
        "set_alias",
        "start_run",
        "start_sweep",
        "sync_catalog",
        "update_run",
        "upsert_models",
    }
)
CALLS = READS | WRITES


def _dataclasses() -> dict[str, type]:
    from transferlab.registry.identity import User
    from transferlab.registry.records import ModelRecord, VersionRecord
    from transferlab.registry.refs import VersionRef
    from transferlab.search import SearchFilters

    kinds = (ModelRecord, VersionRecord, VersionRef, User, SearchFilters)
    return {cls.__name__: cls for cls in kinds}


def encode(value: Any) -> Any:
    """`value` as plain JSON data with tags (see the module's docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, dict):
        plain = {str(key): encode(item) for key, item in value.items()}
        return {"$dict": plain} if any(key.startswith("$") for key in plain) else plain
    if isinstance(value, tuple):
        return {"$tuple": [encode(item) for item in value]}
    if isinstance(value, (list, set, frozenset)) or _is_iterable(value):
        return [encode(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if name not in _dataclasses():
            raise TypeError(f"{name} does not travel over HTTP")
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$dc": name, "fields": fields}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (UUID, PurePath)):
        return str(value)
    if hasattr(value, "tolist"):  # a numpy array or scalar (embeddings)
        return encode(value.tolist())
    raise TypeError(f"a {type(value).__name__} does not travel over HTTP")


def _is_iterable(value: Any) -> bool:
    return hasattr(value, "__iter__") and not isinstance(value, (bytes, str, dict))


def decode(value: Any) -> Any:
    """The value `encode` wrote, rebuilt."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "$dt":
            return datetime.fromisoformat(inner)
        if tag == "$date":
            return date.fromisoformat(inner)
        if tag == "$tuple":
            return tuple(decode(item) for item in inner)
        if tag == "$dict":
            return {key: decode(item) for key, item in inner.items()}
    if "$dc" in value:
        cls = _dataclasses().get(str(value["$dc"]))
        if cls is None or set(value) != {"$dc", "fields"} or not isinstance(value["fields"], dict):
            raise ValueError(f"unknown record kind {value['$dc']!r}")
        return cls(**{key: decode(item) for key, item in value["fields"].items()})
    return {key: decode(item) for key, item in value.items()}


def dumps(value: Any) -> bytes:
    """JSON text of an encoded value (NaN and infinities as Python writes them)."""
    return json.dumps(encode(value), allow_nan=True, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    return decode(json.loads(data, parse_constant=_constant))


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def uris_of(records: Any, uri_for: Any) -> dict[str, str | None]:
    """The client's side of `load_catalog` / `sync_catalog`: a function cannot travel, so its
    value for each record does (`uris`, by model name)."""
    return {record.name: uri_for(record) for record in records}


def server_arguments(method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for the Registry method, from what the client sent: `uris` back
    into the `uri_for` function of the catalog writes."""
    if method in ("load_catalog", "sync_catalog") and "uris" in kwargs:
        uris = dict(kwargs.pop("uris") or {})
        kwargs["uri_for"] = lambda record: uris.get(record.name)
    return kwargs
