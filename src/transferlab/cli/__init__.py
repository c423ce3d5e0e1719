"""The `transferlab` command: one sub-command per task, each in the module of its concern."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from transferlab.errors import TransferlabError


def build_parser() -> argparse.ArgumentParser:
    from transferlab.cli import (
        catalog_commands,
        method_commands,
        model_commands,
        promotion_commands,
        registry_commands,
        run_commands,
        serve_commands,
        sweep_commands,
        team_commands,
    )

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry",
        default=argparse.SUPPRESS,
        help="registry file or URI, e.g. duckdb:///abs/registry.duckdb (default: "
        "$TRANSFERLAB_REGISTRY or ./registry.duckdb)",
    )
    common.add_argument(
        "--models-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="where model weights are written (default: $TRANSFERLAB_MODELS or a models "
        "folder beside the registry)",
    )
    common.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="API token of a team registry (default: $TRANSFERLAB_TOKEN, which keeps it out "
        "of shell history and process lists)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    parser = argparse.ArgumentParser(
        prog="transferlab",
        description="Transfer-learning workbench: model registry, fine-tuning, benchmarks.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    registry_commands.add_commands(commands, common)
    run_commands.add_commands(commands, common)
    model_commands.add_commands(commands, common)
    method_commands.add_commands(commands, common)
    promotion_commands.add_commands(commands, common)
    sweep_commands.add_commands(commands, common)
    catalog_commands.add_commands(commands, common)
    team_commands.add_commands(commands, common)
    serve_commands.add_commands(commands, common)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a job scheduler) where Ctrl-C has no handler to hand it to."""


_sigterm = {"received": False}


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM does what Ctrl-C does: it calls the SIGINT handler of the moment (Python's,
    which raises KeyboardInterrupt, or the runner's, which also stops the kernel at once), so
    that the run is recorded as interrupted."""
    _sigterm["received"] = True
    on_interrupt = signal.getsignal(signal.SIGINT)
    if callable(on_interrupt):
        on_interrupt(signal.SIGINT, frame)
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM interrupts like Ctrl-C while a command runs (main thread only); the previous
    handler comes back afterwards, so calling main() in-process changes nothing for good."""
    _sigterm["received"] = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _models_dir(folder: str | None) -> Iterator[None]:
    """--models-dir as TRANSFERLAB_MODELS while the command runs, so that every Registry it
    opens (and the notebooks and sweep workers it starts) writes weights there; the previous
    value comes back afterwards."""
    if not folder:
        yield
        return
    from transferlab.registry.backends import MODELS_VARIABLE

    with _environment(MODELS_VARIABLE, str(Path(folder).expanduser().resolve())):
        yield


@contextlib.contextmanager
def _environment(variable: str, value: str | None) -> Iterator[None]:
    """`variable` set to `value` while the command runs (nothing when None), then restored."""
    if value is None:
        yield
        return
    previous = os.environ.get(variable)
    os.environ[variable] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The options may come before or after the sub-command; both spellings share one action.
    args.registry = getattr(args, "registry", None)
    args.json = getattr(args, "json", False)
    args.models_dir = getattr(args, "models_dir", None)
    # --token as TRANSFERLAB_TOKEN, so every Registry the command opens (and the notebooks and
    # workers it starts) writes as the token's user on a team registry.
    token = getattr(args, "token", None)
    _stacks_on_sigusr1()
    try:
        with (
            _sigterm_as_interrupt(),
            _models_dir(args.models_dir),
            _environment("TRANSFERLAB_TOKEN", token),
        ):
            return args.handler(args) or 0
    except TransferlabError as error:
        print(f"error: {error.problem}", file=sys.stderr)
        if error.fix:
            print(f"  fix: {error.fix}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `transferlab ... | head` closed the pipe: nothing to report
        return 0
    except KeyboardInterrupt:
        if _sigterm["received"]:
            print("terminated (SIGTERM)", file=sys.stderr)
            return 128 + signal.SIGTERM
        print("interrupted", file=sys.stderr)
        return 130


def _stacks_on_sigusr1() -> None:
    """`kill -USR1 <pid>` prints every thread's stack to stderr: where a run that seems stuck
    is waiting (the process goes on)."""
    if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


if __name__ == "__main__":
    sys.exit(main())
