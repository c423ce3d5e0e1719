"""Fine-tuning a registered (or local) model for text classification: LoRA, QLoRA, full
fine-tuning, a linear probe or a plug-in method, recorded as a run and registered as a new
version.

    from transferlab.finetune import FinetuneConfig, finetune
    result = finetune(FinetuneConfig(base="all-MiniLM-L6-v2", data="tickets.csv"))
"""

from __future__ import annotations

from typing import Any

from transferlab.finetuning import config as _config
from transferlab.finetuning.base import TARGET_MODULES_BY_MODEL_TYPE
from transferlab.finetuning.config import (
    REPORT_TO,
    FinetuneConfig,
    ResolvedConfig,
    resolve_config,
)
from transferlab.finetuning.methods import FinetuneMethod, get_method, method_names
from transferlab.finetuning.run import FinetuneResult, finetune

__all__ = [
    "METHODS",  # noqa: F822 (module __getattr__, from the table of methods)
    "METHOD_LEARNING_RATES",  # noqa: F822
    "REPORT_TO",
    "TARGET_MODULES_BY_MODEL_TYPE",
    "FinetuneConfig",
    "FinetuneMethod",
    "FinetuneResult",
    "ResolvedConfig",
    "finetune",
    "get_method",
    "method_names",
    "resolve_config",
]


def __getattr__(name: str) -> Any:
    """METHODS and METHOD_LEARNING_RATES: read from the table of methods when first asked."""
    if name in ("METHODS", "METHOD_LEARNING_RATES"):
        return getattr(_config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
