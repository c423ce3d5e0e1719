"""Training with transformers' Trainer, the default of every fine-tuning method: the data
pipeline with per-batch padding, early stopping, and the measurements a report needs. The
model and its trainable parts come from the method (`FinetuneMethod.prepare`).
"""

from __future__ import annotations

import math
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferlab.data import DataSplits, LabelledData
from transferlab.finetuning.config import ResolvedConfig
from transferlab.finetuning.methods import FinetuneMethod
from transferlab.models import sources
from transferlab.models.logits import classification_metrics, confusion_on_test
from transferlab.progress import phase
from transferlab.progress.training import training_progress

# Evaluating the training split is skipped above this size: it would cost another epoch.
MAX_TRAIN_EVAL_EXAMPLES = 2000
# Length grouping sorts examples inside mega-batches of up to 50 batches; with fewer than this
# many batches per epoch it barely changes padding and makes batches less random.
MIN_BATCHES_FOR_LENGTH_GROUPING = 32


@dataclass
class TrainingOutcome:
    """The trained model (in memory) and what was measured while training and evaluating it."""

    model: Any
    tokenizer: Any
    head_modules: list[str]
    trainable_parameters: int
    total_parameters: int
    metrics: dict[str, dict[str, float]]
    logits: dict[str, np.ndarray]
    confusion_matrix: list[list[int]] | None
    history: list[dict[str, Any]]
    timings: dict[str, float]
    resources: dict[str, Any]
    group_by_length: bool
    best_step: int | None = None
    quantization: dict[str, Any] | None = field(default=None)
    # What the method adds to the version's metadata (a pooled head's pooling, LP-FT's probe).
    details: dict[str, Any] = field(default_factory=dict)


class PaddingCounter:
    """Wraps a collator and counts real and padded token positions of the batches it builds."""

    def __init__(self, collator: Any):
        self.collator = collator
        self.examples = 0
        self.real_tokens = 0
        self.batch_tokens = 0

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        batch = self.collator(features)
        mask = batch.get("attention_mask")
        if mask is not None:
            self.examples += int(mask.shape[0])
            self.real_tokens += int(mask.sum())
            self.batch_tokens += int(mask.numel())
        return batch

    @property
    def padding_share(self) -> float:
        return 1 - self.real_tokens / self.batch_tokens if self.batch_tokens else 0.0


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _encode(tokenizer: Any, data: LabelledData, max_length: int) -> Any:
    import datasets

    encoded = tokenizer(list(data.texts), truncation=True, max_length=max_length)
    columns = {key: list(values) for key, values in encoded.items()}
    columns["labels"] = list(data.labels)
    return datasets.Dataset.from_dict(columns)


def _length_grouping(resolved: ResolvedConfig, n_train: int) -> bool:
    if resolved.group_by_length is not None:
        return resolved.group_by_length
    return math.ceil(n_train / resolved.batch_size) >= MIN_BATCHES_FOR_LENGTH_GROUPING


def _training_arguments(
    resolved: ResolvedConfig,
    checkpoints: str,
    n_train: int,
    has_validation: bool,
    group_by_length: bool,
    progress: bool,
    options: dict[str, Any] | None = None,
) -> Any:
    from transformers import TrainingArguments

    steps_per_epoch = max(1, math.ceil(n_train / resolved.batch_size))
    total_steps = resolved.max_steps or math.ceil(resolved.epochs * steps_per_epoch)
    # No checkpoints on disk: BestWeights keeps the best trainable weights in memory.
    evaluation: dict[str, Any] = {"eval_strategy": "no"}
    if has_validation:
        if resolved.max_steps:
            every = max(1, min(steps_per_epoch, total_steps // 4))
            evaluation = {"eval_strategy": "steps", "eval_steps": every}
        else:
            evaluation = {"eval_strategy": "epoch"}
    return TrainingArguments(
        output_dir=checkpoints,
        save_strategy="no",
        per_device_train_batch_size=resolved.batch_size,
        per_device_eval_batch_size=resolved.batch_size * 2,
        num_train_epochs=resolved.epochs,
        max_steps=resolved.max_steps or -1,
        learning_rate=resolved.learning_rate,
        weight_decay=resolved.weight_decay,
        warmup_steps=resolved.warmup_ratio,
        lr_scheduler_type="linear",
        logging_strategy="steps",
        logging_steps=max(1, total_steps // 50),
        report_to="none",  # the tracker's callbacks come from finetuning.trackers
        disable_tqdm=not progress,
        seed=resolved.seed,
        data_seed=resolved.seed,
        use_cpu=resolved.device == "cpu",
        dataloader_pin_memory=resolved.device == "cuda",
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        label_names=["labels"],
        **evaluation,
        **(options or {}),
    )


def _trainer_class() -> type:
    from transformers import Trainer

    class CountingTrainer(Trainer):
        """Counts padding on the training batches only (evaluation uses the plain collator)."""

        padding_counter: PaddingCounter

        def get_train_dataloader(self) -> Any:
            plain = self.data_collator
            self.data_collator = self.padding_counter
            try:
                return super().get_train_dataloader()
            finally:
                self.data_collator = plain

    return CountingTrainer


def _best_weights_callback(patience: int | None, restore: bool = True) -> Any:
    from transformers import TrainerCallback

    class BestWeights(TrainerCallback):
        """Early stopping on the validation loss, and the best weights restored at the end.

        The Trainer's own way (load_best_model_at_end + EarlyStoppingCallback) writes a
        checkpoint to disk at every evaluation and reads the best one back; this keeps a copy
        of the trainable weights (an adapter and a head: a few MB) in memory instead.
        """

        def __init__(self) -> None:
            self.best_loss: float | None = None
            self.best_step: int | None = None
            self.best_state: dict[str, Any] | None = None
            self.evaluations_without_gain = 0

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
            loss = (metrics or {}).get("eval_loss")
            if loss is None or model is None:
                return
            if self.best_loss is None or loss < self.best_loss:
                self.best_loss = loss
                self.best_step = state.global_step
                self.best_state = {
                    name: parameter.detach().clone()
                    for name, parameter in model.named_parameters()
                    if parameter.requires_grad
                }
                self.evaluations_without_gain = 0
                return
            self.evaluations_without_gain += 1
            if patience and self.evaluations_without_gain >= patience:
                control.should_training_stop = True

        def on_train_end(self, args, state, control, model=None, **kwargs):
            if not restore or self.best_state is None or model is None:
                return
            import torch

            parameters = dict(model.named_parameters())
            with torch.no_grad():
                for name, value in self.best_state.items():
                    parameters[name].copy_(value)

    return BestWeights()


def _compute_metrics(prediction: Any) -> dict[str, float]:
    logits = prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    scores = classification_metrics(prediction.label_ids, logits)
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def train_and_evaluate(
    resolved: ResolvedConfig,
    splits: DataSplits,
    *,
    progress: bool = True,
    callbacks: list[Any] | None = None,
) -> TrainingOutcome:
    """Train with the resolved method (`FinetuneMethod.train`) and evaluate every split."""
    return resolved.finetune_method.train(resolved, splits, progress=progress, callbacks=callbacks)


def train_with_trainer(
    method: FinetuneMethod,
    resolved: ResolvedConfig,
    splits: DataSplits,
    *,
    progress: bool = True,
    callbacks: list[Any] | None = None,
    trainer_options: dict[str, Any] | None = None,
    prepared: tuple[Any, Any, list[str]] | None = None,
    head_learning_rate: float | None = None,
    keep_best: bool = True,
) -> TrainingOutcome:
    """Load (`method.prepare`), train, keep the best validation checkpoint, and evaluate
    every split.

    `callbacks` are extra Trainer callbacks (an experiment tracker's); `trainer_options` extra
    TrainingArguments (QLoRA's precision). `prepared`: (model, tokenizer, head modules) the
    method built already (instead of `method.prepare`). `head_learning_rate`: the head
    modules' parameters train at this rate, the rest at `resolved.learning_rate` (AdamW, two
    parameter groups, the Trainer's warmup and decay on both). `keep_best=False` keeps the
    last weights and stops no run early (the validation split is still evaluated).
    """
    import torch
    from transformers import DataCollatorWithPadding, set_seed
    from transformers.trainer_callback import PrinterCallback

    timings: dict[str, float] = {}
    with torch_threads(resolved.num_threads), sources.progress_bars(progress):
        set_seed(resolved.seed)
        started = time.perf_counter()
        model, tokenizer, head = prepared or method.prepare(resolved, splits.label_names)
        timings["load_s"] = time.perf_counter() - started

        started = time.perf_counter()
        encoded = {
            split: _encode(tokenizer, data, resolved.max_length) for split, data in splits.items()
        }
        timings["tokenize_s"] = time.perf_counter() - started

        n_train = len(splits.train)
        grouping = _length_grouping(resolved, n_train)
        has_validation = splits.validation is not None
        counter = PaddingCounter(DataCollatorWithPadding(tokenizer))
        patience = resolved.early_stopping_patience if keep_best else None
        best = _best_weights_callback(patience, keep_best) if has_validation else None
        trainer_callbacks = [*([best] if best else []), training_progress(), *(callbacks or [])]
        with tempfile.TemporaryDirectory(prefix="transferlab-checkpoints-") as checkpoints:
            args = _training_arguments(
                resolved, checkpoints, n_train, has_validation, grouping, progress, trainer_options
            )
            trainer = _trainer_class()(
                model=model,
                args=args,
                train_dataset=encoded["train"],
                eval_dataset=encoded.get("validation"),
                data_collator=DataCollatorWithPadding(tokenizer),
                processing_class=tokenizer,
                compute_metrics=_compute_metrics,
                callbacks=trainer_callbacks,
                optimizer_cls_and_kwargs=_two_rates(model, head, args, head_learning_rate),
            )
            trainer.padding_counter = counter
            if not progress:
                trainer.remove_callback(PrinterCallback)
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            trainer.train()
            timings["train_s"] = time.perf_counter() - started
            history = _history(trainer.state.log_history)
            eval_seconds = sum(
                entry.get("eval_runtime", 0.0) for entry in trainer.state.log_history
            )
            compute_seconds = max(timings["train_s"] - eval_seconds, 1e-9)
            timings["train_eval_s"] = eval_seconds
            timings["train_samples_per_s"] = counter.examples / compute_seconds

        model = trainer.model
        started = time.perf_counter()
        metrics, logits = _evaluate(model, tokenizer, splits, encoded, resolved.batch_size * 2)
        timings["evaluate_s"] = time.perf_counter() - started

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return TrainingOutcome(
        model=model,
        tokenizer=tokenizer,
        head_modules=head,
        trainable_parameters=int(trainable),
        total_parameters=int(total),
        metrics=metrics,
        logits=logits,
        confusion_matrix=confusion_on_test(splits, logits),
        history=history,
        timings=timings,
        resources={
            "device": resolved.device,
            # GPUs the Trainer (through accelerate) spread each batch over: all it can see
            "gpus": int(trainer.args.n_gpu) if resolved.device == "cuda" else 0,
            "threads": resolved.num_threads,
            "peak_rss_mb": _peak_rss_mb(),
            "peak_gpu_mb": (
                torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
            ),
            "train_examples_seen": counter.examples,
            "steps": trainer.state.global_step,
            "padding_share": counter.padding_share,
            "padding_share_fixed_length": _fixed_length_padding(
                encoded["train"], resolved.max_length
            ),
        },
        group_by_length=grouping,
        best_step=best.best_step if best and keep_best else None,
    )


def _two_rates(
    model: Any, head: list[str], args: Any, head_learning_rate: float | None
) -> tuple[type, dict[str, Any]] | None:
    """AdamW with the head at its own learning rate (transformers 5's Trainer takes
    `optimizer_cls_and_kwargs`; a `params` entry replaces its parameter groups, and its
    scheduler scales each group's own rate)."""
    if head_learning_rate is None:
        return None
    import torch

    from transferlab.finetuning.methods.pooled import head_parameter_groups

    groups = head_parameter_groups(model, head, args.learning_rate, head_learning_rate)
    for group in groups:
        group["weight_decay"] = args.weight_decay
    options = {
        "params": groups,
        "lr": args.learning_rate,
        "betas": (args.adam_beta1, args.adam_beta2),
        "eps": args.adam_epsilon,
    }
    return torch.optim.AdamW, options


def _evaluate(
    model: Any, tokenizer: Any, splits: DataSplits, encoded: dict[str, Any], batch_size: int
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Logits in the data's own order (Trainer.predict reorders them when grouping by length)."""
    metrics: dict[str, dict[str, float]] = {}
    logits: dict[str, np.ndarray] = {}
    for split, data in splits.items():
        if split == "train" and len(data) > MAX_TRAIN_EVAL_EXAMPLES:
            continue
        logits[split] = batched_logits(model, tokenizer, encoded[split], batch_size, split)
        metrics[split] = classification_metrics(np.asarray(data.labels), logits[split])
    return metrics, logits


def batched_logits(
    model: Any, tokenizer: Any, dataset: Any, batch_size: int, label: str | None = None
) -> np.ndarray:
    """Logits of every row in the data's order; progress reported as `label` (a split)."""
    import torch
    from transformers import DataCollatorWithPadding

    collator = DataCollatorWithPadding(tokenizer)
    device = next(model.parameters()).device
    inputs = dataset.remove_columns([c for c in ("labels",) if c in dataset.column_names])
    # Batches of similar lengths pad little; the logits go back to the data's order after.
    order = np.argsort([len(ids) for ids in inputs["input_ids"]], kind="stable")
    logits: np.ndarray | None = None
    model.eval()
    batches = math.ceil(len(inputs) / batch_size)
    with torch.inference_mode(), phase("evaluate", batches, label=label) as reported:
        for start in range(0, len(inputs), batch_size):
            indices = order[start : start + batch_size]
            rows = inputs[indices.tolist()]
            features = [
                dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)
            ]
            batch = collator(features).to(device)
            values = model(**batch).logits.float().cpu().numpy()
            if logits is None:  # width from the output: a pooled head's config is the encoder's
                logits = np.zeros((len(inputs), values.shape[1]), dtype=np.float32)
            logits[indices] = values
            reported.advance()
    if logits is None:
        return np.zeros((0, _num_labels(model)), dtype=np.float32)
    return logits


def _num_labels(model: Any) -> int:
    count = getattr(model, "num_labels", None)
    return int(count) if isinstance(count, int) else int(model.config.num_labels)


def _history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Loss (and validation scores) per logging step, one record each, for learning curves."""
    records = []
    for entry in log_history:
        base = {"step": entry.get("step"), "epoch": entry.get("epoch")}
        if "loss" in entry:
            records.append(
                {
                    **base,
                    "split": "train",
                    "loss": entry["loss"],
                    "learning_rate": entry.get("learning_rate"),
                    "grad_norm": entry.get("grad_norm"),
                }
            )
        elif "eval_loss" in entry:
            records.append(
                {
                    **base,
                    "split": "validation",
                    "loss": entry["eval_loss"],
                    "accuracy": entry.get("eval_accuracy"),
                    "macro_f1": entry.get("eval_macro_f1"),
                }
            )
    return records


def _fixed_length_padding(dataset: Any, max_length: int) -> float:
    """The padding share had every example been padded to max_length."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return 1 - sum(lengths) / (len(lengths) * max_length) if lengths else 0.0


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
