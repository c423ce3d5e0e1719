"""What a fine-tuning run is asked to do (FinetuneConfig) and what it will do (ResolvedConfig).

Resolution fills each setting from the call, else the base model's `finetune` block in the
registry (the curated catalog's recommendations), else a per-method default, and validates
everything before any weights are loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transferlab.data import DataSplits, LabelledData, Source, dataset_name, load_splits
from transferlab.errors import TransferlabError
from transferlab.finetuning import trackers
from transferlab.finetuning.base import (
    BaseModel,
    check_max_length,
    resolve_base,
    resolve_target_modules,
)
from transferlab.finetuning.methods import (
    DEFAULT_METHOD,
    FinetuneMethod,
    all_methods,
    auto,
    get_method,
    method_names,
)
from transferlab.finetuning.methods.auto import AUTO, Choice
from transferlab.models import sources
from transferlab.registry import Registry
from transferlab.registry.refs import validate_name

REPORT_TO = ("none", "mlflow", "wandb", "tensorboard")
GENERAL_DEFAULTS: dict[str, Any] = {
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.1,
    "max_length": 128,
    "batch_size": 16,
    "epochs": 5,
}


@dataclass
class FinetuneConfig:
    """A fine-tuning request; None means "from the base's catalog entry, else the default"."""

    base: str
    data: Source | None = None
    train: Source | None = None
    validation: Source | None = None
    test: Source | None = None
    text_column: str = "text"
    label_column: str = "label"
    label_names: list[str] | None = None
    n_per_class: int | None = None
    n_train: int | None = None
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    method: str = DEFAULT_METHOD
    lora_r: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float | None = None
    target_modules: list[str] | str | None = None
    learning_rate: float | None = None
    epochs: float | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    max_length: int | None = None
    seed: int = 0
    early_stopping_patience: int | None = 3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    group_by_length: bool | None = None
    num_threads: int | None = None
    report_to: str = "none"
    output_dir: str | os.PathLike[str] | None = None
    registry: str | os.PathLike[str] | None = None
    name: str | None = None

    def to_params(self) -> dict[str, Any]:
        """The request as JSON-able values (data sources described, not embedded)."""
        return {f.name: _describe(getattr(self, f.name)) for f in fields(self)}


@dataclass
class ResolvedConfig:
    """Every setting a run uses, validated; `setting_sources` says where each came from."""

    base: BaseModel
    method: str
    train: Source
    validation: Source | None
    test: Source | None
    text_column: str
    label_column: str
    label_names: list[str] | None
    n_per_class: int | None
    n_train: int | None
    test_fraction: float
    validation_fraction: float
    lora_r: int | None
    lora_alpha: float | None
    lora_dropout: float | None
    target_modules: list[str] | str | None
    learning_rate: float
    epochs: float
    max_steps: int | None
    batch_size: int
    max_length: int
    seed: int
    early_stopping_patience: int | None
    weight_decay: float
    warmup_ratio: float
    group_by_length: bool | None
    num_threads: int
    report_to: str
    device: str
    name: str
    dataset: str
    output_dir: Path
    registry_path: Path | str  # the file, or a server registry's location (no password)
    setting_sources: dict[str, str] = field(default_factory=dict)
    # method 'auto': what it chose and why (`methods.auto.Choice.record`); None otherwise.
    auto: dict[str, Any] | None = None

    @property
    def finetune_method(self) -> FinetuneMethod:
        return get_method(self.method)

    @property
    def uses_adapter(self) -> bool:
        """Whether the LoRA settings (lora_r, lora_alpha, ...) apply."""
        return self.finetune_method.uses_lora_settings

    def to_params(self) -> dict[str, Any]:
        params = {
            key: _describe(getattr(self, key))
            for key in self.__dataclass_fields__
            if key not in ("base", "setting_sources", "auto")
        }
        if self.auto is not None:
            params["auto"] = dict(self.auto)
        params.update(
            base=self.base.ref,
            base_version_id=self.base.version_id,
            base_model=self.base.model_name,
            base_uri=self.base.source.uri,
            model_type=self.base.model_type,
            setting_sources=dict(self.setting_sources),
        )
        return params


def _describe(value: Any) -> Any:
    if isinstance(value, LabelledData):
        return f"{value.name}: {value.source} ({len(value)} examples)"
    if hasattr(value, "shape") and hasattr(value, "columns"):
        return f"DataFrame ({len(value)} rows)"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# -- resolution -------------------------------------------------------------------------------


def resolve_config(
    config: FinetuneConfig, registry: Registry | None = None, *, run_id: str | None = None
) -> ResolvedConfig:
    """Fill in and validate every setting; loads no weights (reads configs only)."""
    registry = registry or Registry(config.registry)
    method = get_method(config.method)
    if method.name != AUTO:
        device = method.check_environment()
    report_to = _check_report_to(config.report_to)
    train, validation, test = _check_data_sources(config)
    _check_numbers(config)
    base = resolve_base(config.base, registry)
    sources.require_classification_head(base.model_type, f"Base model {base.ref}", base.task)
    choice = _choose_method(config, base) if method.name == AUTO else None
    if choice is not None:
        method = get_method(choice.method)
        device = method.check_environment()
    block = base.finetune or {}
    setting_sources: dict[str, str] = {}
    unused = set(getattr(method, "unused_settings", ()))
    unused_reason = str(getattr(method, "unused_reason", f"not used by {method.name}"))

    def pick(key: str, catalog_key: str | None = None, default: Any = None) -> Any:
        given = getattr(config, key)
        if key in unused:  # kept (and checked) at its value, but the method ignores it
            setting_sources[key] = unused_reason
        elif choice is not None and key in choice.settings:
            setting_sources[key] = "auto"
            return choice.settings[key]
        if given is not None:
            setting_sources.setdefault(key, "config")
            return given
        catalog_value = block.get(catalog_key or key)
        if catalog_value is not None:
            setting_sources.setdefault(key, "catalog")
            return catalog_value
        setting_sources.setdefault(key, "default")
        return default if default is not None else GENERAL_DEFAULTS.get(key)

    learning_rate = float(
        pick("learning_rate", method.catalog_learning_rate_key, method.default_learning_rate)
    )
    adapter = method.uses_lora_settings
    lora_r = int(pick("lora_r")) if adapter else None
    lora_alpha = float(pick("lora_alpha")) if adapter else None
    lora_dropout = float(pick("lora_dropout")) if adapter else None
    target_modules = resolve_target_modules(pick("target_modules"), base) if adapter else None
    max_length = int(pick("max_length"))
    check_max_length(max_length, base)
    batch_size = int(pick("batch_size"))
    if choice is not None and choice.scaled_schedule:
        from transferlab.finetuning.methods.schedule import scaled_epochs  # comes with lp_ft

        epochs = float(scaled_epochs(choice.n_train, batch_size))
        choice.settings["epochs"] = epochs
        setting_sources["epochs"] = "auto: scaled step schedule (methods/schedule.py)"
    else:
        epochs = float(pick("epochs"))
    max_steps = config.max_steps
    early_stopping_patience = config.early_stopping_patience or None
    for key in ("max_steps", "early_stopping_patience"):
        if key in unused:
            setting_sources[key] = unused_reason
        elif choice is not None and key in choice.settings:
            setting_sources[key] = "auto"
    if choice is not None and "early_stopping_patience" in choice.settings:
        early_stopping_patience = choice.settings["early_stopping_patience"]
    for key in ("weight_decay", "warmup_ratio", "group_by_length"):
        if key in unused:
            setting_sources[key] = unused_reason
    name = validate_name(
        config.name or _default_name(base.model_name, dataset_name(train), method.name),
        "name for the fine-tuned model",
    )
    _check_name_free(registry, name)
    stamp = run_id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    output_dir = _check_output_dir(config.output_dir, registry, name, stamp)
    resolved = ResolvedConfig(
        base=base,
        method=method.name,
        train=train,
        validation=validation,
        test=test,
        text_column=config.text_column,
        label_column=config.label_column,
        label_names=list(config.label_names) if config.label_names else None,
        n_per_class=config.n_per_class,
        n_train=config.n_train,
        test_fraction=0.0 if test is not None else config.test_fraction,
        validation_fraction=0.0 if validation is not None else config.validation_fraction,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=target_modules,
        learning_rate=learning_rate,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        max_length=max_length,
        seed=int(config.seed),
        early_stopping_patience=early_stopping_patience,
        weight_decay=float(config.weight_decay),
        warmup_ratio=float(config.warmup_ratio),
        group_by_length=config.group_by_length,
        num_threads=config.num_threads or sensible_threads(),
        report_to=report_to,
        device=device,
        name=name,
        dataset=dataset_name(train),
        output_dir=output_dir,
        registry_path=registry.path or registry.display_location,
        setting_sources=setting_sources,
        auto=choice.record() if choice is not None else None,
    )
    _check_resolved_numbers(resolved)
    return resolved


def requested_splits(config: FinetuneConfig) -> DataSplits:
    """The splits a run of `config` trains and evaluates on, drawn from the request's data
    settings alone (no model is resolved or loaded): the same examples `run.load_data` gives
    the resolved run, so their fingerprint is the one the run will record."""
    train, validation, test = _check_data_sources(config)
    _check_numbers(config)
    return load_splits(
        train,
        validation=validation,
        test=test,
        text_column=config.text_column,
        label_column=config.label_column,
        label_names=list(config.label_names) if config.label_names else None,
        test_fraction=0.0 if test is not None else config.test_fraction,
        validation_fraction=0.0 if validation is not None else config.validation_fraction,
        n_per_class=config.n_per_class,
        n_train=config.n_train,
        seed=int(config.seed),
    )


def _choose_method(config: FinetuneConfig, base: BaseModel) -> Choice:
    """`method: auto` -> the concrete method and settings (`methods.auto.choose`), from the
    training examples per class of the sample this run will draw (the data is read here; no
    weights are loaded)."""
    splits = requested_splits(config)
    counts = auto.count_per_class(splits.train.labels, splits.label_names)
    available = auto.FINETUNE in method_names()
    blocked = _finetune_blocked(config, base) if available else None
    choice = auto.choose(counts, finetune_available=available, finetune_blocked=blocked)
    choice.n_train = len(splits.train)
    # The scaled schedule, unless the request fixes the length (epochs are set once the batch
    # size is resolved).
    choice.scaled_schedule = (
        choice.method == auto.FINETUNE and config.epochs is None and config.max_steps is None
    )
    return choice


def _finetune_blocked(config: FinetuneConfig, base: BaseModel) -> str | None:
    """Why auto's fine-tuning method cannot run on this base or machine (None: it can)."""
    method = get_method(auto.FINETUNE)
    try:
        method.check_environment()
        # Whether LoRA fits the base at all; target_modules the request names are checked
        # (and refused if wrong) when lp_ft's settings are resolved.
        modules = resolve_target_modules("auto", base)
    except TransferlabError as exc:
        return exc.problem
    if not modules:
        return f"LoRA finds no modules to adapt in {base.ref} ({base.model_type})"
    return None


def _check_report_to(report_to: str | None) -> str:
    report_to = report_to or "none"
    if report_to not in REPORT_TO:
        raise TransferlabError(
            f"Unknown report_to {report_to!r}.", f"Use one of: {', '.join(REPORT_TO)}."
        )
    trackers.require_tracker(report_to)
    return report_to


def _check_data_sources(
    config: FinetuneConfig,
) -> tuple[Source, Source | None, Source | None]:
    if config.data is not None and config.train is not None:
        raise TransferlabError(
            "Both data= and train= are set.",
            "Use data= for one labelled set to split, or train= (with validation=/test=).",
        )
    train = config.train if config.train is not None else config.data
    if train is None:
        raise TransferlabError(
            "No training data given.",
            "Set data= (one labelled file, split by test_fraction) or train= (plus optional "
            "validation= and test=); try transferlab.data.sample_data_path('train').",
        )
    return train, config.validation, config.test


def _check_numbers(config: FinetuneConfig) -> None:
    checks = [
        ("test_fraction", config.test_fraction, 0 <= config.test_fraction < 1, "in [0, 1)"),
        (
            "validation_fraction",
            config.validation_fraction,
            0 <= config.validation_fraction < 1,
            "in [0, 1)",
        ),
        (
            "n_per_class",
            config.n_per_class,
            config.n_per_class is None or config.n_per_class >= 1,
            ">= 1",
        ),
        ("n_train", config.n_train, config.n_train is None or config.n_train >= 1, ">= 1"),
        ("max_steps", config.max_steps, config.max_steps is None or config.max_steps >= 1, ">= 1"),
        (
            "early_stopping_patience",
            config.early_stopping_patience,
            config.early_stopping_patience is None or config.early_stopping_patience >= 0,
            ">= 0 (0 or None turns early stopping off)",
        ),
        ("weight_decay", config.weight_decay, config.weight_decay >= 0, ">= 0"),
        ("warmup_ratio", config.warmup_ratio, 0 <= config.warmup_ratio < 1, "in [0, 1)"),
        (
            "num_threads",
            config.num_threads,
            config.num_threads is None or config.num_threads >= 1,
            ">= 1",
        ),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise TransferlabError(f"Invalid {name}={value!r}.", f"Use a value {expected}.")
    if config.n_per_class is not None and config.n_train is not None:
        raise TransferlabError(
            f"Both n_per_class={config.n_per_class} and n_train={config.n_train} are set.",
            "Set only one of them.",
        )


def _check_resolved_numbers(resolved: ResolvedConfig) -> None:
    checks = [
        ("learning_rate", resolved.learning_rate, resolved.learning_rate > 0, "> 0"),
        ("epochs", resolved.epochs, resolved.epochs > 0, "> 0"),
        ("batch_size", resolved.batch_size, resolved.batch_size >= 1, ">= 1"),
        ("max_length", resolved.max_length, resolved.max_length >= 4, ">= 4"),
    ]
    if resolved.uses_adapter:
        checks += [
            ("lora_r", resolved.lora_r, (resolved.lora_r or 0) >= 1, ">= 1"),
            ("lora_alpha", resolved.lora_alpha, (resolved.lora_alpha or 0) > 0, "> 0"),
            (
                "lora_dropout",
                resolved.lora_dropout,
                0 <= (resolved.lora_dropout or 0) < 1,
                "in [0, 1)",
            ),
        ]
    for name, value, ok, expected in checks:
        if not ok:
            raise TransferlabError(f"Invalid {name}={value!r}.", f"Use a value {expected}.")


def _default_name(base_name: str, data_name: str, method: str) -> str:
    return f"{base_name}-{data_name}-{method.replace('_', '-')}"


def _check_name_free(registry: Registry, name: str) -> None:
    known = registry.model_origin(name)
    if known is not None and known["origin"] != "derived":
        raise TransferlabError(
            f"The name {name!r} is taken by a model that no fine-tuning run made "
            f"(origin: {known['origin']}).",
            "Give the fine-tuned model another name (name=...).",
        )


def _check_output_dir(
    output_dir: str | os.PathLike[str] | None, registry: Registry, name: str, stamp: str
) -> Path:
    if output_dir is None:
        folder = registry.models_dir / name.replace("/", "--") / stamp
    else:
        folder = Path(output_dir).expanduser()
    folder = folder.resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        what = "is a file" if not folder.is_dir() else "already exists and is not empty"
        raise TransferlabError(
            f"Output folder {folder} {what}.",
            "Choose a new output_dir (or leave it unset for a fresh folder per run); nothing "
            "is overwritten.",
        )
    return folder


def sensible_threads() -> int:
    """CPUs this process may use: affinity mask and cgroup quota, capped by torch's default.

    torch's default counts the host's cores, which oversubscribes a CPU-limited container.
    """
    import torch

    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = available or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            limit = min(limit, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, min(limit, torch.get_num_threads()))


def check_request(config: FinetuneConfig) -> None:
    """Refuse what resolve_config would refuse on the face of a request, without the registry,
    the data or any weights (a sweep's dry run, `transferlab run` before recording a run).

    Settings left unset are judged at their per-method defaults; the catalog's values are
    only known at resolution.
    """
    from types import SimpleNamespace

    method = get_method(config.method)
    if method.needs_cuda:
        method.check_environment()
    _check_report_to(config.report_to)
    _check_data_sources(config)
    _check_numbers(config)
    if config.name is not None:
        validate_name(config.name, "name for the fine-tuned model")

    def given(key: str, default: Any) -> Any:
        value = getattr(config, key)
        return default if value is None else value

    _check_resolved_numbers(
        SimpleNamespace(  # what resolution checks, with the defaults for what is unset
            learning_rate=given("learning_rate", method.default_learning_rate),
            epochs=given("epochs", GENERAL_DEFAULTS["epochs"]),
            batch_size=given("batch_size", GENERAL_DEFAULTS["batch_size"]),
            max_length=given("max_length", GENERAL_DEFAULTS["max_length"]),
            uses_adapter=method.uses_lora_settings,
            lora_r=given("lora_r", GENERAL_DEFAULTS["lora_r"]),
            lora_alpha=given("lora_alpha", GENERAL_DEFAULTS["lora_alpha"]),
            lora_dropout=given("lora_dropout", GENERAL_DEFAULTS["lora_dropout"]),
        )
    )


# The names modules and notebooks imported before methods were plug-ins, computed from the
# table on first use (so that the entry points are only read when needed).
_FROM_THE_TABLE = {
    "METHODS": lambda: tuple(m.name for m in all_methods()),
    "ADAPTER_METHODS": lambda: tuple(m.name for m in all_methods() if m.uses_lora_settings),
    "METHOD_LEARNING_RATES": lambda: {m.name: m.default_learning_rate for m in all_methods()},
    "CATALOG_LEARNING_RATE_KEYS": lambda: {
        m.name: m.catalog_learning_rate_key for m in all_methods()
    },
}


def __getattr__(name: str) -> Any:
    if name in _FROM_THE_TABLE:
        return _FROM_THE_TABLE[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
