"""The recommendation: the best-ranked base and its fine-tuning settings, as parameters of the
finetune template (resolved the way the finetune template resolves them)."""

from __future__ import annotations

import os
import shlex
from typing import Any

from transferlab.discovery.config import DiscoveryConfig
from transferlab.finetuning.methods import DEFAULT_METHOD, all_methods
from transferlab.registry import Registry

# The settings a recommendation spells out (what resolve_config fills from the catalog).
RECOMMENDED_SETTINGS = (
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "learning_rate",
    "epochs",
    "batch_size",
    "max_length",
)
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
    from transferlab.finetuning.config import resolve_config
    from transferlab.parameters import finetune_config

    model = registry.get_model(registry.resolve(version_id).model_name)
    method = pick_method(model.get("finetune"))
    request = {
        "base": version_id,
        "data": config.data,
        "train": config.train,
        "test": config.test,
        "text_column": config.text_column,
        "label_column": config.label_column,
        "method": method,
        "target_modules": "auto",
    }
    resolved = resolve_config(finetune_config(request), registry)
    parameters: dict[str, Any] = {"base": version_id, "method": method}
    for key in RECOMMENDED_SETTINGS:
        value = getattr(resolved, key)
        if value is not None and not _left_to_the_run(resolved.setting_sources.get(key, "")):
            parameters[key] = value
    for key in ("data", "train", "test"):
        value = getattr(config, key)
        if isinstance(value, str | os.PathLike):  # a DataFrame cannot travel as a parameter
            parameters[key] = os.fspath(value)
    if config.text_column != "text":
        parameters["text_column"] = config.text_column
    if config.label_column != "label":
        parameters["label_column"] = config.label_column
    parameters["seed"] = config.seed
    return parameters


def _left_to_the_run(source: str) -> bool:
    """Settings `auto` derives from the data (the scaled epochs) or the chosen method ignores
    are not spelled out: the fine-tune resolves them from the data it is given, which may be
    more (or other) than the examples discovery scored."""
    return source.startswith("auto") or source.startswith("not used")


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
