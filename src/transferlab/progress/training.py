"""The Trainer's side of live progress: a callback reporting the step, the loss and the
latest validation score (throttled by `emit.Phase`; nothing written when no run listens)."""

from __future__ import annotations

from typing import Any

from transferlab.progress.emit import Phase, start_phase


def training_progress() -> Any:
    """A TrainerCallback (transformers imported only when a training builds one)."""
    from transformers import TrainerCallback

    class TrainingProgress(TrainerCallback):
        def __init__(self) -> None:
            self.phase: Phase | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.phase = start_phase("train", state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if self.phase is not None:
                self.phase.update(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.phase is not None and logs and "loss" in logs:
                self.phase.update(state.global_step, loss=float(logs["loss"]))

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            score = (metrics or {}).get("eval_accuracy")
            if self.phase is not None and score is not None:
                self.phase.update(state.global_step, force=True, eval={"accuracy": float(score)})

        def on_train_end(self, args, state, control, **kwargs):
            if self.phase is not None:
                self.phase.update(state.global_step)
                self.phase.end()
                self.phase = None

    return TrainingProgress()
