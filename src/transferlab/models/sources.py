"""Where a model's files come from: a local folder or a Hugging Face Hub id, loaded without
remote code and failing fast, with a clear message, when the Hub cannot be reached.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.errors import ModelSourceError
from transferlab.models.embedding import align_pad_token  # noqa: F401 (used as sources.align_pad_token)
from transferlab.quiet import quiet_transformers

HUB_SCHEME = "hf://"
_PROBE_TIMEOUT_S = 3.0
_PROBE_TTL_S = 60.0
_TRUTHY = frozenset({"1", "true", "yes", "on"})
# PEFT's own names for sequence-classification heads (always trained alongside adapters).
DEFAULT_HEAD_NAMES = ("classifier", "score")


@dataclass(frozen=True)
class ModelSource:
    """A model folder on this machine, or a Hugging Face Hub id (loaded where reachable)."""

    location: str
    is_local: bool

    def __str__(self) -> str:
        return self.location if self.is_local else f"{HUB_SCHEME}{self.location}"

    @property
    def uri(self) -> str:
        return str(self)


def source_from_uri(uri: str | None, what: str) -> ModelSource:
    """The source of a registry version URI: a local path or `hf://<id>`."""
    if not uri:
        raise ModelSourceError(
            f"{what} has no weights location (uri is empty).",
            "Import its weights: transferlab import local DIR --name NAME.",
        )
    if uri.startswith(HUB_SCHEME):
        return ModelSource(uri.removeprefix(HUB_SCHEME), is_local=False)
    from transferlab.registry.artefact_files import digest_of_uri, local_folder

    if digest_of_uri(uri) is not None:  # weights in a served registry's artefact store
        folder = local_folder(uri)
        if folder is None:
            raise ModelSourceError(
                f"The weights of {what} are in a registry service's artefact store ({uri}) "
                "and have not been downloaded to this machine.",
                "Open the registry through that service (--registry http://HOST:PORT): "
                "loading the version there downloads and checks them once.",
            )
        return ModelSource(str(folder), is_local=True)
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise ModelSourceError(
            f"{what} lives at {uri}: {scheme} models are not transformers text models, so they "
            "cannot be fine-tuned or loaded here.",
            "Pick a Hugging Face text model (local folder or hf:// id).",
        )
    path = Path(uri).expanduser()
    if not path.is_dir():
        raise ModelSourceError(
            f"The weights of {what} are not on this machine: {path} does not exist.",
            "Copy the folder back, or register a local copy with "
            "`transferlab import local DIR --name NAME`.",
        )
    return ModelSource(str(path.resolve()), is_local=True)


# -- the Hub ----------------------------------------------------------------------------------


def hub_offline_mode() -> bool:
    """HF_HUB_OFFLINE set now (the env) or when huggingface_hub was imported."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


_probe_cache: dict[str, tuple[float, bool]] = {}


def _hub_reachable() -> bool:
    """A HEAD request to the Hub endpoint (honours proxies), remembered for a minute."""
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    cached = _probe_cache.get(endpoint)
    if cached and time.monotonic() - cached[0] < _PROBE_TTL_S:
        return cached[1]
    import httpx

    try:
        httpx.head(endpoint, timeout=_PROBE_TIMEOUT_S, follow_redirects=False)
        reachable = True
    except httpx.HTTPError:
        reachable = False
    _probe_cache[endpoint] = (time.monotonic(), reachable)
    return reachable


def hub_status() -> str:
    """'online', 'offline (HF_HUB_OFFLINE=1)' or 'unreachable', in at most a few seconds.

    Without this check a Hub id on a machine without network spends about 46 s in retries.
    """
    if hub_offline_mode():
        return "offline (HF_HUB_OFFLINE=1)"
    return "online" if _hub_reachable() else "unreachable"


def _hub_failure(source: ModelSource, status: str, exc: BaseException) -> ModelSourceError:
    return ModelSourceError(
        f"Cannot load {source}: the Hugging Face Hub is {status} and the model is not in the "
        f"local cache ({type(exc).__name__}).",
        "Download it where the Hub is reachable (huggingface-cli download "
        f"{source.location}), or register a local copy: transferlab import local DIR --name "
        "NAME, and fine-tune that version.",
    )


def pretrained_options(source: ModelSource) -> dict[str, Any]:
    """Keyword arguments for from_pretrained: never remote code; cache only when offline."""
    options: dict[str, Any] = {"trust_remote_code": False}
    if not source.is_local and hub_status() != "online":
        options["local_files_only"] = True
    return options


@contextmanager
def loading_errors(source: ModelSource, what: str) -> Iterator[None]:
    try:
        yield
    except ModelSourceError:
        raise
    except (OSError, ValueError) as exc:
        if not source.is_local:
            status = hub_status()
            if status != "online":
                raise _hub_failure(source, status, exc) from exc
        raise ModelSourceError(
            f"Cannot load the {what} from {source}: {exc}",
            "Check that the folder (or hub id) holds a Hugging Face model with config.json, "
            "weights and tokenizer files.",
        ) from exc


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """transformers' own bars (weight loading, shard writing) follow `progress` too."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if enabled or not was_enabled:
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


# -- configs, tokenizers, models -------------------------------------------------------------


def read_model_type(source: ModelSource) -> str | None:
    """config.json's model_type, read without transformers for a local folder."""
    if source.is_local:
        config_file = Path(source.location) / "config.json"
        if not config_file.is_file():
            raise ModelSourceError(
                f"No config.json in {source.location}: not a Hugging Face model folder.",
                "Pass the folder written by `model.save_pretrained(DIR)`.",
            )
        try:
            return json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            raise ModelSourceError(
                f"{config_file} is not valid JSON: {exc}", "Re-save the model."
            ) from exc
    return getattr(load_config(source), "model_type", None)


@functools.cache
def sequence_classification_types() -> frozenset[str]:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    return frozenset(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES)


def require_classification_head(model_type: str | None, what: str, task: str | None) -> None:
    """Fail when transformers has no sequence-classification class for the model type."""
    if model_type is None or model_type in sequence_classification_types():
        return
    task_text = f" (task {task})" if task else ""
    raise ModelSourceError(
        f"{what}{task_text} is a {model_type!r} model: transformers has no "
        f"sequence-classification head for {model_type!r}, so it cannot be fine-tuned for text "
        "classification.",
        "Pick a text encoder such as all-MiniLM-L6-v2, bert-base-uncased or roberta-base "
        "(`transferlab search --task feature-extraction`).",
    )


def load_config(source: ModelSource) -> Any:
    from transformers import AutoConfig

    with loading_errors(source, "model config"):
        return AutoConfig.from_pretrained(source.location, **pretrained_options(source))


def load_tokenizer(source: ModelSource) -> Any:
    from transformers import AutoTokenizer

    with loading_errors(source, "tokenizer"):
        return AutoTokenizer.from_pretrained(source.location, **pretrained_options(source))


def load_classifier(
    source: ModelSource,
    label_names: list[str],
    *,
    quantization: Any = None,
) -> tuple[Any, list[str]]:
    """The model with a sequence-classification head for `label_names`, and the names of
    the modules whose weights were newly initialised (the head, and anything else missing).
    """
    from transformers import AutoModelForSequenceClassification

    options = pretrained_options(source)
    if quantization is not None:
        options.update(quantization_config=quantization, device_map={"": 0})
    with loading_errors(source, "model"), quiet_transformers():
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source.location,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            ignore_mismatched_sizes=True,
            output_loading_info=True,
            **options,
        )
    new_params = set(info.get("missing_keys", ())) | {m[0] for m in info.get("mismatched_keys", ())}
    return model, head_modules(model, new_params)


def head_modules(model: Any, new_params: set[str]) -> list[str]:
    """Top-most modules holding newly initialised weights, plus PEFT's default head names.

    These are trained (and saved) with every method: a module left at its random
    initialisation would make a reloaded model predict differently.
    """
    module_names = {name for name, _ in model.named_modules() if name}
    candidates = {name.rsplit(".", 1)[0] for name in new_params if "." in name}
    candidates = {name for name in candidates if name in module_names}
    candidates |= {name for name in DEFAULT_HEAD_NAMES if name in module_names}
    return sorted(
        name
        for name in candidates
        if not any(name.startswith(other + ".") for other in candidates if other != name)
    )
