"""Experiment trackers for fine-tuning runs: MLflow, Weights & Biases and TensorBoard.

A tracker run is named after the transferlab run id and gets the resolved parameters and the
data fingerprint before training, the training curves while training (transformers' own
callbacks), and the final scores per split and the registered version after registration.
Where its logs went is recorded on the transferlab run (parameters['tracker']).

Local defaults sit beside the run's output notebook (`outputs/runs/` unless the runner was
given another folder): TensorBoard events in `<run id>-tensorboard/`, W&B run folders in
`wandb/`, and MLflow runs in the file store `mlruns/` unless MLFLOW_TRACKING_URI (or
mlflow.set_tracking_uri) names another store. mlflow 3.17 refuses a file store unless
MLFLOW_ALLOW_FILE_STORE=true, and mlflow-skinny (the `transferlab[mlflow]` extra) opens a
SQL store only where SQLAlchemy is installed: transferlab allows the file store for its own
default only.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from contextlib import suppress
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError

# report_to value -> (module that must be importable, pip extra that installs it)
TRACKER_PACKAGES = {
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
    "tensorboard": ("tensorboard", "tensorboard"),
}
DEFAULT_PROJECT = "transferlab"  # MLflow experiment / W&B project unless the env names one
PARAM_PREFIX = "transferlab."


def require_tracker(report_to: str) -> None:
    """Fail before anything loads when the tracker's package is not installed."""
    if report_to not in TRACKER_PACKAGES:
        return
    module, extra = TRACKER_PACKAGES[report_to]
    if importlib.util.find_spec(module) is None:
        raise TransferlabError(
            f"report_to={report_to!r} needs the {module} package, which is not installed.",
            f"Install the extra: pip install 'transferlab[{extra}]' (or 'transferlab[trackers]' "
            "for all three), or use report_to='none': the registry records the run either way.",
        )


def tracking_folder(output_notebook: str | None) -> Path:
    """Where local tracker logs go: beside the run's output notebook, else where the runner
    would have put it (TRANSFERLAB_OUTPUTS/runs)."""
    if output_notebook:
        return Path(output_notebook).resolve().parent
    return Path(os.environ.get("TRANSFERLAB_OUTPUTS", "outputs")).resolve() / "runs"


def final_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """{'final/test/accuracy': 0.9, ...}: apart from the Trainer's own train/ and eval/ curves."""
    return {
        f"final/{split}/{name}": float(value)
        for split, scores in metrics.items()
        for name, value in scores.items()
        if isinstance(value, int | float)
    }


def flat_parameters(parameters: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened to dotted keys; lists and None as text (what trackers accept)."""
    flat: dict[str, Any] = {}
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_parameters(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


class Tracker:
    """No tracker: nothing to log. Subclasses log to one tracker."""

    name = "none"

    def describe(self) -> dict[str, Any]:
        """What the transferlab run records about the tracker run (where to find it)."""
        return {}

    def callbacks(self) -> list[Any]:
        """Trainer callbacks that log the training curves."""
        return []

    def finish(self, metrics: dict[str, dict[str, float]], version: Any, step: int) -> None:
        """Final scores and the registered version; ends the tracker run as finished."""

    def fail(self, error: BaseException) -> None:
        """Ends the tracker run as failed."""


def start_tracker(
    report_to: str,
    run_id: str,
    folder: Path,
    parameters: dict[str, Any],
    data: dict[str, Any],
    fingerprint: str,
    registry_path: Path | str,
) -> Tracker:
    """Open the tracker run for `run_id` (after the data is loaded, before training)."""
    require_tracker(report_to)
    tags = {
        "run_id": run_id,
        "data_fingerprint": fingerprint,
        "registry": str(registry_path),
        "method": str(parameters.get("method")),
        "base": str(parameters.get("base")),
        "dataset": str(parameters.get("dataset")),
    }
    if report_to == "mlflow":
        return MlflowTracker(run_id, folder, parameters, data, tags)
    if report_to == "wandb":
        return WandbTracker(run_id, folder, parameters, data, tags)
    if report_to == "tensorboard":
        return TensorBoardTracker(run_id, folder, parameters, tags)
    return Tracker()


def _version_tags(version: Any, registry: str) -> dict[str, str]:
    return {
        "version_id": version.version_id,
        "version_uri": str(version.uri),
        "version_command": f"transferlab show {version.ref} --registry {registry}",
    }


# -- MLflow -----------------------------------------------------------------------------------


class MlflowTracker(Tracker):
    """An MLflow run in the user's store (MLFLOW_TRACKING_URI) or a local file store."""

    name = "mlflow"

    def __init__(self, run_id, folder, parameters, data, tags) -> None:
        import mlflow
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        self._mlflow = mlflow
        self._tags = tags
        # The user's store wins; else a file store of our own, allowed for this run only.
        self._default_store = not mlflow.is_tracking_uri_set()
        self._allowed_before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
        if self._default_store:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            mlflow.set_tracking_uri((folder / "mlruns").as_uri())
        self.tracking_uri = mlflow.get_tracking_uri()
        try:
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
            self.experiment_id = _experiment_id(mlflow.MlflowClient(), experiment)
            run = mlflow.start_run(
                experiment_id=self.experiment_id,
                run_name=run_id,
                nested=mlflow.active_run() is not None,
                tags={f"{PARAM_PREFIX}{key}": value for key, value in tags.items()},
            )
            self.run_id = run.info.run_id
            # Prefixed: the Trainer's callback logs its own arguments (max_steps=-1, report_to,
            # output_dir ...), and MLflow refuses a second, different value for a name.
            params = {
                key: str(value)[:MAX_PARAM_VAL_LENGTH]
                for key, value in flat_parameters(parameters, PARAM_PREFIX).items()
            }
            items = list(params.items())
            for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
                mlflow.log_params(dict(items[start : start + MAX_PARAMS_TAGS_PER_BATCH]))
            mlflow.log_dict(data, "transferlab/data.json")
        except BaseException as exc:
            self._close("FAILED")
            if isinstance(exc, Exception) and not isinstance(exc, TransferlabError):
                raise TransferlabError(
                    f"Cannot start an MLflow run in {self.tracking_uri}: "
                    f"{type(exc).__name__}: {exc}",
                    "Point MLFLOW_TRACKING_URI at a store this mlflow accepts (a tracking server "
                    "http(s)://..., or file:... with MLFLOW_ALLOW_FILE_STORE=true), or unset it "
                    "to log to the local store beside the run notebooks.",
                ) from exc
            raise

    def describe(self) -> dict[str, Any]:
        return {
            "tracker": "mlflow",
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
        }

    def callbacks(self) -> list[Any]:
        from transformers.integrations import MLflowCallback

        return [MLflowCallback()]  # logs into the active run, which it leaves open

    def finish(self, metrics, version, step) -> None:
        try:
            mlflow = self._mlflow
            mlflow.log_metrics(final_metrics(metrics), step=step)
            tags = _version_tags(version, self._tags["registry"])
            mlflow.set_tags({f"{PARAM_PREFIX}{key}": value for key, value in tags.items()})
            mlflow.set_tag(
                "mlflow.note.content",
                f"transferlab run `{self._tags['run_id']}` registered version "
                f"`{version.version_id}` (weights: `{version.uri}`); see it with "
                f"`{tags['version_command']}`.",
            )
        finally:
            self._close("FINISHED")

    def fail(self, error: BaseException) -> None:
        self._close("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    def _close(self, status: str) -> None:
        try:
            if self._mlflow.active_run() is not None:
                self._mlflow.end_run(status)
        finally:
            if self._default_store:
                self._default_store = False
                self._mlflow.set_tracking_uri(None)
                if self._allowed_before is None:
                    os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
                else:
                    os.environ["MLFLOW_ALLOW_FILE_STORE"] = self._allowed_before


def _experiment_id(client: Any, name: str) -> str:
    """The experiment's id, created if new (twice: a parallel run may create it first)."""
    for _ in range(2):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        with suppress(Exception):
            return client.create_experiment(name)
    raise TransferlabError(
        f"Cannot create the MLflow experiment {name!r} in {client.tracking_uri}.",
        "Check that the tracking store is writable, or set MLFLOW_EXPERIMENT_NAME.",
    )


# -- Weights & Biases -------------------------------------------------------------------------


class WandbTracker(Tracker):
    """A W&B run (WANDB_MODE=offline keeps it on disk, beside the output notebook)."""

    name = "wandb"

    def __init__(self, run_id, folder, parameters, data, tags) -> None:
        import wandb

        self._tags = tags
        options: dict[str, Any] = {}
        if not os.environ.get("WANDB_DIR"):
            folder.mkdir(parents=True, exist_ok=True)
            options["dir"] = str(folder)
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
                name=run_id,
                job_type="finetune",
                config={"transferlab": parameters, "data": data},
                tags=[str(tags[key])[:64] for key in ("method", "dataset")],
                notes=f"transferlab run {run_id}",
                **options,
            )
        except Exception as exc:
            raise TransferlabError(
                f"Cannot start a W&B run: {type(exc).__name__}: {exc}",
                "Log in (`wandb login`, or set WANDB_API_KEY), or log offline with "
                "WANDB_MODE=offline and upload later with `wandb sync`.",
            ) from exc
        self.run.summary.update({f"transferlab/{key}": value for key, value in tags.items()})

    def describe(self) -> dict[str, Any]:
        return {
            "tracker": "wandb",
            "project": self.run.project,
            "run_id": self.run.id,
            "run_dir": str(Path(self.run.dir).parent),
            "url": None if self.run.offline else self.run.url,
        }

    def callbacks(self) -> list[Any]:
        from transformers.integrations import WandbCallback

        return [WandbCallback()]  # logs into wandb.run, which it leaves open

    def finish(self, metrics, version, step) -> None:
        try:
            tags = _version_tags(version, self._tags["registry"])
            self.run.summary.update(
                {**final_metrics(metrics), **{f"transferlab/{k}": v for k, v in tags.items()}}
            )
            self.run.config.update({"transferlab_version": tags}, allow_val_change=True)
            self.run.tags = (*self.run.tags, f"version:{version.version_id}"[:64])
        finally:
            self.run.finish()

    def fail(self, error: BaseException) -> None:
        self.run.finish(exit_code=1)


# -- TensorBoard ------------------------------------------------------------------------------


class TensorBoardTracker(Tracker):
    """Event files in `<folder>/<run id>-tensorboard/`, kept after the run."""

    name = "tensorboard"

    def __init__(self, run_id, folder, parameters, tags) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer_class = SummaryWriter
        self._tags = tags
        self.logging_dir = folder / f"{run_id}-tensorboard"
        self._parameters = flat_parameters(parameters)
        self.writer = SummaryWriter(log_dir=str(self.logging_dir))
        lines = [f"| {key} | {value} |" for key, value in {**tags, **self._parameters}.items()]
        self.writer.add_text("transferlab", "| name | value |\n|---|---|\n" + "\n".join(lines))
        self.writer.flush()

    def describe(self) -> dict[str, Any]:
        return {"tracker": "tensorboard", "logging_dir": str(self.logging_dir)}

    def callbacks(self) -> list[Any]:
        from transformers.integrations import TensorBoardCallback

        return [TensorBoardCallback(tb_writer=self.writer)]  # closes the writer at train end

    def finish(self, metrics, version, step) -> None:
        tags = _version_tags(version, self._tags["registry"])
        with self._writer_class(log_dir=str(self.logging_dir)) as writer:
            writer.add_text(
                "transferlab/version", "\n\n".join(f"{k}: {v}" for k, v in tags.items())
            )
            # run_name "." keeps the hparams and final scores in this run, not a subfolder.
            writer.add_hparams(
                self._parameters, final_metrics(metrics), run_name=".", global_step=step
            )

    def fail(self, error: BaseException) -> None:
        self.writer.close()


def finish_quietly(tracker: Tracker, *args: Any) -> None:
    """Log the result; a tracker that fails now (the version is registered) only warns."""
    try:
        tracker.finish(*args)
    except Exception as exc:
        warnings.warn(
            f"The {tracker.name} run could not log the final scores and version: "
            f"{type(exc).__name__}: {exc}",
            stacklevel=2,
        )
