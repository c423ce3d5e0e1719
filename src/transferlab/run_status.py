"""One rule for a run's status, for every kind of run (finetune, discover, evaluate).

- A run the call started itself (called from Python, no `run_id` given) is finished by that
  call: `succeeded` with its metrics when it returns, `failed` (or `interrupted` for Ctrl-C)
  with the exception's message when it raises.
- A run the papermill runner started (a template cell passes its `run_id`) is finished by the
  runner (`runner.run_template`) once the whole notebook has executed: the call only records
  its metrics, and its exception fails the cell, which the runner records as the run's error.
  So a later cell that fails still fails the run.
- A run stopped early by its sweep's pruning rule raises `RunPruned` from its training: it
  ends `pruned` (whoever finishes it), with no version and the step it stopped at.
"""

from __future__ import annotations

from transferlab.errors import TransferlabError
from transferlab.registry import Registry

_MAX_ERROR_CHARS = 4000


class RunPruned(TransferlabError):
    """Training stopped early: the run scored worse than its sweep's pruning rule allows."""


def failed_status(exc: BaseException | None = None, *, error_name: str | None = None) -> str:
    """The status of a run that ended by `exc` (or, under papermill, by a cell that raised
    an exception of class `error_name`): interrupted, pruned or failed."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, RunPruned) or error_name == RunPruned.__name__:
        return "pruned"
    return "failed"


def error_text(exc: BaseException) -> str:
    """The message a user reads (problem and fix), not a traceback."""
    text = str(exc) if isinstance(exc, TransferlabError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        text = "Interrupted (KeyboardInterrupt)."
    return text[:_MAX_ERROR_CHARS]


def record_failure(registry: Registry, run_id: str, exc: BaseException) -> None:
    """Finish the run as interrupted, pruned or failed with `exc`'s message. If that write
    fails too, the original exception (which the caller re-raises) carries a note saying so."""
    status = failed_status(exc)
    try:
        registry.finish_run(run_id, status, error=error_text(exc))
    except Exception as record_error:
        exc.add_note(f"transferlab could not record the run as {status}: {record_error}")


def finish_succeeded(
    registry: Registry, run_id: str, *, own_run: bool, metrics: dict | None = None
) -> None:
    """The call returned: finish its own run; a runner's run only gets the metrics."""
    if own_run:
        registry.finish_run(run_id, "succeeded", metrics=metrics)
    elif metrics is not None:
        registry.update_run(run_id, metrics=metrics)


def finish_failed(registry: Registry, run_id: str, exc: BaseException, *, own_run: bool) -> None:
    """The call raised `exc`: finish its own run as failed / interrupted; a runner's run is
    finished by the runner from the failed cell."""
    if own_run:
        record_failure(registry, run_id, exc)
