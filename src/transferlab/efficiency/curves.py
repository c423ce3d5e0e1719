"""The curve table (mean and spread of a score per model, data set, method and examples per
class) and the thresholds: the fewest examples per class at which a method reaches a share of
its full-data score."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from transferlab.efficiency.collect import FULL_DATA
from transferlab.finetuning.methods import all_methods

LEVELS = (0.9, 0.95)
GROUP = ["model", "dataset", "method"]
TABLE_COLUMNS = [
    *GROUP,
    "n_per_class",
    "n_train",
    "examples_per_class",
    "mean",
    "std",
    "runs",
    "seeds",
]
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
# A mean this close below a level still reaches it (float noise in value * level).
_TOLERANCE = 1e-9


def level_column(level: float) -> str:
    return f"n_{level * 100:g}"


def method_label(method: str) -> str:
    """The method's display name from the table (its name where no method is called so)."""
    known = {m.name: m.display_name for m in all_methods()}
    return known.get(method, method)


def size_order(n_per_class: int | str) -> float:
    """Numeric sizes in order, the full-data point after every one of them."""
    return math.inf if n_per_class == FULL_DATA else float(n_per_class)


def curve_table(points: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample standard deviation (NaN for one run) and run count of each point.

    `examples_per_class` is the x position: n_per_class, or for the full-data point its
    training examples divided by its classes (label 'all' in `n_per_class`).
    """
    if points.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    rows = []
    for key, group in points.groupby([*GROUP, "n_per_class"], sort=False):
        model, dataset, method, size = key
        n_train = int(group["n_train"].median())
        if size == FULL_DATA:
            classes = group["n_classes"].dropna()
            x = n_train / float(classes.iloc[0]) if len(classes) else float(n_train)
        else:
            x = float(size)
        values = group["value"]
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "method": method,
                "n_per_class": size,
                "n_train": n_train,
                "examples_per_class": x,
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                "runs": len(values),
                "seeds": tuple(sorted(int(s) for s in group["seed"] if pd.notna(s))),
            }
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    order = table["n_per_class"].map(size_order)
    return (
        table.assign(_order=order)
        .sort_values([*GROUP, "_order"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def thresholds(table: pd.DataFrame, levels: Sequence[float] = LEVELS) -> pd.DataFrame:
    """Per model, data set and method: the reference score and, for each level, the smallest
    n_per_class whose mean reaches level x reference.

    The reference is the full-data ('all') point; without one, the largest n_per_class
    measured (`full_data` False and a note say so). Sizes are tried smallest first and the
    first that reaches the level is the answer, even if a larger size dips below it again;
    'all' means only the full data reached it.
    """
    columns = [
        *GROUP,
        "reference",
        "full_data",
        "reference_score",
        "reference_n_train",
        *(level_column(level) for level in levels),
        "note",
    ]
    rows = []
    if table.empty:
        return pd.DataFrame(columns=columns)
    for key, group in table.groupby(GROUP, sort=False):
        ordered = group.assign(_order=group["n_per_class"].map(size_order)).sort_values("_order")
        full = ordered[ordered["n_per_class"] == FULL_DATA]
        reference = full.iloc[0] if len(full) else ordered.iloc[-1]
        full_data = len(full) > 0
        score = float(reference["mean"])
        row = dict(zip(GROUP, key, strict=True))
        row.update(
            reference=reference["n_per_class"],
            full_data=full_data,
            reference_score=score,
            reference_n_train=int(reference["n_train"]),
            note=""
            if full_data
            else f"no full-data run: reference is the largest size, "
            f"{reference['n_per_class']} per class",
        )
        usable = not math.isnan(score) and score > 0
        for level in levels:
            reached = ordered[ordered["mean"] >= level * score - _TOLERANCE] if usable else []
            row[level_column(level)] = reached.iloc[0]["n_per_class"] if len(reached) else None
        if not usable:
            row["note"] = (row["note"] + "; " if row["note"] else "") + (
                "no positive reference score"
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def threshold_sentences(
    table: pd.DataFrame, metric: str = "accuracy", levels: Sequence[float] = LEVELS
) -> list[str]:
    """One plain sentence per model, data set and method, e.g. 'LoRA reaches 90 % of its
    full-data accuracy (0.91) at 32 examples per class, 95 % at 64.'"""
    found = thresholds(table, levels)
    several_models = found["model"].nunique() > 1
    several_datasets = found["dataset"].nunique() > 1
    metric_label = METRIC_LABELS.get(metric, metric)
    sentences = []
    for row in found.to_dict("records"):
        subject = method_label(row["method"])
        if several_models:
            subject = f"{row['model']} with {subject}"
        prefix = f"On {row['dataset']}, " if several_datasets else ""
        if not prefix:
            subject = subject[0].upper() + subject[1:]
        if row["full_data"]:
            reference = f"its full-data {metric_label} ({row['reference_score']:.2f})"
        else:
            reference = (
                f"its best measured {metric_label} ({row['reference_score']:.2f}, at "
                f"{row['reference']} examples per class; no full-data run)"
            )
        if any(row[level_column(level)] is None for level in levels):
            sentences.append(
                f"{prefix}{subject}: no threshold, {reference.removeprefix('its ')} is not "
                "a positive score."
            )
            continue
        parts = []
        for index, level in enumerate(levels):
            where = _where(row[level_column(level)], row["reference_n_train"], first=index == 0)
            parts.append(f"{level * 100:g} % {where}" if index else where)
        first = f"{prefix}{subject} reaches {levels[0] * 100:g} % of {reference} {parts[0]}"
        sentences.append(", ".join([first, *parts[1:]]) + ".")
    return sentences


def _where(n_per_class: int | str, reference_n_train: int, *, first: bool) -> str:
    if n_per_class == FULL_DATA:
        return (
            f"only with all the data ({reference_n_train} examples)"
            if first
            else ("only with all the data")
        )
    return f"at {n_per_class} examples per class" if first else f"at {n_per_class}"
