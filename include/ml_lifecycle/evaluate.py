"""Evaluation, once, on the test split: metrics with bootstrap intervals, a naive baseline, slices.

Pitfall avoided: accuracy on an imbalanced problem. With 10 % positives, "always negative" scores
90 % accuracy. We report threshold-free ranking metrics (ROC-AUC, PR-AUC; PR-AUC's chance level is
the positive rate, not 0.5), precision/recall/F1 at the threshold chosen on validation, balanced
accuracy, the Brier score and the confusion matrix, and we always compare to a ``Dummy*`` baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

LOWER_IS_BETTER = {"mae", "rmse", "brier", "log_loss"}
CLASSIFICATION_METRICS = (
    "roc_auc", "pr_auc", "precision", "recall", "f1", "balanced_accuracy", "brier", "accuracy",
)
REGRESSION_METRICS = ("mae", "rmse", "r2")


def higher_is_better(metric: str) -> bool:
    """Direction of a metric (error metrics are lower-is-better)."""
    return metric not in LOWER_IS_BETTER


def _safe_auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def _safe_ap(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    if y.sum() == 0:
        return float("nan")
    return float(average_precision_score(y, s))


def _f1(y: np.ndarray, s: np.ndarray, t: float) -> float:
    pred = s >= t
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def _precision(y: np.ndarray, s: np.ndarray, t: float) -> float:
    pred = s >= t
    tp = float(np.sum(pred & (y == 1)))
    return tp / float(pred.sum()) if pred.sum() else 0.0


def _recall(y: np.ndarray, s: np.ndarray, t: float) -> float:
    pos = y == 1
    return float(np.sum((s >= t) & pos)) / float(pos.sum()) if pos.sum() else float("nan")


def _balanced_accuracy(y: np.ndarray, s: np.ndarray, t: float) -> float:
    pred = s >= t
    pos, neg = y == 1, y == 0
    if not pos.any() or not neg.any():
        return float("nan")
    tpr = float(np.mean(pred[pos]))
    tnr = float(np.mean(~pred[neg]))
    return (tpr + tnr) / 2


_CLASSIFICATION: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "roc_auc": lambda y, s, t: _safe_auc(y, s),
    "pr_auc": lambda y, s, t: _safe_ap(y, s),
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "balanced_accuracy": _balanced_accuracy,
    "brier": lambda y, s, t: float(np.mean((s - y) ** 2)),
    "accuracy": lambda y, s, t: float(np.mean((s >= t) == (y == 1))),
}

_REGRESSION: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "mae": lambda y, p, t: float(np.mean(np.abs(y - p))),
    "rmse": lambda y, p, t: float(np.sqrt(np.mean((y - p) ** 2))),
    "r2": lambda y, p, t: float(1 - np.sum((y - p) ** 2) / np.sum((y - np.mean(y)) ** 2))
    if np.var(y) > 0 else float("nan"),
}


def metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def compute_metric(task: str, name: str, y: np.ndarray, scores: np.ndarray,
                   threshold: float = 0.5) -> float:
    """One metric by name (``KeyError``-free: unknown names raise ValueError)."""
    table = _CLASSIFICATION if task == "classification" else _REGRESSION
    if name not in table:
        raise ValueError(f"unknown metric '{name}' for task {task}; known: {sorted(table)}")
    return table[name](np.asarray(y, dtype=float), np.asarray(scores, dtype=float), threshold)


def compute_metrics(task: str, y: np.ndarray, scores: np.ndarray,
                    threshold: float = 0.5) -> dict[str, float]:
    """All point metrics of the task."""
    return {m: compute_metric(task, m, y, scores, threshold) for m in metric_names(task)}


def confusion(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    pred = np.asarray(scores) >= threshold
    y = np.asarray(y) == 1
    return {
        "tn": int(np.sum(~pred & ~y)), "fp": int(np.sum(pred & ~y)),
        "fn": int(np.sum(~pred & y)), "tp": int(np.sum(pred & y)),
    }


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` x ``n`` resampling indices from one seeded generator."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_metrics(task: str, y: np.ndarray, scores: np.ndarray, threshold: float,
                      n_boot: int, confidence: float, seed: int,
                      max_rows: int = 50_000) -> dict[str, dict[str, float]]:
    """Point estimate and percentile bootstrap interval of every metric.

    For very large test sets the resamples are drawn from a fixed random subset of ``max_rows``
    rows, which keeps intervals honest (they widen slightly) and the cost bounded.
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(scores, dtype=float)
    point = compute_metrics(task, y, s, threshold)
    result = {m: {"value": v, "low": float("nan"), "high": float("nan")} for m, v in point.items()}
    if n_boot <= 0 or len(y) < 2:
        return result
    rng = np.random.default_rng(seed)
    base = np.arange(len(y)) if len(y) <= max_rows else rng.choice(len(y), max_rows, replace=False)
    idx = rng.integers(0, len(base), size=(n_boot, len(base)))
    alpha = (1 - confidence) / 2
    for m in point:
        vals = np.array([compute_metric(task, m, y[base[i]], s[base[i]], threshold) for i in idx])
        vals = vals[np.isfinite(vals)]
        if vals.size:
            result[m]["low"] = float(np.quantile(vals, alpha))
            result[m]["high"] = float(np.quantile(vals, 1 - alpha))
    return result


def baseline_scores(task: str, y_train: np.ndarray, n: int) -> np.ndarray:
    """Scores of the naive ``Dummy*`` baseline (class prior / training mean) for ``n`` rows."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    x = np.zeros((len(y_train), 1))
    if task == "classification":
        dummy = DummyClassifier(strategy="prior").fit(x, y_train)
        return dummy.predict_proba(np.zeros((n, 1)))[:, -1].astype(float)
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
