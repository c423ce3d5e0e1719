"""Early stopping of a sweep's poor runs, decided inside the run from the registry.

When a finetune run belongs to a sweep whose file has `pruning:`, a Trainer callback records
each validation score the Trainer computes (`training_scores`) and then asks the rule: an
Optuna study is built from the scores the sweep's other runs (by name, every invocation)
recorded, the finished ones told their outcome, and the rule (MedianPruner or
SuccessiveHalvingPruner) judges this run's scores so far. A run judged poor raises
`RunPruned`: training stops, no version is registered, and the run ends `pruned` with the
step (run_status). Everything it needs is in the registry, so it works on any executor and
any machine that can reach the registry; no message passes between the run and the driver.
"""

from __future__ import annotations

from typing import Any

from transferlab.registry import Registry
from transferlab.run_status import RunPruned
from transferlab.sweeps.search import Objective, Pruning, search_from_json


def pruning_callbacks(registry: Registry, run_id: str) -> list[Any]:
    """The Trainer callback of a run whose sweep prunes (none otherwise)."""
    run = registry.get_run(run_id)
    if not run.get("sweep_id"):
        return []
    sweep = registry.get_sweep(run["sweep_id"])
    found = search_from_json((sweep.get("spec") or {}).get("search"))
    if found is None or found[1] is None:
        return []
    objective, pruning = found
    return [_callback(registry, run_id, sweep["name"], objective, pruning)]


def should_prune(
    registry: Registry, run_id: str, sweep_name: str, objective: Objective, pruning: Pruning
) -> bool:
    """Whether the rule stops this run now, given every score recorded so far."""
    from transferlab.sweeps.study import quiet_optuna

    optuna = quiet_optuna()
    runs = registry.search_trials(sweep_name)
    scores: dict[str, dict[int, float]] = {}
    for row in registry.training_scores([r["run_id"] for r in runs], objective.metric):
        scores.setdefault(row["run_id"], {})[int(row["step"])] = float(row["value"])
    study = optuna.create_study(
        direction=objective.direction,
        pruner=pruning.pruner(),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for row in runs:  # the others, replayed in the order they started
        if row["run_id"] == run_id or row["status"] not in ("running", "succeeded", "pruned"):
            continue
        other = _replayed(study, scores.get(row["run_id"], {}))
        value = objective.value_of(row["metrics"]) if row["status"] == "succeeded" else None
        if value is not None:
            study.tell(other, value)
        elif row["status"] == "pruned":
            study.tell(other, state=optuna.trial.TrialState.PRUNED)
        # a running one stays running: only the rung it reached counts (asha)
    trial = study.ask()
    mine = scores.get(run_id, {})
    for step in sorted(mine):
        trial.report(mine[step], step)
    return bool(mine) and bool(trial.should_prune())


def _replayed(study: Any, scores: dict[int, float]) -> Any:
    trial = study.ask()
    for step in sorted(scores):
        trial.report(scores[step], step)
        trial.should_prune()  # successive halving records the rungs a trial reached here
    return trial


def _callback(
    registry: Registry, run_id: str, sweep_name: str, objective: Objective, pruning: Pruning
) -> Any:
    from transformers import TrainerCallback

    reported = f"eval_{objective.score}"  # what the Trainer calls the validation score

    class PruneOnValidation(TrainerCallback):
        """Records each validation score and stops the run when the rule says so."""

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get(reported)
            if value is None:
                return
            step = int(state.global_step)
            registry.record_training_score(run_id, step, objective.metric, float(value))
            if should_prune(registry, run_id, sweep_name, objective, pruning):
                registry.update_run(run_id, pruned_step=step)
                raise RunPruned(
                    f"Pruned at step {step} by the sweep's {pruning.rule} rule: "
                    f"{objective.metric} {value:.4g} is worse than the sweep's other runs "
                    "reached by that step.",
                    "Nothing to fix: the sweep stopped a poor run early. Change `pruning:` in "
                    "the sweep file to prune less (warmup_steps, startup_runs).",
                )

    return PruneOnValidation()
