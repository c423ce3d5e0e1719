"""The metric modules shipped with transferlab: loadable offline by path, equal to scikit-learn."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)

from transferlab.metrics import (
    METRIC_NAMES,
    SUITE_METRICS,
    MetricError,
    available_metrics,
    load_metric,
    metric_function,
    metric_path,
)

SEEDS = (0, 1, 2)


def labels(seed: int, n: int = 200, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """References and predictions that agree about half the time (some labels rare)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(k, size=n, p=np.linspace(1, 3, k) / np.linspace(1, 3, k).sum())
    guess = np.where(rng.random(n) < 0.5, truth, rng.integers(0, k, size=n))
    return truth, guess


def probabilities(seed: int, n: int = 300, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[truth]
    rows = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return truth, rows


def test_every_metric_ships_and_loads_offline_by_path():
    import evaluate

    assert available_metrics() == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert metric_path(name).is_file()
        module = evaluate.load(str(metric_path(name).parent))  # what ENVIRONMENT.md promises
        assert module.name == name


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_matches_sklearn(seed):
    truth, guess = labels(seed)
    result = load_metric("accuracy").compute(predictions=guess, references=truth)
    assert result["accuracy"] == pytest.approx(accuracy_score(truth, guess), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_f1_matches_sklearn(seed, average):
    truth, guess = labels(seed)
    module = load_metric("f1")
    expected = f1_score(truth, guess, average=average, zero_division=0)
    result = module.compute(predictions=guess, references=truth, average=average)
    assert result["f1"] == pytest.approx(expected, abs=1e-12)


def test_f1_binary_and_explicit_labels_match_sklearn():
    truth, guess = labels(3, k=2)
    module = load_metric("f1")
    assert module.compute(predictions=guess, references=truth, average="binary")[
        "f1"
    ] == pytest.approx(f1_score(truth, guess), abs=1e-12)
    truth, guess = labels(4, k=5)
    guess = np.where(guess == 4, 3, guess)  # label 4 never predicted: a zero-division label
    for average in ("macro", "micro"):
        expected = f1_score(truth, guess, average=average, labels=[0, 2, 4], zero_division=0)
        result = module.compute(
            predictions=guess, references=truth, average=average, labels=[0, 2, 4]
        )
        assert result["f1"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_per_class_matches_sklearn(seed):
    truth, guess = labels(seed, k=6)
    guess = np.where(guess == 5, 0, guess)  # one label never predicted
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guess, labels=list(range(6)), zero_division=0
    )
    result = load_metric("per_class").compute(
        predictions=guess, references=truth, labels=list(range(6))
    )
    assert result["labels"] == list(range(6))
    np.testing.assert_allclose(result["precision"], precision, atol=1e-12)
    np.testing.assert_allclose(result["recall"], recall, atol=1e-12)
    np.testing.assert_allclose(result["f1"], f1, atol=1e-12)
    assert result["support"] == support.tolist()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [2, 5])
def test_mcc_matches_sklearn(seed, k):
    truth, guess = labels(seed, k=k)
    result = load_metric("mcc").compute(predictions=guess, references=truth)
    assert result["mcc"] == pytest.approx(matthews_corrcoef(truth, guess), abs=1e-12)


def test_mcc_of_a_constant_prediction_is_zero_like_sklearn():
    truth = np.array([0, 1, 2, 1, 0])
    guess = np.zeros(5, dtype=int)
    assert load_metric("mcc").compute(predictions=guess, references=truth)["mcc"] == 0.0
    assert matthews_corrcoef(truth, guess) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_matches_sklearn_with_ties(seed):
    truth, rows = probabilities(seed, k=2)
    positive = np.round(rows[:, 1], 1)  # many ties
    module = load_metric("roc_auc")
    expected = roc_auc_score(truth, positive)
    assert module.compute(predictions=positive, references=truth)["roc_auc"] == pytest.approx(
        expected, abs=1e-12
    )
    two_columns = np.c_[1 - positive, positive]
    assert module.compute(predictions=two_columns, references=truth)["roc_auc"] == pytest.approx(
        expected, abs=1e-12
    )


def test_roc_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        metric_function("roc_auc")([0.2, 0.7], [1, 1])


def _sklearn_ece(truth: np.ndarray, rows: np.ndarray, n_bins: int) -> float:
    """ECE from scikit-learn's calibration_curve of 'top label is right' against confidence."""
    confidence = rows.max(axis=1)
    correct = (rows.argmax(axis=1) == truth).astype(int)
    accuracy, mean_confidence = calibration_curve(
        correct, confidence, n_bins=n_bins, strategy="uniform"
    )
    edges = np.linspace(0, 1, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=n_bins)
    weights = counts[counts > 0] / len(truth)
    return float(np.sum(weights * np.abs(accuracy - mean_confidence)))


@pytest.mark.parametrize("seed", SEEDS)
def test_ece_matches_sklearn_calibration_curve(seed):
    truth, rows = probabilities(seed)
    result = load_metric("ece").compute(predictions=rows, references=truth)
    assert result["ece"] == pytest.approx(_sklearn_ece(truth, rows, 15), abs=1e-12)
    assert 0 < result["ece"] < 1


def test_ece_of_a_perfectly_calibrated_model_is_zero():
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]])
    assert metric_function("ece")(rows, [0, 1, 0, 1])["ece"] == pytest.approx(0.0)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_the_score_function_is_what_compute_runs(name):
    """Bootstrap resamples call `score` directly: it must give what compute() gives."""
    truth, rows = probabilities(7, k=2 if name == "roc_auc" else 4)
    inputs = rows if name in ("ece", "roc_auc") else rows.argmax(axis=1)
    assert metric_function(name)(inputs, truth) == load_metric(name).compute(
        predictions=inputs, references=truth
    )


def test_an_unknown_metric_lists_the_available_ones():
    with pytest.raises(MetricError) as caught:
        load_metric("acurracy?")
    assert "Unknown metric 'acurracy?'" in str(caught.value)
    for name in METRIC_NAMES:
        assert name in caught.value.fix


def test_a_hub_metric_id_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(MetricError, match="offline") as caught:
        load_metric("bertscore")
    assert time.perf_counter() - started < 2
    assert "accuracy" in caught.value.fix


def test_a_suite_metric_name_points_to_its_module():
    assert set(SUITE_METRICS) >= {"accuracy", "macro_f1", "micro_f1", "mcc", "roc_auc", "ece"}
    with pytest.raises(MetricError, match="suite metric name") as caught:
        load_metric("macro_f1")
    assert "'f1'" in caught.value.fix and "average='macro'" in caught.value.fix
