"""Linear probe: the standard probe (`models.probe`) as a fine-tuning method.

The training split is embedded once by the frozen base (its own pooling, mean pooling when it
declares none), a logistic regression is fitted on those vectors with C chosen by stratified
cross-validation on the training examples (`fit_probe`), and its weights become the linear
head of a `PooledClassifier` over the base. No Trainer, no epochs, no learning rate: on the
sample data with all-MiniLM-L6-v2 this takes seconds, and in benchmarks/method_study.json it is
6-17 points above the former Trainer-trained head on the [CLS] pooler.

The version is head-only: head.safetensors + head.json (pooling, labels) + the tokenizer and
transferlab.json; the encoder is the base it was trained on (`parent_version_id`). Versions
written by the former linear probe (a head.safetensors keyed by the modules of a
...ForSequenceClassification, no head.json) still load, on that architecture.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from transferlab.errors import ModelSourceError, TransferlabError
from transferlab.finetuning.artifacts import SavedModel
from transferlab.finetuning.methods.base import (
    FinetuneMethod,
    adapter_tokenizer,
    base_source,
    load_adapter_base,
    version_labels,
)
from transferlab.models.head_files import HEAD_CONFIG, HEAD_FILE

if TYPE_CHECKING:
    from transferlab.data import DataSplits
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.finetuning.training import TrainingOutcome
    from transferlab.registry import Registry, VersionRecord

EMBED_BATCH_SIZE = 32
# Train logits come from the stored embeddings, so the train split is always evaluated.
NOT_USED = "not used: the linear probe fits a logistic regression (C by cross-validation)"


class LinearProbe(FinetuneMethod):
    name = "linear_probe"
    display_name = "linear probe"
    description = (
        "frozen encoder: pooled embeddings + logistic regression (C by CV), no training loop; "
        "a head file"
    )
    # Not used (no gradient steps; resolution says so); the former Trainer-trained head's value,
    # kept because every method declares one.
    default_learning_rate = 3e-2
    catalog_learning_rate_key = "linear_probe_learning_rate"
    version_kind = "adapter"
    adapter_format = "head"
    title = "Linear-probe"
    # Settings of the Trainer that do not apply: resolution marks them NOT_USED.
    unused_settings: ClassVar[tuple[str, ...]] = (
        "learning_rate",
        "epochs",
        "max_steps",
        "batch_size",
        "early_stopping_patience",
        "weight_decay",
        "warmup_ratio",
        "group_by_length",
    )
    unused_reason: ClassVar[str] = NOT_USED

    def prepare(self, resolved: ResolvedConfig, label_names: list[str]) -> tuple[Any, Any, list]:
        raise TransferlabError(
            "The linear probe does not prepare a model for a Trainer.",
            "Call LinearProbe.train (transferlab.finetune does).",
        )

    def train(
        self,
        resolved: ResolvedConfig,
        splits: DataSplits,
        *,
        progress: bool = True,
        callbacks: list[Any] | None = None,
    ) -> TrainingOutcome:
        """Embed the training split once, fit the probe, put it on a PooledClassifier and
        evaluate every split through that model. `callbacks` (Trainer callbacks) do not
        apply."""
        import torch

        from transferlab.finetuning.training import TrainingOutcome, _peak_rss_mb, torch_threads
        from transferlab.models import sources
        from transferlab.models.embedding import embed, load_encoder
        from transferlab.models.heads import PooledClassifier
        from transferlab.models.logits import classification_metrics, confusion_on_test
        from transferlab.models.probe import fit_probe, probe_head_rows

        labels = list(splits.label_names)
        timings: dict[str, float] = {}
        with torch_threads(resolved.num_threads):
            started = time.perf_counter()
            source = resolved.base.source
            with sources.loading_errors(source, "model"):
                encoder = load_encoder(
                    source.location,
                    device=resolved.device,
                    max_length=resolved.max_length,
                    **sources.pretrained_options(source),
                )
            timings["load_s"] = time.perf_counter() - started

            started = time.perf_counter()
            vectors = embed(encoder, splits.train.texts, batch_size=EMBED_BATCH_SIZE)
            timings["embed_s"] = time.perf_counter() - started
            started = time.perf_counter()
            y = np.asarray(splits.train.labels)
            if len(np.unique(y)) < 2:
                raise TransferlabError(
                    "The linear probe needs training examples of at least two labels.",
                    "Give more labelled examples (or a larger n_per_class).",
                )
            probe = fit_probe(vectors, y, seed=resolved.seed)
            timings["fit_s"] = time.perf_counter() - started
            timings["train_s"] = timings["embed_s"] + timings["fit_s"]

            model = PooledClassifier(
                encoder.model, encoder.pooling, len(labels), label_names=labels
            )
            model.init_from_probe(*probe_head_rows(probe, len(labels)))
            model.to(resolved.device).eval()
            for parameter in model.encoder.parameters():
                parameter.requires_grad = False

            started = time.perf_counter()
            metrics: dict[str, dict[str, float]] = {}
            logits: dict[str, np.ndarray] = {}
            for split, data in splits.items():
                if split == "train":  # the same head on the vectors already computed
                    features = torch.nn.functional.normalize(
                        torch.as_tensor(vectors, device=resolved.device), p=2, dim=-1
                    )
                    with torch.inference_mode():
                        logits[split] = model.classifier(features).float().cpu().numpy()
                else:
                    logits[split] = model_logits(
                        model, encoder.tokenizer, data.texts, encoder.max_length
                    )
                metrics[split] = classification_metrics(np.asarray(data.labels), logits[split])
            timings["evaluate_s"] = time.perf_counter() - started

        trainable = sum(p.numel() for p in model.classifier.parameters())
        total = sum(p.numel() for p in model.parameters())
        return TrainingOutcome(
            model=model,
            tokenizer=encoder.tokenizer,
            head_modules=["classifier"],
            trainable_parameters=int(trainable),
            total_parameters=int(total),
            metrics=metrics,
            logits=logits,
            confusion_matrix=confusion_on_test(splits, logits),
            history=[],
            timings=timings,
            resources={
                "device": resolved.device,
                "threads": resolved.num_threads,
                "peak_rss_mb": _peak_rss_mb(),
                "peak_gpu_mb": (
                    torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
                ),
                "train_examples_seen": len(splits.train),
                "steps": 0,
                "padding_share": None,
                "padding_share_fixed_length": None,
                "probe": probe_summary(probe, encoder),
            },
            group_by_length=False,
            best_step=None,
        )

    def save(self, outcome: TrainingOutcome, folder: Path, metadata: dict[str, Any]) -> SavedModel:
        folder.mkdir(parents=True, exist_ok=True)
        outcome.model.save(folder)
        model = outcome.model
        pooling = model.pooling.to_dict()
        pooled = {"head": "pooled", "pooling": pooling, "normalize": model.normalize}
        probe = outcome.resources.get("probe")
        return self.saved(outcome, folder, {**metadata, **pooled, "probe": probe})

    def load(
        self, registry: Registry, version: VersionRecord, device: str, quantized: bool | None
    ) -> tuple[Any, Any, list[str]]:
        folder = Path(version.uri or "").expanduser()
        if not (folder / HEAD_CONFIG).is_file():  # written by the former linear probe
            model, source, base, labels = load_adapter_base(registry, version, device, quantized)
            load_head(model, Path(source.location))
            return model, adapter_tokenizer(source, base), labels
        from transferlab.models import sources
        from transferlab.models.heads import PooledClassifier

        labels = version_labels(version)
        if not labels:
            raise ModelSourceError(
                f"{version.ref} is a linear-probe version without label names.",
                "Register versions through transferlab.finetune, which records them.",
            )
        base = base_source(registry, version)
        with sources.loading_errors(base, "model"):
            model = PooledClassifier.load(
                folder, base.location, **sources.pretrained_options(base)
            ).to(device)
        tokenizer = adapter_tokenizer(sources.source_from_uri(str(folder), version.ref), base)
        return model, tokenizer, labels


def probe_summary(probe: Any, encoder: Any) -> dict[str, Any]:
    """What the run and the version record about the fitted probe."""
    cv = probe.cv_accuracy.get(probe.C) if probe.cv_accuracy else None
    return {
        "C": float(probe.C),
        "cv_accuracy": None if cv is None else round(float(cv), 4),
        "folds": int(probe.folds),
        "note": probe.note,
        "pooling": encoder.pooling.to_dict(),
        "pooling_described": encoder.pooling.describe(),
        "max_length": int(encoder.max_length),
    }


def model_logits(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    """Logits of `model` for `texts`, batched by length, in the texts' order."""
    import torch

    from transferlab.models.embedding import length_sorted_batches

    texts = [str(t) for t in texts]
    out = np.zeros((len(texts), model.num_labels), dtype=np.float32)
    if not texts:
        return out
    device = next(model.parameters()).device
    with torch.inference_mode():
        for chosen, batch in length_sorted_batches(
            tokenizer, texts, max_length, EMBED_BATCH_SIZE, device
        ):
            out[chosen] = model(**batch).logits.float().cpu().numpy()
    return out


# -- the former layout: a head over a ...ForSequenceClassification --------------------------------


def save_head(model: Any, head_modules: list[str], folder: Path) -> Path:
    """The head modules' weights (and buffers) as one safetensors file, keyed by model path
    (the former linear probe's layout; kept for code that writes it)."""
    from safetensors.torch import save_file

    modules = dict(model.named_modules())
    state = {
        f"{name}.{key}": tensor.detach().cpu().contiguous()
        for name in head_modules
        for key, tensor in modules[name].state_dict().items()
    }
    target = folder / HEAD_FILE
    save_file(state, str(target), metadata={"format": "pt", "modules": ",".join(head_modules)})
    return target


def load_head(model: Any, folder: Path) -> None:
    """Put the saved head weights into `model`; every saved tensor must find its place."""
    from safetensors.torch import load_file

    head_file = folder / HEAD_FILE
    if not head_file.is_file():
        raise ModelSourceError(
            f"No {HEAD_FILE} in {folder}: the linear-probe version's head weights are missing.",
            "Re-run the fine-tuning, or point the version at the folder the run wrote.",
        )
    state = load_file(str(head_file))
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ModelSourceError(
            f"{head_file} holds weights the base model has no place for: "
            f"{', '.join(sorted(result.unexpected_keys)[:5])}.",
            "Load it on the base version it was trained from (its parent_version_id).",
        )
