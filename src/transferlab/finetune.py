"""Fine-tuning a registered (or local) model for text classification: LoRA, QLoRA, full
fine-tuning or a linear probe, recorded as a run and registered as a new version.

    from transferlab.finetune import FinetuneConfig, finetune
    result = finetune(FinetuneConfig(base="all-MiniLM-L6-v2", data="tickets.csv"))
"""

from __future__ import annotations

from transferlab.finetuning.base import TARGET_MODULES_BY_MODEL_TYPE
from transferlab.finetuning.config import (
    METHOD_LEARNING_RATES,
    METHODS,
    REPORT_TO,
    FinetuneConfig,
    ResolvedConfig,
    resolve_config,
)
from transferlab.finetuning.run import FinetuneResult, finetune

__all__ = [
    "METHODS",
    "METHOD_LEARNING_RATES",
    "REPORT_TO",
    "TARGET_MODULES_BY_MODEL_TYPE",
    "FinetuneConfig",
    "FinetuneResult",
    "ResolvedConfig",
    "finetune",
    "resolve_config",
]
