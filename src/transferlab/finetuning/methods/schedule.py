"""How long few-shot fine-tuning runs: a step count that scales with the data.

benchmarks/method_study.py (`schedule_steps`) chose it: at least 100 optimiser steps, or 10
epochs when an epoch is longer than 10 steps, at most ~300 steps (whole epochs, at least one).
"""

from __future__ import annotations

import math

MIN_STEPS = 100
EPOCHS_AT_LEAST = 10
MAX_STEPS = 300


def scaled_epochs(n_train: int, batch_size: int) -> int:
    """Whole epochs for `n_train` examples in batches of `batch_size`: steps_per_epoch =
    ceil(n/batch); target = max(100, 10 * steps_per_epoch); epochs = ceil(target /
    steps_per_epoch), reduced while epochs * steps_per_epoch > 300 and epochs > 1."""
    per_epoch = max(1, math.ceil(max(1, n_train) / max(1, batch_size)))
    target = max(MIN_STEPS, EPOCHS_AT_LEAST * per_epoch)
    epochs = math.ceil(target / per_epoch)
    while epochs > 1 and epochs * per_epoch > MAX_STEPS:
        epochs -= 1
    return epochs


def scaled_steps(n_train: int, batch_size: int) -> int:
    """The optimiser steps `scaled_epochs` gives."""
    per_epoch = max(1, math.ceil(max(1, n_train) / max(1, batch_size)))
    return scaled_epochs(n_train, batch_size) * per_epoch
