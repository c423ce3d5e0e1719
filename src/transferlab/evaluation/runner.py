"""Running a suite on registered versions: predictions, metrics, comparisons, costs, results.

Order matters for bad input: the suite, the versions, every task's data and every label list
are checked before the first model is loaded, and results are written in one transaction at
the very end, so a failed run (recorded as such) leaves no partial results behind.

What is compared with what (each with a paired bootstrap interval, see compare.py):
- a version with its parent version, when the parent can itself be scored on the task
  (merged vs its adapter, an adapter vs a full fine-tune it was trained from); a bare encoder
  base has no classification head, so a base model is judged through its fine-tuned
  descendants;
- a version with the current `production` alias of every model that has results on this suite;
- a version with the majority-class baseline (the most frequent label of the task's data:
  an optimistic trivial model), so a reader can tell a real gain from noise.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlab.data import fingerprint
from transferlab.errors import TransferlabError
from transferlab.evaluation.compare import (
    BASELINE,
    bootstrap_scores,
    majority_baseline,
    paired_difference,
)
from transferlab.evaluation.inference import DEFAULT_BATCH_SIZE, predict_probabilities
from transferlab.evaluation.latency import (
    LATENCY_SAMPLES,
    PeakMemory,
    disk_size,
    measure_latency,
)
from transferlab.evaluation.suites import Suite, TaskData, check_suite_data, load_suite
from transferlab.metrics import MetricSpec, load_metric, metric_function
from transferlab.registry import Registry, VersionRecord
from transferlab.run_failures import record_failure

RUN_KIND = "benchmark"
PRODUCTION_ALIAS = "production"
LATENCY_METRICS = ("latency_ms_p50", "latency_ms_p95", "throughput_per_s", "peak_memory_mb")
METRIC_COLUMNS = ["version", "task", "dataset", "split", "slice", "metric", "value", "n_examples"]
PER_CLASS_COLUMNS = ["version", "task", "label", "precision", "recall", "f1", "support"]
LATENCY_COLUMNS = [
    "version",
    "task",
    "device",
    "latency_ms_p50",
    "latency_ms_p95",
    "throughput_per_s",
    "peak_memory_mb",
    "model_size_mb",
    "adapter_size_mb",
]
COMPARISON_COLUMNS = [
    "version",
    "task",
    "reference",
    "relation",
    "metric",
    "value",
    "reference_value",
    "difference",
    "ci_low",
    "ci_high",
    "higher_is_better",
    "verdict",
    "n_examples",
    "resamples",
]
VERSION_COLUMNS = [
    "version",
    "model",
    "kind",
    "parent",
    "evaluable",
    "reason",
    "labels",
    "model_size_mb",
    "adapter_size_mb",
]
LOWER_IS_BETTER = frozenset({"ece", "latency_ms_p50", "latency_ms_p95", "peak_memory_mb"})


def higher_is_better(metric: str) -> bool:
    """Direction of a result metric name (`accuracy`, `ece[text_length=0-70]`, ...)."""
    return metric.split("[", 1)[0] not in LOWER_IS_BETTER


@dataclass
class SuiteReport:
    """Everything a benchmark notebook shows, as plain tables (long format)."""

    run_id: str
    suite: Suite
    seed: int
    bootstrap: int
    device: str
    versions: pd.DataFrame
    metrics: pd.DataFrame
    per_class: pd.DataFrame
    confusion: dict[tuple[str, str], pd.DataFrame]
    latency: pd.DataFrame
    comparisons: pd.DataFrame
    summary: dict[str, Any]
    notes: list[str]
    rows_written: int
    timings: dict[str, float]
    probabilities: dict[tuple[str, str], np.ndarray] = field(repr=False)
    references: dict[str, np.ndarray] = field(repr=False)
    label_names: dict[str, list[str]] = field(repr=False)
    production: list[str] = field(default_factory=list)

    @property
    def evaluated(self) -> list[str]:
        return self.versions.loc[self.versions["evaluable"], "version"].tolist()

    @property
    def not_evaluable(self) -> pd.DataFrame:
        return self.versions.loc[~self.versions["evaluable"], ["version", "kind", "reason"]]

    def metrics_table(self, task: str | None = None) -> pd.DataFrame:
        """One row per version, one column per overall metric (the first task by default)."""
        task = task or self.suite.tasks[0].name
        overall = self.metrics[(self.metrics["task"] == task) & (self.metrics["slice"] == "")]
        table = overall.pivot(index="version", columns="metric", values="value")
        order = [m for m in dict.fromkeys(overall["metric"]) if m in table.columns]
        return table.reindex(index=self.evaluated, columns=order)

    def slices_table(self, task: str | None = None) -> pd.DataFrame:
        """One row per version and slice (with its size), one column per metric computed on it;
        empty when the task's suite defines no slices."""
        task = task or self.suite.tasks[0].name
        sliced = self.metrics[(self.metrics["task"] == task) & (self.metrics["slice"] != "")]
        if sliced.empty:
            return pd.DataFrame()
        table = sliced.pivot_table(
            index=["version", "slice", "n_examples"], columns="metric", values="value"
        )
        order = [m for m in dict.fromkeys(sliced["metric"]) if m in table.columns]
        table = table[order].reset_index()
        table.columns.name = None
        return table

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: tables as lists of records, confusion matrices as nested lists."""

        def records(frame: pd.DataFrame) -> list[dict]:
            return json.loads(frame.to_json(orient="records"))

        return {
            "run_id": self.run_id,
            "suite": self.suite.name,
            "seed": self.seed,
            "bootstrap": self.bootstrap,
            "device": self.device,
            "versions": records(self.versions),
            "metrics": records(self.metrics),
            "per_class": records(self.per_class),
            "confusion": [
                {
                    "version": version,
                    "task": task,
                    "labels": list(matrix.index),
                    "matrix": matrix.to_numpy().tolist(),
                }
                for (version, task), matrix in self.confusion.items()
            ],
            "latency": records(self.latency),
            "comparisons": records(self.comparisons),
            "summary": self.summary,
            "notes": self.notes,
            "rows_written": self.rows_written,
            "timings": self.timings,
        }


@dataclass
class _Candidate:
    """A version and whether it can be scored: its label names, or why not."""

    version: VersionRecord
    labels: list[str] | None
    reason: str | None = None

    @property
    def evaluable(self) -> bool:
        return self.reason is None


@dataclass
class _Scored:
    """One model's output on one task, in the task's label order."""

    probabilities: np.ndarray
    predictions: np.ndarray
    examples_per_s: float


def run_suite(
    registry: Registry,
    suite: Suite | str | Path,
    versions: Sequence[str | VersionRecord],
    *,
    run_id: str | None = None,
    seed: int = 0,
    bootstrap: int = 1000,
    device: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    latency_samples: int = LATENCY_SAMPLES,
    confidence: float = 0.95,
    production_alias: str = PRODUCTION_ALIAS,
) -> SuiteReport:
    """Evaluate `versions` on every task of `suite`, compare them, and record the results.

    With `run_id` the run exists already (the papermill runner started it and finishes it);
    otherwise a 'benchmark' run is started and finished here. Any error finishes the run as
    failed, writes no results, and is raised again.
    """
    requested = [v.version_id if isinstance(v, VersionRecord) else str(v) for v in versions]
    parameters = {
        "suite": suite.name if isinstance(suite, Suite) else str(suite),
        "versions": requested,
        "seed": seed,
        "bootstrap": bootstrap,
        "device": device,
        "batch_size": batch_size,
    }
    own_run = run_id is None
    if own_run:
        run_id = registry.start_run(RUN_KIND, parameters=parameters)
    else:
        existing = registry.get_run(run_id)["parameters"] or {}
        registry.update_run(run_id, parameters={**existing, **parameters})
    assert run_id is not None
    try:
        report = _run(
            registry,
            suite,
            versions,
            run_id=run_id,
            seed=seed,
            bootstrap=bootstrap,
            device=device,
            batch_size=batch_size,
            latency_samples=latency_samples,
            confidence=confidence,
            production_alias=production_alias,
        )
    except BaseException as exc:
        record_failure(registry, run_id, exc)
        raise
    if own_run:
        registry.finish_run(run_id, "succeeded", metrics=report.summary)
    else:
        registry.update_run(run_id, metrics=report.summary)
    return report


def _run(
    registry: Registry,
    suite: Suite | str | Path,
    versions: Sequence[str | VersionRecord],
    *,
    run_id: str,
    seed: int,
    bootstrap: int,
    device: str | None,
    batch_size: int,
    latency_samples: int,
    confidence: float,
    production_alias: str,
) -> SuiteReport:
    _check_options(versions, bootstrap, batch_size, confidence)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    records = _resolve(registry, versions)
    tasks = check_suite_data(suite)
    registry.update_run(run_id, data_fingerprint=_data_fingerprint(tasks))
    candidates = {r.version_id: _inspect(registry, r) for r in records}
    for candidate in candidates.values():
        if candidate.version.kind != "base" and not candidate.evaluable:
            raise TransferlabError(
                candidate.reason or "", "Register it again through transferlab.finetune."
            )
    evaluated = [c for c in candidates.values() if c.evaluable]
    if not evaluated:
        reasons = "; ".join(c.reason or "" for c in candidates.values())
        raise TransferlabError(
            f"None of the versions can be scored for classification: {reasons}",
            "Evaluate fine-tuned versions (adapters, merged or full); a base encoder is "
            "compared through its fine-tuned descendants.",
        )
    labels = {td.task.name: _task_labels(suite, td, evaluated) for td in tasks}
    extra, production, notes = _references(
        registry, suite, evaluated, tasks, labels, production_alias
    )
    timings["prepare_s"] = time.perf_counter() - started

    scored, costs, device_used = _predict_all(
        registry,
        evaluated,
        extra,
        tasks,
        labels,
        device=device,
        batch_size=batch_size,
        latency_samples=latency_samples,
        seed=seed,
        timings=timings,
    )

    started = time.perf_counter()
    modules: dict[str, Any] = {}
    metric_rows, class_rows, confusion = [], [], {}
    for td in tasks:
        names = labels[td.task.name]
        truth = td.references
        for candidate in evaluated:
            vid = candidate.version.version_id
            result = scored[(vid, td.task.name)]
            metric_rows += _metric_values(td, result, truth, modules, vid)
            if td.task.wants_per_class:
                class_rows += _per_class(td, result, truth, names, modules, vid)
            confusion[(vid, td.task.name)] = _confusion(truth, result.predictions, names)
    metrics = pd.DataFrame(metric_rows, columns=METRIC_COLUMNS)
    per_class = pd.DataFrame(class_rows, columns=PER_CLASS_COLUMNS)
    timings["metrics_s"] = time.perf_counter() - started

    started = time.perf_counter()
    comparisons, distributions, points = _compare(
        evaluated,
        scored,
        tasks,
        labels,
        production,
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
    )
    timings["bootstrap_s"] = time.perf_counter() - started

    latency = pd.DataFrame(costs, columns=LATENCY_COLUMNS)
    version_table = _version_table(registry, candidates)
    summary = _summary(
        suite, metrics, latency, distributions, points, version_table, production, confidence
    )

    started = time.perf_counter()
    rows = _result_rows(
        registry, run_id, suite, seed, tasks, evaluated, metrics, per_class, latency
    )
    written = registry.add_results(rows)
    timings["write_s"] = time.perf_counter() - started
    return SuiteReport(
        run_id=run_id,
        suite=suite,
        seed=seed,
        bootstrap=bootstrap,
        device=device_used,
        versions=version_table,
        metrics=metrics,
        per_class=per_class,
        confusion=confusion,
        latency=latency,
        comparisons=comparisons,
        summary=summary,
        notes=notes,
        rows_written=written,
        timings={k: round(v, 4) for k, v in timings.items()},
        probabilities={k: v.probabilities for k, v in scored.items()},
        production=production,
        references={td.task.name: td.references for td in tasks},
        label_names=labels,
    )


# -- preparing: versions, labels, references ---------------------------------------------------


def _check_options(
    versions: Sequence[str | VersionRecord], bootstrap: int, batch_size: int, confidence: float
) -> None:
    if isinstance(versions, str) or not versions:
        raise TransferlabError(
            "No versions to evaluate (give a list of versions).",
            "Pass versions=['name', 'name:2', 'name@production', ...].",
        )
    if bootstrap < 0 or batch_size < 1 or not 0 < confidence < 1:
        raise TransferlabError(
            f"Invalid settings: bootstrap={bootstrap}, batch_size={batch_size}, "
            f"confidence={confidence}.",
            "Use bootstrap >= 0 (0 skips the intervals), batch_size >= 1, 0 < confidence < 1.",
        )


def _resolve(registry: Registry, versions: Sequence[str | VersionRecord]) -> list[VersionRecord]:
    records: dict[str, VersionRecord] = {}
    for ref in versions:
        record = ref if isinstance(ref, VersionRecord) else registry.resolve(ref)
        records.setdefault(record.version_id, record)
    return list(records.values())


def _labels_of(version: VersionRecord) -> list[str] | None:
    if version.label_names:
        return [str(n) for n in version.label_names]
    id2label = version.metadata.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return [str(id2label[k]) for k in sorted(id2label, key=int)]
    return None


def _inspect(registry: Registry, version: VersionRecord) -> _Candidate:
    """Can the version be scored for classification, and with which labels? (no weights read)"""
    from transferlab.finetuning import sources
    from transferlab.finetuning.methods import pooled
    from transferlab.models.heads import read_head_config

    labels = _labels_of(version)
    if version.kind == "adapter":
        if labels:
            return _Candidate(version, labels)
        return _Candidate(
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
            return _Candidate(version, names)
        return _Candidate(version, None, f"{version.ref} has a pooled head without label names.")
    try:
        config = sources.load_config(source)
    except TransferlabError as exc:
        return _Candidate(version, None, f"{version.ref} cannot be read: {exc.problem}")
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        described = ", ".join(architectures) or getattr(config, "model_type", "unknown")
        return _Candidate(
            version,
            None,
            f"{version.ref} is a {version.kind} model without a classification head "
            f"({described}): not evaluable for classification; compare it through its "
            "fine-tuned descendants.",
        )
    id2label = getattr(config, "id2label", None) or {}
    labels = labels or [str(id2label[i]) for i in sorted(id2label)]
    return _Candidate(version, labels)


def _task_labels(suite: Suite, td: TaskData, evaluated: list[_Candidate]) -> list[str]:
    """The task's label order; models must know every label the task has.

    With `label_names` in the suite, each model's label set must be exactly that set; without,
    the data's labels come first and labels only models know are appended (sorted).
    """
    names = td.label_names
    extra: set[str] = set()
    for candidate in evaluated:
        mismatch = _label_mismatch(td, candidate.labels or [])
        if mismatch:
            key = f"{td.task.key}.label_names" if td.task.label_names else f"{td.task.key}.data"
            raise suite.error(key, f"{candidate.version.ref} {mismatch}", _label_fix(td))
        extra |= set(candidate.labels or []) - set(names)
    return [*names, *sorted(extra)]


def _label_mismatch(td: TaskData, model_labels: list[str]) -> str | None:
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


def _references(
    registry: Registry,
    suite: Suite,
    evaluated: list[_Candidate],
    tasks: list[TaskData],
    labels: dict[str, list[str]],
    production_alias: str,
) -> tuple[dict[str, _Candidate], list[str], list[str]]:
    """Versions to compare with: (extra models to score, production version ids, notes).

    Parents and production versions are scored even when not requested; one that cannot be
    scored on every task is left out with a note (it is context, not the subject of the run).
    """
    notes: list[str] = []
    known = {c.version.version_id for c in evaluated}
    extra: dict[str, _Candidate] = {}
    refused: dict[str, str] = {}

    def usable(version_id: str, left_out: str) -> bool:
        if version_id in known or version_id in extra:
            return True
        if version_id not in refused:
            candidate = _inspect(registry, registry.resolve(version_id))
            reason = candidate.reason
            for td in tasks if reason is None else ():
                mismatch = _label_mismatch(td, candidate.labels or []) or _extra_labels(
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


def _extra_labels(candidate: _Candidate, task_labels: list[str]) -> str | None:
    unknown = sorted(set(candidate.labels or []) - set(task_labels))
    return f"predicts labels the task does not have: {unknown}" if unknown else None


def _production_holders(registry: Registry, suite_name: str, alias: str) -> list[str]:
    """Versions that hold `alias` of their model and have results on this suite."""
    rows = registry.query(
        "SELECT a.version_id FROM aliases a WHERE a.alias = ? AND EXISTS "
        "(SELECT 1 FROM results r WHERE r.version_id = a.version_id AND r.suite = ?) "
        "ORDER BY a.model_name",
        [alias, suite_name],
    )
    return [row["version_id"] for row in rows]


def _data_fingerprint(tasks: list[TaskData]) -> str:
    payload = json.dumps({td.task.name: fingerprint(td.data) for td in tasks}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


# -- predicting ----------------------------------------------------------------------------------


def _predict_all(
    registry: Registry,
    evaluated: list[_Candidate],
    extra: dict[str, _Candidate],
    tasks: list[TaskData],
    labels: dict[str, list[str]],
    *,
    device: str | None,
    batch_size: int,
    latency_samples: int,
    seed: int,
    timings: dict[str, float],
) -> tuple[dict[tuple[str, str], _Scored], list[dict[str, Any]], str]:
    """Load each model once; score it on every task; measure costs of the requested ones."""
    from transferlab.predict import load_version_model

    scored: dict[tuple[str, str], _Scored] = {}
    costs: list[dict[str, Any]] = []
    device_used = device or "cpu"
    timings.update(load_s=0.0, predict_s=0.0, latency_s=0.0)
    requested = {c.version.version_id for c in evaluated}
    for candidate in [*evaluated, *extra.values()]:
        version = candidate.version
        measure = version.version_id in requested and any(td.task.latency for td in tasks)
        with PeakMemory(device or _default_device()) as memory:
            started = time.perf_counter()
            loaded = load_version_model(registry, version, device=device)
            timings["load_s"] += time.perf_counter() - started
            device_used = loaded.device
            task_latency = {}
            for td in tasks:
                started = time.perf_counter()
                inference = predict_probabilities(loaded, td.data.texts, batch_size=batch_size)
                timings["predict_s"] += time.perf_counter() - started
                probabilities = _in_task_order(
                    inference.probabilities, loaded.label_names, labels[td.task.name]
                )
                scored[(version.version_id, td.task.name)] = _Scored(
                    probabilities, probabilities.argmax(axis=1), inference.examples_per_s
                )
                if measure and td.task.latency:
                    started = time.perf_counter()
                    task_latency[td.task.name] = measure_latency(
                        loaded, td.data.texts, samples=latency_samples, seed=seed
                    )
                    timings["latency_s"] += time.perf_counter() - started
        if measure:
            size = disk_size(registry, version)
            for td in tasks:
                if td.task.latency:
                    costs.append(
                        {
                            "version": version.version_id,
                            "task": td.task.name,
                            "device": loaded.device,
                            **task_latency[td.task.name],
                            "throughput_per_s": scored[
                                (version.version_id, td.task.name)
                            ].examples_per_s,
                            "peak_memory_mb": memory.megabytes,
                            "model_size_mb": _mb(size.model_bytes),
                            "adapter_size_mb": _mb(size.adapter_bytes),
                        }
                    )
        del loaded
        _release(device_used)
    return scored, costs, str(device_used)


def _in_task_order(
    probabilities: np.ndarray, model_labels: list[str], task_labels: list[str]
) -> np.ndarray:
    """The model's probability columns rearranged into the task's label order (models may
    list the same labels in another order)."""
    position = {name: i for i, name in enumerate(task_labels)}
    arranged = np.zeros((probabilities.shape[0], len(task_labels)), dtype=np.float64)
    for column, name in enumerate(model_labels):
        arranged[:, position[name]] = probabilities[:, column]
    return arranged


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _release(device: str) -> None:
    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _mb(size: int | None) -> float | None:
    return None if size is None else size / 2**20


# -- metrics -------------------------------------------------------------------------------------


def _inputs(spec: MetricSpec, result: _Scored, rows: np.ndarray | slice) -> np.ndarray:
    """What a metric is computed from: label ids, P(label 1) for ROC-AUC, or probability rows."""
    if spec.inputs == "labels":
        return result.predictions[rows]
    if spec.binary_only:
        return result.probabilities[rows, 1]
    return result.probabilities[rows]


def _metric_values(
    td: TaskData, result: _Scored, truth: np.ndarray, modules: dict[str, Any], version: str
) -> list[dict[str, Any]]:
    """Overall and per-slice values of the task's scalar metrics, through the evaluate modules."""
    rows = []
    groups: list[tuple[str, np.ndarray | slice]] = [("", slice(None))]
    groups += [(name, indices) for name, indices in td.slices.items() if len(indices)]
    for slice_name, indices in groups:
        count = len(truth) if slice_name == "" else len(indices)
        for spec in td.task.scalar_metrics:
            module = modules.get(spec.module) or modules.setdefault(
                spec.module, load_metric(spec.module)
            )
            for name, value in _compute(module, spec, result, truth, indices).items():
                if value is None or not math.isfinite(value):
                    continue
                rows.append(
                    {
                        "version": version,
                        "task": td.task.name,
                        "dataset": td.dataset,
                        "split": td.task.split,
                        "slice": slice_name,
                        "metric": name,
                        "value": float(value),
                        "n_examples": count,
                    }
                )
    return rows


def _compute(
    module: Any, spec: MetricSpec, result: _Scored, truth: np.ndarray, rows: np.ndarray | slice
) -> dict[str, float | None]:
    try:
        output = module.compute(
            predictions=_inputs(spec, result, rows), references=truth[rows], **spec.options
        )
    except ValueError:  # undefined here, e.g. ROC-AUC on a slice with one class
        return {}
    if not spec.hub:
        return {spec.name: output[spec.key]}
    numbers = {k: v for k, v in output.items() if isinstance(v, int | float)}
    if len(numbers) == 1:
        return {spec.name: float(next(iter(numbers.values())))}
    return {f"{spec.name}.{k}": float(v) for k, v in numbers.items()}


def _per_class(
    td: TaskData,
    result: _Scored,
    truth: np.ndarray,
    names: list[str],
    modules: dict[str, Any],
    version: str,
) -> list[dict[str, Any]]:
    module = modules.get("per_class") or modules.setdefault("per_class", load_metric("per_class"))
    output = module.compute(
        predictions=result.predictions, references=truth, labels=list(range(len(names)))
    )
    return [
        {
            "version": version,
            "task": td.task.name,
            "label": names[label],
            "precision": output["precision"][i],
            "recall": output["recall"][i],
            "f1": output["f1"][i],
            "support": output["support"][i],
        }
        for i, label in enumerate(output["labels"])
    ]


def _confusion(truth: np.ndarray, predicted: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Rows: true labels; columns: predicted labels (task label order)."""
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return pd.DataFrame(
        matrix,
        index=pd.Index(names, name="true"),
        columns=pd.Index(names, name="predicted"),
    )


# -- comparisons ---------------------------------------------------------------------------------


def _scorer(spec: MetricSpec, result: _Scored, truth: np.ndarray) -> Callable[[Any], float]:
    """The metric script's own `score` function on a subset of example indices."""
    function = metric_function(spec.module)
    data = _inputs(spec, result, slice(None))
    return lambda rows: function(data[rows], truth[rows], **spec.options)[spec.key]


def _compare(
    evaluated: list[_Candidate],
    scored: dict[tuple[str, str], _Scored],
    tasks: list[TaskData],
    labels: dict[str, list[str]],
    production: list[str],
    *,
    bootstrap: int,
    seed: int,
    confidence: float,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], np.ndarray], dict[tuple[str, str, str], float]]:
    """Every evaluated version vs its parent, the production versions and the baseline.

    Returns the comparisons table, and each model's bootstrap scores and point values per
    (model, task, metric) (the summary compares the leaders with them).
    """
    rows: list[dict[str, Any]] = []
    distributions: dict[tuple[str, str, str], np.ndarray] = {}
    points: dict[tuple[str, str, str], float] = {}
    for td in tasks:
        task, truth = td.task.name, td.references
        baseline = majority_baseline(truth, len(labels[task]))
        scored[(BASELINE, task)] = _Scored(baseline, baseline.argmax(axis=1), float("nan"))
        specs = [s for s in td.task.scalar_metrics if not s.hub]
        models = sorted({model for model, t in scored if t == task})
        scorers = {
            (model, spec.name): _scorer(spec, scored[(model, task)], truth)
            for model in models
            for spec in specs
        }
        everything = np.arange(len(truth))
        for (model, metric), scorer in scorers.items():
            points[(model, task, metric)] = _point(scorer, everything)
        if bootstrap:
            samples = bootstrap_scores(scorers, len(truth), resamples=bootstrap, seed=seed)
            for (model, metric), values in samples.items():
                distributions[(model, task, metric)] = values
        for candidate in evaluated:
            vid = candidate.version.version_id
            pairs: list[tuple[str, str]] = []
            parent = candidate.version.parent_version_id
            if parent and (parent, task) in scored:
                pairs.append((parent, "parent"))
            pairs += [(p, "production") for p in production if p not in (vid, parent)]
            pairs.append((BASELINE, "majority_baseline"))
            for other, relation in pairs:
                for spec in specs:
                    difference = paired_difference(
                        points[(vid, task, spec.name)],
                        points[(other, task, spec.name)],
                        distributions.get((vid, task, spec.name)),
                        distributions.get((other, task, spec.name)),
                        confidence=confidence,
                        higher_is_better=spec.higher_is_better,
                    )
                    rows.append(
                        {
                            "version": vid,
                            "task": task,
                            "reference": other,
                            "relation": relation,
                            "metric": spec.name,
                            "value": points[(vid, task, spec.name)],
                            "reference_value": points[(other, task, spec.name)],
                            "difference": difference.value,
                            "ci_low": difference.ci_low,
                            "ci_high": difference.ci_high,
                            "higher_is_better": spec.higher_is_better,
                            "verdict": difference.verdict,
                            "n_examples": len(truth),
                            "resamples": difference.resamples,
                        }
                    )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS), distributions, points


def _point(scorer: Callable[[Any], float], rows: np.ndarray) -> float:
    try:
        return float(scorer(rows))
    except ValueError:
        return float("nan")


# -- summary, versions, results ------------------------------------------------------------------


def _summary(
    suite: Suite,
    metrics: pd.DataFrame,
    latency: pd.DataFrame,
    distributions: dict[tuple[str, str, str], np.ndarray],
    points: dict[tuple[str, str, str], float],
    versions: pd.DataFrame,
    production: list[str],
    confidence: float,
) -> dict[str, Any]:
    """Which version wins the suite's primary metric (the first task's first scalar metric),
    by how much over the runner-up and the baseline, and at what latency."""
    task = suite.tasks[0]
    specs = [s for s in task.scalar_metrics if not s.hub] or task.scalar_metrics
    summary: dict[str, Any] = {
        "suite": suite.name,
        "task": task.name,
        "metric": None,
        "winner": None,
        "not_evaluable": versions.loc[~versions["evaluable"], "version"].tolist(),
        "production": production,
    }
    if not specs:
        summary["text"] = "No scalar metric to rank the versions by."
        return summary
    spec = specs[0]
    overall = metrics[
        (metrics["task"] == task.name) & (metrics["slice"] == "") & (metrics["metric"] == spec.name)
    ]
    ranked = overall.sort_values("value", ascending=not spec.higher_is_better, kind="stable")
    if ranked.empty:
        summary["text"] = f"No version has a {spec.name} value on {task.name}."
        return summary
    winner = str(ranked.iloc[0]["version"])
    summary.update(metric=spec.name, winner=winner, value=float(ranked.iloc[0]["value"]))
    parts = [f"{winner} wins on {spec.name} ({summary['value']:.3f}, task {task.name})"]
    for other, label in (
        (str(ranked.iloc[1]["version"]) if len(ranked) > 1 else None, "runner_up"),
        (BASELINE, "baseline"),
    ):
        if other is None:
            continue
        difference = paired_difference(
            points[(winner, task.name, spec.name)],
            points[(other, task.name, spec.name)],
            distributions.get((winner, task.name, spec.name)),
            distributions.get((other, task.name, spec.name)),
            confidence=confidence,
            higher_is_better=spec.higher_is_better,
        )
        summary[label] = {
            "version": other,
            "difference": difference.value,
            "ci_low": difference.ci_low,
            "ci_high": difference.ci_high,
            "verdict": difference.verdict,
        }
        interval = (
            f" (95% CI {difference.ci_low:+.3f} to {difference.ci_high:+.3f}, {difference.verdict})"
            if difference.resamples
            else ""
        )
        parts.append(f"{difference.value:+.3f} over {other}{interval}")
    measured = latency[(latency["version"] == winner) & (latency["task"] == task.name)]
    if not measured.empty:
        row = measured.iloc[0]
        summary.update(
            latency_ms_p50=float(row["latency_ms_p50"]),
            latency_ms_p95=float(row["latency_ms_p95"]),
            throughput_per_s=float(row["throughput_per_s"]),
            device=str(row["device"]),
        )
        parts.append(
            f"at {row['latency_ms_p50']:.1f} ms p50 / {row['latency_ms_p95']:.1f} ms p95 per "
            f"text on {row['device']}"
        )
    summary["text"] = ", ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if parts[1:] else "")
    summary["text"] += "."
    return _plain(summary)


def _plain(value: Any) -> Any:
    """NaN -> None, numpy scalars -> Python: the summary is stored as JSON in the run."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _version_table(registry: Registry, candidates: dict[str, _Candidate]) -> pd.DataFrame:
    rows = []
    for vid, candidate in candidates.items():
        version = candidate.version
        size = disk_size(registry, version)
        rows.append(
            {
                "version": vid,
                "model": version.model_name,
                "kind": version.kind,
                "parent": version.parent_version_id,
                "evaluable": candidate.evaluable,
                "reason": candidate.reason,
                "labels": len(candidate.labels or []) or None,
                "model_size_mb": _mb(size.model_bytes),
                "adapter_size_mb": _mb(size.adapter_bytes),
            }
        )
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


def _n_train(registry: Registry, version: VersionRecord) -> int | None:
    """Training examples of the run that made the version (or its nearest ancestor's run)."""
    for record in registry.lineage(version.version_id):
        if record.run_id:
            rows = registry.query(
                "SELECT max(n_train) AS n FROM results WHERE version_id = ? AND run_id = ?",
                [record.version_id, record.run_id],
            )
            return rows[0]["n"] if rows else None
    return None


def _result_rows(
    registry: Registry,
    run_id: str,
    suite: Suite,
    seed: int,
    tasks: list[TaskData],
    evaluated: list[_Candidate],
    metrics: pd.DataFrame,
    per_class: pd.DataFrame,
    latency: pd.DataFrame,
) -> list[dict[str, Any]]:
    """One row per version, task, split and metric; slices as `metric[slice]`, per-class
    values as `f1[label=NAME]`, costs as latency_ms_p50 ... peak_memory_mb."""
    by_task = {td.task.name: td for td in tasks}
    n_train = {c.version.version_id: _n_train(registry, c.version) for c in evaluated}
    rows = []

    def add(version: str, task: str, metric: str, value: Any) -> None:
        if value is None or not math.isfinite(float(value)):
            return
        td = by_task[task]
        rows.append(
            {
                "run_id": run_id,
                "version_id": version,
                "suite": suite.name,
                "task": task,
                "dataset": td.dataset,
                "split": td.task.split,
                "metric": metric,
                "value": float(value),
                "n_train": n_train.get(version),
                "seed": seed,
            }
        )

    for row in metrics.itertuples(index=False):
        name = f"{row.metric}[{row.slice}]" if row.slice else row.metric
        add(row.version, row.task, name, row.value)
    for row in per_class.itertuples(index=False):
        for measure in ("precision", "recall", "f1"):
            add(row.version, row.task, f"{measure}[label={row.label}]", getattr(row, measure))
    for row in latency.itertuples(index=False):
        for measure in LATENCY_METRICS:
            add(row.version, row.task, measure, getattr(row, measure))
    return rows
