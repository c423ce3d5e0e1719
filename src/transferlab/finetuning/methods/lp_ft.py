"""LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"): the standard
linear probe first, then LoRA fine-tunes the encoder and that head together.

The training texts are embedded once by the frozen base (its sentence-transformers pooling,
or mean pooling when the folder declares none: recorded as `pooling.is_fallback`); the probe
(`models.probe.fit_probe`: logistic regression on the L2-normalised vectors, C by stratified
CV) initialises the linear head of a `PooledClassifier` on the same encoder; LoRA (r=8 on
query/value by default) then trains body and head at one learning rate (2e-3), for a step
count that scales with the data (`schedule.scaled_epochs`) unless epochs or max_steps were
set, without early stopping: the last weights are kept (27 of 30 few-shot runs of the study
had their best validation loss at the last step); the validation split is still evaluated.

benchmarks/method_study.py, validation data carved from training files: sst2 8/class .709
(probe .656, LoRA on [CLS] .569); trec 8/class .750 (.545, .235); emotion 64/class .682
(.476). Saved as LoRA's pooled layout (adapter + head.json), loaded by `LoRA.load`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from transferlab.finetuning.methods import pooled
from transferlab.finetuning.methods.lora import LoRA, with_lora
from transferlab.finetuning.methods.schedule import scaled_epochs
from transferlab.models import sources

if TYPE_CHECKING:
    from transferlab.data import DataSplits
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.finetuning.training import TrainingOutcome


class LPFT(LoRA):
    name = "lp_ft"
    display_name = "LP-FT"
    description = (
        "linear probe first, then LoRA trains encoder and that head (Kumar et al. 2022); "
        "a PEFT adapter + head"
    )
    default_learning_rate = 2e-3
    catalog_learning_rate_key = "learning_rate"
    uses_lora_settings = True
    version_kind = "adapter"
    adapter_format = "peft"
    title = "LP-FT"

    def prepare(self, resolved: ResolvedConfig, label_names: list[str]) -> tuple[Any, Any, list]:
        """The model before the probe: LoRA on a zero head (`train` starts it from the probe)."""
        from transferlab.models.pooling import pooling_or_default

        pooling = pooling_or_default(resolved.base.source.location)
        model, tokenizer = pooled.build_pooled(resolved, label_names, pooling)
        return with_lora(model, resolved, pooled.HEAD, task_type=None), tokenizer, pooled.HEAD

    def train(
        self,
        resolved: ResolvedConfig,
        splits: DataSplits,
        *,
        progress: bool = True,
        callbacks: list[Any] | None = None,
    ) -> TrainingOutcome:
        from transformers import set_seed

        from transferlab.finetuning.training import torch_threads, train_with_trainer

        started = time.perf_counter()
        with torch_threads(resolved.num_threads), sources.progress_bars(progress):
            model, tokenizer, details = probe_initialised(resolved, splits)
            set_seed(resolved.seed)
            model = with_lora(model, resolved, pooled.HEAD, task_type=None)
        probe_seconds = time.perf_counter() - started
        schedule = with_schedule(resolved, len(splits.train))
        details["epochs"] = schedule.epochs
        details["epochs_from"] = schedule.setting_sources.get("epochs")
        outcome = train_with_trainer(
            self,
            schedule,
            splits,
            progress=progress,
            callbacks=callbacks,
            prepared=(model, tokenizer, pooled.HEAD),
            head_learning_rate=schedule.learning_rate,
            keep_best=False,
        )
        outcome.timings["probe_s"] = probe_seconds
        outcome.timings["load_s"] = outcome.timings.get("load_s", 0.0) + probe_seconds
        outcome.details["probe"] = details
        outcome.resources["probe"] = details
        return outcome


def with_schedule(resolved: ResolvedConfig, n_train: int) -> ResolvedConfig:
    """The scaled schedule, unless the request set epochs or max_steps."""
    if resolved.max_steps or resolved.setting_sources.get("epochs") == "config":
        return resolved
    epochs = scaled_epochs(n_train, resolved.batch_size)
    sources_ = {**resolved.setting_sources, "epochs": "lp_ft schedule (scaled_epochs)"}
    return dataclasses.replace(resolved, epochs=float(epochs), setting_sources=sources_)


def probe_initialised(
    resolved: ResolvedConfig, splits: DataSplits
) -> tuple[Any, Any, dict[str, Any]]:
    """(PooledClassifier whose head is the fitted probe, tokenizer, what the probe found)."""
    from transferlab.models.embedding import embed, load_encoder
    from transferlab.models.heads import PooledClassifier
    from transferlab.models.probe import fit_probe, probe_head_rows

    source = resolved.base.source
    label_names = list(splits.label_names)
    started = time.perf_counter()
    with sources.loading_errors(source, "model"):
        encoder = load_encoder(
            source.location,
            device=resolved.device,
            max_length=resolved.max_length,
            **sources.pretrained_options(source),
        )
    vectors = embed(encoder, splits.train.texts, batch_size=max(resolved.batch_size, 32))
    embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    probe = fit_probe(vectors, splits.train.labels, seed=resolved.seed)
    fit_seconds = time.perf_counter() - started
    model = PooledClassifier(
        encoder.model, encoder.pooling, len(label_names), normalize=True, label_names=label_names
    )
    model.init_from_probe(*probe_head_rows(probe, len(label_names)))
    model.train()
    pooling = encoder.pooling
    details = {
        "C": probe.C,
        "cv_accuracy": probe.cv_accuracy.get(probe.C),
        "folds": probe.folds,
        "note": probe.note,
        "train_accuracy": float(np.mean(probe.predict(vectors) == np.asarray(splits.train.labels))),
        "pooling": {**pooling.to_dict(), "is_fallback": pooling.is_fallback},
        "embed_s": embed_seconds,
        "fit_s": fit_seconds,
    }
    return model, encoder.tokenizer, details
