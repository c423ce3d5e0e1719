"""Running templates through papermill, with the run recorded in the registry.

The runner owns a run's life: it records the run as `running` before the kernel starts, passes
the run id and registry path into the notebook (whose code adds parameters, metrics and
versions), and finishes the run as succeeded, failed (error line kept, partly executed output
notebook kept) or interrupted.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import papermill
import yaml
from papermill.exceptions import PapermillExecutionError

from transferlab import forked_kernels, sparse_saves, warm_kernels
from transferlab.errors import TransferlabError
from transferlab.kernels import LocalKernelManager, interrupts_stop_kernel
from transferlab.parameters import (  # noqa: F401 (RUNNER_PARAMETERS, template_parameters: re-exported)
    RUNNER_PARAMETERS,
    signature,
    template_parameters,
)
from transferlab.progress import channel
from transferlab.progress.console import ConsoleProgress
from transferlab.progress.emit import cell_started
from transferlab.registry import Registry
from transferlab.registry.api import new_run_id
from transferlab.run_status import failed_status

TEMPLATE_NAMES = ("discover", "finetune", "benchmark", "curves")
# Templates whose every run ends with an HTML report for stakeholders.
REPORTED_TEMPLATES = ("benchmark", "curves")


def templates_dir() -> Path:
    """TRANSFERLAB_TEMPLATES, else the templates inside the installed package (a wheel: the
    build copies the repository's templates/ there, see setup.py), else the source
    checkout's templates/ folder (an editable install)."""
    explicit = os.environ.get("TRANSFERLAB_TEMPLATES")
    if explicit:
        return Path(explicit)
    packaged = Path(__file__).resolve().parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


def template_path(name: str) -> Path:
    path = Path(name)
    candidate = path if path.suffix == ".ipynb" else templates_dir() / f"{name}.ipynb"
    if not candidate.is_file():
        known = sorted(p.stem for p in templates_dir().glob("*.ipynb"))
        raise TransferlabError(
            f"No template {name!r} (looked for {candidate}).",
            f"Templates: {', '.join(known) or 'none found'}; or give a path to a .ipynb file.",
        )
    return candidate


def check_parameters(path: Path, parameters: dict[str, Any]) -> None:
    """Refuse parameter names the template does not have."""
    signature(path).check_names(parameters)


def parse_cli_value(text: str) -> Any:
    """`-p epochs 3` gives 3, `-p lr 2e-3` 0.002, `-p modules [query,value]` a list."""
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, dict) or (value is None and text not in ("null", "~")):
        return text
    return value


def read_parameter_file(path: str | Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise TransferlabError(
            f"Parameter file {path} does not exist.", "Check the path."
        ) from error
    except yaml.YAMLError as error:
        raise TransferlabError(
            f"Parameter file {path} is not valid YAML: {error}", "Fix the YAML syntax."
        ) from error
    if not isinstance(loaded, dict):
        raise TransferlabError(
            f"Parameter file {path} must be a mapping of name: value.",
            "Write one `name: value` line per parameter.",
        )
    return loaded


@dataclass
class RunOutcome:
    run_id: str
    status: str
    output_notebook: Path
    error: str | None = None
    versions: list[str] = field(default_factory=list)
    report: Path | None = None
    # discover runs: the finetune-template parameters they recommend
    recommendation: dict[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def default_output_dir() -> Path:
    return Path(os.environ.get("TRANSFERLAB_OUTPUTS", "outputs")).resolve()


def _error_line(error: PapermillExecutionError) -> str:
    return f"{error.ename}: {error.evalue}".strip()


def executed_cells(template: Path) -> int:
    """The cells a run of `template` executes: the template's and the one papermill injects
    with the parameters."""
    return len(json.loads(template.read_text(encoding="utf-8"))["cells"]) + 1


class CellStarts:
    """nbclient's `on_cell_start` hook: each cell's start goes to the run's progress file (and
    to the timing of the next run's spare kernel, when there is one)."""

    def __init__(
        self, progress_file: Path, template: Path, spare: warm_kernels.NextSpare | None = None
    ):
        self.progress_file = progress_file
        self.total = executed_cells(template)
        self.spare = spare

    def __call__(self, cell: Any = None, cell_index: int = 0, **_: Any) -> None:
        cell_started(self.progress_file, cell_index + 1, self.total)
        if self.spare is not None:
            self.spare.cell_started(cell_index)


def _execute(
    path: Path,
    output: Path,
    injected: dict[str, Any],
    folder: Path,
    progress_file: Path,
    log_output: bool,
    warm_next: bool,
    save_every_cell: bool,
) -> None:
    """papermill on a warm kernel when this process has one that fits (it is shut down
    after the run), else on a kernel papermill starts (and shuts down). Progress goes to
    `progress_file` (transferlab.progress), not to papermill's bar over cells."""
    kernel = warm_kernels.take(path, folder)
    if kernel is None and warm_next and forked_kernels.enabled():
        # A worker's first run: fork its kernel from the zygote started now rather than start
        # a cold kernel beside the zygote, which would do the same imports on the same cores.
        warm_kernels.prepare(path, folder)
        kernel = warm_kernels.take(path, folder)
    spare = None
    if warm_next:
        forked = isinstance(kernel, warm_kernels.ForkedKernelManager)
        spare = warm_kernels.NextSpare(path, folder, late=forked)
    if kernel is None:
        arguments: dict[str, Any] = {"kernel_manager_class": LocalKernelManager}
    else:
        arguments = {"km": kernel}  # nbclient leaves a kernel it did not start running
    if not save_every_cell:
        arguments["engine_name"] = sparse_saves.engine_name()
    if spare is not None:
        arguments["on_cell_executed"] = lambda cell_index=0, **_: spare.cell_executed(cell_index)
    interrupted = False
    try:
        with interrupts_stop_kernel():
            papermill.execute_notebook(
                str(path),
                str(output),
                parameters=injected,
                progress_bar=False,
                log_output=log_output,
                cwd=str(folder),
                on_cell_start=CellStarts(progress_file, path, spare),
                **arguments,
            )
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if spare is not None:
            spare.run_ended(interrupted=interrupted)
        if kernel is not None:
            warm_kernels.release(kernel, kill=interrupted)


def run_template(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    registry: Registry | None = None,
    output_dir: str | Path | None = None,
    run_id: str | None = None,
    sweep_id: str | None = None,
    progress_bar: bool = True,
    log_output: bool = False,
    raise_on_failure: bool = False,
    paths_from: str | Path | None = None,
    warm_next: bool = False,
    save_every_cell: bool = True,
) -> RunOutcome:
    """Execute a template with papermill and record the run from start to finish.

    The parameters are checked (names, types, a finetune request's values) before the run is
    recorded, and relative paths among them start at `paths_from` (default: the current
    folder, not the output folder the kernel runs in); the run records them absolute.
    `progress_bar`: the run's progress (cells, and the steps inside them: training, embedding
    and evaluation batches) on stdout while it runs (transferlab.progress.console); the
    progress file is there for the run's life either way (a picker or a sweep reads it).
    The run takes this process's warm kernel if one fits (transferlab.warm_kernels), and with
    `warm_next` starts one for a following run of the same template (sweep workers).
    Without `save_every_cell` the output notebook is saved every few seconds rather than at
    each cell (transferlab.sparse_saves; sweep runs).
    """
    registry = registry or Registry()
    path = template_path(name)
    start = Path(paths_from) if paths_from is not None else Path.cwd()
    parameters = signature(path).prepare(dict(parameters or {}), start)
    run_id = run_id or new_run_id(path.stem)
    folder = Path(output_dir) if output_dir else default_output_dir() / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    output = (folder / f"{run_id}.ipynb").resolve()
    registry.start_run(
        path.stem,
        template=str(path),
        parameters=parameters,
        output_notebook=str(output),
        sweep_id=sweep_id,
        run_id=run_id,
    )
    injected = {**parameters, "run_id": run_id, "registry_path": registry.location}
    progress_file = channel.open_channel(run_id)
    shown = ConsoleProgress(progress_file) if progress_bar else nullcontext()
    try:
        with shown:
            _execute(
                path, output, injected, folder, progress_file, log_output, warm_next,
                save_every_cell,
            )  # fmt: skip
    except PapermillExecutionError as error:
        message = _error_line(error)
        status = failed_status(error_name=error.ename)  # failed, or pruned by its sweep
        registry.finish_run(run_id, status, error=message, output_notebook=str(output))
        if raise_on_failure:
            raise
        return RunOutcome(run_id, status, output, error=message)
    except KeyboardInterrupt:
        registry.finish_run(run_id, "interrupted", error="interrupted", output_notebook=str(output))
        raise
    except Exception as error:  # kernel died, notebook unreadable, ...
        message = f"{type(error).__name__}: {error}"
        registry.finish_run(run_id, "failed", error=message, output_notebook=str(output))
        if raise_on_failure:
            raise
        return RunOutcome(run_id, "failed", output, error=message)
    finally:
        channel.close_channel(run_id)  # nothing of the progress outlives the run
    registry.finish_run(run_id, "succeeded", output_notebook=str(output))
    versions = registry.run_version_ids(run_id)
    report = None
    if path.stem in REPORTED_TEMPLATES:
        from transferlab.report import render_run_report

        report = render_run_report(registry, run_id)
    recommendation = None
    if path.stem == "discover":
        from transferlab.discovery import recommendation as recommended

        recommendation = recommended(registry, run_id)
    return RunOutcome(
        run_id,
        "succeeded",
        output,
        versions=versions,
        report=report,
        recommendation=recommendation,
    )
