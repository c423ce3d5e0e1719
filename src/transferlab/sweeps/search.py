"""The search part of a sweep file: strategy, budget, distributions, objective, pruning.

```yaml
strategy: bayes               # grid (the default: every combination) | random | bayes (TPE)
budget: 12                    # runs to try (random and bayes)
seed: 0                       # the sampler's seed
search:                       # one distribution per parameter
  learning_rate: {log_uniform: [1.0e-5, 1.0e-2]}
  lora_r: {choice: [4, 8, 16]}
  max_steps: {int_uniform: [20, 60]}
  lora_dropout: {uniform: [0.0, 0.3]}
objective: {metric: validation_loss, direction: minimize}   # <split>_<metric> of the run
pruning: {rule: median, warmup_steps: 10, startup_runs: 2}  # or rule: asha (min_resource,
                                                            # reduction_factor)
```

With random or bayes, `grid:` keys are choices the sampler draws too (one item per run), so a
one-item grid fixes a value as `fixed:` does. Checked with the rest of the file, before any run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transferlab.sweeps.spec import _Parameters, _Where

STRATEGIES = ("grid", "random", "bayes")
SEARCH_KEYS = ("strategy", "budget", "search", "objective", "seed", "pruning")
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")
PRUNING_RULES = ("median", "asha")
PRUNING_KEYS = ("rule", "warmup_steps", "startup_runs", "min_resource", "reduction_factor")
# The scores a finetune run records (transferlab.models.logits.classification_metrics).
FINETUNE_SPLITS = ("train", "validation", "test")
FINETUNE_METRICS = ("accuracy", "macro_f1", "loss")
# What the finetune template's runs are judged by unless the file says otherwise: the
# validation loss its early stopping already watches (accuracy saturates on small sets).
DEFAULT_OBJECTIVE = {"metric": "validation_loss", "direction": "minimize"}
# The split whose scores a run reports while training (the Trainer's evaluations).
TRAINING_SPLIT = "validation"


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: its distribution and its bounds or choices."""

    parameter: str
    distribution: str  # one of DISTRIBUTIONS
    values: tuple[Any, ...]  # (low, high) or the choices

    def optuna(self) -> Any:
        import optuna.distributions as d

        if self.distribution == "choice":
            return d.CategoricalDistribution(self.values)
        low, high = self.values
        if self.distribution == "int_uniform":
            return d.IntDistribution(int(low), int(high))
        return d.FloatDistribution(float(low), float(high), log=self.distribution == "log_uniform")


@dataclass(frozen=True)
class Objective:
    metric: str  # <split>_<metric>: validation_loss, test_accuracy, ...
    direction: str  # maximize | minimize

    @property
    def split(self) -> str:
        return self.metric.split("_", 1)[0]

    @property
    def score(self) -> str:
        return self.metric.split("_", 1)[1]

    def value_of(self, run_metrics: dict[str, Any] | None) -> float | None:
        """The objective's value among a run's recorded metrics (None: not recorded)."""
        value = ((run_metrics or {}).get("metrics") or {}).get(self.split, {}).get(self.score)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return None
        return float(value)


@dataclass(frozen=True)
class Pruning:
    rule: str  # median | asha
    warmup_steps: int = 0  # no run is stopped before this training step
    startup_runs: int = 2  # median: finished runs needed before any is stopped
    min_resource: int = 1  # asha: steps before the first rung
    reduction_factor: int = 3  # asha: the share kept at each rung is 1/reduction_factor

    def pruner(self) -> Any:
        import optuna

        if self.rule == "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=self.startup_runs, n_warmup_steps=self.warmup_steps
            )
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(self.min_resource, self.warmup_steps, 1),
            reduction_factor=self.reduction_factor,
        )


@dataclass(frozen=True)
class SearchSpec:
    strategy: str
    budget: int | None
    seed: int
    dimensions: tuple[Dimension, ...]
    objective: Objective
    pruning: Pruning | None = None
    grid_choices: dict[str, int] = field(default_factory=dict)  # grid key -> item count

    @property
    def samples(self) -> bool:
        """Whether runs are drawn by a sampler (random, bayes) rather than enumerated."""
        return self.strategy != "grid"

    def to_json(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "strategy": self.strategy,
            "objective": asdict(self.objective),
        }
        if self.samples:
            described.update(
                budget=self.budget,
                seed=self.seed,
                search={d.parameter: {d.distribution: list(d.values)} for d in self.dimensions},
            )
        if self.pruning is not None:
            described["pruning"] = asdict(self.pruning)
        return described


def search_from_json(described: dict[str, Any] | None) -> tuple[Objective, Pruning | None] | None:
    """The objective and pruning rule of a sweep as its registry row holds them (a run reads
    them there, wherever it executes); None for a sweep recorded without them."""
    if not described or "objective" not in described:
        return None
    pruning = described.get("pruning")
    return Objective(**described["objective"]), Pruning(**pruning) if pruning else None


def parse_search(
    document: dict[str, Any],
    where: _Where,
    checker: _Parameters,
    template: str,
    grid: dict[str, list[dict[str, Any]]],
    fixed: dict[str, Any],
) -> SearchSpec | None:
    """The file's search keys, checked; every error names the file, line and key. None for
    a plain grid (no strategy, objective or pruning): today's sweep."""
    if not any(key in document for key in SEARCH_KEYS):
        return None
    strategy = document.get("strategy", "grid")
    if strategy not in STRATEGIES:
        raise where.error("strategy", f"got {strategy!r}", f"one of {', '.join(STRATEGIES)}")
    sampled = strategy != "grid"
    budget = document.get("budget")
    if sampled:
        if budget is None:
            raise where.error("budget", f"strategy {strategy} has no budget", "budget: N runs")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise where.error("budget", f"got {budget!r}", "a whole number of runs, at least 1")
    else:
        for key in ("budget", "search", "seed"):
            if key in document:
                raise where.error(
                    key, f"{key} is for a search, and strategy is grid", "strategy: random or bayes"
                )
    seed = document.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise where.error("seed", f"got {seed!r}", "a whole number, e.g. seed: 0")
    dimensions = _dimensions(document.get("search"), where, checker, sampled, fixed, grid)
    objective = _objective(document.get("objective"), where, template)
    pruning = _pruning(document.get("pruning"), where, objective)
    return SearchSpec(
        strategy=strategy,
        budget=budget if sampled else None,
        seed=seed,
        dimensions=dimensions,
        objective=objective,
        pruning=pruning,
        grid_choices={key: len(items) for key, items in grid.items()} if sampled else {},
    )


def _dimensions(
    raw: Any,
    where: _Where,
    checker: _Parameters,
    sampled: bool,
    fixed: dict[str, Any],
    grid: dict[str, list[dict[str, Any]]],
) -> tuple[Dimension, ...]:
    if raw is None:
        if sampled and not grid:
            raise where.error("search", "nothing to search", "search: {parameter: distribution}")
        return ()
    if not isinstance(raw, dict) or not raw:
        raise where.error(
            "search", "got an empty or non-mapping value", "parameter: {uniform: ...}"
        )
    in_grid = {p for items in grid.values() for p in items[0]}
    dimensions = []
    for key, spec in raw.items():
        at = f"search.{key}"
        name = checker.name(str(key), at)
        if name in fixed or name in in_grid:
            raise where.error(at, f"{name} is also set in fixed or grid", "each parameter once")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise where.error(
                at,
                f"got {spec!r}",
                f"one distribution: {{{' | '.join(DISTRIBUTIONS)}: ...}}, e.g. "
                "{log_uniform: [1.0e-5, 1.0e-2]}",
            )
        kind, values = next(iter(spec.items()))
        dimensions.append(
            Dimension(name, kind, _values(kind, values, name, f"{at}.{kind}", where, checker))
        )
    sample = {**fixed, **{k: v for items in grid.values() for k, v in items[0].items()}}
    for dimension in dimensions:
        sample[dimension.parameter] = dimension.values[0]
    origins = {**checker.origins.get("fixed", {})}
    origins.update({d.parameter: f"search.{d.parameter}" for d in dimensions})
    checker.check_run(sample, origins)
    return tuple(dimensions)


def _values(
    kind: str, values: Any, name: str, at: str, where: _Where, checker: _Parameters
) -> tuple[Any, ...]:
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise where.error(at, f"got {values!r}", "a non-empty list of values")
        for value in values:
            if isinstance(value, dict | list):
                raise where.error(at, f"got {value!r}", "plain values (numbers, strings)")
        return tuple(checker.value(name, value, at) for value in values)
    if not isinstance(values, list) or len(values) != 2:
        raise where.error(at, f"got {values!r}", "[low, high]")
    low, high = values
    for bound in (low, high):
        numeric = isinstance(bound, int | float) and not isinstance(bound, bool)
        if not numeric or (kind == "int_uniform" and not isinstance(bound, int)):
            raise where.error(
                at,
                f"bound {bound!r} is no {'whole ' if kind == 'int_uniform' else ''}number",
                "[low, high] numbers",
            )
        checker.value(name, int(bound) if kind == "int_uniform" else bound, at)
    if not low < high:
        raise where.error(at, f"low {low!r} is not below high {high!r}", "[low, high], low < high")
    if kind == "log_uniform" and low <= 0:
        raise where.error(at, f"low {low!r} is not above 0", "positive bounds for log_uniform")
    return (low, high)


def _objective(raw: Any, where: _Where, template: str) -> Objective:
    if raw is None:
        if template != "finetune":
            raise where.error(
                "objective",
                f"template {template} has no default objective",
                "objective: {metric: <split>_<metric>, direction: maximize | minimize}",
            )
        raw = DEFAULT_OBJECTIVE
    if not isinstance(raw, dict) or set(raw) - {"metric", "direction"} or "metric" not in raw:
        raise where.error(
            "objective", f"got {raw!r}", "{metric: validation_loss, direction: minimize}"
        )
    metric = raw["metric"]
    split, _, score = str(metric).partition("_")
    known = template != "finetune" or (split in FINETUNE_SPLITS and score in FINETUNE_METRICS)
    if not isinstance(metric, str) or not score or not known:
        choices = [f"{s}_{m}" for s in FINETUNE_SPLITS for m in FINETUNE_METRICS]
        raise where.error("objective.metric", f"got {metric!r}", f"one of {', '.join(choices)}")
    direction = raw.get("direction", "minimize" if score == "loss" else "maximize")
    if direction not in ("maximize", "minimize"):
        raise where.error("objective.direction", f"got {direction!r}", "maximize or minimize")
    return Objective(metric, direction)


def _pruning(raw: Any, where: _Where, objective: Objective) -> Pruning | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise where.error("pruning", f"got {raw!r}", "{rule: median | asha, warmup_steps: N}")
    for key in raw:
        if key not in PRUNING_KEYS:
            raise where.error(f"pruning.{key}", f"unknown key {key!r}", ", ".join(PRUNING_KEYS))
    rule = raw.get("rule")
    if rule not in PRUNING_RULES:
        raise where.error("pruning.rule", f"got {rule!r}", " or ".join(PRUNING_RULES))
    numbers = {key: raw[key] for key in PRUNING_KEYS[1:] if key in raw}
    for key, value in numbers.items():
        least = 2 if key == "reduction_factor" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise where.error(f"pruning.{key}", f"got {value!r}", f"a whole number >= {least}")
    if objective.split != TRAINING_SPLIT:
        raise where.error(
            "pruning",
            f"runs report {TRAINING_SPLIT} scores while training, and the objective is "
            f"{objective.metric}",
            f"an objective on the {TRAINING_SPLIT} split (e.g. validation_loss), or no pruning",
        )
    return Pruning(rule=rule, **numbers)
