"""`transferlab leaderboard`: versions ranked by a metric on a suite, mean over seeds."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

from transferlab.errors import NotFoundError
from transferlab.promotion.evidence import Summary, suite_summaries, suites_with_results
from transferlab.promotion.policy import Policy, load_policy
from transferlab.registry import Registry

# Columns `transferlab leaderboard` shows when the policy names no key metrics for a suite.
DEFAULT_KEY_METRICS = ("accuracy", "macro_f1")


def leaderboard(
    registry: Registry,
    suite: str,
    metric: str = "accuracy",
    *,
    task: str | None = None,
    split: str | None = None,
    policy: Policy | None = None,
) -> list[dict[str, Any]]:
    """Versions ranked by `metric` (mean over seeds) within each suite task and split.

    Each row has the rank, the version's kind and parent, the metric's mean, spread (standard
    deviation over seeds, None for one seed) and n (seeds), and the suite's other key metrics.
    """
    policy = policy or load_policy()
    summaries = suite_summaries(registry, suite)
    if not summaries:
        known = suites_with_results(registry)
        raise NotFoundError(
            f"No benchmark results for suite {suite!r} in the registry "
            f"{registry.display_location}.",
            "Suites with results: "
            + (", ".join(known) or "none yet")
            + ". Results come from succeeded benchmark runs (`transferlab run benchmark`).",
        )
    for value, index, what in ((task, 1, "task"), (split, 2, "split")):
        if value is None:
            continue
        present = sorted({k[index] for k in summaries})
        if value not in present:
            raise NotFoundError(
                f"Suite {suite!r} has no results for {what} {value!r}.",
                f"Its {what}s: {', '.join(present)}.",
            )
        summaries = {k: s for k, s in summaries.items() if k[index] == value}
    metrics = sorted({k[3] for k in summaries})
    if metric not in metrics:
        raise NotFoundError(
            f"Suite {suite!r} has no {metric!r} results.", f"Its metrics: {', '.join(metrics)}."
        )
    columns = policy.key_metrics_for_suite(suite) or list(DEFAULT_KEY_METRICS)
    columns = [m for m in columns if m in metrics and m != metric]
    versions = _version_rows(registry, sorted({k[0] for k in summaries}))
    groups: dict[tuple[str, str], list[tuple[str, Summary]]] = defaultdict(list)
    for (version_id, group_task, group_split, name), summary in summaries.items():
        if name == metric:
            groups[(group_task, group_split)].append((version_id, summary))
    sign = -1.0 if policy.higher_is_better(metric) else 1.0
    rows = []
    for (group_task, group_split), entries in sorted(groups.items()):
        entries.sort(key=lambda e: (sign * e[1].mean, e[0]))
        for rank, (version_id, summary) in enumerate(entries, start=1):
            info = versions.get(version_id, {})
            others = {
                name: summaries.get((version_id, group_task, group_split, name)) for name in columns
            }
            rows.append(
                {
                    "suite": suite,
                    "task": group_task or None,
                    "split": group_split,
                    "rank": rank,
                    "version_id": version_id,
                    "kind": info.get("kind"),
                    "parent_version_id": info.get("parent_version_id"),
                    "metric": metric,
                    "mean": summary.mean,
                    "std": summary.std,
                    "n": summary.n,
                    "metrics": {
                        name: asdict(s) if s is not None else None for name, s in others.items()
                    },
                }
            )
    return rows


def _version_rows(registry: Registry, version_ids: list[str]) -> dict[str, dict]:
    return registry.version_kinds(version_ids)
