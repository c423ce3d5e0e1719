"""The ranked table: scored candidates by cross-validated accuracy, then those that were not
scored (or are too slow), each with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from transferlab.discovery.scoring import Score
from transferlab.discovery.shortlist import Candidate

TABLE_COLUMNS = (
    "rank",
    "model",
    "version",
    "status",
    "cv_accuracy",
    "cv_accuracy_std",
    "cv_macro_f1",
    "cv_macro_f1_std",
    "latency_p50_ms",
    "latency_source",
    "parameters",
    "size_bytes",
    "license",
    "commercial_use",
    "similarity",
    "why",
)


@dataclass
class Outcome:
    """What happened to one shortlisted candidate."""

    candidate: Candidate
    score: Score | None = None
    status: str = "not scored"
    why: str = ""


def _row(outcome: Outcome) -> dict[str, Any]:
    candidate, score = outcome.candidate, outcome.score
    row = candidate.row
    values = {
        "rank": None,
        "model": candidate.name,
        "version": candidate.version_id,
        "status": outcome.status,
        "parameters": row.get("parameters"),
        "size_bytes": row.get("size_bytes"),
        "license": row.get("license"),
        "commercial_use": row.get("commercial_use"),
        "similarity": candidate.similarity,
        "why": outcome.why,
        "latency_source": None,
    }
    if score is not None:
        values.update(score.metrics(), latency_source=score.latency_source)
    elif "latency_p50_ms" in candidate.extra:
        values["latency_p50_ms"] = candidate.extra["latency_p50_ms"]
        values["latency_source"] = "profile"
    return values


def rank_table(outcomes: list[Outcome], max_latency_ms: float | None = None) -> pd.DataFrame:
    """Eligible scored models ranked 1..k (accuracy, then macro-F1; ties: faster, smaller),
    then scored models over max_latency_ms, then the rest in shortlist order."""
    for outcome in outcomes:
        score = outcome.score
        if score is None:
            continue
        too_slow = max_latency_ms is not None and score.latency_p50_ms > max_latency_ms
        outcome.status = "too slow" if too_slow else "scored"
        spread = f"{score.cv_accuracy:.3f} ± {score.cv_accuracy_std:.3f}"
        outcome.why = (
            f"{score.folds}-fold CV accuracy {spread}; {score.latency_p50_ms:.1f} ms per text "
            f"({score.latency_source})"
            + (f", over max_latency_ms={max_latency_ms:g}" if too_slow else "")
            + (f"; {score.pooling}" if score.pooling else "")
        )

    def key(outcome: Outcome) -> tuple:
        score = outcome.score
        assert score is not None
        return (
            -round(score.cv_accuracy, 9),
            -round(score.cv_macro_f1, 9),
            score.latency_p50_ms,
            outcome.candidate.row.get("parameters") or 0,
        )

    eligible = sorted((o for o in outcomes if o.status == "scored"), key=key)
    slow = sorted((o for o in outcomes if o.status == "too slow"), key=key)
    rest = [o for o in outcomes if o.score is None]
    rows = [_row(o) for o in [*eligible, *slow, *rest]]
    for rank, row in enumerate(rows[: len(eligible)], start=1):
        row["rank"] = rank
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    frame["rank"] = frame["rank"].astype("Int64")
    return frame


def best_row(table: pd.DataFrame) -> dict[str, Any] | None:
    ranked = table[table["rank"].notna()]
    return None if ranked.empty else ranked.iloc[0].to_dict()


def faster_alternatives(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Ranked models within one standard deviation of the best and faster than it."""
    best = best_row(table)
    if best is None:
        return []
    ranked = table[table["rank"].notna()].iloc[1:]
    close = ranked[
        (best["cv_accuracy"] - ranked["cv_accuracy"] <= best["cv_accuracy_std"])
        & (ranked["latency_p50_ms"] < best["latency_p50_ms"])
    ]
    return close.to_dict("records")
