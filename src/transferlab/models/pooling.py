"""How a model turns token states into one vector, read from its folder.

A sentence-transformers folder says it in `modules.json` (Transformer -> Pooling -> Normalize)
and the Pooling module's `config.json`. all-MiniLM-L6-v2 pools by mean and L2-normalises; its
BERT pooler ([CLS] + dense + tanh) was never trained, so a head on `pooler_output` starts from
noise. Encoders without such a config keep their usual head (`pooling_of` gives None); the
embedding code falls back to mean pooling for them and says so (`DEFAULT_POOLING.source`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transferlab.errors import ModelSourceError

# sentence-transformers' names; the legacy boolean keys map to them in its own order.
MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# Modules after Pooling that change the vector and are not applied here.
_NOT_APPLIED = ("Dense", "LayerNorm", "WordWeights", "CNN", "LSTM", "Router")
FALLBACK = "fallback"


@dataclass(frozen=True)
class Pooling:
    """`mode`: one of MODES, or several joined by '+' (vectors concatenated, in MODES order);
    `normalize`: a Normalize module follows; `source`: where this was read, or why assumed."""

    mode: str
    normalize: bool
    source: str
    not_applied: tuple[str, ...] = ()  # e.g. a Dense module after pooling

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.mode:
            raise ModelSourceError(
                f"Unknown pooling mode {self.mode!r} ({self.source}).",
                f"Use one of {', '.join(MODES)}.",
            )

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.mode.split("+"))

    @property
    def is_fallback(self) -> bool:
        """True when nothing in the folder said how to pool (mean pooling assumed)."""
        return self.source.startswith(FALLBACK)

    def width(self, hidden_size: int) -> int:
        return hidden_size * len(self.modes)

    def describe(self) -> str:
        """Short, for tables: e.g. 'mean pooling + L2 (sentence-transformers)'."""
        text = f"{self.mode} pooling" + (" + L2" if self.normalize else "")
        if self.is_fallback:
            return f"{text} (assumed: no sentence-transformers config)"
        return f"{text} (sentence-transformers)" + (
            f", {'+'.join(self.not_applied)} not applied" if self.not_applied else ""
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["not_applied"] = list(self.not_applied)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Pooling:
        return cls(
            mode=str(values["mode"]),
            normalize=bool(values["normalize"]),
            source=str(values.get("source", "")),
            not_applied=tuple(values.get("not_applied", ())),
        )


DEFAULT_POOLING = Pooling(
    "mean", False, f"{FALLBACK}: mean pooling, the folder has no sentence-transformers config"
)


def pooling_of(location: str | Path) -> Pooling | None:
    """The pooling a sentence-transformers folder (or cached Hub id) declares; None for other
    encoders (no modules.json, or none with a Pooling module)."""
    modules = _read_json(location, "modules.json")
    if not isinstance(modules, list):
        return None
    entries = sorted(
        (m for m in modules if isinstance(m, dict)), key=lambda m: int(m.get("idx", 0))
    )
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in entries]
    if "Pooling" not in kinds:
        return None
    at = kinds.index("Pooling")
    path = str(entries[at].get("path") or "")
    config_name = f"{path}/config.json" if path else "config.json"
    config = _read_json(location, config_name)
    if not isinstance(config, dict):
        raise ModelSourceError(
            f"{location}: modules.json names a Pooling module but {config_name} is missing or "
            "not a JSON object.",
            "Re-save the model with sentence-transformers, or remove modules.json.",
        )
    after = kinds[at + 1 :]
    return Pooling(
        mode=_mode_of(config),
        normalize="Normalize" in after,
        source=f"sentence-transformers: {config_name}",
        not_applied=tuple(kind for kind in after if kind in _NOT_APPLIED),
    )


def pooling_or_default(location: str | Path) -> Pooling:
    return pooling_of(location) or DEFAULT_POOLING


def _mode_of(config: dict[str, Any]) -> str:
    mode = config.get("pooling_mode")
    if mode is None:  # sentence-transformers < 6 wrote one boolean per mode
        mode = [name for key, name in _LEGACY_KEYS.items() if config.get(key)] or ["mean"]
    if isinstance(mode, str):
        return mode
    return "+".join(str(m) for m in mode)


def _read_json(location: str | Path, name: str) -> Any:
    """A JSON file of a local folder, or of a Hub id already in the local cache (no network)."""
    path = Path(location) / name
    if not Path(location).is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
            return None
        try:
            cached = try_to_load_from_cache(str(location), name)
        except Exception:  # not a repo id at all
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelSourceError(f"{path} is not valid JSON: {exc}", "Re-save the model.") from exc


def pool(hidden_states: Any, attention_mask: Any, pooling: Pooling) -> Any:
    """(batch, tokens, hidden) states -> (batch, width) vectors, padding ignored, as
    sentence-transformers' Pooling (+ Normalize) computes them for right or left padding."""
    import torch

    mask = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    vectors = []
    for mode in MODES:  # sentence-transformers concatenates in this order
        if mode not in pooling.modes:
            continue
        if mode == "cls":  # the first real token (left padding allowed)
            first = attention_mask.to(torch.int64).argmax(dim=1)
            vectors.append(hidden_states[torch.arange(len(first)), first])
        elif mode == "max":
            vectors.append(hidden_states.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            counts = mask.sum(dim=1).clamp(min=1e-9)
            denominator = counts if mode == "mean" else counts.sqrt()
            vectors.append((hidden_states * mask).sum(dim=1) / denominator)
        elif mode == "weightedmean":  # position weights 1, 2, ... from the first real token
            positions = torch.arange(1, hidden_states.shape[1] + 1, device=hidden_states.device)
            start = attention_mask.to(torch.int64).argmax(dim=1, keepdim=True)
            weights = (positions.unsqueeze(0) - start).to(hidden_states.dtype).unsqueeze(-1)
            weighted = mask * weights
            vectors.append(
                (hidden_states * weighted).sum(dim=1) / weighted.sum(dim=1).clamp(min=1e-9)
            )
        else:  # lasttoken: the last real token
            length = hidden_states.shape[1]
            found, from_end = attention_mask.flip(1).max(dim=1)
            from_end = torch.where(found == 0, length - 1, from_end)
            last = length - from_end - 1
            vectors.append(hidden_states[torch.arange(len(last)), last])
    pooled = vectors[0] if len(vectors) == 1 else torch.cat(vectors, dim=-1)
    if pooling.normalize:
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
    return pooled
