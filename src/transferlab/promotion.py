"""Promotion with gates: move a model's `staging` / `production` alias only on evidence.

A promotion is checked against a policy (YAML, see promotion_policy.yaml for the format):

- evidence: the version has results from a succeeded benchmark run on the suite its model's
  task requires, for every key metric of that task;
- no_regression: no key metric is worse than the alias's current holder (same model) by more
  than the metric's margin, compared on the same suite, suite task and split, mean over seeds;
- licence (production): the licence allows commercial use, taken from the nearest model in the
  lineage that records one, and no model the version derives from forbids commercial use;
- staging_first (production, a policy option): the version has been the model's staging
  version before.

A refusal raises PromotionRefused with every failed gate and its numbers; nothing changes.
`force=True` moves the alias anyway and the audit entry says so (forced, failed gates in
`details`). The suite summaries here also feed `transferlab leaderboard`.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transferlab.errors import NotFoundError, TransferlabError
from transferlab.registry import Registry, VersionRecord

POLICY_ENV = "TRANSFERLAB_PROMOTION_POLICY"
DEFAULT_POLICY_PATH = Path(__file__).with_name("promotion_policy.yaml")
TARGETS = ("staging", "production")
PROMOTE_ACTION = "promote"
EVIDENCE_RUN_KIND = "benchmark"
# Columns `transferlab leaderboard` shows when the policy names no key metrics for a suite.
DEFAULT_KEY_METRICS = ("accuracy", "macro_f1")
# Differences this small are float noise, not a regression (0.845 - 0.835 > 0.01 in floats).
_TOLERANCE = 1e-9
_POLICY_KEYS = {"default_margin", "require_staging_before_production", "lower_is_better", "tasks"}
_TASK_KEYS = {"suite", "metrics", "margins", "split"}


class PolicyError(TransferlabError):
    """A promotion policy file that cannot be used as written."""


# -- the policy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskPolicy:
    """What promoting a model of one task requires."""

    task: str
    suite: str
    metrics: tuple[str, ...]
    margins: dict[str, float] = field(default_factory=dict)
    split: str | None = None


@dataclass(frozen=True)
class Policy:
    source: str
    default_margin: float = 0.01
    require_staging_before_production: bool = True
    lower_is_better: frozenset[str] = frozenset()
    tasks: dict[str, TaskPolicy] = field(default_factory=dict)

    def margin(self, task: TaskPolicy, metric: str) -> float:
        return task.margins.get(metric, self.default_margin)

    def higher_is_better(self, metric: str) -> bool:
        """A slice of a metric (`ece[text_length=0-70]`, as the suite runner names them) goes
        the way the metric goes."""
        return metric.split("[", 1)[0] not in self.lower_is_better

    def key_metrics_for_suite(self, suite: str) -> list[str]:
        """The key metrics of every task that requires `suite`, in policy order."""
        found: list[str] = []
        for task in self.tasks.values():
            if task.suite == suite:
                found += [m for m in task.metrics if m not in found]
        return found


def policy_path(path: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The policy file to use and where that choice came from: argument, environment, package."""
    if path:
        return Path(path).expanduser(), "--policy"
    if os.environ.get(POLICY_ENV):
        return Path(os.environ[POLICY_ENV]).expanduser(), POLICY_ENV
    return DEFAULT_POLICY_PATH, "the packaged default"


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read and check a policy: explicit path, else $TRANSFERLAB_PROMOTION_POLICY, else default."""
    file, origin = policy_path(path)
    if not file.is_file():
        raise PolicyError(
            f"The promotion policy {file} (from {origin}) does not exist.",
            f"Point {'--policy' if origin == '--policy' else POLICY_ENV} at a policy YAML file, "
            f"e.g. a copy of {DEFAULT_POLICY_PATH}.",
        )
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PolicyError(
            f"The promotion policy {file} is not valid YAML: {error}.",
            "Fix the file's syntax.",
        ) from error
    return parse_policy(data, str(file))


def parse_policy(data: Any, source: str) -> Policy:
    def fail(key: str, expected: str, got: Any) -> PolicyError:
        return PolicyError(
            f"{source}: `{key}` must be {expected}, not {got!r}.",
            f"Fix {key} in the policy (the packaged default is {DEFAULT_POLICY_PATH}).",
        )

    if not isinstance(data, dict):
        raise fail("(top level)", "a mapping with a `tasks` key", data)
    unknown = sorted(set(data) - _POLICY_KEYS)
    if unknown:
        raise fail(unknown[0], f"one of {', '.join(sorted(_POLICY_KEYS))}", unknown[0])
    default_margin = data.get("default_margin", 0.01)
    if not _is_margin(default_margin):
        raise fail("default_margin", "a number >= 0", default_margin)
    staging_first = data.get("require_staging_before_production", True)
    if not isinstance(staging_first, bool):
        raise fail("require_staging_before_production", "true or false", staging_first)
    lower = data.get("lower_is_better") or []
    if not _is_name_list(lower):
        raise fail("lower_is_better", "a list of metric names", lower)
    tasks_data = data.get("tasks")
    if not isinstance(tasks_data, dict) or not tasks_data:
        raise fail("tasks", "a mapping of model task -> {suite, metrics}", tasks_data)
    tasks = {}
    for task, entry in tasks_data.items():
        key = f"tasks.{task}"
        if not isinstance(entry, dict):
            raise fail(key, "a mapping with suite and metrics", entry)
        extra = sorted(set(entry) - _TASK_KEYS)
        if extra:
            raise fail(f"{key}.{extra[0]}", f"one of {', '.join(sorted(_TASK_KEYS))}", extra[0])
        suite = entry.get("suite")
        if not isinstance(suite, str) or not suite:
            raise fail(f"{key}.suite", "a suite name", suite)
        metrics = entry.get("metrics")
        if not _is_name_list(metrics) or not metrics:
            raise fail(f"{key}.metrics", "a non-empty list of metric names", metrics)
        margins = entry.get("margins") or {}
        if not isinstance(margins, dict):
            raise fail(f"{key}.margins", "a mapping of metric -> margin", margins)
        for metric, margin in margins.items():
            if not _is_margin(margin):
                raise fail(f"{key}.margins.{metric}", "a number >= 0", margin)
        split = entry.get("split")
        if split is not None and not isinstance(split, str):
            raise fail(f"{key}.split", "a split name", split)
        tasks[str(task)] = TaskPolicy(
            task=str(task),
            suite=suite,
            metrics=tuple(metrics),
            margins={str(m): float(v) for m, v in margins.items()},
            split=split,
        )
    return Policy(
        source=source,
        default_margin=float(default_margin),
        require_staging_before_production=staging_first,
        lower_is_better=frozenset(lower),
        tasks=tasks,
    )


def _is_margin(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


# -- evidence: benchmark results summarised over seeds ----------------------------------------


@dataclass(frozen=True)
class Summary:
    """One metric of one version on one suite task and split: mean and spread over seeds."""

    mean: float
    std: float | None
    n: int


# (version_id, suite task, split, metric)
SummaryKey = tuple[str, str, str, str]


def summarise(rows: Iterable[dict], key_fields: Sequence[str]) -> dict[tuple, Summary]:
    """Mean over seeds per key. Rows of the same seed are averaged first, so re-running one seed
    does not count as more evidence; NaN values (an undefined metric) are left out."""
    by_seed: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        value = row["value"]
        if value is None or math.isnan(value):
            continue
        key = tuple(row[f] if row[f] is not None else "" for f in key_fields)
        by_seed[key][row.get("seed")].append(float(value))
    summaries = {}
    for key, seeds in by_seed.items():
        means = [statistics.fmean(values) for values in seeds.values()]
        std = statistics.stdev(means) if len(means) > 1 else None
        summaries[key] = Summary(statistics.fmean(means), std, len(means))
    return summaries


def _evidence_rows(
    registry: Registry, suite: str | None = None, version_ids: Sequence[str] | None = None
) -> list[dict]:
    """Result rows of succeeded benchmark runs (a failed or running run is no evidence)."""
    return registry.evidence_rows(EVIDENCE_RUN_KIND, suite, version_ids)


def suite_summaries(
    registry: Registry, suite: str, version_ids: Sequence[str] | None = None
) -> dict[SummaryKey, Summary]:
    rows = _evidence_rows(registry, suite, version_ids)
    return summarise(rows, ("version_id", "task", "split", "metric"))  # type: ignore[return-value]


def suites_with_results(registry: Registry, version_id: str | None = None) -> list[str]:
    rows = _evidence_rows(registry, None, [version_id] if version_id else None)
    return sorted({row["suite"] for row in rows})


# -- lineage and licence ----------------------------------------------------------------------


def lineage_models(registry: Registry, version: VersionRecord) -> list[dict]:
    """The models of the version's lineage, its own first, each once."""
    models: list[dict] = []
    for ancestor in registry.lineage(version.version_id):
        if any(m["name"] == ancestor.model_name for m in models):
            continue
        try:
            models.append(registry.get_model(ancestor.model_name))
        except NotFoundError:
            continue
    return models


def allows_commercial_use(model: dict) -> bool | None:
    """The model's recorded answer, else what its licence id says (None: unknown)."""
    from transferlab.catalog.licenses import commercial_use_for_license

    if model.get("commercial_use") is not None:
        return bool(model["commercial_use"])
    return commercial_use_for_license(model.get("license"))


def effective_licence(models: Sequence[dict]) -> dict | None:
    """The nearest model in the lineage that records a licence (a derived model without one
    inherits its base's)."""
    return next((m for m in models if m.get("license")), None)


# -- gates ------------------------------------------------------------------------------------


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
    _check_target(target)
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


def _check_target(target: str) -> None:
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


# -- promote ----------------------------------------------------------------------------------


class PromotionRefused(TransferlabError):
    """At least one gate failed and the promotion was not forced; nothing changed."""

    def __init__(self, decision: Decision):
        self.decision = decision
        failed = decision.failed
        lines = [
            f"Refused to promote {decision.version_id} to {decision.target}: "
            f"{len(failed)} gate{'s' if len(failed) != 1 else ''} failed; nothing changed."
        ]
        lines += [f"  {g.name}: {line}" for g in failed for line in g.lines]
        super().__init__(
            "\n".join(lines),
            "Fix what the gates name, or move it anyway with --force (the audit log records "
            "the promotion as forced, with the failed gates).",
        )


@dataclass
class Promotion:
    """What `promote` did: moved the alias (from -> to), or nothing when it already held it."""

    decision: Decision
    moved: bool
    forced: bool
    from_version: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "forced": self.forced,
            "from": self.from_version,
            "to": self.decision.version_id,
            **self.decision.to_dict(),
        }


def promote(
    registry: Registry,
    ref: str,
    target: str,
    reason: str,
    *,
    force: bool = False,
    policy: Policy | None = None,
) -> Promotion:
    """Move `model@target` to the version when every gate holds (or `force`), audited.

    The gates are checked and the alias moved while this process holds the registry (its
    connection lock is re-entrant within a process and excludes every other transferlab
    process), so the holder the gates compared with is the one the move replaces.
    """
    _check_target(target)
    if not reason or not reason.strip():
        raise TransferlabError(
            "A promotion needs a reason.", 'Say why: --reason "beats production on macro F1".'
        )
    policy = policy or load_policy()
    with registry.session():
        decision = evaluate_promotion(registry, ref, target, policy)
        if decision.holder == decision.version_id:
            return Promotion(decision, moved=False, forced=False, from_version=decision.holder)
        if decision.failed and not force:
            raise PromotionRefused(decision)
        forced = bool(decision.failed)
        details = {
            "policy": decision.policy,
            "suite": decision.suite,
            "compared_with": decision.holder,
            "failed_gates": [
                {"gate": g.name, "lines": g.lines, "numbers": g.numbers} for g in decision.failed
            ],
            "gates": {g.name: g.status for g in decision.gates},
        }
        moved = registry.set_alias(
            decision.version_id,
            target,
            reason=reason.strip(),
            action=PROMOTE_ACTION,
            forced=forced,
            details=details,
        )
    return Promotion(decision, moved=True, forced=forced, from_version=moved["from"])


# -- leaderboard ------------------------------------------------------------------------------


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
            f"No benchmark results for suite {suite!r} in the registry {registry.path}.",
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
