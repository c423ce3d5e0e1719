"""Evaluation suites: parse a suite, run it on registered versions, compare them with their
parent, their base's standard probe and TF-IDF + logistic regression trained on the examples
they were trained on, the production version and a trivial baseline, and record the results.

    from transferlab.evaluation import run_suite
    report = run_suite(registry, "support_intents", ["my-intents:1", "my-intents:2"])
    report.summary["text"], report.metrics_table(), report.comparisons
"""

from transferlab.evaluation.compare import (
    BASELINE,
    Difference,
    bootstrap_scores,
    majority_baseline,
    paired_bootstrap,
    paired_difference,
)
from transferlab.evaluation.inference import Inference, predict_probabilities
from transferlab.evaluation.latency import PeakMemory, disk_size, measure_latency
from transferlab.evaluation.references import (
    TrainingExamples,
    fit_tfidf,
    tfidf_pipeline,
    training_examples,
)
from transferlab.evaluation.suite_run import SuiteReport, higher_is_better, run_suite
from transferlab.evaluation.suites import (
    SliceSpec,
    Suite,
    SuiteError,
    TaskData,
    TaskSpec,
    bundled_suites,
    check_suite_data,
    load_suite,
    load_task_data,
    parse_suite,
)

__all__ = [
    "BASELINE",
    "Difference",
    "Inference",
    "PeakMemory",
    "SliceSpec",
    "Suite",
    "SuiteError",
    "SuiteReport",
    "TaskData",
    "TaskSpec",
    "TrainingExamples",
    "bootstrap_scores",
    "bundled_suites",
    "check_suite_data",
    "disk_size",
    "fit_tfidf",
    "higher_is_better",
    "load_suite",
    "load_task_data",
    "majority_baseline",
    "measure_latency",
    "paired_bootstrap",
    "paired_difference",
    "parse_suite",
    "predict_probabilities",
    "run_suite",
    "tfidf_pipeline",
    "training_examples",
]
