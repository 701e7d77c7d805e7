"""The one metric implementation (``ml_lifecycle.metrics``) against scikit-learn, and its
vectorised bootstraps against the plain loop they replace."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from ml_lifecycle.metrics import (
    bootstrap_metric,
    bootstrap_metrics_table,
    bootstrap_weights,
    compute_metric,
    compute_metrics,
    higher_is_better,
    metric_names,
    paired_bootstrap,
    weighted_metric,
)


def _data(seed: int = 0, n: int = 3000, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(float)
    s = np.clip(0.3 * y + rng.normal(0.3, 0.2, n), 0, 1)
    return y, (np.round(s, 2) if ties else s)  # rounding makes many tied scores


SKLEARN = {
    "roc_auc": lambda y, s, t: skm.roc_auc_score(y, s),
    "pr_auc": lambda y, s, t: skm.average_precision_score(y, s),
    "precision": lambda y, s, t: skm.precision_score(y, s >= t, zero_division=0),
    "recall": lambda y, s, t: skm.recall_score(y, s >= t),
    "f1": lambda y, s, t: skm.f1_score(y, s >= t),
    "balanced_accuracy": lambda y, s, t: skm.balanced_accuracy_score(y, s >= t),
    "brier": lambda y, s, t: skm.brier_score_loss(y, s),
    "accuracy": lambda y, s, t: skm.accuracy_score(y, s >= t),
}


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("metric", sorted(SKLEARN))
def test_classification_metrics_match_scikit_learn(metric: str, ties: bool) -> None:
    y, s = _data(ties=ties)
    assert compute_metric("classification", metric, y, s, 0.45) == pytest.approx(
        SKLEARN[metric](y, s, 0.45), abs=1e-12)


def test_regression_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    p = y + rng.normal(scale=0.5, size=500)
    assert compute_metric("regression", "mae", y, p) == pytest.approx(
        skm.mean_absolute_error(y, p))
    assert compute_metric("regression", "rmse", y, p) == pytest.approx(
        np.sqrt(skm.mean_squared_error(y, p)))
    assert compute_metric("regression", "r2", y, p) == pytest.approx(skm.r2_score(y, p))
    assert set(compute_metrics("regression", y, p)) == set(metric_names("regression"))


def test_undefined_metrics_are_nan_not_errors() -> None:
    y = np.zeros(50)
    s = np.linspace(0, 1, 50)
    for metric in ("roc_auc", "pr_auc", "recall", "balanced_accuracy"):
        assert np.isnan(compute_metric("classification", metric, y, s)), metric
    assert compute_metric("classification", "precision", y, np.zeros(50)) == 0.0
    assert np.isnan(compute_metric("regression", "r2", np.ones(10), np.arange(10.0)))
    assert np.isnan(compute_metric("classification", "roc_auc", [], []))
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        compute_metric("classification", "auc", y, s)
    with pytest.raises(ValueError, match="no weighted form"):
        weighted_metric("log_loss", y, s, np.ones((1, 50)))
    assert higher_is_better("roc_auc") and not higher_is_better("rmse")


def test_bootstrap_weights_are_resampled_row_counts() -> None:
    chunks = list(bootstrap_weights(1000, 700, seed=3))
    weights = np.concatenate(chunks)
    assert weights.shape == (700, 1000) and len(chunks) == 1
    assert np.all(weights.sum(axis=1) == 1000)  # each replicate draws n rows
    assert weights.mean() == pytest.approx(1.0)
    # chunks bound the memory of large resamples; the stream is the same seeded draw
    many = list(bootstrap_weights(200_000, 50, seed=3))
    assert len(many) > 1 and sum(len(c) for c in many) == 50
    again = np.concatenate(list(bootstrap_weights(1000, 700, seed=3)))
    assert np.array_equal(weights, again)


def test_a_weighted_bootstrap_equals_the_loop_over_resampled_rows() -> None:
    y, s = _data(2, n=800)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, len(y), size=(40, len(y)))
    counts = np.stack([np.bincount(i, minlength=len(y)) for i in idx]).astype(float)
    for metric in ("roc_auc", "pr_auc", "f1", "brier"):
        looped = [compute_metric("classification", metric, y[i], s[i], 0.45) for i in idx]
        assert weighted_metric(metric, y, s, counts, 0.45) == pytest.approx(looped, abs=1e-12)


def test_bootstrap_spread_matches_the_sampling_error() -> None:
    y, s = _data(3, n=2000, ties=False)
    reps = bootstrap_metric("roc_auc", y, s, n_boot=400, seed=1)
    assert reps.shape == (400,) and np.isfinite(reps).all()
    # independent samples of the same world: their spread is what the bootstrap estimates
    fresh = [compute_metric("classification", "roc_auc", *_data(100 + k, n=2000, ties=False))
             for k in range(60)]
    assert np.std(reps) == pytest.approx(np.std(fresh), rel=0.35)
    table = bootstrap_metrics_table("classification", y, s, 0.45, n_boot=400, seed=1,
                                    metrics=("roc_auc", "f1"))
    assert np.array_equal(table["roc_auc"], reps)  # same seed, same resamples


def test_paired_bootstrap_cancels_the_shared_row_noise() -> None:
    """Two models on the same rows: pairing the resamples removes the rows' own noise, so the
    interval of the difference is far narrower than the two intervals side by side."""
    y, s = _data(4, n=2000, ties=False)
    rng = np.random.default_rng(9)
    better = np.clip(s + 0.05 * y + rng.normal(0, 0.01, len(y)), 0, 1)
    diffs = paired_bootstrap("roc_auc", y, better, s, n_boot=500, seed=2)
    point = (compute_metric("classification", "roc_auc", y, better)
             - compute_metric("classification", "roc_auc", y, s))
    assert point > 0 and np.quantile(diffs, 0.05) > 0
    unpaired = (bootstrap_metric("roc_auc", y, better, n_boot=500, seed=2)
                - bootstrap_metric("roc_auc", y, s, n_boot=500, seed=3))
    assert np.std(diffs) < 0.5 * np.std(unpaired)
    same = paired_bootstrap("roc_auc", y, s, s, n_boot=100, seed=2)
    assert np.all(same == 0)


def test_bad_inputs_are_refused_and_empty_bootstraps_are_empty() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        compute_metric("classification", "roc_auc", [0, 1, 0, 1], [0.1, np.nan, 0.3, 0.9])
    with pytest.raises(ValueError, match="3 labels, 4 scores"):
        compute_metric("classification", "roc_auc", [0, 1, 0], [0.1, 0.2, 0.3, 0.9])
    assert bootstrap_metric("roc_auc", np.empty(0), np.empty(0), n_boot=10, seed=0).size == 0
    assert paired_bootstrap("roc_auc", np.empty(0), np.empty(0), np.empty(0), n_boot=10,
                            seed=0).size == 0
