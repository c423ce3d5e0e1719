"""`method: auto`: a concrete method and its settings, chosen at config resolution from the
number of labelled training examples per class (and of classes).

The rule (`choose`), chosen on benchmarks/method_study.json: all-MiniLM-L6-v2, validation data
carved from the TRAIN files of each data set (stratified 1,000 rows, never the data sets' own
validation/test splits), mean accuracy over seeds 0-2 (64 per class: seed 0 only for lp_ft):

    per class  data set (classes)   probe   lp_ft   former head on [CLS] (LoRA)
    8          sst2 (2)             .656    .709    .569
    8          ag_news (4)          .768    .817    .560
    8          emotion (6)          .364    .398    .202
    8          trec (6)             .545    .750    .236
    64         sst2 (2)             .748    .797
    64         ag_news (4)          .834    .871
    64         emotion (6)          .476    .682
    64         trec (6)             .713    .853

lp_ft (the probe's head, then LoRA with the scaled step schedule, no early stopping) beats the
probe on every data set at both sizes (+3.4 to +20.5 points at 8, +3.7 to +20.6 at 64), at
~25-140 s of training against ~1 s. So: lp_ft whenever it can run; the linear probe when
training is not worth it or impossible:

- a class with fewer than MIN_PER_CLASS (2) training examples: the probe cannot even
  cross-validate its C, and a fine-tune has nothing to hold out or generalise from;
- a base LoRA cannot be put on (no target modules), or lp_ft is not installed / cannot run
  on this machine.

Not measured: more than 6 classes with lp_ft (trec_fine, 50 classes, has probe numbers only),
and sizes above 64 per class; the rule extends lp_ft to them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferlab.errors import TransferlabError
from transferlab.finetuning.artifacts import SavedModel
from transferlab.finetuning.methods.base import FinetuneMethod

if TYPE_CHECKING:
    from transferlab.finetuning.config import ResolvedConfig
    from transferlab.finetuning.training import TrainingOutcome
    from transferlab.registry import Registry, VersionRecord

AUTO = "auto"
FINETUNE = "lp_ft"
FALLBACK = "linear_probe"
MIN_PER_CLASS = 2
EVIDENCE = "benchmarks/method_study.json"


@dataclass
class Choice:
    """What auto resolved to: the method, why, the counts it looked at, and the settings it
    sets (key -> value) over the request's."""

    method: str
    because: str
    examples_per_class: dict[str, int]
    classes: int
    settings: dict[str, Any] = field(default_factory=dict)
    n_train: int = 0
    scaled_schedule: bool = False  # epochs from methods/schedule.py's scaled_epochs

    def record(self) -> dict[str, Any]:
        """`parameters.auto` of the run."""
        return {
            "chose": self.method,
            "because": self.because,
            "examples_per_class": dict(self.examples_per_class),
            "classes": self.classes,
            "settings": dict(self.settings),
            "evidence": EVIDENCE,
        }


def choose(
    examples_per_class: dict[str, int],
    *,
    finetune_available: bool,
    finetune_blocked: str | None = None,
) -> Choice:
    """The rule. `finetune_available`: lp_ft is in the table; `finetune_blocked`: why the base
    or this machine cannot run it (None: it can)."""
    counts = dict(examples_per_class)
    classes = len(counts)
    fewest = min(counts.values()) if counts else 0
    if fewest < MIN_PER_CLASS:
        thin = sorted(name for name, n in counts.items() if n < MIN_PER_CLASS)
        because = (
            f"{len(thin)} class(es) with fewer than {MIN_PER_CLASS} training examples "
            f"({', '.join(thin[:5])}{' ...' if len(thin) > 5 else ''}): nothing to "
            "cross-validate or fine-tune on; the frozen probe"
        )
        return Choice(FALLBACK, because, counts, classes)
    if not finetune_available:
        because = (
            f"{FINETUNE} is not installed here; the linear probe (the rule prefers {FINETUNE} "
            f"with >= {MIN_PER_CLASS} examples per class)"
        )
        return Choice(FALLBACK, because, counts, classes)
    if finetune_blocked:
        return Choice(FALLBACK, f"{FINETUNE} cannot run: {finetune_blocked}", counts, classes)
    because = (
        f"{fewest}+ examples in each of {classes} classes: {FINETUNE} beat the probe on every "
        f"data set of {EVIDENCE} (+3 to +21 points at 8 and at 64 per class)"
    )
    return Choice(FINETUNE, because, counts, classes, {"early_stopping_patience": None})


def count_per_class(labels: Sequence[int], label_names: Sequence[str]) -> dict[str, int]:
    """Training examples per label name (0 for a label without any)."""
    counts = Counter(int(label) for label in labels)
    return {name: counts.get(i, 0) for i, name in enumerate(label_names)}


class AutoMethod(FinetuneMethod):
    """A name in the table only: config resolution replaces it by the method `choose` picks,
    so nothing is ever trained, saved or loaded as 'auto'."""

    name = AUTO
    display_name = "auto"
    description = (
        f"{FINETUNE} with >= {MIN_PER_CLASS} examples in every class (and a base LoRA fits), "
        f"else {FALLBACK}; chosen when the run's settings are resolved"
    )
    default_learning_rate = 2e-3  # not used: the chosen method's applies
    version_kind = "adapter"
    adapter_format = None

    def check_environment(self) -> str:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def prepare(self, resolved: ResolvedConfig, label_names: list[str]) -> tuple[Any, Any, list]:
        raise _unresolved()

    def save(self, outcome: TrainingOutcome, folder: Path, metadata: dict[str, Any]) -> SavedModel:
        raise _unresolved()

    def load(
        self, registry: Registry, version: VersionRecord, device: str, quantized: bool | None
    ) -> tuple[Any, Any, list[str]]:
        raise _unresolved()


def _unresolved() -> TransferlabError:
    return TransferlabError(
        "method 'auto' was not resolved to a concrete method.",
        "Resolve the request with transferlab.finetuning.config.resolve_config first.",
    )
