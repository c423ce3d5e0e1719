"""Plain records exchanged with the registry: what a model, a version, a run and a result hold."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SOURCES = ("hf", "local", "torchhub", "tfhub")
VERSION_KINDS = ("base", "adapter", "merged", "full")
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted", "pruned")
# A sweep ends as a run does, but is never pruned itself (its runs may be).
SWEEP_STATUSES = ("running", "succeeded", "failed", "interrupted")
# The columns of a version's profile shown to people (`transferlab show`, the picker).
PROFILE_DISPLAY_FIELDS = (
    "version_id",
    "device",
    "load_seconds",
    "latency_ms_p50",
    "latency_ms_p95",
    "throughput_per_s",
    "peak_memory_mb",
)
# The fields of a model shown to people (`transferlab show`, the picker's detail panel).
MODEL_DISPLAY_FIELDS = (
    "source",
    "source_ref",
    "task",
    "architecture",
    "library",
    "license",
    "commercial_use",
    "parameters",
    "size_bytes",
    "languages",
    "tags",
)


@dataclass
class ModelRecord:
    """One entry of the models table (a pre-trained model or a model derived from one)."""

    name: str
    source: str
    source_ref: str
    task: str
    architecture: str | None = None
    model_type: str | None = None
    library: str | None = None
    license: str | None = None
    commercial_use: bool | None = None
    parameters: int | None = None
    size_bytes: int | None = None
    languages: list[str] = field(default_factory=list)
    description: str | None = None
    card_text: str | None = None
    tags: list[str] = field(default_factory=list)
    finetune: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VersionRecord:
    """One version of a model: where its weights are and what it derives from."""

    version_id: str
    model_name: str
    version: int
    kind: str
    uri: str | None
    parent_version_id: str | None = None
    run_id: str | None = None
    label_names: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: Any = None

    @property
    def ref(self) -> str:
        return f"{self.model_name}:{self.version}"
