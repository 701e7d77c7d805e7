"""Evaluation, once, on the test split: metrics with bootstrap intervals, a naive baseline, slices.

Pitfall avoided: accuracy on an imbalanced problem. With 10 % positives, "always negative" scores
90 % accuracy. We report threshold-free ranking metrics (ROC-AUC, PR-AUC; PR-AUC's chance level is
the positive rate, not 0.5), precision/recall/F1 at the threshold chosen on validation, balanced
accuracy, the Brier score and the confusion matrix, and we always compare to a ``Dummy*`` baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import bootstrap_metrics_table, compute_metrics


def confusion(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    pred = np.asarray(scores) >= threshold
    y = np.asarray(y) == 1
    return {
        "tn": int(np.sum(~pred & ~y)), "fp": int(np.sum(pred & ~y)),
        "fn": int(np.sum(~pred & y)), "tp": int(np.sum(pred & y)),
    }


def bootstrap_metrics(task: str, y: np.ndarray, scores: np.ndarray, threshold: float,
                      n_boot: int, confidence: float, seed: int,
                      max_rows: int = 50_000) -> dict[str, dict[str, float]]:
    """Point estimate and percentile bootstrap interval of every metric.

    All metrics share the same resamples, computed in one vectorised pass per chunk of
    replicates (:func:`~ml_lifecycle.metrics.bootstrap_metrics_table`). For very large test sets
    the resamples are drawn from a fixed random subset of ``max_rows`` rows, which keeps
    intervals honest (they widen slightly) and the cost bounded.
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(scores, dtype=float)
    point = compute_metrics(task, y, s, threshold)
    result = {m: {"value": v, "low": float("nan"), "high": float("nan")} for m, v in point.items()}
    if n_boot <= 0 or len(y) < 2:
        return result
    rng = np.random.default_rng(seed)
    base = np.arange(len(y)) if len(y) <= max_rows else rng.choice(len(y), max_rows, replace=False)
    replicates = bootstrap_metrics_table(task, y[base], s[base], threshold, n_boot=n_boot,
                                         seed=[seed, 1], metrics=tuple(point))
    alpha = (1 - confidence) / 2
    for m, vals in replicates.items():
        vals = vals[np.isfinite(vals)]
        if vals.size:
            result[m]["low"] = float(np.quantile(vals, alpha))
            result[m]["high"] = float(np.quantile(vals, 1 - alpha))
    return result


def baseline_scores(task: str, y_train: np.ndarray, n: int) -> np.ndarray:
    """Scores of the naive ``Dummy*`` baseline (class prior / training mean) for ``n`` rows."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    x = np.zeros((len(y_train), 1))
    if task in ("classification", "multiclass"):
        dummy = DummyClassifier(strategy="prior").fit(x, y_train)
        proba = dummy.predict_proba(np.zeros((n, 1))).astype(float)
        return proba if task == "multiclass" else proba[:, -1]
    return DummyRegressor(strategy="mean").fit(x, y_train).predict(np.zeros((n, 1))).astype(float)


def slice_metrics(task: str, frame: Any, y: np.ndarray, scores: np.ndarray, threshold: float,
                  columns: list[str], min_rows: int = 30, max_values: int = 20) -> dict[str, Any]:
    """Metrics per value of each slice column (most frequent values, at least ``min_rows``)."""
    out: dict[str, Any] = {}
    for column in columns:
        values = frame[column].astype(str).fillna("__missing__").to_numpy()
        uniq, counts = np.unique(values, return_counts=True)
        order = np.argsort(-counts)[:max_values]
        rows = {}
        for i in order:
            if counts[i] < min_rows:
                continue
            mask = values == uniq[i]
            rows[str(uniq[i])] = {
                "rows": int(counts[i]),
                **compute_metrics(task, y[mask], scores[mask], threshold),
            }
        out[column] = rows
    return out
