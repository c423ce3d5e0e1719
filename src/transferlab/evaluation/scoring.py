"""Scoring models on a suite's tasks: each model loaded once, its probabilities in the task's
label order, costs measured for the requested versions; then the metrics, per-class values
and confusion matrices computed from those probabilities.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from transferlab.evaluation.candidates import Candidate
from transferlab.evaluation.inference import predict_probabilities
from transferlab.evaluation.latency import PeakMemory, disk_size, measure_latency
from transferlab.evaluation.suites import TaskData
from transferlab.metrics import MetricSpec, load_metric
from transferlab.registry import Registry


@dataclass
class Scored:
    """One model's output on one task, in the task's label order."""

    probabilities: np.ndarray
    predictions: np.ndarray
    examples_per_s: float


def predict_all(
    registry: Registry,
    evaluated: list[Candidate],
    extra: dict[str, Candidate],
    tasks: list[TaskData],
    labels: dict[str, list[str]],
    *,
    device: str | None,
    batch_size: int,
    latency_samples: int,
    seed: int,
    timings: dict[str, float],
) -> tuple[dict[tuple[str, str], Scored], list[dict[str, Any]], str]:
    """Load each model once; score it on every task; measure costs of the requested ones."""
    from transferlab.predict import load_version_model

    scored: dict[tuple[str, str], Scored] = {}
    costs: list[dict[str, Any]] = []
    device_used = device or "cpu"
    timings.update(load_s=0.0, predict_s=0.0, latency_s=0.0)
    requested = {c.version.version_id for c in evaluated}
    for candidate in [*evaluated, *extra.values()]:
        version = candidate.version
        measure = version.version_id in requested and any(td.task.latency for td in tasks)
        with PeakMemory(device or default_device()) as memory:
            started = time.perf_counter()
            loaded = load_version_model(registry, version, device=device)
            timings["load_s"] += time.perf_counter() - started
            device_used = loaded.device
            task_latency = {}
            for td in tasks:
                started = time.perf_counter()
                inference = predict_probabilities(
                    loaded,
                    td.data.texts,
                    batch_size=batch_size,
                    label=f"{version.version_id} on {td.task.name}",
                )
                timings["predict_s"] += time.perf_counter() - started
                probabilities = in_task_order(
                    inference.probabilities, loaded.label_names, labels[td.task.name]
                )
                scored[(version.version_id, td.task.name)] = Scored(
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
                            "model_size_mb": megabytes(size.model_bytes),
                            "adapter_size_mb": megabytes(size.adapter_bytes),
                        }
                    )
        del loaded
        _release(device_used)
    return scored, costs, str(device_used)


def in_task_order(
    probabilities: np.ndarray, model_labels: list[str], task_labels: list[str]
) -> np.ndarray:
    """The model's probability columns rearranged into the task's label order (models may
    list the same labels in another order)."""
    position = {name: i for i, name in enumerate(task_labels)}
    arranged = np.zeros((probabilities.shape[0], len(task_labels)), dtype=np.float64)
    for column, name in enumerate(model_labels):
        arranged[:, position[name]] = probabilities[:, column]
    return arranged


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _release(device: str) -> None:
    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def megabytes(size: int | None) -> float | None:
    return None if size is None else size / 2**20


# -- metrics -------------------------------------------------------------------------------------


def metric_inputs(spec: MetricSpec, result: Scored, rows: np.ndarray | slice) -> np.ndarray:
    """What a metric is computed from: label ids, P(label 1) for ROC-AUC, or probability rows."""
    if spec.inputs == "labels":
        return result.predictions[rows]
    if spec.binary_only:
        return result.probabilities[rows, 1]
    return result.probabilities[rows]


def metric_values(
    td: TaskData, result: Scored, truth: np.ndarray, modules: dict[str, Any], version: str
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
    module: Any, spec: MetricSpec, result: Scored, truth: np.ndarray, rows: np.ndarray | slice
) -> dict[str, float | None]:
    try:
        output = module.compute(
            predictions=metric_inputs(spec, result, rows), references=truth[rows], **spec.options
        )
    except ValueError:  # undefined here, e.g. ROC-AUC on a slice with one class
        return {}
    if not spec.hub:
        return {spec.name: output[spec.key]}
    numbers = {k: v for k, v in output.items() if isinstance(v, int | float)}
    if len(numbers) == 1:
        return {spec.name: float(next(iter(numbers.values())))}
    return {f"{spec.name}.{k}": float(v) for k, v in numbers.items()}


def per_class_values(
    td: TaskData,
    result: Scored,
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


def confusion_table(truth: np.ndarray, predicted: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Rows: true labels; columns: predicted labels (task label order)."""
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return pd.DataFrame(
        matrix,
        index=pd.Index(names, name="true"),
        columns=pd.Index(names, name="predicted"),
    )
