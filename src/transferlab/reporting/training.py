"""The finetune report's first screen: how good is the new version on held-out examples, with
what confidence, and what did it cost? A fine-tune compares with nothing (the benchmark does):
the interval is the test accuracy's own (Wilson, 95 %), which says how much a test set of this
size can tell."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from transferlab.reporting.answer import Answer, duration
from transferlab.reporting.measured import Measured, hardware
from transferlab.reporting.tables import decimals_for, number

Z95 = 1.959964


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (good for small n and values near 1)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def finetune_answer(result: Any) -> Answer:
    """Two sentences, the scores per split and the box, from a FinetuneResult."""
    metrics = result.metrics
    split = "test" if "test" in metrics else ("validation" if "validation" in metrics else None)
    sizes = {
        name: info.get("examples") for name, info in (result.data or {}).get("splits", {}).items()
    }
    version = result.version_id
    base = result.version.parent_version_id or result.parameters.get("base")
    digits = 1
    if split is None or "accuracy" not in metrics[split]:
        first = (
            f"{version} ({result.method} on {base}) was trained; no held-out score was computed."
        )
    else:
        accuracy = float(metrics[split]["accuracy"])
        n = int(metrics[split].get("examples") or sizes.get(split) or 0)
        low, high = wilson_interval(accuracy * n, n)
        digits = decimals_for((high - low) * 100 / 2, default=1)
        first = (
            f"{version} ({result.method} on {base}) scores accuracy "
            f"{number(accuracy * 100, digits)} % on {n} {split} examples (95 % interval "
            f"{number(low * 100, digits)} to {number(high * 100, digits)} %)"
        )
        if "macro_f1" in metrics[split]:
            first += f", macro-F1 {number(float(metrics[split]['macro_f1']) * 100, digits)} %"
        first += "."
    second = _cost_sentence(result, sizes.get("train"))
    rows = [
        {
            "Split": name,
            "Examples": number(scores.get("examples", sizes.get(name)), 0),
            "Accuracy (%)": number(_percent(scores.get("accuracy")), digits),
            "Macro-F1 (%)": number(_percent(scores.get("macro_f1")), digits),
            "Loss ↓": number(scores.get("loss"), 3),
        }
        for name, scores in metrics.items()
    ]
    caption = (
        "train scores are on the examples it learned from (optimistic); the benchmark "
        "compares it with its base's probe, TF-IDF and production"
    )
    return Answer([first, second], pd.DataFrame(rows), _measured(result, sizes), caption)


def _percent(value: Any) -> float | None:
    return None if value is None else float(value) * 100


def _cost_sentence(result: Any, n_train: int | None) -> str:
    timings, resources = result.timings or {}, result.resources or {}
    seconds = timings.get("train_s")
    text = "Training"
    if n_train:
        text += f" on {n_train} examples"
    if seconds is None:
        return f"{text} has no recorded time."
    text += f" took {duration(float(seconds))}"
    device = resources.get("device")
    if device:
        threads = resources.get("threads")
        text += f" on {device}"
        if threads:
            text += f" ({threads} thread{'' if threads == 1 else 's'})"
    total = timings.get("total_s")
    if total:
        text += f", {duration(float(total))} for the whole run"
    return text + f"; compare it: transferlab run benchmark -p versions {result.version_id}."


def _measured(result: Any, sizes: dict[str, int | None]) -> Measured:
    parameters = result.parameters or {}
    data = (result.data or {}).get("name") or parameters.get("data") or "the sample data"
    split_sizes = ", ".join(f"{name} {count}" for name, count in sizes.items() if count)
    items = [("Data", f"{data}: {split_sizes} examples" if split_sizes else str(data))]
    asked = [
        f"{key} {parameters[key]}"
        for key in ("n_per_class", "n_train", "max_steps", "epochs")
        if parameters.get(key) is not None
    ]
    if asked:
        items.append(("Sizes", ", ".join(asked)))
    items.append(("Seed", str(parameters.get("seed", "—"))))
    device = str((result.resources or {}).get("device") or "cpu")
    items.append(("Hardware", hardware(device)))
    items.append(("Run", result.run_id))
    return Measured(items)
