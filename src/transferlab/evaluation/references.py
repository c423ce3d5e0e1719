"""Reference models trained on a fine-tuned version's own training examples.

"Better than what it came from?" needs references that saw the same examples as the version:
its base's standard probe (frozen pooled embeddings + logistic regression, C by stratified CV:
transferlab.models.probe, what discovery scores with) and TF-IDF (word 1-2 grams, sublinear tf)
+ logistic regression with the same CV of C. A majority-class baseline says whether a model
learned anything; these say whether fine-tuning was worth its cost.

The examples are drawn again from the version's fine-tuning run: its recorded data sources,
split settings and seed go through the function the run used (`finetuning.run.load_recorded_
data` -> `data.load_splits`), and the result must match the recorded training fingerprint and
row count. When it cannot (a file gone or changed, in-memory data, a version imported rather
than trained here), the version gets a note saying why and no reference rows: never a guess.

Within one benchmark run a reference is trained once per (base, training examples), so two
versions fine-tuned on the same sample share their probe and TF-IDF model.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from transferlab.data import LabelledData, fingerprint
from transferlab.errors import TransferlabError
from transferlab.evaluation.candidates import Candidate
from transferlab.evaluation.scoring import Scored, in_task_order
from transferlab.evaluation.suites import TaskData
from transferlab.models.probe import CS, DEFAULT_C, MAX_ITER, fit_probe, probe_folds
from transferlab.registry import Registry, VersionRecord

PROBE = "base_probe"
TFIDF = "tfidf"
FINETUNE_RUN = "finetune"
TFIDF_NGRAMS = (1, 2)
CANNOT = "cannot re-derive training examples"
# How finetuning.config._describe records sources that are not files (nothing to reload).
_IN_MEMORY = re.compile(r"^(DataFrame \(\d+ rows\)|.+: .+ \(\d+ examples\))$")
# Errors of a reference that is left out with a note: the benchmark itself goes on.
_REFERENCE_ERRORS = (TransferlabError, OSError, ValueError, RuntimeError)

TRAINING_COLUMNS = [
    "version",
    "run_id",
    "base",
    "n_train",
    "train_fingerprint",
    "train_seconds",
    "re_derived",
    "reason",
]
REFERENCE_COLUMNS = [
    "reference",
    "relation",
    "description",
    "base",
    "n_train",
    "train_fingerprint",
    "C",
    "folds",
    "train_seconds",
    "versions",
]


@dataclass
class TrainingExamples:
    """The examples a version was trained on, drawn again from its run, or why not (`reason`).

    `train_seconds` is the run's own training time (Trainer steps, plus the probe of LP-FT;
    embedding + fit for the linear probe), the version's side of the cost comparison."""

    version_id: str
    run_id: str | None
    base_version_id: str | None = None
    data: LabelledData | None = field(default=None, repr=False)
    fingerprint: str | None = None
    n_train: int | None = None
    seed: int = 0
    train_seconds: float | None = None
    reason: str | None = None

    @property
    def re_derived(self) -> bool:
        return self.data is not None and self.reason is None


@dataclass
class ReferenceModel:
    """One trained reference: which kind, on which examples, its C and its training seconds
    (embedding + fit for the probe, vectorising + CV + fit for TF-IDF; loading excluded)."""

    name: str
    relation: str
    description: str
    base_version_id: str | None
    fingerprint: str
    n_train: int
    C: float
    folds: int
    train_seconds: float
    versions: list[str] = field(default_factory=list)


@dataclass
class References:
    """What `train_references` gives the comparisons and the summary."""

    scored: dict[tuple[str, str], Scored] = field(default_factory=dict)
    pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    models: dict[str, ReferenceModel] = field(default_factory=dict)
    training: dict[str, TrainingExamples] = field(default_factory=dict)
    missing: dict[tuple[str, str], str] = field(default_factory=dict)
    left_out: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def models_table(self) -> pd.DataFrame:
        rows = [
            {
                "reference": m.name,
                "relation": m.relation,
                "description": m.description,
                "base": m.base_version_id,
                "n_train": m.n_train,
                "train_fingerprint": m.fingerprint,
                "C": m.C,
                "folds": m.folds,
                "train_seconds": m.train_seconds,
                "versions": ", ".join(m.versions),
            }
            for m in self.models.values()
        ]
        return pd.DataFrame(rows, columns=REFERENCE_COLUMNS)

    def training_table(self) -> pd.DataFrame:
        rows = [
            {
                "version": t.version_id,
                "run_id": t.run_id,
                "base": t.base_version_id,
                "n_train": t.n_train,
                "train_fingerprint": t.fingerprint,
                "train_seconds": t.train_seconds,
                "re_derived": t.re_derived,
                "reason": t.reason,
            }
            for t in self.training.values()
        ]
        return pd.DataFrame(rows, columns=TRAINING_COLUMNS)

    def reference_of(self, version_id: str, relation: str) -> ReferenceModel | None:
        for name, kind in self.pairs.get(version_id, []):
            if kind == relation:
                return self.models[name]
        return None


# -- which examples a version was trained on -------------------------------------------------


def training_examples(registry: Registry, version: VersionRecord) -> TrainingExamples | None:
    """The training examples of the fine-tuning run that made `version` (or its nearest
    ancestor: a merged version was trained as its adapter), verified against what the run
    recorded; None when no fine-tuning run in its lineage is recorded (an imported version)."""
    trained, run = _training_run(registry, version)
    if run is None or trained is None:
        return None
    parameters = run.get("parameters") or {}
    recorded = ((parameters.get("data") or {}).get("splits") or {}).get("train") or {}
    examples = TrainingExamples(
        version_id=version.version_id,
        run_id=run["run_id"],
        base_version_id=_base_of(registry, version, trained, parameters),
        fingerprint=recorded.get("fingerprint"),
        n_train=recorded.get("examples"),
        seed=int(parameters.get("seed") or 0),
        train_seconds=_run_train_seconds(run),
    )
    examples.reason = _derive(examples, parameters, run)
    return examples


def _training_run(
    registry: Registry, version: VersionRecord
) -> tuple[VersionRecord | None, dict[str, Any] | None]:
    for record in registry.lineage(version.version_id):
        if record.kind == "base":
            break
        if record.run_id:
            run = registry.get_run(record.run_id)
            if run.get("kind") == FINETUNE_RUN:
                return record, run
    return None, None


def _base_of(
    registry: Registry,
    version: VersionRecord,
    trained: VersionRecord,
    parameters: dict[str, Any],
) -> str | None:
    """The registered base the run fine-tuned (a base given as a folder is registered by the
    run itself, so only the version's metadata or its lineage knows its id)."""
    for candidate in (
        version.metadata.get("base_version_id"),
        trained.metadata.get("base_version_id"),
        parameters.get("base_version_id"),
    ):
        if candidate:
            return str(candidate)
    root = registry.lineage(version.version_id)[-1]
    return root.version_id if root.kind == "base" else None


def _run_train_seconds(run: dict[str, Any]) -> float | None:
    timings = (run.get("metrics") or {}).get("timings") or {}
    if timings.get("train_s") is None:
        return None
    return float(timings["train_s"]) + float(timings.get("probe_s") or 0.0)


def _derive(
    examples: TrainingExamples, parameters: dict[str, Any], run: dict[str, Any]
) -> str | None:
    """Load the run's training split again into `examples.data`; None, or why it cannot be."""
    from transferlab.finetuning.run import SPLIT_SETTINGS, load_recorded_data

    prefix = f"{CANNOT} of {examples.version_id} (run {examples.run_id})"
    source = parameters.get("train")
    missing = [key for key in ("train", *SPLIT_SETTINGS) if key not in parameters]
    if missing:
        return f"{prefix}: the run did not record {', '.join(missing)}"
    if not examples.fingerprint and not run.get("data_fingerprint"):
        return f"{prefix}: the run recorded no data fingerprint to check them against"
    if isinstance(source, str) and _IN_MEMORY.match(source):
        return f"{prefix}: it was trained on in-memory data ({source}), which is not kept"
    try:
        splits = load_recorded_data(parameters, training_only=bool(examples.fingerprint))
    except TransferlabError as exc:
        return f"{prefix}: {exc.problem.rstrip('.')}"
    except (OSError, ValueError) as exc:
        return f"{prefix}: {str(exc).rstrip('.')}"
    if examples.fingerprint:
        found = fingerprint(splits.train)
        if found != examples.fingerprint or len(splits.train) != examples.n_train:
            return (
                f"{prefix}: the data changed since it was trained ({source} now gives "
                f"{len(splits.train)} training examples with fingerprint {found[:12]}; the "
                f"run recorded {examples.n_train} with {examples.fingerprint[:12]})"
            )
    elif splits.fingerprint() != run.get("data_fingerprint"):
        return f"{prefix}: the data changed since it was trained (fingerprint mismatch)"
    examples.data = splits.train
    examples.fingerprint = fingerprint(splits.train)
    examples.n_train = len(splits.train)
    return None


# -- training and scoring the references -------------------------------------------------------


def train_references(
    registry: Registry,
    evaluated: Sequence[Candidate],
    tasks: Sequence[TaskData],
    labels: dict[str, list[str]],
    *,
    device: str,
    timings: dict[str, float] | None = None,
) -> References:
    """For each evaluated version trained here, its base's probe and TF-IDF on its training
    examples, scored on every task (one training per (base, examples))."""
    references = References()
    timings = timings if timings is not None else {}
    timings.setdefault("references_s", 0.0)
    started = time.perf_counter()
    for candidate in evaluated:
        version = candidate.version
        examples = training_examples(registry, version)
        if examples is None:
            continue
        references.training[version.version_id] = examples
        if not examples.re_derived:
            references.left_out[version.version_id] = dict.fromkeys(
                (PROBE, TFIDF), str(examples.reason)
            )
            references.notes.append(
                f"{version.version_id} is not compared with its base's probe or TF-IDF: "
                f"{examples.reason}."
            )
            continue
        assert examples.data is not None and examples.fingerprint is not None
        pairs = references.pairs.setdefault(version.version_id, [])
        for relation, train in ((PROBE, _train_probe), (TFIDF, _train_tfidf)):
            name = _reference_name(relation, examples)
            if name not in references.models and (relation, name) not in references.missing:
                try:
                    model, scored = train(registry, examples, tasks, labels, device, name)
                except _REFERENCE_ERRORS as exc:
                    problem = exc.problem if isinstance(exc, TransferlabError) else str(exc)
                    references.missing[(relation, name)] = problem.rstrip(".")
                else:
                    references.models[name] = model
                    references.scored.update({(name, task): s for task, s in scored.items()})
            if name in references.models:
                references.models[name].versions.append(version.version_id)
                pairs.append((name, relation))
            else:
                problem = references.missing[(relation, name)]
                references.left_out.setdefault(version.version_id, {})[relation] = problem
                what = "its base's probe" if relation == PROBE else "TF-IDF"
                references.notes.append(
                    f"{version.version_id} is not compared with {what}: {problem}."
                )
    timings["references_s"] += time.perf_counter() - started
    return references


def _reference_name(relation: str, examples: TrainingExamples) -> str:
    tag = f"[{examples.n_train} ex. {str(examples.fingerprint)[:8]}]"
    if relation == PROBE:
        return f"probe on {examples.base_version_id} {tag}"
    return f"tf-idf + LR {tag}"


def _train_probe(
    registry: Registry,
    examples: TrainingExamples,
    tasks: Sequence[TaskData],
    labels: dict[str, list[str]],
    device: str,
    name: str,
) -> tuple[ReferenceModel, dict[str, Scored]]:
    """The standard probe of the base (frozen embeddings as discovery computes them)."""
    from transferlab.discovery.scoring import load_encoder
    from transferlab.models.embedding import embed

    assert examples.data is not None
    if not examples.base_version_id:
        raise TransferlabError(
            "its base is not registered, so there is no encoder to probe",
            "Fine-tune from a registered base version.",
        )
    base = registry.resolve(examples.base_version_id)
    encoder = load_encoder(base.uri, base.ref, device)
    try:
        started = time.perf_counter()
        vectors = embed(encoder, examples.data.texts, label=f"{name} (training examples)")
        probe = fit_probe(vectors, examples.data.labels, seed=examples.seed)
        seconds = time.perf_counter() - started
        scored = _score_tasks(
            lambda texts, encoder=encoder: probe.predict_proba(embed(encoder, texts, label=name)),
            probe.classes,
            examples.data,
            tasks,
            labels,
        )
    finally:
        del encoder
    model = ReferenceModel(
        name=name,
        relation=PROBE,
        description=f"the standard probe of {base.version_id} ({probe.note})",
        base_version_id=base.version_id,
        fingerprint=str(examples.fingerprint),
        n_train=len(examples.data),
        C=probe.C,
        folds=probe.folds,
        train_seconds=seconds,
    )
    return model, scored


def _train_tfidf(
    registry: Registry,
    examples: TrainingExamples,
    tasks: Sequence[TaskData],
    labels: dict[str, list[str]],
    device: str,
    name: str,
) -> tuple[ReferenceModel, dict[str, Scored]]:
    assert examples.data is not None
    started = time.perf_counter()
    pipeline, c, folds = fit_tfidf(examples.data.texts, examples.data.labels, seed=examples.seed)
    seconds = time.perf_counter() - started
    scored = _score_tasks(pipeline.predict_proba, pipeline.classes_, examples.data, tasks, labels)
    model = ReferenceModel(
        name=name,
        relation=TFIDF,
        description=(
            f"TF-IDF (word {TFIDF_NGRAMS[0]}-{TFIDF_NGRAMS[1]} grams, sublinear tf) + "
            f"logistic regression, C={c:g}"
            + (f" by {folds}-fold stratified CV" if folds else " (a class has one example)")
        ),
        base_version_id=None,
        fingerprint=str(examples.fingerprint),
        n_train=len(examples.data),
        C=c,
        folds=folds,
        train_seconds=seconds,
    )
    return model, scored


def tfidf_pipeline(c: float = DEFAULT_C) -> Any:
    """TF-IDF over word 1-2 grams with sublinear tf, then L2 logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=TFIDF_NGRAMS, sublinear_tf=True)),
            ("classifier", LogisticRegression(C=c, max_iter=MAX_ITER)),
        ]
    )


def fit_tfidf(
    texts: Sequence[str], labels: Sequence[int], *, seed: int = 0, cs: Sequence[float] = CS
) -> tuple[Any, float, int]:
    """(fitted pipeline, C, folds): C chosen as the standard probe chooses it (the best mean
    fold accuracy over the same grid and stratified folds, ties to the lower log-loss, then the
    lower C; C=1 without CV when a class has one example). The vectoriser is fitted inside
    each fold, so held-out words stay unseen."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from threadpoolctl import threadpool_limits

    x, y = list(texts), np.asarray(labels)
    folds = probe_folds(y)
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        if folds == 0:
            return tfidf_pipeline(DEFAULT_C).fit(x, y), DEFAULT_C, 0
        search = GridSearchCV(
            tfidf_pipeline(),
            {"classifier__C": sorted(float(c) for c in cs)},
            scoring={"accuracy": "accuracy", "log_loss": "neg_log_loss"},
            refit=_best_c,
            cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed),
            n_jobs=1,
        )
        search.fit(x, y)
    return search.best_estimator_, float(search.best_params_["classifier__C"]), folds


def _best_c(results: dict[str, Any]) -> int:
    """The probe's rule on GridSearchCV's results (candidates in ascending C)."""
    accuracy = results["mean_test_accuracy"]
    negative_loss = results["mean_test_log_loss"]
    return max(range(len(accuracy)), key=lambda i: (round(accuracy[i], 12), negative_loss[i]))


def _score_tasks(
    predict_proba: Callable[[list[str]], np.ndarray],
    classes: np.ndarray,
    train: LabelledData,
    tasks: Sequence[TaskData],
    labels: dict[str, list[str]],
) -> dict[str, Scored]:
    """A reference's scores on every task, with its examples per second."""
    scored = {}
    for td in tasks:
        started = time.perf_counter()
        probabilities = predict_proba(td.data.texts)
        per_s = len(td.data) / max(time.perf_counter() - started, 1e-9)
        scored[td.task.name] = _scored(probabilities, classes, train, labels[td.task.name], per_s)
    return scored


def _scored(
    probabilities: np.ndarray,
    classes: np.ndarray,
    train: LabelledData,
    task_labels: list[str],
    examples_per_s: float,
) -> Scored:
    """A reference's probabilities (columns: the training label ids it saw) in task order."""
    names = [train.label_names[int(c)] for c in classes]
    unknown = sorted(set(names) - set(task_labels))
    if unknown:
        raise TransferlabError(
            f"its training examples have labels the task does not have: {unknown}",
            "Benchmark it on a suite with those labels.",
        )
    arranged = in_task_order(np.asarray(probabilities, dtype=np.float64), names, task_labels)
    return Scored(arranged, arranged.argmax(axis=1), examples_per_s)
