"""The JSON bodies the service accepts. Unknown fields are refused (422), so a typo never
silently does less than the client meant; sizes are bounded so a body cannot fill the disk."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from transferlab.registry.records import VERSION_KINDS


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class VersionIn(Body):
    """A new version of a model: its weights either at `uri` (hf://..., a path the readers
    share) or uploaded to the artefact store first (`artefact_sha256`), not both."""

    kind: Literal[VERSION_KINDS]  # type: ignore[valid-type]
    uri: str | None = Field(default=None, max_length=2_000)
    artefact_sha256: str | None = Field(default=None, max_length=64)
    parent_version_id: str | None = Field(default=None, max_length=400)
    run_id: str | None = Field(default=None, max_length=200)
    label_names: list[str] | None = Field(default=None, max_length=10_000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunIn(Body):
    kind: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    template: str | None = Field(default=None, max_length=2_000)
    parameters: dict[str, Any] = Field(default_factory=dict)
    data_fingerprint: str | None = Field(default=None, max_length=200)
    output_notebook: str | None = Field(default=None, max_length=2_000)
    sweep_id: str | None = Field(default=None, max_length=200)
    run_id: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")


class RunUpdate(Body):
    parameters: dict[str, Any] | None = None
    data_fingerprint: str | None = Field(default=None, max_length=200)
    metrics: dict[str, Any] | None = None
    output_notebook: str | None = Field(default=None, max_length=2_000)
    template: str | None = Field(default=None, max_length=2_000)


class RunFinish(Body):
    # `interrupted` is the registry's own verdict on a run whose process is gone: a client
    # that stops reports `failed` with its error.
    status: Literal["succeeded", "failed"]
    error: str | None = Field(default=None, max_length=10_000)
    metrics: dict[str, Any] | None = None
    output_notebook: str | None = Field(default=None, max_length=2_000)


class ResultIn(Body):
    version_id: str | None = Field(default=None, max_length=400)
    suite: str | None = Field(default=None, max_length=300)
    task: str | None = Field(default=None, max_length=300)
    dataset: str = Field(min_length=1, max_length=300)
    split: str = Field(min_length=1, max_length=100)
    metric: str = Field(min_length=1, max_length=100)
    value: float
    n_train: int | None = None
    seed: int | None = None


class ResultsIn(Body):
    results: list[ResultIn] = Field(min_length=1, max_length=10_000)


class AliasSet(Body):
    version: str = Field(min_length=1, max_length=400)  # name:N or name@alias
    alias: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=10_000)


class AliasRemove(Body):
    model: str = Field(min_length=1, max_length=300)
    alias: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=10_000)


class PromotionIn(Body):
    version: str = Field(min_length=1, max_length=400)
    alias: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=10_000)
    force: bool = False


class Decision(Body):
    reason: str | None = Field(default=None, max_length=10_000)


class Rejection(Body):
    reason: str = Field(min_length=1, max_length=10_000)
