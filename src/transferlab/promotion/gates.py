"""The gates of a promotion and the decision they make together (checking changes nothing)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.promotion.evidence import (
    Summary,
    SummaryKey,
    allows_commercial_use,
    effective_licence,
    lineage_models,
    suite_summaries,
    suites_with_results,
)
from transferlab.promotion.policy import Policy, TaskPolicy, load_policy
from transferlab.registry import Registry, VersionRecord

TARGETS = ("staging", "production")
# Differences this small are float noise, not a regression (0.845 - 0.835 > 0.01 in floats).
_TOLERANCE = 1e-9


@dataclass
class Gate:
    """One check of a promotion: passed, failed or skipped, with the lines that explain it."""

    name: str
    status: str
    lines: list[str]
    numbers: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class Decision:
    """Every gate's verdict on moving `model@target` to `version_id`."""

    version_id: str
    model_name: str
    task: str
    target: str
    holder: str | None
    suite: str | None
    policy: str
    gates: list[Gate]

    @property
    def failed(self) -> list[Gate]:
        return [g for g in self.gates if g.failed]

    @property
    def allowed(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["allowed"] = self.allowed
        data["failed_gates"] = [g.name for g in self.failed]
        return data


def evaluate_promotion(
    registry: Registry, ref: str, target: str, policy: Policy | None = None
) -> Decision:
    """Check every gate for moving the version's `target` alias to it; changes nothing."""
    check_target(target)
    policy = policy or load_policy()
    version = registry.resolve(ref)
    model = registry.get_model(version.model_name)
    holder = _alias_holder(registry, version.model_name, target)
    task_policy = policy.tasks.get(model["task"])
    summaries: dict[SummaryKey, Summary] = {}
    if task_policy is not None:
        summaries = suite_summaries(registry, task_policy.suite, [version.version_id, holder])
    gates = [
        _evidence_gate(registry, policy, task_policy, version, model["task"], summaries),
        _regression_gate(policy, task_policy, version, target, holder, summaries),
    ]
    if target == "production":
        gates.append(_licence_gate(registry, version))
        if policy.require_staging_before_production:
            gates.append(_staging_gate(registry, version))
    return Decision(
        version_id=version.version_id,
        model_name=version.model_name,
        task=model["task"],
        target=target,
        holder=holder,
        suite=task_policy.suite if task_policy else None,
        policy=policy.source,
        gates=gates,
    )


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise TransferlabError(
            f"Cannot promote to {target!r}.", f"Promote to one of: {', '.join(TARGETS)}."
        )


def _alias_holder(registry: Registry, model_name: str, alias: str) -> str | None:
    return registry.alias_holder(model_name, alias)


def _relevant(
    summaries: dict[SummaryKey, Summary], version_id: str, task_policy: TaskPolicy
) -> dict[SummaryKey, Summary]:
    return {
        key: summary
        for key, summary in summaries.items()
        if key[0] == version_id
        and key[3] in task_policy.metrics
        and (task_policy.split is None or key[2] == task_policy.split)
    }


def _where(task_policy: TaskPolicy, key: SummaryKey) -> str:
    return "/".join(part for part in (task_policy.suite, key[1], key[2]) if part)


def _evidence_gate(
    registry: Registry,
    policy: Policy,
    task_policy: TaskPolicy | None,
    version: VersionRecord,
    task: str,
    summaries: dict[SummaryKey, Summary],
) -> Gate:
    if task_policy is None:
        covered = ", ".join(sorted(policy.tasks)) or "none"
        return Gate(
            "evidence",
            "failed",
            [
                f"the policy {policy.source} names no suite for task {task!r} "
                f"(it covers: {covered}); add it under `tasks:`"
            ],
        )
    mine = _relevant(summaries, version.version_id, task_policy)
    missing = [m for m in task_policy.metrics if not any(k[3] == m for k in mine)]
    split_note = f", split {task_policy.split}" if task_policy.split else ""
    if missing:
        elsewhere = suites_with_results(registry, version.version_id)
        return Gate(
            "evidence",
            "failed",
            [
                f"no {', '.join(missing)} result for {version.version_id} from a succeeded "
                f"benchmark run on suite {task_policy.suite}{split_note} (required for task "
                f"{task}); it has benchmark results on: {', '.join(elsewhere) or 'no suite'}"
            ],
        )
    numbers = [
        {"suite": task_policy.suite, "task": k[1], "split": k[2], "metric": k[3], **asdict(s)}
        for k, s in sorted(mine.items())
    ]
    lines = [
        f"{_where(task_policy, k)}: {k[3]} {s.mean:.3f} ({_seeds(s.n)})"
        for k, s in sorted(mine.items())
    ]
    return Gate("evidence", "passed", lines, numbers)


def _regression_gate(
    policy: Policy,
    task_policy: TaskPolicy | None,
    version: VersionRecord,
    target: str,
    holder: str | None,
    summaries: dict[SummaryKey, Summary],
) -> Gate:
    if task_policy is None:
        return Gate("no_regression", "skipped", ["no suite to compare on"])
    if holder is None:
        return Gate("no_regression", "passed", [f"no current {target}: nothing to compare with"])
    mine = _relevant(summaries, version.version_id, task_policy)
    theirs = _relevant(summaries, holder, task_policy)
    pairs = [(k, s, theirs.get((holder, *k[1:]))) for k, s in sorted(mine.items())]
    pairs = [(k, s, h) for k, s, h in pairs if h is not None]
    if not pairs:
        return Gate(
            "no_regression",
            "passed" if mine else "skipped",
            [
                f"{target} {holder} has no key-metric results on suite {task_policy.suite} "
                "that this version also has: nothing to compare with"
            ],
        )
    failures, passes, numbers = [], [], []
    for key, own, held in pairs:
        metric = key[3]
        margin = policy.margin(task_policy, metric)
        sign = 1.0 if policy.higher_is_better(metric) else -1.0
        worse_by = sign * (held.mean - own.mean)
        worse = worse_by > margin + _TOLERANCE
        context = f"{_where(task_policy, key)}; {target} is {holder}; {own.n} vs {held.n} seeds"
        numbers.append(
            {
                "suite": task_policy.suite,
                "task": key[1],
                "split": key[2],
                "metric": metric,
                "value": own.mean,
                "holder_value": held.mean,
                "worse_by": worse_by,
                "margin": margin,
                "higher_is_better": sign > 0,
                "passed": not worse,
            }
        )
        if worse:
            failures.append(
                f"{metric} {own.mean:.3f} vs {target} {held.mean:.3f}: worse by "
                f"{worse_by:.3f} > margin {margin:g} ({context})"
            )
        else:
            passes.append(
                f"{metric} {own.mean:.3f} vs {target} {held.mean:.3f} "
                f"({own.mean - held.mean:+.3f}, margin {margin:g}; {context})"
            )
    if failures:
        return Gate("no_regression", "failed", failures, numbers)
    return Gate("no_regression", "passed", passes, numbers)


def _licence_gate(registry: Registry, version: VersionRecord) -> Gate:
    models = lineage_models(registry, version)
    own = version.model_name
    blockers = [m for m in models if allows_commercial_use(m) is False]
    if blockers:
        lines = []
        for m in blockers:
            where = "" if m["name"] == own else f", which {own} derives from,"
            lines.append(
                f"licence {m.get('license') or '(none recorded)'} of {m['name']}{where} "
                "does not allow commercial use"
            )
        return Gate("licence", "failed", lines, [_licence_numbers(m) for m in blockers])
    licensed = effective_licence(models)
    if licensed is None:
        chain = ", ".join(m["name"] for m in models)
        return Gate(
            "licence",
            "failed",
            [
                f"no licence recorded for {own} or the models it derives from ({chain}); "
                "production needs one that allows commercial use"
            ],
        )
    inherited = "" if licensed["name"] == own else f" (inherited from {licensed['name']})"
    if allows_commercial_use(licensed):
        return Gate(
            "licence",
            "passed",
            [f"licence {licensed['license']}{inherited} allows commercial use"],
            [_licence_numbers(licensed)],
        )
    return Gate(
        "licence",
        "failed",
        [
            f"licence {licensed['license']}{inherited}: whether it allows commercial use is "
            "not recorded (commercial_use is empty and the licence id is not a known one)"
        ],
        [_licence_numbers(licensed)],
    )


def _licence_numbers(model: dict) -> dict:
    return {
        "model": model["name"],
        "license": model.get("license"),
        "commercial_use": allows_commercial_use(model),
    }


def _staging_gate(registry: Registry, version: VersionRecord) -> Gate:
    if registry.has_held_alias(version.model_name, "staging", version.version_id):
        return Gate("staging_first", "passed", [f"{version.version_id} has been in staging"])
    return Gate(
        "staging_first",
        "failed",
        [
            f"{version.version_id} has never been {version.model_name}@staging and the policy "
            "requires staging before production (require_staging_before_production: true); "
            f"promote it with `transferlab promote {version.version_id} --to staging` first"
        ],
    )


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"
