"""One implementation of every metric, for one labelling or for many at once.

Evaluation on the test split, the promotion gate's paired comparison, the realized metric of
concept drift and the label-free estimate (CBPE) all compute their metrics here, through
:func:`weighted_metric`: a metric of the same rows under many *weightings* (bootstrap replicates
are weightings: row ``i`` drawn ``k`` times weighs ``k``) or many *labelings* (simulated label
vectors, or calibrated probabilities as soft labels) in one vectorised pass. A point value is
the same call with weights of one (:func:`compute_metric`). So a bootstrap of 500 replicates is
a handful of matrix operations, not 500 calls of a scikit-learn function, and every caller
agrees on ties, empty classes and undefined values (NaN).

Definitions (as scikit-learn's, checked in ``tests/test_metrics.py``): ROC-AUC counts tied
scores as half-ordered pairs (``roc_auc_score``); PR-AUC is average precision with one step per
distinct score (``average_precision_score``); precision is 0 without predicted positives (as
``zero_division=0``), recall NaN without positives; ``brier``, ``accuracy``, ``f1``,
``balanced_accuracy`` at the model's threshold; ``rmse``, ``mae``, ``r2`` for regression.

Pitfall avoided: accuracy on an imbalanced problem. With 10 % positives, "always negative" scores
90 % accuracy; the card reports threshold-free ranking metrics, the threshold metrics and
balanced accuracy (:mod:`ml_lifecycle.evaluate`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .metric_names import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    MULTICLASS_METRICS,
    REGRESSION_METRICS,
    higher_is_better,
    metric_names,
)

_CELLS = 1_000_000  # replicate x row cells per chunk of a bootstrap (bounded memory)


def _groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start index of each run of tied values in a sorted array."""
    return np.flatnonzero(np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1]]))


def _ranking(metric: str, y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    order = np.argsort(s, kind="stable")
    if metric == "pr_auc":
        order = order[::-1]
    ss, ys, ws = s[order], y[..., order], w[:, order]
    starts = _groups(ss)
    pos = np.add.reduceat(ws * ys, starts, axis=1)
    neg = np.add.reduceat(ws * (1 - ys), starts, axis=1)
    p_tot, n_tot = pos.sum(axis=1), neg.sum(axis=1)
    if metric == "roc_auc":
        neg_below = np.cumsum(neg, axis=1) - neg
        return np.sum(pos * (neg_below + 0.5 * neg), axis=1) / (p_tot * n_tot)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
    ap = np.sum(pos / np.where(p_tot > 0, p_tot, 1.0)[:, None] * precision, axis=1)
    return np.where(p_tot > 0, ap, np.nan)


def _per_class_counts(y: np.ndarray, pred: np.ndarray, k: int,
                      wsum: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn) per class and replicate, each (K, B), for class labels ``y`` ((n,) or
    (B, n)) against the predicted classes ``pred`` (n,)."""
    tp, fp, fn = [], [], []
    for c in range(k):
        is_pred = pred == c
        is_true = y == c
        tp.append(wsum((is_pred & is_true).astype(float)))
        fp.append(wsum((is_pred & ~is_true).astype(float)))
        fn.append(wsum((~is_pred & is_true).astype(float)))
    return np.array(tp), np.array(fp), np.array(fn)


def _multiclass(metric: str, y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Multiclass metrics of class probabilities ``p`` (n, K) against class indices ``y``
    ((n,) or (B, n)) under weightings ``w``; the predicted class is the most probable one.

    Averages run over the classes present in the labels or the predictions of a replicate, as
    scikit-learn's do by default (a class missing from a batch does not count as an F1 of 0);
    ``roc_auc_ovr`` averages the one-vs-rest ROC-AUC of the classes it is defined for.
    """
    n, k = p.shape
    yi = np.rint(y).astype(int)
    pred = np.argmax(p, axis=1)
    total = w.sum(axis=1)

    def wsum(values: np.ndarray) -> np.ndarray:
        return w @ values if values.ndim == 1 else (w * values).sum(axis=1)

    if metric == "accuracy":
        return wsum((yi == pred).astype(float)) / total
    if metric == "log_loss":
        picked = p[np.arange(n), np.clip(yi, 0, k - 1)]
        return wsum(-np.log(np.clip(picked, 1e-15, 1.0))) / total
    if metric == "roc_auc_ovr":
        per_class = np.array([_ranking("roc_auc", (yi == c).astype(float), p[:, c], w)
                              for c in range(k)])
        defined = np.isfinite(per_class)
        return np.where(defined.any(axis=0),
                        np.where(defined, per_class, 0.0).sum(axis=0)
                        / np.maximum(defined.sum(axis=0), 1), np.nan)
    tp, fp, fn = _per_class_counts(yi, pred, k, wsum)
    if metric in ("macro_f1", "weighted_f1"):
        denom = 2 * tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0)
        if metric == "macro_f1":
            present = denom > 0
            return np.where(present.any(axis=0),
                            (f1 * present).sum(axis=0) / np.maximum(present.sum(axis=0), 1),
                            np.nan)
        support = tp + fn
        return np.where(support.sum(axis=0) > 0,
                        (f1 * support).sum(axis=0) / np.where(support.sum(axis=0) > 0,
                                                              support.sum(axis=0), 1.0), np.nan)
    if metric == "balanced_accuracy":
        support = tp + fn
        recall = np.where(support > 0, tp / np.where(support > 0, support, 1.0), 0.0)
        present = support > 0
        return np.where(present.any(axis=0),
                        (recall * present).sum(axis=0) / np.maximum(present.sum(axis=0), 1),
                        np.nan)
    raise ValueError(f"no multiclass form of metric '{metric}'; known: {MULTICLASS_METRICS}")


def per_class_report(y: np.ndarray, p: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    """Precision, recall, F1 and support of each class (most probable class predicted), and
    the confusion matrix (rows: true class, columns: predicted class)."""
    yi = np.rint(np.asarray(y, dtype=float)).astype(int)
    pred = np.argmax(np.asarray(p, dtype=float), axis=1)
    k = len(classes)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (yi, pred), 1)
    out: dict[str, Any] = {}
    for c, name in enumerate(classes):
        tp = int(matrix[c, c])
        predicted, support = int(matrix[:, c].sum()), int(matrix[c, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else float("nan")
        f1 = 2 * tp / (predicted + support) if predicted + support else 0.0
        out[str(name)] = {"precision": precision, "recall": recall, "f1": f1,
                          "support": support, "predicted": predicted}
    return {"per_class": out,
            "confusion_matrix": {"labels": [str(c) for c in classes],
                                 "matrix": matrix.tolist()}}


def weighted_metric(
    metric: str,
    y: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray,
    threshold: float = 0.5,
) -> np.ndarray:
    """A metric for many weightings or labelings of the same rows at once.

    Bootstrap replicates are weightings (``weights`` of shape (B, n), ``y`` of shape (n,));
    simulated labelings (performance estimation) are label matrices (``y`` of shape (B, n),
    ``weights`` of shape (1, n)). Labels may be fractional: with calibrated probabilities as
    ``y`` the result is the expected metric (confidence-based performance estimation).

    Args:
        metric: one of roc_auc, pr_auc, brier, accuracy, precision, recall, f1,
            balanced_accuracy, rmse, mae, r2.
        y: labels (0/1, or probabilities) or targets: (n,) or (B, n).
        scores: the model's scores / predictions (n,).
        weights: (B, n) or (1, n) non-negative weights (bootstrap counts).
        threshold: decision threshold for the threshold metrics.

    Returns:
        B metric values (NaN where undefined, e.g. one class only).

    Raises:
        ValueError: an unknown metric.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    y = np.asarray(y, dtype=float)
    s = np.asarray(scores, dtype=float)
    if s.ndim == 2 and metric in MULTICLASS_METRICS:  # multiclass: (n, K) probabilities
        if y.shape[-1] != s.shape[0] or w.shape[-1] != s.shape[0]:
            raise ValueError(f"metric '{metric}': {y.shape[-1]} labels, {s.shape[0]} rows of "
                             f"probabilities and {w.shape[-1]} weights per replicate")
        if not np.isfinite(s).all():
            raise ValueError(f"metric '{metric}': the probabilities contain NaN or infinite "
                             "values")
        with np.errstate(divide="ignore", invalid="ignore"):
            return _multiclass(metric, y, s, w)
    if y.shape[-1] != s.shape[0] or w.shape[-1] != s.shape[0]:
        raise ValueError(f"metric '{metric}': {y.shape[-1]} labels, {s.shape[0]} scores and "
                         f"{w.shape[-1]} weights per replicate; expected the same number")
    if not np.isfinite(s).all():
        raise ValueError(f"metric '{metric}': the scores contain NaN or infinite values")

    def wsum(values: np.ndarray) -> np.ndarray:  # per-replicate weighted sums
        return w @ values if values.ndim == 1 else (w * values).sum(axis=1)

    total = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric in ("roc_auc", "pr_auc"):
            return _ranking(metric, y, s, w)
        if metric == "brier":
            return wsum((s - y) ** 2) / total
        if metric in ("rmse", "mae", "r2"):
            if metric == "rmse":
                return np.sqrt(wsum((y - s) ** 2) / total)
            if metric == "mae":
                return wsum(np.abs(y - s)) / total
            mean = wsum(y) / total
            sst = (w * (y - mean[:, None]) ** 2).sum(axis=1)
            return np.where(sst > 0, 1 - wsum((y - s) ** 2) / sst, np.nan)
        pred = (s >= threshold).astype(float)
        tp = wsum(pred * y)
        fp = wsum(pred * (1 - y))
        fn = wsum((1 - pred) * y)
        tn = wsum((1 - pred) * (1 - y))
        if metric == "accuracy":
            return (tp + tn) / total
        if metric == "precision":
            return np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        if metric == "recall":
            return np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        if metric == "f1":
            denom = 2 * tp + fp + fn
            return np.where(denom > 0, 2 * tp / denom, 0.0)
        if metric == "balanced_accuracy":
            return (tp / (tp + fn) + tn / (tn + fp)) / 2
    raise ValueError(f"no weighted form of metric '{metric}'")


def compute_metric(task: str, name: str, y: np.ndarray, scores: np.ndarray,
                   threshold: float = 0.5) -> float:
    """One metric of one labelling (NaN where undefined).

    Raises:
        ValueError: a metric the task does not report.
    """
    known = metric_names(task)
    if name not in known:
        raise ValueError(f"unknown metric '{name}' for task {task}; known: {sorted(known)}")
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return float("nan")
    return float(weighted_metric(name, y, scores, np.ones((1, len(y))), threshold)[0])


def compute_metrics(task: str, y: np.ndarray, scores: np.ndarray,
                    threshold: float = 0.5) -> dict[str, float]:
    """All point metrics of the task."""
    return {m: compute_metric(task, m, y, scores, threshold) for m in metric_names(task)}


def bootstrap_weights(n: int, n_boot: int, seed: Any) -> Iterator[np.ndarray]:
    """Bootstrap replicates of ``n`` rows as count weights, in chunks of bounded size.

    Row resampling with replacement: each replicate draws ``n`` row indices; a row drawn ``k``
    times weighs ``k``. One seeded generator, so the same ``(n, n_boot, seed)`` gives the same
    replicates wherever they are used (a paired comparison applies each one to both models).

    Yields:
        (b, n) float arrays, ``n_boot`` rows in all.
    """
    if n == 0:
        return
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
        done += b


def bootstrap_metric(metric: str, y: np.ndarray, scores: np.ndarray, *, n_boot: int,
                     seed: Any, threshold: float = 0.5) -> np.ndarray:
    """``n_boot`` bootstrap replicates of a metric (NaN where a replicate leaves it undefined)."""
    y = np.asarray(y, dtype=float)
    out = [weighted_metric(metric, y, scores, w, threshold)
           for w in bootstrap_weights(len(y), n_boot, seed)]
    return np.concatenate(out) if out else np.empty(0)


def bootstrap_metrics_table(task: str, y: np.ndarray, scores: np.ndarray, threshold: float, *,
                            n_boot: int, seed: Any,
                            metrics: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Replicates of several metrics on the *same* resamples (one draw of weights for all)."""
    y = np.asarray(y, dtype=float)
    names = metrics or metric_names(task)
    out: dict[str, list[np.ndarray]] = {m: [] for m in names}
    for w in bootstrap_weights(len(y), n_boot, seed):
        for m in names:
            out[m].append(weighted_metric(m, y, scores, w, threshold))
    return {m: np.concatenate(v) if v else np.empty(0) for m, v in out.items()}


def paired_bootstrap(metric: str, y: np.ndarray, first: np.ndarray, second: np.ndarray, *,
                     n_boot: int, seed: Any, threshold_first: float = 0.5,
                     threshold_second: float = 0.5) -> np.ndarray:
    """Replicates of ``metric(first) - metric(second)`` on the same resampled rows (paired)."""
    y = np.asarray(y, dtype=float)
    out = [weighted_metric(metric, y, first, w, threshold_first)
           - weighted_metric(metric, y, second, w, threshold_second)
           for w in bootstrap_weights(len(y), n_boot, seed)]
    return np.concatenate(out) if out else np.empty(0)


__all__ = [
    "CLASSIFICATION_METRICS",
    "LOWER_IS_BETTER",
    "MULTICLASS_METRICS",
    "REGRESSION_METRICS",
    "bootstrap_metric",
    "bootstrap_metrics_table",
    "bootstrap_weights",
    "compute_metric",
    "compute_metrics",
    "higher_is_better",
    "metric_names",
    "paired_bootstrap",
    "per_class_report",
    "weighted_metric",
]
