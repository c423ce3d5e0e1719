"""QLoRA: LoRA on a base loaded in 4 bits (bitsandbytes NF4), CUDA only; the same PEFT
adapter layout as LoRA, with the quantization recorded so that loading can use it again."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from transferlab.errors import TransferlabError
from transferlab.finetuning.methods.base import load_for_training, quantization_config
from transferlab.finetuning.methods.lora import LoRA, with_lora

if TYPE_CHECKING:
    from transferlab.data import DataSplits
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.finetuning.training import TrainingOutcome


def quantization_metadata() -> dict[str, Any]:
    return {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}


class QLoRA(LoRA):
    name = "qlora"
    display_name = "QLoRA"
    description = "LoRA on a 4-bit quantized base (bitsandbytes); the same PEFT adapter"
    default_learning_rate = 2e-3
    catalog_learning_rate_key = "learning_rate"
    needs_cuda = True

    @property
    def device_needs(self) -> str:
        return "CUDA GPU + bitsandbytes"

    def check_environment(self) -> str:
        import torch

        if not torch.cuda.is_available():
            raise TransferlabError(
                "method='qlora' needs a CUDA GPU (bitsandbytes 4-bit weights), and this machine "
                "has none.",
                "Use method='lora' on this machine: same adapter, full-precision base weights.",
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TransferlabError(
                "method='qlora' needs the bitsandbytes package, which is not installed.",
                "Install the extra: pip install 'transferlab[qlora]'.",
            )
        return "cuda"

    def prepare(self, resolved: ResolvedConfig, label_names: list[str]) -> tuple[Any, Any, list]:
        from peft import prepare_model_for_kbit_training

        model, tokenizer, head = load_for_training(
            resolved, label_names, quantization=quantization_config()
        )
        model = prepare_model_for_kbit_training(model)
        return with_lora(model, resolved, head), tokenizer, head

    def train(
        self,
        resolved: ResolvedConfig,
        splits: DataSplits,
        *,
        progress: bool = True,
        callbacks: list[Any] | None = None,
    ) -> TrainingOutcome:
        """The Trainer path in bf16 (fp16 where the GPU has no bf16), quantization recorded."""
        import torch

        from transferlab.finetuning.training import train_with_trainer

        bf16 = torch.cuda.is_bf16_supported()
        outcome = train_with_trainer(
            self,
            resolved,
            splits,
            progress=progress,
            callbacks=callbacks,
            trainer_options={"bf16": bf16, "fp16": not bf16},
        )
        outcome.quantization = quantization_metadata()
        return outcome
