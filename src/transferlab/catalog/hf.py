"""Describe a Hugging Face Hub model from its metadata (no weights), failing fast offline."""

from __future__ import annotations

import importlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from transferlab.catalog.licenses import commercial_use_for_license, normalize_license
from transferlab.catalog.local import (
    BUFFER_DTYPES,
    as_str_list,
    first_prose_paragraph,
    split_model_card,
    task_from_architecture,
)
from transferlab.errors import ModelSourceError
from transferlab.registry.records import ModelRecord

if TYPE_CHECKING:
    from huggingface_hub.hf_api import ModelInfo

_TRUTHY = frozenset({"1", "true", "yes", "on"})
_MAX_CARD_BYTES = 256_000
# Files from_pretrained reads next to the weights; other formats (onnx/, tf, flax) are left out
# of the size so it compares with a local copy of the same model.
_SIDE_FILE_SUFFIXES = (".json", ".txt", ".model", ".md")


def hub_is_offline() -> bool:
    """Whether HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE asks for offline mode (read at each call)."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUTHY
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _offline_error(model_id: str) -> ModelSourceError:
    return ModelSourceError(
        f"Cannot read {model_id!r} from the Hugging Face Hub: the Hub is unreachable in offline "
        "mode (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set).",
        "Use a downloaded copy instead: `transferlab import local DIR` with the model folder "
        "(config.json + weights), or unset HF_HUB_OFFLINE where the Hub can be reached.",
    )


def _network_error(model_id: str, why: str) -> ModelSourceError:
    return ModelSourceError(
        f"Cannot reach the Hugging Face Hub to read {model_id!r}: {why}",
        "Check the network or proxy (HTTPS_PROXY), or work offline: set HF_HUB_OFFLINE=1 and "
        "`transferlab import local DIR` with a downloaded copy of the model.",
    )


def _network_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OSError, TimeoutError]
    for module in ("httpx2", "httpx"):  # whichever HTTP client the huggingface_hub version uses
        try:
            base = getattr(importlib.import_module(module), "HTTPError", None)
        except ImportError:
            continue
        if isinstance(base, type):
            types.append(base)
    return tuple(types)


def _query_hub(model_id: str, timeout: float) -> tuple[ModelInfo, str | None]:
    """model_info plus the README text; runs in a worker thread under a hard deadline."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import get_session

    deadline = time.monotonic() + timeout
    # model_info makes a single GET (huggingface_hub has no retry/backoff on it, unlike
    # file downloads), so the timeout bounds it; the thread deadline covers DNS stalls.
    api = HfApi()
    info = api.model_info(model_id, files_metadata=True, timeout=timeout)
    card: str | None = None
    readme = next((s for s in info.siblings or [] if s.rfilename == "README.md"), None)
    left = deadline - time.monotonic()
    if readme is not None and (readme.size or 0) <= _MAX_CARD_BYTES and left > 0.5:
        try:
            response = get_session().get(
                f"{api.endpoint}/{model_id}/resolve/{quote(info.sha or 'main', safe='')}/README.md",
                timeout=left,
            )
            if response.status_code == 200:
                card = response.text
        except Exception:  # the card is a nicety: the metadata alone is a valid answer
            card = None
    return info, card


def _call_with_deadline(model_id: str, timeout: float) -> tuple[ModelInfo, str | None]:
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = _query_hub(model_id, timeout)
        except Exception as exc:  # handed to the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=work, name=f"hf-metadata-{model_id}", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    if worker.is_alive():
        raise _network_error(model_id, f"no answer within {timeout:g} s.")
    if "error" in result:
        raise result["error"]
    return result["value"]


def _fetch(model_id: str, timeout: float) -> tuple[ModelInfo, str | None]:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        return _call_with_deadline(model_id, timeout)
    except OfflineModeIsEnabled as exc:
        raise _offline_error(model_id) from exc
    except GatedRepoError as exc:
        raise ModelSourceError(
            f"Hugging Face model {model_id!r} is gated: its metadata needs an accepted licence.",
            f"Accept its terms at https://huggingface.co/{model_id} and log in with `hf auth "
            "login`, or import a downloaded copy with `transferlab import local DIR`.",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelSourceError(
            f"No model {model_id!r} on the Hugging Face Hub (or it is private).",
            "Check the id (owner/name, as in https://huggingface.co/<owner>/<name>); a private "
            "repository needs `hf auth login`.",
        ) from exc
    except HFValidationError as exc:
        raise ModelSourceError(
            f"{model_id!r} is not a valid Hugging Face model id: {exc}",
            "Use the form owner/name, e.g. sentence-transformers/all-MiniLM-L6-v2.",
        ) from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise ModelSourceError(
            f"The Hugging Face Hub answered HTTP {status} for {model_id!r}: {exc}",
            "Try again later, or import a downloaded copy with `transferlab import local DIR`.",
        ) from exc
    except _network_error_types() as exc:
        raise _network_error(model_id, f"{type(exc).__name__}: {exc}") from exc


def _check_model_id(model_id: str) -> None:
    """Refuse a malformed id here, before any network call (or the offline message)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model_id)
    except HFValidationError as exc:
        raise ModelSourceError(
            f"{model_id!r} is not a valid Hugging Face model id: {exc}",
            "Use the form owner/name, e.g. sentence-transformers/all-MiniLM-L6-v2.",
        ) from exc


def _download_size(info: ModelInfo) -> int | None:
    """Bytes of what from_pretrained would fetch: one weight format plus top-level side files."""
    siblings = [s for s in info.siblings or [] if s.size is not None]
    if not siblings:
        return info.used_storage
    top = [s for s in siblings if "/" not in s.rfilename]
    weights = [s for s in top if s.rfilename.endswith(".safetensors")] or [
        s for s in top if s.rfilename.startswith("pytorch_model") and s.rfilename.endswith(".bin")
    ]
    side = [s for s in top if s.rfilename.endswith(_SIDE_FILE_SUFFIXES)]
    return sum(s.size or 0 for s in weights + side)


def record_from_model_info(
    info: ModelInfo, card: str | None = None, name: str | None = None
) -> ModelRecord:
    """Map huggingface_hub's ModelInfo (and the README text, if fetched) to a ModelRecord."""
    config = info.config or {}
    architectures = config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else None
    model_type = config.get("model_type")
    card_data = info.card_data.to_dict() if info.card_data is not None else {}
    tags = [str(t) for t in info.tags or []]

    licenses = as_str_list(card_data.get("license"))
    license_tag = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    license_id = normalize_license(licenses[0] if licenses else license_tag)

    parameters = None
    if info.safetensors is not None and info.safetensors.parameters:
        parameters = sum(
            count
            for dtype, count in info.safetensors.parameters.items()
            if dtype.upper() not in BUFFER_DTYPES
        )

    card_text = (split_model_card(card)[1] or None) if card else None
    description = first_prose_paragraph(card_text) if card_text else None
    if description is None:
        count = f"{parameters:,} parameters" if parameters is not None else "unknown parameters"
        description = f"Hugging Face model {info.id} ({architecture or model_type}, {count})."

    return ModelRecord(
        name=name or info.id.split("/")[-1],
        source="hf",
        source_ref=info.id,
        task=info.pipeline_tag or task_from_architecture(architecture, model_type),
        architecture=architecture,
        model_type=str(model_type) if model_type else None,
        library=info.library_name,
        license=license_id,
        commercial_use=commercial_use_for_license(license_id),
        parameters=parameters,
        size_bytes=_download_size(info),
        languages=as_str_list(card_data.get("language")),
        description=description,
        card_text=card_text,
        tags=tags,
    )


def fetch_hf_metadata(
    model_id: str, timeout: float = 5.0, *, name: str | None = None
) -> ModelRecord:
    """Describe a Hub model from its metadata and card; never downloads weights.

    Fails with ModelSourceError at once in offline mode, and within about `timeout` seconds
    when the Hub cannot be reached.
    """
    _check_model_id(model_id)
    if hub_is_offline():
        raise _offline_error(model_id)
    info, card = _fetch(model_id, timeout)
    return record_from_model_info(info, card, name=name)
