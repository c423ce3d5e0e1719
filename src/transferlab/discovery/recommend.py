"""The recommendation: the best-ranked base and its fine-tuning settings, as parameters of the
finetune template (resolved the way the finetune template resolves them)."""

from __future__ import annotations

import os
import shlex
from typing import Any

from transferlab.discovery.config import DiscoveryConfig
from transferlab.finetuning.methods import DEFAULT_METHOD, all_methods
from transferlab.parameters import RECOMMENDED_SETTINGS, recommended_parameters
from transferlab.registry import Registry

COMMAND_ORDER = (
    "base",
    "method",
    "data",
    "train",
    "test",
    "text_column",
    "label_column",
    *RECOMMENDED_SETTINGS,
    "seed",
)


def preferred_methods() -> tuple[str, ...]:
    """Methods to recommend, in the table's order (the default first): those that run on any
    machine (a CUDA-only method is never recommended)."""
    return tuple(m.name for m in all_methods() if not m.needs_cuda)


def pick_method(finetune_block: dict[str, Any] | None) -> str:
    """The default method unless the model's catalog entry lists other methods only."""
    listed = list((finetune_block or {}).get("methods") or [])
    for method in preferred_methods():
        # 'auto' is no training method a catalog lists: it resolves to one at the run
        if not listed or method in listed or method == "auto":
            return method
    return DEFAULT_METHOD


def recommend(registry: Registry, version_id: str, config: DiscoveryConfig) -> dict[str, Any]:
    """finetune-template parameters: base, method, the resolved settings, and the data."""
    model = registry.get_model(registry.resolve(version_id).model_name)
    request: dict[str, Any] = {"base": version_id, "method": pick_method(model.get("finetune"))}
    for key in ("data", "train", "test"):
        value = getattr(config, key)
        if isinstance(value, str | os.PathLike):  # a DataFrame cannot travel as a parameter
            request[key] = os.fspath(value)
    if config.text_column != "text":
        request["text_column"] = config.text_column
    if config.label_column != "label":
        request["label_column"] = config.label_column
    request["seed"] = config.seed
    # DataFrames are scored here but cannot be parameters: resolve with them all the same
    frames = {k: getattr(config, k) for k in ("data", "train", "test") if k not in request}
    parameters = recommended_parameters({**request, **frames, "target_modules": "auto"}, registry)
    return {k: v for k, v in parameters.items() if k not in frames}


def _cli_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def finetune_command(parameters: dict[str, Any]) -> str:
    """The shell command that runs the finetune template with these parameters."""
    parts = ["transferlab", "run", "finetune"]
    first = [n for n in COMMAND_ORDER if n in parameters]
    for name in [*first, *(n for n in parameters if n not in COMMAND_ORDER)]:
        value = parameters[name]
        if isinstance(value, str | int | float | bool | list | tuple) or value is None:
            parts += ["-p", name, shlex.quote(_cli_value(value))]
    return " ".join(parts)
