"""Which versions can be scored for classification, in which label order, and which other
versions (parents, production) they are compared with. Reads configs and the registry only:
no weights are loaded here, so bad input fails before the first model loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from transferlab.errors import TransferlabError
from transferlab.evaluation.suites import Suite, TaskData
from transferlab.registry import Registry, VersionRecord


@dataclass
class Candidate:
    """A version and whether it can be scored: its label names, or why not."""

    version: VersionRecord
    labels: list[str] | None
    reason: str | None = None

    @property
    def evaluable(self) -> bool:
        return self.reason is None


def labels_of(version: VersionRecord) -> list[str] | None:
    if version.label_names:
        return [str(n) for n in version.label_names]
    id2label = version.metadata.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return [str(id2label[k]) for k in sorted(id2label, key=int)]
    return None


def inspect_version(registry: Registry, version: VersionRecord) -> Candidate:
    """Can the version be scored for classification, and with which labels? (no weights read)"""
    from transferlab.finetuning.methods import pooled
    from transferlab.models import sources
    from transferlab.models.heads import read_head_config

    labels = labels_of(version)
    if version.kind == "adapter":
        if labels:
            return Candidate(version, labels)
        return Candidate(
            version,
            None,
            f"{version.ref} is an adapter without label names, so its head cannot be rebuilt.",
        )
    source = sources.source_from_uri(version.uri, version.ref)
    if source.is_local and pooled.is_pooled_folder(source.location):
        # a complete model with a pooled head (full fine-tune or merged LP-FT / LoRA adapter)
        head = read_head_config(source.location)
        names = labels or [str(n) for n in head.get("label_names") or []]
        if names:
            return Candidate(version, names)
        return Candidate(version, None, f"{version.ref} has a pooled head without label names.")
    try:
        config = sources.load_config(source)
    except TransferlabError as exc:
        return Candidate(version, None, f"{version.ref} cannot be read: {exc.problem}")
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        described = ", ".join(architectures) or getattr(config, "model_type", "unknown")
        return Candidate(
            version,
            None,
            f"{version.ref} is a {version.kind} model without a classification head "
            f"({described}): not evaluable for classification; compare it through its "
            "fine-tuned descendants.",
        )
    id2label = getattr(config, "id2label", None) or {}
    labels = labels or [str(id2label[i]) for i in sorted(id2label)]
    return Candidate(version, labels)


def task_labels(suite: Suite, td: TaskData, evaluated: list[Candidate]) -> list[str]:
    """The task's label order; models must know every label the task has.

    With `label_names` in the suite, each model's label set must be exactly that set; without,
    the data's labels come first and labels only models know are appended (sorted).
    """
    names = td.label_names
    extra: set[str] = set()
    for candidate in evaluated:
        mismatch = label_mismatch(td, candidate.labels or [])
        if mismatch:
            key = f"{td.task.key}.label_names" if td.task.label_names else f"{td.task.key}.data"
            raise suite.error(key, f"{candidate.version.ref} {mismatch}", _label_fix(td))
        extra |= set(candidate.labels or []) - set(names)
    return [*names, *sorted(extra)]


def label_mismatch(td: TaskData, model_labels: list[str]) -> str | None:
    if td.task.label_names is not None:
        if set(model_labels) != set(td.task.label_names):
            return (
                f"has label names {model_labels}, but the task's label_names are "
                f"{list(td.task.label_names)}"
            )
        return None
    missing = [name for name in td.data.present_labels() if name not in model_labels]
    if missing:
        return (
            f"has label names {model_labels}, but the task's data has labels "
            f"{td.data.present_labels()} ({missing} unknown to the model)"
        )
    return None


def _label_fix(td: TaskData) -> str:
    return (
        "the model's label names: evaluate versions trained on these labels, or fix "
        f"label_names / the data of task {td.task.name!r}"
    )


def comparison_models(
    registry: Registry,
    suite: Suite,
    evaluated: list[Candidate],
    tasks: list[TaskData],
    labels: dict[str, list[str]],
    production_alias: str,
) -> tuple[dict[str, Candidate], list[str], list[str]]:
    """Versions to compare with: (extra models to score, production version ids, notes).

    Parents and production versions are scored even when not requested; one that cannot be
    scored on every task is left out with a note (it is context, not the subject of the run).
    """
    notes: list[str] = []
    known = {c.version.version_id for c in evaluated}
    extra: dict[str, Candidate] = {}
    refused: dict[str, str] = {}

    def usable(version_id: str, left_out: str) -> bool:
        if version_id in known or version_id in extra:
            return True
        if version_id not in refused:
            candidate = inspect_version(registry, registry.resolve(version_id))
            reason = candidate.reason
            for td in tasks if reason is None else ():
                mismatch = label_mismatch(td, candidate.labels or []) or _extra_labels(
                    candidate, labels[td.task.name]
                )
                if mismatch:
                    reason = f"{version_id} {mismatch}"
                    break
            if reason is None:
                extra[version_id] = candidate
                return True
            refused[version_id] = reason
        notes.append(f"{left_out}: {refused[version_id]}")
        return False

    for candidate in evaluated:
        parent = candidate.version.parent_version_id
        if parent:
            usable(parent, f"{candidate.version.version_id} is not compared with its parent")
    production = [
        holder
        for holder in _production_holders(registry, suite.name, production_alias)
        if usable(holder, f"The {production_alias} version {holder} is not compared")
    ]
    return extra, production, notes


def _extra_labels(candidate: Candidate, task_labels: list[str]) -> str | None:
    unknown = sorted(set(candidate.labels or []) - set(task_labels))
    return f"predicts labels the task does not have: {unknown}" if unknown else None


def _production_holders(registry: Registry, suite_name: str, alias: str) -> list[str]:
    """Versions that hold `alias` of their model and have results on this suite."""
    return registry.alias_holders_with_results(alias, suite_name)
