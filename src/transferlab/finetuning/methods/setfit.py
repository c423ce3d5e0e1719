"""SetFit (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts"): contrastive
fine-tuning of the sentence encoder on pairs of training examples (same label: similar,
different labels: dissimilar), then the standard probe on the fine-tuned encoder's embeddings.

The contrastive phase is the `setfit` package's (optional extra: pip install
'transferlab[setfit]'): its pair sampler (`ContrastiveDataset`), its default loss
(sentence-transformers' CosineSimilarityLoss) and its Trainer (sentence-transformers'), on the
base loaded as a `SentenceTransformer` (its own pooling and normalisation, no remote code).
The head is not setfit's: it is the linear probe's (`models.probe.fit_probe`: logistic
regression on the L2-normalised pooled vectors, C by stratified CV), so the version is the
complete pooled model full fine-tuning writes (the encoder's weights, head.safetensors +
head.json, the base's sentence-transformers files) and is saved and loaded by `full`'s code;
predicting needs no setfit package.

Two methods: `setfit` trains every weight of the body (SetFit's 2e-5); `setfit_lora` trains
LoRA adapters on it (lora_r, lora_alpha, lora_dropout, target_modules as for `lora`) and merges
them before saving, so its version is a complete model too.

How many pairs and steps (`pair_schedule`): SetFit's default draws 20 positive and 20 negative
pairs per example (num_iterations=20), i.e. 40 n pairs, one epoch, ceil(40 n / batch) steps.
That is capped at min(300, max(80, 20 x classes)) steps: 80 as in benchmarks/method_study.py,
more for more classes (more clusters to pull apart), never above 300 (all-MiniLM-L6-v2 on one
thread of a busy 2-core machine: 1.2 s a step at batch 16, so the sample data's 100 steps took
118 s against 2 s for the linear probe, both .981 on its test split). num_iterations is then
lowered so that the pairs drawn (2 x num_iterations x n) just cover steps x batch: pairs grow
linearly with n, never with n^2 nor with the classes, and stay <= steps x batch + 2n. setfit's
sampler enumerates all n^2 index pairs of the examples it is given, so at most 2,048 examples
(a class-balanced subset, the seed's) feed the pairs; the probe is fitted on every training
example. `max_steps` in the request replaces the rule's step count.

50 classes x 64 examples, batch 16: 300 steps train on 4,800 pairs (a list of 8,192 drawn from
2,048 examples, at most 4,800 of them distinct: setfit's max_pairs); SetFit's default would draw
128,000, and there are 5.1 million pairs in all.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from transferlab.errors import TransferlabError
from transferlab.finetuning.methods import pooled
from transferlab.finetuning.methods.full import FullFinetuning
from transferlab.models import sources

if TYPE_CHECKING:
    from transferlab.data import DataSplits
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.finetuning.training import TrainingOutcome

ITERATIONS = 20  # SetFit's default num_iterations: 20 positive + 20 negative pairs per example
MIN_STEP_CAP = 80  # benchmarks/method_study.py's SETFIT_MAX_STEPS
STEPS_PER_CLASS = 20
MAX_STEPS = 300
MAX_PAIR_EXAMPLES = 2048  # setfit enumerates n^2 index pairs of what it is given
EMBED_BATCH_SIZE = 32
INSTALL_HINT = "pip install 'transferlab[setfit]'"


@dataclass(frozen=True)
class PairSchedule:
    """How much contrastive training a run does: `examples` (of `n_train`) feed the pairs,
    `num_iterations` positive and as many negative pairs per example (`pairs` in all), and
    `steps` optimiser steps of `batch_size` pairs; `rule` says where the steps came from."""

    n_train: int
    examples: int
    classes: int
    batch_size: int
    num_iterations: int
    pairs: int
    steps: int
    step_cap: int
    rule: str

    def record(self) -> dict[str, Any]:
        return asdict(self)


def step_cap(classes: int) -> int:
    """min(MAX_STEPS, max(MIN_STEP_CAP, STEPS_PER_CLASS x classes))."""
    return min(MAX_STEPS, max(MIN_STEP_CAP, STEPS_PER_CLASS * max(1, classes)))


def pair_schedule(
    n_train: int, classes: int, batch_size: int, max_steps: int | None = None
) -> PairSchedule:
    """SetFit's 40 pairs per example, capped at `step_cap(classes)` steps (module docstring);
    `max_steps` replaces the step count. num_iterations = ceil(steps x batch / (2 x examples))
    so that the pairs drawn cover the steps once."""
    batch_size = max(1, int(batch_size))
    examples = max(1, min(int(n_train), MAX_PAIR_EXAMPLES))
    cap = step_cap(classes)
    if max_steps:
        steps, rule = int(max_steps), "max_steps (config)"
    else:
        default_steps = math.ceil(2 * ITERATIONS * examples / batch_size)
        steps = min(default_steps, cap)
        rule = (
            f"SetFit's {ITERATIONS} iterations ({2 * ITERATIONS} pairs per example)"
            if steps == default_steps
            else f"capped at min({MAX_STEPS}, max({MIN_STEP_CAP}, {STEPS_PER_CLASS} x classes))"
        )
    iterations = max(1, math.ceil(steps * batch_size / (2 * examples)))
    return PairSchedule(
        n_train=int(n_train),
        examples=examples,
        classes=int(classes),
        batch_size=batch_size,
        num_iterations=iterations,
        pairs=2 * iterations * examples,
        steps=steps,
        step_cap=cap,
        rule=rule,
    )


def pair_examples(labels: list[int] | np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of the examples the pairs are drawn from, in a seeded order (setfit's sampler
    shuffles pairs with a fixed seed of its own, so the order is what makes seeds differ); above
    `limit` examples, a class-balanced subset (classes taken in turn, smaller ones in full)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    if len(order) <= limit:
        return order
    queues = [list(order[labels[order] == label]) for label in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return rng.permutation(np.asarray(chosen))


def setfit_missing() -> bool:
    return importlib.util.find_spec("setfit") is None


class SetFit(FullFinetuning):
    name = "setfit"
    display_name = "SetFit"
    description = (
        "SetFit: contrastive fine-tuning of the whole encoder on pairs of examples (setfit "
        "package), then the standard probe; a complete model"
    )
    default_learning_rate = 2e-5  # SetFit's body learning rate
    catalog_learning_rate_key = "setfit_learning_rate"
    uses_lora_settings = False
    version_kind = "full"
    adapter_format = None
    title = "SetFit"
    body: ClassVar[str] = "full"
    unused_settings: ClassVar[tuple[str, ...]] = (
        "epochs",
        "early_stopping_patience",
        "group_by_length",
    )
    unused_reason: ClassVar[str] = (
        "not used: setfit trains for the steps of its pair/step rule (max_steps replaces "
        "them), without early stopping"
    )

    @property
    def device_needs(self) -> str:
        return "CPU or GPU + setfit package"

    def check_environment(self) -> str:
        if setfit_missing():
            raise TransferlabError(
                f"method={self.name!r} needs the setfit package, which is not installed.",
                f"Install the extra: {INSTALL_HINT}; or use method='lp_ft' or "
                "method='linear_probe', which need nothing more.",
            )
        return super().check_environment()

    def prepare(self, resolved: ResolvedConfig, label_names: list[str]) -> tuple[Any, Any, list]:
        raise TransferlabError(
            f"{self.display_name} does not prepare a model for transformers' Trainer.",
            f"Call {type(self).__name__}.train (transferlab.finetune does).",
        )

    def train(
        self,
        resolved: ResolvedConfig,
        splits: DataSplits,
        *,
        progress: bool = True,
        callbacks: list[Any] | None = None,
    ) -> TrainingOutcome:
        """Contrastive training of the body (setfit), the probe on its embeddings, and every
        split evaluated through the resulting PooledClassifier. `callbacks` (a tracker's) are
        given to setfit's Trainer."""
        from transferlab.finetuning.training import torch_threads

        self.check_environment()
        labels = np.asarray(splits.train.labels)
        if len(np.unique(labels)) < 2:
            raise TransferlabError(
                f"{self.display_name} needs training examples of at least two labels.",
                "Give more labelled examples (or a larger n_per_class).",
            )
        with torch_threads(resolved.num_threads), sources.progress_bars(progress):
            return self._train(resolved, splits, progress, callbacks or [])

    def _train(
        self, resolved: ResolvedConfig, splits: DataSplits, progress: bool, callbacks: list[Any]
    ) -> TrainingOutcome:
        from transferlab.finetuning.methods.linear_probe import probe_summary
        from transferlab.models.embedding import Encoder, embed
        from transferlab.models.heads import PooledClassifier
        from transferlab.models.pooling import pooling_or_default
        from transferlab.models.probe import fit_probe, probe_head_rows

        timings: dict[str, float] = {}
        label_names = list(splits.label_names)
        source = resolved.base.source
        started = time.perf_counter()
        body = load_body(resolved)
        tokenizer = sources.load_tokenizer(source)
        pooling = pooling_or_default(source.location)
        timings["load_s"] = time.perf_counter() - started

        started = time.perf_counter()
        classes = len(np.unique(np.asarray(splits.train.labels)))
        schedule = pair_schedule(
            len(splits.train), classes, resolved.batch_size, resolved.max_steps
        )
        body, trainable, history = train_body(
            self, body, resolved, splits, schedule, progress, callbacks
        )
        timings["contrastive_s"] = time.perf_counter() - started

        encoder = Encoder.wrap(body[0].auto_model, tokenizer, pooling, resolved.max_length)
        started = time.perf_counter()
        vectors = embed(encoder, splits.train.texts, batch_size=EMBED_BATCH_SIZE)
        timings["embed_s"] = time.perf_counter() - started
        started = time.perf_counter()
        probe = fit_probe(vectors, splits.train.labels, seed=resolved.seed)
        timings["fit_s"] = time.perf_counter() - started
        timings["train_s"] = timings["contrastive_s"] + timings["embed_s"] + timings["fit_s"]

        model = PooledClassifier(
            encoder.model, pooling, len(label_names), normalize=True, label_names=label_names
        )
        model.init_from_probe(*probe_head_rows(probe, len(label_names)))
        model.to(resolved.device).eval()
        started = time.perf_counter()
        metrics, logits = evaluate(model, encoder, vectors, splits, resolved.device)
        timings["evaluate_s"] = time.perf_counter() - started

        details = {
            **pooled.pooled_metadata(model),
            "setfit": {
                "body": self.body,
                "learning_rate": resolved.learning_rate,
                "loss": "CosineSimilarityLoss",
                **schedule.record(),
            },
            "probe": probe_summary(probe, encoder),
        }
        result = outcome(model, tokenizer, resolved, splits, metrics, logits, details)
        result.trainable_parameters = trainable
        result.history = history
        result.timings = timings
        result.resources["steps"] = schedule.steps
        # two texts per pair, batch_size pairs per step
        result.resources["train_examples_seen"] = 2 * schedule.steps * schedule.batch_size
        return result


class SetFitLoRA(SetFit):
    name = "setfit_lora"
    display_name = "SetFit (LoRA body)"
    description = (
        "SetFit with LoRA adapters on the encoder (setfit package), merged, then the standard "
        "probe; a complete model"
    )
    # LoRA starts its update at zero and scales it by alpha / r: like `lora`, it needs a rate
    # far above the full body's 2e-5 (not tuned: 1e-3 sits between SetFit's and LoRA's 2e-3).
    default_learning_rate = 1e-3
    catalog_learning_rate_key = "setfit_lora_learning_rate"
    uses_lora_settings = True
    title = "SetFit-LoRA"
    body = "lora"


# -- the pieces ---------------------------------------------------------------------------------


def load_body(resolved: ResolvedConfig) -> Any:
    """The base as a SentenceTransformer (its modules.json pooling and normalisation; a plain
    transformers folder gets sentence-transformers' mean pooling), truncating at max_length."""
    from sentence_transformers import SentenceTransformer

    from transferlab.quiet import quiet_transformers

    source = resolved.base.source
    with sources.loading_errors(source, "model"), quiet_transformers():
        body = SentenceTransformer(
            source.location, device=resolved.device, **sources.pretrained_options(source)
        )
    body.max_seq_length = resolved.max_length
    return body


def train_body(
    method: SetFit,
    body: Any,
    resolved: ResolvedConfig,
    splits: DataSplits,
    schedule: PairSchedule,
    progress: bool,
    callbacks: list[Any],
) -> tuple[Any, int, list[dict[str, Any]]]:
    """setfit's contrastive phase on `body` (LoRA adapters on its transformer first, merged
    after, for `setfit_lora`); (the trained body, trainable parameters, loss history)."""
    import tempfile

    try:
        import setfit
        from setfit import SetFitModel, Trainer, TrainingArguments
        from sklearn.linear_model import LogisticRegression
        from transformers import set_seed
    except ImportError as exc:
        raise TransferlabError(
            f"method={method.name!r} cannot import the setfit package: {exc}",
            f"Install the extra: {INSTALL_HINT}.",
        ) from exc
    setfit.logging.set_verbosity_warning()  # its import turns INFO on ("Running training")

    from transferlab.progress.training import training_progress

    transformer = body[0]
    if method.body == "lora":
        set_seed(resolved.seed)  # the adapters' random initialisation
        transformer.model = with_lora_body(transformer.model, resolved)
    trainable = sum(p.numel() for p in body.parameters() if p.requires_grad)
    chosen = pair_examples(splits.train.labels, MAX_PAIR_EXAMPLES, resolved.seed)
    texts = [str(splits.train.texts[i]) for i in chosen]
    labels = [int(splits.train.labels[i]) for i in chosen]
    with (
        tempfile.TemporaryDirectory(prefix="transferlab-setfit-") as scratch,
        datasets_bars(progress),
    ):
        args = TrainingArguments(
            output_dir=scratch,
            batch_size=schedule.batch_size,
            num_epochs=1,
            num_iterations=schedule.num_iterations,
            max_steps=schedule.steps,
            body_learning_rate=resolved.learning_rate,
            l2_weight=resolved.weight_decay,
            warmup_proportion=resolved.warmup_ratio,
            seed=resolved.seed,
            report_to="none",  # the tracker's callbacks come from finetuning.trackers
            logging_strategy="steps",
            logging_steps=max(1, schedule.steps // 50),
            save_strategy="no",
            eval_strategy="no",
            show_progress_bar=progress,
            use_amp=False,
        )
        model = SetFitModel(model_body=body, model_head=LogisticRegression())
        trainer = Trainer(model=model, args=args, callbacks=[*callbacks, training_progress()])
        quiet_trainer(trainer.st_trainer, progress, resolved.device)
        trainer.train_embeddings(texts, labels)
        log = list(trainer.st_trainer.state.log_history)
    if method.body == "lora":
        transformer.model = transformer.model.merge_and_unload()
    body.eval()
    return body, int(trainable), loss_history(log)


def quiet_trainer(st_trainer: Any, progress: bool, device: str) -> None:
    """setfit passes neither the progress setting nor pinned memory to the sentence-
    transformers Trainer: no bar (nor per-step log lines) without `progress`, no pinning on
    CPU (a warning each run)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    st_trainer.args.dataloader_pin_memory = device != "cpu"
    if not progress:
        st_trainer.args.disable_tqdm = True
        st_trainer.remove_callback(ProgressCallback)
        st_trainer.remove_callback(PrinterCallback)


@contextmanager
def datasets_bars(enabled: bool) -> Iterator[None]:
    """datasets' "Map" bars (the Trainer prepares the pairs with it) follow `progress`."""
    from datasets.utils import logging as datasets_logging

    was_enabled = datasets_logging.is_progress_bar_enabled()
    if enabled or not was_enabled:
        yield
        return
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        datasets_logging.enable_progress_bar()


def with_lora_body(model: Any, resolved: ResolvedConfig) -> Any:
    """peft LoRA on the body's transformer (the resolved lora_r, alpha, dropout, modules)."""
    from transferlab.finetuning.methods.lora import with_lora

    return with_lora(model, resolved, None, task_type=None)


def loss_history(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contrastive loss per logging step, as the Trainer path records its training loss."""
    return [
        {
            "step": entry.get("step"),
            "epoch": entry.get("epoch"),
            "split": "train",
            "loss": entry["embedding_loss"],
            "learning_rate": entry.get("learning_rate"),
            "grad_norm": entry.get("grad_norm"),
        }
        for entry in log
        if "embedding_loss" in entry
    ]


def evaluate(
    model: Any, encoder: Any, vectors: np.ndarray, splits: DataSplits, device: str
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Metrics and logits of every split: the training split from its embeddings already
    computed, the others through the model (as the linear probe does)."""
    import torch

    from transferlab.finetuning.methods.linear_probe import model_logits
    from transferlab.models.logits import classification_metrics

    metrics: dict[str, dict[str, float]] = {}
    logits: dict[str, np.ndarray] = {}
    for split, data in splits.items():
        if split == "train":
            features = torch.nn.functional.normalize(
                torch.as_tensor(vectors, device=device), p=2, dim=-1
            )
            with torch.inference_mode():
                logits[split] = model.classifier(features).float().cpu().numpy()
        else:
            logits[split] = model_logits(model, encoder.tokenizer, data.texts, encoder.max_length)
        metrics[split] = classification_metrics(np.asarray(data.labels), logits[split])
    return metrics, logits


def outcome(
    model: Any,
    tokenizer: Any,
    resolved: ResolvedConfig,
    splits: DataSplits,
    metrics: dict[str, dict[str, float]],
    logits: dict[str, np.ndarray],
    details: dict[str, Any],
) -> TrainingOutcome:
    """The outcome with what every method reports (trainable parameters, history, timings
    and steps are the caller's to fill in)."""
    import torch

    from transferlab.finetuning.training import TrainingOutcome, _peak_rss_mb
    from transferlab.models.logits import confusion_on_test

    return TrainingOutcome(
        model=model,
        tokenizer=tokenizer,
        head_modules=list(pooled.HEAD),
        trainable_parameters=0,
        total_parameters=sum(p.numel() for p in model.parameters()),
        metrics=metrics,
        logits=logits,
        confusion_matrix=confusion_on_test(splits, logits),
        history=[],
        timings={},
        resources={
            "device": resolved.device,
            "threads": resolved.num_threads,
            "peak_rss_mb": _peak_rss_mb(),
            "peak_gpu_mb": (
                torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
            ),
            "train_examples_seen": 0,
            "steps": 0,
            "padding_share": None,
            "padding_share_fixed_length": None,
            "probe": details["probe"],
            "setfit": details["setfit"],
        },
        group_by_length=False,
        best_step=None,
        details=details,
    )
