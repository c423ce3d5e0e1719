"""A random or Bayesian sweep's Optuna study, kept in the registry rather than in memory.

The study is rebuilt at every invocation from the runs the sweep (by name) recorded: each
finished run becomes a trial with its parameters (read back from what it was requested
with), its objective value (from its recorded metrics), and, for a pruned run, the scores
it reported while training (`training_scores`). Those trials count against the budget; an
interrupted run's parameters are tried again first. The sampler's seed is the file's seed
shifted by the number of runs already recorded (interrupted ones too), so a resumed sweep
does not draw its first parameters again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transferlab.sweeps.plan import run_key
from transferlab.sweeps.search import TRAINING_SPLIT, Objective, SearchSpec

if TYPE_CHECKING:
    import optuna

    from transferlab.registry import Registry
    from transferlab.sweeps.spec import SweepSpec

GRID_PREFIX = "grid."  # a grid key drawn as a choice: its trial parameter is the item index
FINISHED = ("succeeded", "failed", "pruned")


def quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(spec: SweepSpec) -> dict[str, Any]:
    """The study's search space: one distribution per searched parameter and grid key."""
    optuna = quiet_optuna()
    search = _search(spec)
    space = {d.parameter: d.optuna() for d in search.dimensions}
    for key, count in search.grid_choices.items():
        space[GRID_PREFIX + key] = optuna.distributions.CategoricalDistribution(range(count))
    return space


def run_parameters(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's run: the fixed parameters, the drawn grid items and drawn values."""
    parameters = dict(spec.fixed)
    for name, value in params.items():
        if name.startswith(GRID_PREFIX):
            parameters.update(spec.grid[name.removeprefix(GRID_PREFIX)][value])
        else:
            parameters[name] = value
    return parameters


def trial_params(spec: SweepSpec, requested: dict[str, Any]) -> dict[str, Any] | None:
    """The trial parameters a recorded run was drawn with, read back from its request; None
    when the run does not fit this file's search space (the file changed since)."""
    space = distributions(spec)
    params: dict[str, Any] = {}
    for name, distribution in space.items():
        if name.startswith(GRID_PREFIX):
            items = spec.grid[name.removeprefix(GRID_PREFIX)]
            index = next(
                (
                    i
                    for i, item in enumerate(items)
                    if all(requested.get(k) == v for k, v in item.items())
                ),
                None,
            )
            if index is None:
                return None
            params[name] = index
            continue
        value = requested.get(name)
        try:
            if value is None or not distribution._contains(distribution.to_internal_repr(value)):
                return None
        except (ValueError, TypeError):
            return None
        params[name] = value
    for name, value in spec.fixed.items():
        if requested.get(name) != value:
            return None
    return params


def trial_key(spec: SweepSpec, number: int, parameters: dict[str, Any]) -> str:
    """A run's stable key in the sweep: its trial number and its parameters' digest."""
    return f"t{number:04d}-{run_key(spec.template, parameters)[:8]}"


@dataclass
class SearchStudy:
    """The study of one sweep (by name), rebuilt from the registry."""

    spec: SweepSpec
    study: optuna.Study
    recorded: list[dict[str, Any]] = field(default_factory=list)  # the finished runs' rows
    retry: list[dict[str, Any]] = field(default_factory=list)  # interrupted runs' params
    without_objective: list[str] = field(default_factory=list)  # succeeded, no objective

    @property
    def finished(self) -> int:
        return len(self.recorded)

    @property
    def budget_left(self) -> int:
        return max(0, (_search(self.spec).budget or 0) - self.finished)

    def ask(self) -> tuple[Any, dict[str, Any]]:
        """A new trial and the run parameters it stands for."""
        if self.retry:
            self.study.enqueue_trial(self.retry.pop(0))
        trial = self.study.ask(fixed_distributions=distributions(self.spec))
        return trial, run_parameters(self.spec, trial.params)

    def tell(self, trial: Any, registry: Registry, run_id: str) -> str:
        """Tell the study how the trial's run ended, as the registry recorded it; the state."""
        optuna = quiet_optuna()
        run = registry.get_run(run_id) if registry.run_exists(run_id) else None
        status = run["status"] if run else "failed"
        objective = _search(self.spec).objective
        if status == "succeeded":
            value = objective.value_of(_json(run.get("metrics")))
            if value is not None:
                self.study.tell(trial, value)
                return "complete"
            self.without_objective.append(run_id)
        if status == "pruned":
            for step, value in _scores(registry, [run_id], objective).get(run_id, {}).items():
                trial.report(value, step)
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return "pruned"
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return "fail"


def load_study(spec: SweepSpec, registry: Registry) -> SearchStudy:
    """The sweep's study with every run it recorded under its name as a trial."""
    optuna = quiet_optuna()
    search = _search(spec)
    space = distributions(spec)
    rows = registry.search_trials(spec.name)
    finished, retry = [], []
    for row in rows:
        params = trial_params(spec, row["requested"])
        if params is None:
            continue
        if row["status"] in FINISHED:
            finished.append((row, params))
        elif row["status"] == "interrupted":
            retry.append(params)
    scores = _scores(registry, [row["run_id"] for row, _ in finished], search.objective)
    study = optuna.create_study(
        direction=search.objective.direction, sampler=_sampler(search, len(rows))
    )
    for row, params in finished:
        study.add_trial(_frozen(optuna, row, params, space, search.objective, scores))
    # an interrupted run drawn again counts once: retry only what was not finished since
    done = [p for _, p in finished]
    retry = [p for i, p in enumerate(retry) if p not in done and p not in retry[:i]]
    return SearchStudy(spec, study, [row for row, _ in finished], retry)


def _frozen(
    optuna: Any,
    row: dict[str, Any],
    params: dict[str, Any],
    space: dict[str, Any],
    objective: Objective,
    scores: dict[str, dict[int, float]],
) -> Any:
    state, value = optuna.trial.TrialState.FAIL, None
    if row["status"] == "succeeded":
        value = objective.value_of(row["metrics"])
        if value is not None:
            state = optuna.trial.TrialState.COMPLETE
    elif row["status"] == "pruned":
        state = optuna.trial.TrialState.PRUNED
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params=params,
        distributions=space,
        intermediate_values=scores.get(row["run_id"], {}),
        user_attrs={"run_id": row["run_id"]},
    )


def _scores(
    registry: Registry, run_ids: list[str], objective: Objective
) -> dict[str, dict[int, float]]:
    """Per run: step -> the objective's score reported while training."""
    if objective.split != TRAINING_SPLIT or not run_ids:
        return {}
    found: dict[str, dict[int, float]] = {}
    for row in registry.training_scores(run_ids, objective.metric):
        found.setdefault(row["run_id"], {})[int(row["step"])] = float(row["value"])
    return found


def _sampler(search: SearchSpec, recorded: int) -> Any:
    optuna = quiet_optuna()
    seed = search.seed * 1_000_003 + recorded
    if search.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE draws its first trials at random; with small budgets a quarter of it is enough
    startup = max(2, (search.budget or 0) // 4)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)


def _search(spec: SweepSpec) -> SearchSpec:
    assert spec.search is not None and spec.search.samples, "a random or bayes sweep"
    return spec.search


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value
