"""Running a suite on registered versions: predictions, metrics, comparisons, costs, results.

Order matters for bad input: the suite, the versions, every task's data and every label list
are checked before the first model is loaded, and results are written in one transaction at
the very end, so a failed run (recorded as such) leaves no partial results behind.

What is compared with what (each with a paired bootstrap interval, see compare.py):
- a version with its parent version, when the parent can itself be scored on the task
  (merged vs its adapter, an adapter vs a full fine-tune it was trained from); a bare encoder
  base has no classification head, so a base model is judged through its fine-tuned
  descendants;
- a version fine-tuned here with its base's standard probe and with TF-IDF + logistic
  regression, both trained on the examples its run trained on (drawn again and checked
  against the run's fingerprint; references.py), so a reader sees what fine-tuning bought;
- a version with the current `production` alias of every model that has results on this suite;
- a version with the majority-class baseline (the most frequent label of the task's data:
  an optimistic trivial model), so a reader can tell a real gain from noise.

This module orchestrates a run and writes its results; the steps live beside it:
candidates.py (what can be scored, label orders, parents and production), scoring.py
(predictions, costs, metrics), references.py (the probe and TF-IDF references),
comparisons.py (the paired comparisons) and summary.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transferlab.data import fingerprint
from transferlab.errors import TransferlabError
from transferlab.evaluation.candidates import (
    Candidate,
    comparison_models,
    inspect_version,
    task_labels,
)
from transferlab.evaluation.comparisons import compare_versions
from transferlab.evaluation.inference import DEFAULT_BATCH_SIZE
from transferlab.evaluation.latency import LATENCY_SAMPLES, disk_size
from transferlab.evaluation.references import train_references
from transferlab.evaluation.scoring import (
    confusion_table,
    megabytes,
    metric_values,
    per_class_values,
    predict_all,
)
from transferlab.evaluation.suites import Suite, TaskData, check_suite_data, load_suite
from transferlab.evaluation.summary import summarise
from transferlab.progress import for_run
from transferlab.registry import Registry, VersionRecord
from transferlab.run_status import finish_failed, finish_succeeded

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
    # one row per evaluated version trained here: its run, examples, and whether they were
    # drawn again (or why not); one row per reference model trained on such examples
    training_data: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference_models: pd.DataFrame = field(default_factory=pd.DataFrame)

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
            "training_data": records(self.training_data),
            "reference_models": records(self.reference_models),
            "summary": self.summary,
            "notes": self.notes,
            "rows_written": self.rows_written,
            "timings": self.timings,
        }


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
        with for_run(run_id):  # the runner's progress file, when it gave the run id
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
        finish_failed(registry, run_id, exc, own_run=own_run)
        raise
    finish_succeeded(registry, run_id, own_run=own_run, metrics=report.summary)
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
    if suite.pdf:  # the PDF is printed after the run: no browser must fail it before it starts
        from transferlab.reporting.chromium import find_chromium

        if find_chromium() is None:
            raise TransferlabError(
                f"Suite {suite.name} asks for a PDF report (pdf: true), and no Chromium was "
                "found to print it.",
                "Install it (Debian: apt-get install chromium), or set pdf: false in the suite.",
            )
    records = _resolve(registry, versions)
    tasks = check_suite_data(suite)
    registry.update_run(run_id, data_fingerprint=_data_fingerprint(tasks))
    candidates = {r.version_id: inspect_version(registry, r) for r in records}
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
    labels = {td.task.name: task_labels(suite, td, evaluated) for td in tasks}
    extra, production, notes = comparison_models(
        registry, suite, evaluated, tasks, labels, production_alias
    )
    timings["prepare_s"] = time.perf_counter() - started

    scored, costs, device_used = predict_all(
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

    references = train_references(
        registry,
        evaluated,
        tasks,
        labels,
        device=device or device_used,
        timings=timings,
    )
    notes += references.notes

    started = time.perf_counter()
    modules: dict[str, Any] = {}
    metric_rows, class_rows, confusion = [], [], {}
    for td in tasks:
        names = labels[td.task.name]
        truth = td.references
        for candidate in evaluated:
            vid = candidate.version.version_id
            result = scored[(vid, td.task.name)]
            metric_rows += metric_values(td, result, truth, modules, vid)
            if td.task.wants_per_class:
                class_rows += per_class_values(td, result, truth, names, modules, vid)
            confusion[(vid, td.task.name)] = confusion_table(truth, result.predictions, names)
    metrics = pd.DataFrame(metric_rows, columns=METRIC_COLUMNS)
    per_class = pd.DataFrame(class_rows, columns=PER_CLASS_COLUMNS)
    timings["metrics_s"] = time.perf_counter() - started

    started = time.perf_counter()
    comparisons, distributions, points = compare_versions(
        evaluated,
        {**scored, **references.scored},
        tasks,
        labels,
        production,
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
        trained_references=references.pairs,
    )
    timings["bootstrap_s"] = time.perf_counter() - started

    latency = pd.DataFrame(costs, columns=LATENCY_COLUMNS)
    version_table = _version_table(registry, candidates)
    summary = summarise(
        suite,
        metrics,
        latency,
        distributions,
        points,
        version_table,
        production,
        confidence,
        references,
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
        probabilities={k: v.probabilities for k, v in {**scored, **references.scored}.items()},
        production=production,
        references={td.task.name: td.references for td in tasks},
        label_names=labels,
        training_data=references.training_table(),
        reference_models=references.models_table(),
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


def _data_fingerprint(tasks: list[TaskData]) -> str:
    payload = json.dumps({td.task.name: fingerprint(td.data) for td in tasks}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _version_table(registry: Registry, candidates: dict[str, Candidate]) -> pd.DataFrame:
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
                "model_size_mb": megabytes(size.model_bytes),
                "adapter_size_mb": megabytes(size.adapter_bytes),
            }
        )
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


def _n_train(registry: Registry, version: VersionRecord) -> int | None:
    """Training examples of the run that made the version (or its nearest ancestor's run)."""
    for record in registry.lineage(version.version_id):
        if record.run_id:
            return registry.training_examples(record.version_id, record.run_id)
    return None


def _result_rows(
    registry: Registry,
    run_id: str,
    suite: Suite,
    seed: int,
    tasks: list[TaskData],
    evaluated: list[Candidate],
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
