"""Driving a random or Bayesian sweep: ask the study for up to `workers` runs at a time,
hand each to the executor as any sweep run, and tell the study each outcome (as the registry
recorded it) when it finishes, until the budget is spent.

The study is rebuilt from the registry first (transferlab.sweeps.study), so a resumed sweep
goes on where the last invocation stopped; its finished runs are shown in the summary.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.sweeps.executors import ExecutorSettings, SweepExecutor
from transferlab.sweeps.plan import PlannedRun
from transferlab.sweeps.study import SearchStudy, load_study, trial_key

if TYPE_CHECKING:
    from transferlab.registry import Registry
    from transferlab.sweeps.run import RunRow
    from transferlab.sweeps.spec import SweepSpec


def varied_names(spec: SweepSpec) -> list[str]:
    """The parameters a search draws: its distributions' and the grid items'."""
    assert spec.search is not None
    names = [d.parameter for d in spec.search.dimensions]
    for key in spec.search.grid_choices:
        names += [name for name in spec.grid[key][0] if name not in names]
    return names


def planned_run(spec: SweepSpec, key: str, parameters: dict[str, Any]) -> PlannedRun:
    varying = {name: parameters.get(name) for name in varied_names(spec)}
    return PlannedRun(key=key, template=spec.template, parameters=parameters, varying=varying)


def preparation_runs(spec: SweepSpec) -> list[PlannedRun]:
    """One run per base model the search may use (fixed, a grid item or a choice), so that
    the registry preparation registers each model folder once before parallel runs start."""
    assert spec.search is not None
    bases = [spec.fixed.get("base")]
    bases += [item.get("base") for items in spec.grid.values() for item in items]
    for dimension in spec.search.dimensions:
        if dimension.parameter == "base":
            bases += list(dimension.values)
    found = sorted({str(base) for base in bases if base})
    return [planned_run(spec, f"base-{i}", {"base": base}) for i, base in enumerate(found)]


def earlier_rows(
    spec: SweepSpec, state: SearchStudy, registry: Registry, sweep_id: str
) -> list[RunRow]:
    """The runs earlier invocations finished, linked to this one (as reused) for its summary."""
    from transferlab.sweeps.run import RunRow

    rows = []
    for recorded in state.recorded:
        run = planned_run(spec, f"run-{recorded['run_id']}", recorded["requested"])
        registry.add_sweep_run(sweep_id, run.key, recorded["run_id"], reused=True)
        rows.append(
            RunRow(
                run.key,
                run.label,
                run.varying,
                run.parameters,
                recorded["status"],
                recorded["run_id"],
            )
        )
    return rows


def run_search(
    spec: SweepSpec,
    registry: Registry,
    state: SearchStudy,
    executor_class: type[SweepExecutor],
    placement: ExecutorSettings,
    rows: dict[str, RunRow],
    sweep_id: str,
    folder: Path,
    bar: Any,
    *,
    warm: bool = True,
) -> None:
    """Ask, run and tell until the budget is spent (or the sweep is stopped). `warm`: a run
    starts the next one's kernel (transferlab.warm_kernels) while at least `workers` more
    runs are to come after it."""
    from transferlab.sweeps.run import RunRow, _apply, _jobs, stopped_on_error

    if state.budget_left == 0:
        return
    workers = placement.workers
    executor = executor_class(replace(placement, workers=min(workers, state.budget_left)))
    asked: dict[str, tuple[Any, str]] = {}  # key -> (trial, run id) of the runs out
    with stopped_on_error(executor, rows):
        while True:
            while len(asked) < workers and state.budget_left > len(asked):
                trial, parameters = state.ask()
                run = planned_run(spec, trial_key(spec, trial.number, parameters), parameters)
                job = _jobs([run], spec, registry, sweep_id, folder)[0]
                later = state.budget_left - len(asked) - 1  # runs still to ask after this one
                job = replace(job, warm_next_kernel=warm and later >= workers)
                rows[run.key] = RunRow(run.key, run.label, run.varying, run.parameters)
                rows[run.key].run_id = job.run_id
                registry.add_sweep_run(sweep_id, run.key, job.run_id)
                executor.submit(job)
                asked[run.key] = (trial, job.run_id)
            if not asked:
                break
            for result in executor.wait(1.0):
                _apply(rows[result.key], result)
                trial, asked_id = asked.pop(result.key)
                run_id = result.run_id or asked_id  # an executor may retry under a new id
                state.tell(trial, registry, run_id)
                state.recorded.append({"run_id": run_id})
                bar.update(1)
    executor.close()


__all__ = ["earlier_rows", "load_study", "run_search", "varied_names"]
