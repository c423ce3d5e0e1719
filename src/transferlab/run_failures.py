"""Recording an exception on the run it stopped: failed, or interrupted for Ctrl-C."""

from __future__ import annotations

from transferlab.errors import TransferlabError
from transferlab.registry import Registry

_MAX_ERROR_CHARS = 4000


def error_text(exc: BaseException) -> str:
    """The message a user reads (problem and fix), not a traceback."""
    text = str(exc) if isinstance(exc, TransferlabError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        text = "Interrupted (KeyboardInterrupt)."
    return text[:_MAX_ERROR_CHARS]


def record_failure(registry: Registry, run_id: str, exc: BaseException) -> None:
    """Finish the run as interrupted or failed with `exc`'s message. If that write fails
    too, the original exception (which the caller re-raises) carries a note saying so."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    try:
        registry.finish_run(run_id, status, error=error_text(exc))
    except Exception as record_error:
        exc.add_note(f"transferlab could not record the run as {status}: {record_error}")
