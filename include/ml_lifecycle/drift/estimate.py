"""Label-free performance estimation: how good is the model on a batch whose labels are late?

Drift says the inputs moved; it does not say the model got worse. This module estimates the
model's metric on a batch *without labels*, the way NannyML does, so that the retrain decision
follows model harm:

* **Classification: confidence-based performance estimation (CBPE).** At training time the
  model's scores are calibrated on the validation split (sigmoid or isotonic, each judged by its
  log loss on held-out validation folds and kept only if it beats the raw scores by more than
  one standard error; the test split is never used for it). On a batch, the calibrated score
  ``p_i`` is the probability that row ``i`` is positive, so the *expected* confusion matrix at
  the model's threshold is
  ``TP = sum p_i [s_i >= t]``, ``FP = sum (1 - p_i) [s_i >= t]`` ... and from it precision,
  recall, F1 and accuracy; ROC-AUC and PR-AUC are the same metrics with ``p_i`` as soft labels
  (the expected count of positive/negative pairs ranked right). Every metric goes through the one
  weighted metric implementation (:func:`~ml_lifecycle.metrics.weighted_metric`).
* **Regression: direct loss estimation (DLE).** Two small gradient-boosted models, fitted at
  training time on the validation rows (which the main model did not fit on), predict the
  absolute and the squared error of a row from its (preprocessed) features and the prediction;
  their batch means estimate MAE and MSE (RMSE = its root). The models refitted without each
  validation fold are kept for the interval.

The interval of an estimate is the range the *realized* metric would take on a batch of this
size if the assumptions hold. It holds two errors: the batch's sampling error and the error of
what was learned from the (finite) validation split, which is shared by every batch and does not
shrink with the batch's size:

* classification: labels are drawn ``y_i ~ Bernoulli(p_i)`` ``estimate_simulations`` times, each
  draw with the probabilities of one bootstrap refit of the calibration map
  (:func:`calibration_replicates`), and the metric is computed on each draw (on at most
  ``estimate_max_rows`` sampled rows; the sampling part of the spread is scaled by
  ``sqrt(m / n)`` to the batch's size); the interval is the draws' order statistics that hold a
  new draw with the stated confidence (:func:`prediction_interval`);
* regression: a normal interval whose variance adds the residuals' spread (out of fold, scaled
  to the rows' predicted losses, over ``n``) and the jackknife spread of the loss models fitted
  on the validation folds.

The interval's level holds over batches *and* validation splits: the batches of one model share
its calibration error, so one unlucky validation split (an error of two standard errors) lowers
the share of that model's batches its intervals cover by several points.

The reference level is the same estimator applied to the test split (stored with the model next
to the realized test metric), so "estimated vs reference" compares like with like.

Assumptions (stated in every result): P(y | x) has not changed (a concept change is invisible to
the estimate: the realized metric on arrived labels catches it), and the batch lies within the
training data's support. The second is checked: :func:`reliability` is the share of the batch,
weighted by feature importance, inside the reference's range and categories.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..metric_names import MULTICLASS_METRICS
from ..metrics import compute_metric, higher_is_better, weighted_metric
from .decision import DRIFT, INSUFFICIENT, NO_DRIFT, UNAVAILABLE

ESTIMATOR_JSON = "performance_estimator.json"
ESTIMATOR_NPZ = "performance_estimator.npz"  # the test split's labels and scores (a sample)
LOSS_MODEL_FILE = "loss_estimator.skops"  # regression only: the DLE models (safe format)
LEGACY_LOSS_MODEL_FILE = "loss_estimator.joblib"  # versions stored before: a pickle
SCHEMA_VERSION = 1
CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy")
REGRESSION_METRICS = ("mae", "rmse")
TEST_SAMPLE_ROWS = 50_000  # test rows kept for the realized-metric bootstrap of concept drift
ASSUMPTIONS = (
    "P(y|x) is unchanged since training (a concept change is invisible to the estimate; the "
    "realized metric on arrived labels detects it)",
    "the batch lies inside the training data's support (checked: reliability = importance-"
    "weighted share of rows inside the reference's range and categories)",
)
_EPS = 1e-6
CALIBRATION_REPLICATES = 50  # bootstrap refits of the calibration map behind the interval
SIGMOID_C = 1e6  # inverse penalty of the sigmoid map's slope (practically unpenalised)
_SIGMOID_CELLS = 2_000_000  # replicate x row cells per chunk of the vectorised sigmoid fit


# --------------------------------------------------------------------------- calibration


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error with equal-mass bins: ``sum_b n_b / n |mean(y_b) - mean(p_b)|``.

    Args:
        y: 0/1 labels.
        p: predicted probabilities.
        bins: number of bins (of about equal size, by ``p``).

    Returns:
        The error (0 = perfectly calibrated on these rows).
    """
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if not len(y):
        return float("nan")
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, len(y)))
    return float(sum(abs(y[g].mean() - p[g].mean()) * len(g) for g in groups if len(g)) / len(y))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _fit_map(method: str, y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """One calibration map fitted on ``(scores, y)``, as plain numbers (JSON, no pickle)."""
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(),
                "y": iso.y_thresholds_.tolist()}
    if method == "sigmoid":
        a, b = fit_sigmoid(_logit(scores), y)
        return {"method": "sigmoid", "a": float(a[0]), "b": float(b[0])}
    return {"method": "none"}


def _sigmoid_terms(x: np.ndarray, y: np.ndarray, w: np.ndarray, a: np.ndarray, b: np.ndarray,
                   penalty: float) -> tuple[np.ndarray, ...]:
    """Gradient (``ga``, ``gb``) and Hessian (``haa``, ``hab``, ``hbb``) of the weighted,
    penalised log loss of the maps ``(a, b)``, one per row of ``w``."""
    from scipy.special import expit

    p = expit(a[:, None] * x + b[:, None])
    r, h = w * (p - y), w * p * (1.0 - p)
    return (r @ x + penalty * a, r.sum(axis=1), h @ (x * x) + penalty, h @ x, h.sum(axis=1))


def fit_sigmoid(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, *,
                c: float = SIGMOID_C, tol: float = 1e-9, max_iter: int = 100,
                start: tuple[float, float] = (1.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Platt scaling ``P(y = 1) = 1 / (1 + exp(-(a x + b)))``, for many weightings at once.

    For each row of ``weights`` (bootstrap counts: a row drawn ``k`` times weighs ``k``; default
    one weighting of ones) it minimises ``sum_i w_i logloss_i + a^2 / (2 c)``, the objective of
    scikit-learn's ``LogisticRegression(C=c)`` on the one feature ``x`` with an unpenalised
    intercept (checked against it in ``tests/test_performance_estimation.py``), by Newton steps
    on the two parameters; a step is halved where the loss's slope at its end shows it went far
    past the minimum along it (the loss is convex). Each step is a few array operations over
    replicates x rows: the :data:`CALIBRATION_REPLICATES` bootstrap refits behind an estimate's
    interval cost about one fit instead of one scikit-learn fit each (on UCI Adult's 6,500
    validation rows 0.06 s instead of 0.2-0.4 s).

    Args:
        x: the feature (the logit of the model's score), shape (n,).
        y: 0/1 labels, shape (n,).
        weights: (R, n) non-negative row weights, or None.
        c: inverse penalty of the slope.
        tol: stop when no parameter moves by more than ``tol`` (relative to 1 + its size).
        max_iter: Newton steps at most.
        start: where the steps start (default the identity map; bootstrap refits start at the
            fit on all rows, a couple of steps away).

    Returns:
        ``(a, b)``, each of shape (R,).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    w = np.ones((1, len(x))) if weights is None else np.atleast_2d(np.asarray(weights, float))
    penalty = 1.0 / c
    chunk = max(1, _SIGMOID_CELLS // max(len(x), 1))
    a_all, b_all = np.full(len(w), float(start[0])), np.full(len(w), float(start[1]))
    for lo in range(0, len(w), chunk):
        wc = w[lo:lo + chunk]
        a, b = a_all[lo:lo + chunk].copy(), b_all[lo:lo + chunk].copy()
        terms = _sigmoid_terms(x, y, wc, a, b, penalty)
        for _ in range(max_iter):
            ga, gb, haa, hab, hbb = terms
            det = haa * hbb - hab * hab
            ok = det > 0
            safe = np.where(ok, det, 1.0)
            da = np.where(ok, (hbb * ga - hab * gb) / safe, 0.0)
            db = np.where(ok, (haa * gb - hab * ga) / safe, 0.0)
            moving = np.maximum(np.abs(da) / (1 + np.abs(a)), np.abs(db) / (1 + np.abs(b))) > tol
            if not moving.any():
                break
            decrement = ga * da + gb * db  # > 0: the loss falls along -(da, db)
            step = moving.astype(float)  # converged replicates stay where they are
            for _ in range(40):
                new = _sigmoid_terms(x, y, wc, a - step * da, b - step * db, penalty)
                # the loss is convex along the step: where its slope at the end is still (about)
                # downhill the step did not overshoot; else halve it (the rare first steps)
                overshot = (new[0] * da + new[1] * db) < -0.5 * decrement
                if not (overshot & moving).any():
                    break
                step = np.where(overshot, 0.5 * step, step)
            a, b, terms = a - step * da, b - step * db, new
        a_all[lo:lo + chunk], b_all[lo:lo + chunk] = a, b
    return a_all, b_all


def apply_calibration(calibration: dict[str, Any] | None, scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities of positive for raw scores (``method`` none: the scores)."""
    s = np.asarray(scores, dtype=float)
    method = (calibration or {}).get("method", "none")
    if method == "isotonic":
        return np.interp(s, np.asarray(calibration["x"], dtype=float),
                         np.asarray(calibration["y"], dtype=float))
    if method == "sigmoid":
        z = calibration["a"] * _logit(s) + calibration["b"]
        return 1.0 / (1.0 + np.exp(-z))
    return np.clip(s, 0.0, 1.0)


def _log_loss_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-row log loss, probabilities clipped to [1e-4, 1 - 1e-4] (isotonic maps reach 0/1)."""
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def fit_calibration(y: np.ndarray, scores: np.ndarray, *, folds: int = 5,
                    seed: int = 42) -> dict[str, Any]:
    """Choose and fit the calibration of the validation scores.

    Each candidate map (sigmoid, isotonic) is fitted on ``folds - 1`` validation folds and
    applied to the held-out fold. A map is kept only if its out-of-fold log loss (a proper
    score, compared row by row) beats the raw scores' by more than one standard error of the
    paired per-row difference: on scores that are already calibrated a map only adds estimation
    noise, and comparing two noisy binned calibration errors picks a map about half of the time
    (isotonic especially). Of the maps kept, the one with the lowest out-of-fold log loss wins and
    is refitted on every validation row. The out-of-fold expected calibration error of every
    candidate is reported next to it. The test split is never used.

    The map's own uncertainty (it is fitted on a finite validation split) is described by
    :func:`calibration_replicates`.

    Args:
        y: validation labels (0/1).
        scores: the model's validation scores.
        folds: cross-validation folds (fewer when a class is rare).
        seed: fold shuffling seed.

    Returns:
        The map (``method`` and its numbers) with ``calibration_error`` and ``log_loss`` per
        candidate (out-of-fold) and ``n_rows``.
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=float)
    s = np.asarray(scores, dtype=float)
    raw = np.clip(s, 0, 1)
    minority = int(min(y.sum(), len(y) - y.sum()))
    errors: dict[str, float] = {"none": calibration_error(y, raw)}
    losses: dict[str, float] = {"none": float(np.mean(_log_loss_rows(y, raw)))}
    kept: list[str] = []
    k = min(folds, minority)
    if k >= 2:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        loss_raw = _log_loss_rows(y, raw)
        for method in ("sigmoid", "isotonic"):
            oof = np.empty_like(s)
            for fit_idx, held_idx in splitter.split(s, y):
                oof[held_idx] = apply_calibration(_fit_map(method, y[fit_idx], s[fit_idx]),
                                                  s[held_idx])
            errors[method] = calibration_error(y, oof)
            gain = loss_raw - _log_loss_rows(y, oof)
            losses[method] = float(np.mean(loss_raw - gain))
            if gain.mean() > gain.std() / np.sqrt(len(gain)):  # the one-standard-error rule
                kept.append(method)
    best = min(kept, key=lambda m: losses[m]) if kept else "none"
    chosen = _fit_map(best, y, s)
    return {**chosen, "calibration_error": {m: round(v, 6) for m, v in errors.items()},
            "log_loss": {m: round(v, 6) for m, v in losses.items()}, "n_rows": len(y)}


def calibration_replicates(y: np.ndarray, scores: np.ndarray, method: str, *,
                           replicates: int = CALIBRATION_REPLICATES, seed: int = 42,
                           grid_size: int = 41) -> dict[str, Any] | None:
    """Bootstrap refits of a calibration map: how far the map could be off, given validation.

    The chosen map's family is refitted on ``replicates`` bootstrap resamples of the validation
    rows (for ``none``, a sigmoid map: how miscalibrated the raw scores could still be, given
    that no map beat them clearly); each replicate is kept as its deviation from the chosen map
    on a grid of validation-score quantiles. :func:`estimate_classification` adds a replicate's
    deviation to the calibrated probabilities of each simulated label vector, so the interval
    holds the calibration's error as well as the batch's sampling error.

    Args:
        y: validation labels (0/1).
        scores: the model's validation scores.
        method: the chosen map (``fit_calibration(...)["method"]``).
        replicates: bootstrap refits (0: none).
        seed: bootstrap seed.
        grid_size: quantiles of the validation scores the deviations are kept at.

    Returns:
        ``{"method", "grid", "deltas"}`` (``deltas``: replicates x grid points), or None when
        there are too few rows of a class to refit.
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(scores, dtype=float)
    if replicates <= 0 or min(y.sum(), len(y) - y.sum()) < 5:
        return None
    fit_method = "sigmoid" if method == "none" else method
    grid = np.unique(np.quantile(s, np.linspace(0, 1, grid_size)))
    base = apply_calibration(_fit_map(method, y, s), grid)
    rng = np.random.default_rng([seed, 7])
    draws = []
    while len(draws) < replicates:
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            draws.append(idx)
    if fit_method == "sigmoid":  # all replicates in one vectorised fit (as bootstrap counts)
        counts = np.stack([np.bincount(idx, minlength=len(y)) for idx in draws])
        a0, b0 = fit_sigmoid(_logit(s), y)
        a, b = fit_sigmoid(_logit(s), y, counts, start=(a0[0], b0[0]))
        deltas = apply_calibration({"method": "sigmoid", "a": a[:, None], "b": b[:, None]},
                                   grid) - base  # (replicates, grid points)
    else:
        deltas = np.stack([apply_calibration(_fit_map(fit_method, y[idx], s[idx]), grid) - base
                           for idx in draws])
    return {"method": fit_method, "grid": [round(float(g), 8) for g in grid],
            "deltas": np.round(np.asarray(deltas), 6).tolist()}


def replicate_probabilities(uncertainty: dict[str, Any] | None, probs: np.ndarray,
                            scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities under each bootstrap replicate of the map: (replicates, n).

    Without replicates: ``probs`` as one row (the interval is then sampling error only).
    """
    if not uncertainty or not uncertainty.get("deltas"):
        return probs[None, :]
    grid = np.asarray(uncertainty["grid"], dtype=float)
    deltas = np.asarray(uncertainty["deltas"], dtype=float)
    shifted = np.stack([np.interp(scores, grid, d) for d in deltas]) + probs[None, :]
    return np.clip(shifted, 0.0, 1.0)


# --------------------------------------------------------------------------- classification


def expected_metrics(probs: np.ndarray, scores: np.ndarray, threshold: float,
                     metrics: tuple[str, ...] = CLASSIFICATION_METRICS) -> dict[str, float]:
    """CBPE point estimates: each metric with the calibrated probabilities as soft labels."""
    ones = np.ones((1, len(scores)))
    return {m: float(weighted_metric(m, probs, scores, ones, threshold)[0]) for m in metrics}


def simulated_metrics(probs: np.ndarray, scores: np.ndarray, threshold: float, *,
                      metrics: tuple[str, ...], draws: int, seed: int,
                      chunk: int = 50) -> dict[str, np.ndarray]:
    """The realized metrics of ``draws`` label vectors drawn ``y_i ~ Bernoulli(probs_i)``.

    ``probs`` is (n,) or (R, n): with R calibration replicates, draw ``d`` uses replicate
    ``d % R``.
    """
    rng = np.random.default_rng(seed)
    probs = np.atleast_2d(probs)
    ones = np.ones((1, len(scores)))
    out: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    done = 0
    while done < draws:
        b = min(chunk, draws - done)
        rows = probs[np.arange(done, done + b) % len(probs)]
        labels = (rng.random(rows.shape) < rows).astype(float)
        for m in metrics:
            out[m].append(weighted_metric(m, labels, scores, ones, threshold))
        done += b
    return {m: np.concatenate(v) for m, v in out.items()}


def _classification_point(calibration: dict[str, Any], scores: np.ndarray, threshold: float,
                          metrics: tuple[str, ...]
                          ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The finite scores (sorted), their calibrated probabilities and the CBPE point estimates
    (:func:`expected_metrics`): the ``value`` of :func:`estimate_classification`."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if not len(s):
        return s, s, {}
    s = np.sort(s, kind="stable")  # every metric is order-free; sorted once, each sort is cheap
    p = apply_calibration(calibration, s)
    return s, p, expected_metrics(p, s, threshold, metrics)


def estimate_classification(
    calibration: dict[str, Any],
    scores: np.ndarray,
    threshold: float,
    *,
    metrics: tuple[str, ...] = CLASSIFICATION_METRICS,
    confidence: float = 0.95,
    draws: int = 200,
    max_rows: int = 20_000,
    seed: int = 42,
    uncertainty: dict[str, Any] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Estimated metrics of a batch, each with the interval of its realized value.

    The interval holds two errors: the batch's sampling error (labels drawn from the calibrated
    probabilities) and, with ``uncertainty``, the calibration map's own error (each draw uses
    one bootstrap replicate of the map). On a batch larger than ``max_rows`` the simulation
    runs on a sample: its sampling spread is scaled by ``sqrt(sample / n)``, the calibration
    spread (which does not shrink with the batch) is not.

    Args:
        calibration: the map from :func:`fit_calibration`.
        scores: the model's scores on the batch.
        threshold: the model's decision threshold.
        metrics: metric names (see :func:`~ml_lifecycle.metrics.weighted_metric`).
        confidence: level of the intervals.
        draws: simulated label vectors.
        max_rows: rows sampled for the simulation (the spread is scaled to the batch's size).
        seed: seed of the sample and the draws.
        uncertainty: bootstrap replicates of the map (:func:`calibration_replicates`); None:
            the interval is the sampling error only.

    Returns:
        ``{metric: {"value", "low", "high"}}`` (None where undefined, e.g. an empty batch).
    """
    s, p, point = _classification_point(calibration, scores, threshold, metrics)
    if not len(s):
        return {m: {"value": None, "low": None, "high": None} for m in metrics}
    n = len(s)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=max_rows, replace=False)) if n > max_rows else None
    ps, ss = (p, s) if idx is None else (p[idx], s[idx])
    reps = replicate_probabilities(uncertainty, ps, ss)  # (R, m)
    sims = simulated_metrics(reps, ss, threshold, metrics=metrics, draws=draws, seed=seed + 1)
    which = np.arange(draws) % len(reps)
    ones = np.ones((1, len(ss)))
    scale = 1.0 if idx is None else float(np.sqrt(len(ss) / n))
    out: dict[str, dict[str, float | None]] = {}
    for m in metrics:
        value = point[m]
        # per draw: the replicate's expected metric (calibration error, kept whole) plus the
        # draw's deviation from it (sampling error, scaled from the sample to the batch)
        rep_expected = weighted_metric(m, reps, ss, ones, threshold)[which]
        sample_expected = float(weighted_metric(m, ps, ss, ones, threshold)[0])
        realized = value + (rep_expected - sample_expected) + (sims[m] - rep_expected) * scale
        realized = realized[np.isfinite(realized)]
        if not np.isfinite(value) or not len(realized):
            out[m] = {"value": None if not np.isfinite(value) else value, "low": None,
                      "high": None}
            continue
        lo, hi = prediction_interval(realized, confidence)
        out[m] = {"value": value, "low": float(min(lo, value)), "high": float(max(hi, value))}
    return out


# --------------------------------------------------------------------------- multiclass


def fit_calibration_ovr(y: np.ndarray, probs: np.ndarray, *, seed: int = 42) -> dict[str, Any]:
    """One-vs-rest calibration of multiclass probabilities (as NannyML's multiclass CBPE):
    each class's probability gets its own map (:func:`fit_calibration`, validation only), the
    calibrated columns are renormalised to sum to one (:func:`apply_calibration_ovr`)."""
    y = np.rint(np.asarray(y, dtype=float)).astype(int)
    p = np.asarray(probs, dtype=float)
    maps = [fit_calibration((y == k).astype(float), p[:, k], seed=seed)
            for k in range(p.shape[1])]
    return {"method": "one_vs_rest", "classes": maps, "n_rows": len(y)}


def apply_calibration_ovr(calibration: dict[str, Any] | None, probs: np.ndarray) -> np.ndarray:
    """Calibrated class probabilities (n, K), rows summing to one."""
    p = np.asarray(probs, dtype=float)
    maps = (calibration or {}).get("classes") or [None] * p.shape[1]
    q = np.column_stack([apply_calibration(m, p[:, k]) for k, m in enumerate(maps)])
    q = np.clip(q, 1e-9, None)
    return q / q.sum(axis=1, keepdims=True)


def simulated_labels(q: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` label vectors with ``y_i ~ Categorical(q_i)``: (draws, n) class indices."""
    cum = np.cumsum(q, axis=1)
    cum[:, -1] = 1.0
    u = rng.random((draws, q.shape[0]))
    return np.stack([np.sum(u[d][:, None] > cum, axis=1) for d in range(draws)])


def estimate_multiclass(
    calibration: dict[str, Any],
    probs: np.ndarray,
    *,
    metrics: tuple[str, ...] = MULTICLASS_METRICS,
    confidence: float = 0.95,
    draws: int = 200,
    max_rows: int = 20_000,
    seed: int = 42,
) -> dict[str, dict[str, float | None]]:
    """CBPE for multiclass: the metrics of label vectors drawn from the calibrated class
    probabilities; the value is their mean (the expected metric), the interval the range that
    holds the realized metric (sampling error; scaled to the batch's size when the simulation
    runs on ``max_rows`` sampled rows). The calibration's own error is not in the interval."""
    p = np.asarray(probs, dtype=float)
    p = p[np.isfinite(p).all(axis=1)] if p.ndim == 2 else p
    if p.ndim != 2 or not len(p):
        return {m: {"value": None, "low": None, "high": None} for m in metrics}
    rng = np.random.default_rng(seed)
    n = len(p)
    if n > max_rows:
        p = p[np.sort(rng.choice(n, size=max_rows, replace=False))]
    q = apply_calibration_ovr(calibration, p)
    ones = np.ones((1, len(p)))
    sims: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    done = 0
    while done < draws:
        b = min(25, draws - done)
        labels = simulated_labels(q, b, rng).astype(float)
        for m in metrics:
            sims[m].append(weighted_metric(m, labels, p, ones))
        done += b
    scale = float(np.sqrt(len(p) / n))
    out: dict[str, dict[str, float | None]] = {}
    for m in metrics:
        values = np.concatenate(sims[m])
        values = values[np.isfinite(values)]
        if not len(values):
            out[m] = {"value": None, "low": None, "high": None}
            continue
        value = float(values.mean())
        lo, hi = prediction_interval(value + (values - value) * scale, confidence)
        out[m] = {"value": value, "low": float(min(lo, value)), "high": float(max(hi, value))}
    return out


def prediction_interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """The range that holds one more draw of the same distribution with ``confidence``.

    The order statistics ``k = floor((N + 1) a)`` and ``ceil((N + 1) (1 - a))`` of ``N`` draws
    (``a = (1 - confidence) / 2``): a new exchangeable draw falls between them with probability
    at least ``confidence``, whatever ``N``; the plain empirical quantiles of 200 draws cover
    about 94 % at a nominal 95 %.
    """
    v = np.sort(np.asarray(draws, dtype=float))
    alpha = (1 - confidence) / 2
    lo_k = int(np.floor((len(v) + 1) * alpha))
    hi_k = int(np.ceil((len(v) + 1) * (1 - alpha)))
    return float(v[max(lo_k, 1) - 1]), float(v[min(hi_k, len(v)) - 1])


# --------------------------------------------------------------------------- regression (DLE)


def loss_features(pipeline: Any, features: Any, predictions: np.ndarray) -> np.ndarray:
    """Inputs of the loss models: the pipeline's preprocessed features plus the prediction."""
    steps = getattr(pipeline, "steps", None)
    if steps and len(steps) > 1:
        z = pipeline[:-1].transform(features)
        z = z.toarray() if hasattr(z, "toarray") else np.asarray(z, dtype=float)
    else:  # a bare estimator: the numeric columns as they are
        z = np.asarray(features.select_dtypes("number"), dtype=float)
    return np.column_stack([z, np.asarray(predictions, dtype=float)])


def _loss_model(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.08, max_leaf_nodes=15,
                                         min_samples_leaf=40, l2_regularization=1.0,
                                         random_state=seed)


def fit_loss_estimator(z: np.ndarray, y: np.ndarray, predictions: np.ndarray, *,
                       folds: int = 5, seed: int = 42) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the direct-loss-estimation models on validation rows.

    Per loss (``abs``: ``|e|``, ``sq``: ``e^2``), one model on every validation row gives the
    estimate; the ``folds`` models fitted on all but one fold give the out-of-fold predictions
    and are kept too: the spread of their batch means is the loss model's own error (a
    delete-a-group jackknife), which does not shrink with the batch's size.

    Args:
        z: :func:`loss_features` of the validation rows.
        y: their targets.
        predictions: the model's predictions for them.
        folds: folds for the out-of-fold residuals and the jackknife.
        seed: seed of the folds and the models.

    Returns:
        (models ``{"abs", "sq", "abs_folds", "sq_folds"}``, info: ``residual_sd_<loss>`` (out-of-
        fold), ``relative_sd_<loss>`` (the residual's size relative to the predicted loss, which
        sizes a batch's sampling error) and ``folds``).
    """
    from sklearn.model_selection import KFold

    err = np.asarray(y, dtype=float) - np.asarray(predictions, dtype=float)
    targets = {"abs": np.abs(err), "sq": err ** 2}
    models: dict[str, Any] = {}
    k = min(folds, max(2, len(err) // 50))
    info: dict[str, Any] = {"n_rows": len(err), "folds": k}
    cv = KFold(n_splits=k, shuffle=True, random_state=seed)
    for key, target in targets.items():
        oof = np.empty_like(target)
        fold_models = []
        for fit_idx, held_idx in cv.split(z):
            fold_models.append(_loss_model(seed).fit(z[fit_idx], target[fit_idx]))
            oof[held_idx] = np.clip(fold_models[-1].predict(z[held_idx]), 0, None)
        info[f"residual_sd_{key}"] = float(np.std(target - oof))
        # the residual's spread grows with the loss (|e| and e^2 of a wider error are wider)
        info[f"relative_sd_{key}"] = float(np.sqrt(np.mean((target - oof) ** 2)
                                                   / max(np.mean(oof ** 2), 1e-300)))
        models[key] = _loss_model(seed).fit(z, target)
        models[f"{key}_folds"] = fold_models
    return models, info


def _loss_interval(models: dict[str, Any], info: dict[str, Any], key: str, z: np.ndarray,
                   zq: float, sample: np.ndarray) -> tuple[float, float]:
    """Estimated mean loss of a batch and the half-width of its interval (the fold models'
    spread is measured on the rows ``sample``)."""
    n = len(z)
    predicted = np.clip(models[key].predict(z), 0, None)
    value = float(np.mean(predicted))
    relative = info.get(f"relative_sd_{key}")
    if relative is None:  # an estimator saved before the relative spread was recorded
        sampling_var = info[f"residual_sd_{key}"] ** 2 / n
    else:  # each row's realized loss scatters around its prediction in proportion to it
        sampling_var = relative ** 2 * float(np.mean(predicted ** 2)) / n
    fold_means = [float(np.mean(np.clip(m.predict(z[sample]), 0, None)))
                  for m in models.get(f"{key}_folds") or []]
    model_var = 0.0
    if len(fold_means) >= 2:  # delete-a-group jackknife of the batch mean
        g = len(fold_means)
        model_var = (g - 1) / g * float(np.sum((np.asarray(fold_means) - np.mean(fold_means)) ** 2))
    return value, zq * float(np.sqrt(sampling_var + model_var))


def estimate_regression(models: dict[str, Any], info: dict[str, Any], z: np.ndarray, *,
                        confidence: float = 0.95, max_rows: int = 20_000,
                        seed: int = 42) -> dict[str, dict[str, float | None]]:
    """Estimated MAE and RMSE of a batch with intervals (DLE).

    The interval holds the batch's sampling error (the out-of-fold residual spread, scaled to
    the rows' predicted losses) and the loss model's own error (the jackknife over its fold
    models, measured on at most ``max_rows`` sampled rows), combined as a normal interval.
    """
    from scipy.stats import norm

    if not len(z):
        return {m: {"value": None, "low": None, "high": None} for m in REGRESSION_METRICS}
    zq = float(norm.ppf(0.5 + confidence / 2))
    n = len(z)
    sample = (np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
              if n > max_rows else np.arange(n))
    mae, half_abs = _loss_interval(models, info, "abs", z, zq, sample)
    mse, half_sq = _loss_interval(models, info, "sq", z, zq, sample)
    return {
        "mae": {"value": mae, "low": max(mae - half_abs, 0.0), "high": mae + half_abs},
        "rmse": {"value": float(np.sqrt(mse)), "low": float(np.sqrt(max(mse - half_sq, 0.0))),
                 "high": float(np.sqrt(mse + half_sq))},
    }


# --------------------------------------------------------------------------- the estimator


class PerformanceEstimator:
    """Estimate a model's metrics on unlabelled batches (scikit-learn conventions).

    ``__init__`` stores settings only; :meth:`fit` learns from the validation split
    (``calibration_`` or ``loss_models_``) and :meth:`set_reference` from the test split
    (``reference_``: estimated and realized test metrics, and a sample of the test labels and
    scores for the realized-metric bootstrap of concept drift).

    Args:
        task: ``classification`` or ``regression``.
        threshold: the model's decision threshold (classification).
        confidence: level of the intervals.
        draws: simulated label vectors behind a classification interval.
        max_rows: rows sampled for that simulation.
        seed: every seed of the estimator.
        replicates: bootstrap refits of the calibration map whose spread widens the
            classification intervals (0: sampling error only).
    """

    def __init__(self, task: str, *, threshold: float = 0.5, confidence: float = 0.95,
                 draws: int = 200, max_rows: int = 20_000, seed: int = 42,
                 replicates: int = CALIBRATION_REPLICATES) -> None:
        self.task = task
        self.threshold = threshold
        self.confidence = confidence
        self.draws = draws
        self.max_rows = max_rows
        self.seed = seed
        self.replicates = replicates

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this estimator estimates."""
        return {"classification": CLASSIFICATION_METRICS,
                "multiclass": MULTICLASS_METRICS}.get(self.task, REGRESSION_METRICS)

    @property
    def method(self) -> str:
        """``cbpe`` (classification), ``cbpe_ovr`` (multiclass) or ``dle`` (regression)."""
        return {"classification": "cbpe", "multiclass": "cbpe_ovr"}.get(self.task, "dle")

    def fit(self, y_val: np.ndarray, scores_val: np.ndarray, *, pipeline: Any = None,
            x_val: Any = None) -> PerformanceEstimator:
        """Learn the calibration (classification) or the loss models (regression) on validation.

        Args:
            y_val: validation labels (0/1) or targets.
            scores_val: the model's validation scores or predictions.
            pipeline: the fitted model (regression: its preprocessing feeds the loss models).
            x_val: validation feature frame (regression).

        Returns:
            self.
        """
        y = np.asarray(y_val, dtype=float)
        s = np.asarray(scores_val, dtype=float)
        if self.task == "classification":
            self.calibration_ = fit_calibration(y, s, seed=self.seed)
            self.calibration_uncertainty_ = calibration_replicates(
                y, s, self.calibration_["method"], replicates=self.replicates, seed=self.seed)
        elif self.task == "multiclass":
            self.calibration_ = fit_calibration_ovr(y, s, seed=self.seed)
            self.calibration_uncertainty_ = None
        else:
            if pipeline is None or x_val is None:
                raise ValueError("regression performance estimation needs the pipeline and the "
                                 "validation features")
            z = loss_features(pipeline, x_val, s)
            self.loss_models_, self.loss_info_ = fit_loss_estimator(z, y, s, seed=self.seed)
        self.n_validation_ = len(y)
        return self

    def estimate(self, scores: np.ndarray, *, pipeline: Any = None,
                 features: Any = None) -> dict[str, dict[str, float | None]]:
        """``{metric: {"value", "low", "high"}}`` for one batch (no labels needed)."""
        if self.task == "classification":
            return estimate_classification(
                self.calibration_, scores, self.threshold, metrics=self.metrics,
                confidence=self.confidence, draws=self.draws, max_rows=self.max_rows,
                seed=self.seed, uncertainty=getattr(self, "calibration_uncertainty_", None))
        if self.task == "multiclass":
            return estimate_multiclass(self.calibration_, scores, metrics=self.metrics,
                                       confidence=self.confidence, draws=self.draws,
                                       max_rows=self.max_rows, seed=self.seed)
        z = loss_features(pipeline, features, scores)
        return estimate_regression(self.loss_models_, self.loss_info_, z,
                                   confidence=self.confidence, max_rows=self.max_rows,
                                   seed=self.seed)

    def set_reference(self, y_test: np.ndarray, scores_test: np.ndarray, *,
                      pipeline: Any = None, x_test: Any = None) -> PerformanceEstimator:
        """Estimate on the test split and keep it next to the realized test metrics."""
        y = np.asarray(y_test, dtype=float)
        s = np.asarray(scores_test, dtype=float)
        if self.task == "classification":  # the point estimate only: no interval is kept
            point = _classification_point(self.calibration_, s, self.threshold, self.metrics)[2]
            estimated = {m: {"value": _finite(point.get(m, float("nan")))} for m in self.metrics}
        else:
            estimated = self.estimate(s, pipeline=pipeline, features=x_test)
        self.reference_ = {
            m: {"estimated": estimated[m]["value"],
                "realized": _finite(compute_metric(self.task, m, y, s, self.threshold))}
            for m in self.metrics
        }
        rng = np.random.default_rng(self.seed)
        keep = np.sort(rng.choice(len(y), size=TEST_SAMPLE_ROWS, replace=False)) \
            if len(y) > TEST_SAMPLE_ROWS else np.arange(len(y))
        self.test_y_, self.test_scores_ = y[keep], s[keep]
        return self

    # ------------------------------------------------------------------ storage

    def to_dict(self) -> dict[str, Any]:
        """The JSON part (no arrays, no models)."""
        out = {"schema_version": SCHEMA_VERSION, "task": self.task, "method": self.method,
               "threshold": self.threshold, "confidence": self.confidence,
               "draws": self.draws, "max_rows": self.max_rows, "seed": self.seed,
               "n_validation": getattr(self, "n_validation_", None),
               "reference": getattr(self, "reference_", {}),
               "assumptions": list(ASSUMPTIONS)}
        if self.task in ("classification", "multiclass"):
            out["calibration"] = self.calibration_
            out["replicates"] = self.replicates
            out["calibration_uncertainty"] = getattr(self, "calibration_uncertainty_", None)
        else:
            out["loss_info"] = self.loss_info_
        return out

    def save(self, directory: Any) -> list[Any]:
        """Write the JSON, the test sample (``.npz``) and, for regression, the loss models."""
        from ..io import atomic_write_bytes, atomic_write_json

        written = []
        buffer = io.BytesIO()
        np.savez_compressed(buffer, test_y=self.test_y_, test_scores=self.test_scores_)
        written.append(atomic_write_bytes(directory / ESTIMATOR_NPZ, buffer.getvalue()))
        if self.task == "regression":
            from ..model_format import dumps

            written.append(atomic_write_bytes(directory / LOSS_MODEL_FILE,
                                              dumps(self.loss_models_, "skops")))
        written.append(atomic_write_json(directory / ESTIMATOR_JSON, self.to_dict()))
        return written

    @classmethod
    def from_stored(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                    loss_models: dict[str, Any] | None = None) -> PerformanceEstimator:
        """Rebuild a fitted estimator from what :meth:`save` wrote (already hash-checked)."""
        est = cls(meta["task"], threshold=float(meta.get("threshold") or 0.5),
                  confidence=float(meta.get("confidence", 0.95)),
                  draws=int(meta.get("draws", 200)), max_rows=int(meta.get("max_rows", 20_000)),
                  seed=int(meta.get("seed", 42)),
                  replicates=int(meta.get("replicates", 0)))
        est.n_validation_ = meta.get("n_validation")
        est.reference_ = meta.get("reference") or {}
        if est.task in ("classification", "multiclass"):
            est.calibration_ = meta["calibration"]
            # None for an estimator saved before replicates existed: sampling error only
            est.calibration_uncertainty_ = meta.get("calibration_uncertainty")
        else:
            if loss_models is None:
                raise ValueError(f"regression performance estimator needs {LOSS_MODEL_FILE}")
            est.loss_models_, est.loss_info_ = loss_models, meta["loss_info"]
        if arrays is not None:
            est.test_y_ = np.asarray(arrays["test_y"], dtype=float)
            est.test_scores_ = np.asarray(arrays["test_scores"], dtype=float)
        return est


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


# --------------------------------------------------------------------------- reliability


def reliability(quality_columns: dict[str, dict[str, Any]],
                importances: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Share of the batch inside the reference's support, weighted by feature importance.

    Args:
        quality_columns: the batch-quality facts per feature (``out_of_range_share`` for numeric
            features, ``unseen_share`` for categorical ones).
        importances: permutation importance per feature (negative ones count as 0; without any
            positive importance every feature weighs the same).

    Returns:
        (reliability in [0, 1], the share outside the support per feature).
    """
    outside = {}
    for name, info in quality_columns.items():
        share = info.get("out_of_range_share", info.get("unseen_share")) or 0.0
        outside[name] = float(share)
    if not outside:
        return 1.0, outside
    weights = {f: max(float(importances.get(f, 0.0) or 0.0), 0.0) for f in outside}
    total = sum(weights.values())
    if total <= 0:
        weights, total = dict.fromkeys(outside, 1.0), float(len(outside))
    weighted = sum(weights[f] * outside[f] for f in outside) / total
    return float(max(0.0, 1.0 - weighted)), outside


# --------------------------------------------------------------------------- the judgement


def estimated_drift(
    estimates: dict[str, dict[str, float | None]] | None,
    reference: dict[str, dict[str, float | None]],
    *,
    metric: str,
    method: str,
    tolerance: float,
    tolerance_mode: str = "relative",
    confidence: float = 0.95,
    reliability_value: float = 1.0,
    outside: dict[str, float] | None = None,
    min_reliability: float = 0.9,
    n_rows: int = 0,
    min_rows: int = 100,
) -> dict[str, Any]:
    """Is the estimated metric of a batch below its reference level beyond the tolerance?

    Flagged when the estimated drop exceeds the tolerance AND the whole interval lies beyond the
    reference (the drop is not the batch's sampling noise), as for the realized metric.

    Returns:
        The ``estimated_performance`` part of a check result (see the module docstring).
    """
    ref_entry = reference.get(metric) or {}
    ref_value = ref_entry.get("estimated")
    hib = higher_is_better(metric)
    out = _estimate_unjudged(ref_entry, metric=metric, method=method, confidence=confidence,
                             tolerance_mode=tolerance_mode, reliability_value=reliability_value,
                             min_reliability=min_reliability, outside=outside, n_rows=n_rows)
    if estimates is None:
        out["reason"] = "the model has no performance estimator (trained before estimation)"
        return out
    for name, entry in estimates.items():
        ref = reference.get(name) or {}
        out["metrics"][name] = {**entry, "reference_value": ref.get("estimated"),
                                "reference_realized": ref.get("realized")}
    entry = estimates.get(metric)
    if entry is None:
        out["reason"] = f"no estimate of '{metric}' (estimated: {sorted(estimates)})"
        return out
    if ref_value is None:
        out["reason"] = f"no reference estimate of '{metric}' on the test split"
        return out
    value, low, high = entry.get("value"), entry.get("low"), entry.get("high")
    out.update(value=value, low=low, high=high)
    tol = tolerance * abs(ref_value) if tolerance_mode == "relative" else tolerance
    out["tolerance"] = tol
    if n_rows < min_rows or value is None or low is None or high is None:
        out["status"] = INSUFFICIENT
        out["reason"] = (f"{n_rows} rows (< drift.min_rows={min_rows})" if n_rows < min_rows
                         else f"'{metric}' cannot be estimated on this batch (one class only?)")
        return out
    drop = (ref_value - value) if hib else (value - ref_value)
    drop_low = (ref_value - high) if hib else (low - ref_value)
    flagged = bool(drop > tol and drop_low > 0)
    out.update(status=DRIFT if flagged else NO_DRIFT, flagged=flagged, drop=drop,
               drop_low=drop_low)
    out["reason"] = _estimate_reason(out, metric, value, low, high, ref_value, drop=drop,
                                     tol=tol, flagged=flagged, confidence=confidence,
                                     reliability_value=reliability_value,
                                     min_reliability=min_reliability)
    return out


def _estimate_unjudged(ref_entry: dict[str, float | None], *, metric: str, method: str,
                       confidence: float, tolerance_mode: str, reliability_value: float,
                       min_reliability: float, outside: dict[str, float] | None,
                       n_rows: int) -> dict[str, Any]:
    """Step: the ``estimated_performance`` result before any judgement (``unavailable``)."""
    return {
        "status": UNAVAILABLE, "flagged": False, "method": method, "metric": metric,
        "higher_is_better": higher_is_better(metric), "value": None, "low": None, "high": None,
        "confidence": confidence, "reference_value": ref_entry.get("estimated"),
        "reference_realized": ref_entry.get("realized"), "drop": None, "drop_low": None,
        "tolerance": None, "tolerance_mode": tolerance_mode,
        "metrics": {}, "reliability": round(reliability_value, 6),
        "reliable": bool(reliability_value >= min_reliability),
        "min_reliability": min_reliability,
        "outside_support": {k: round(v, 6) for k, v in sorted(
            (outside or {}).items(), key=lambda kv: -kv[1]) if v > 0},
        "n_rows": n_rows, "assumptions": list(ASSUMPTIONS), "reason": "",
    }


def _estimate_reason(out: dict[str, Any], metric: str, value: float, low: float, high: float,
                     ref_value: float, *, drop: float, tol: float, flagged: bool,
                     confidence: float, reliability_value: float,
                     min_reliability: float) -> str:
    """Step: the human-readable reason of a judged estimate (with the reliability note)."""
    note = "" if out["reliable"] else (
        f"; reliability {reliability_value:.0%} < {min_reliability:.0%}: part of the batch lies "
        "outside the training data's support")
    return (
        f"estimated {metric} {value:.4g} ({confidence:.0%} interval {low:.4g} .. {high:.4g}) vs "
        f"{ref_value:.4g} estimated on the test split: drop {drop:.4g}, tolerance {tol:.4g}; "
        + ("flagged" if flagged else "within tolerance" if drop <= tol
           else "not flagged: the interval includes no drop") + note
    )


# --------------------------------------------------------------------------- realized calibration


def realized_calibration(
    y_true: Any,
    scores: Any,
    calibration: dict[str, Any] | None,
    *,
    uncertainty: dict[str, Any] | None = None,
    tolerance: float = 0.10,
    confidence: float = 0.95,
    min_labelled: int = 200,
    min_expected: float = 20.0,
    n_boot: int = 300,
    seed: int = 42,
) -> dict[str, Any]:
    """Calibration-in-the-large on arrived labels: did as many positives arrive as the model
    expected?

    The observed/expected ratio ``O/E = sum y_i / sum p_i`` (``p_i`` the calibrated score, the
    probability the estimate relies on) is the first thing clinical prediction models are
    monitored on (Van Calster et al., *Calibration: the Achilles heel of predictive
    analytics*, BMC Medicine 2019; Steyerberg, *Clinical Prediction Models*, ch. 20). A model
    whose O/E moved is wrong about how often the positive class happens: its probabilities,
    its threshold's precision/recall trade-off and the label-free estimate built on them are
    off, even when its ranking (ROC-AUC) is intact, as under a covariate shift into regions the
    model learned poorly. A change of P(y|x) (concept change) moves it too.

    The interval resamples the labelled rows (bootstrap) together with a bootstrap refit of the
    calibration map (``uncertainty``, :func:`calibration_replicates`): the map's own error is
    shared by every batch and does not shrink with the batch. Flagged only when the **whole
    interval** lies outside ``[1 / (1 + tolerance), 1 + tolerance]``: a minimum-effect test, so
    on a well-calibrated model the false-alarm rate per check stays below ``(1 - confidence) /
    2`` at every batch size, and small daily batches do not alarm on noise.

    Args:
        y_true: labels (0/1) of the labelled rows.
        scores: the model's raw scores of the same rows.
        calibration: the stored calibration map (:func:`fit_calibration`); None: unavailable.
        uncertainty: its bootstrap replicates (None: sampling error only).
        tolerance: allowed relative miscalibration (0.10: O/E within 0.91 .. 1.10).
        confidence: level of the interval.
        min_labelled: fewer labelled rows give ``insufficient_data``.
        min_expected: fewer expected positives (``sum p_i``) give ``insufficient_data``.
        n_boot: bootstrap replicates.
        seed: bootstrap seed.

    Returns:
        JSON-able dict: ``status``, ``flagged``, ``observed``, ``expected``, ``ratio``,
        ``low``, ``high``, ``tolerance``, ``direction`` (``under``: more positives than
        expected, the model under-predicts; ``over``), ``n_labelled``, ``reason``.
    """
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(scores, dtype=float)
    ok = np.isfinite(y) & np.isfinite(s)
    y, s = y[ok], s[ok]
    out = _calibration_unjudged(tolerance=tolerance, confidence=confidence, n_labelled=len(y),
                                min_labelled=min_labelled)
    if calibration is None:
        out["reason"] = "the model has no calibration map (trained before estimation)"
        return out
    p = apply_calibration(calibration, s)
    observed, expected = float(y.sum()), float(p.sum())
    out.update(observed=observed, expected=round(expected, 4))
    if len(y) < min_labelled or expected < min_expected:
        out["status"] = INSUFFICIENT
        out["reason"] = (f"{len(y)} labelled rows (< {min_labelled})" if len(y) < min_labelled
                         else f"{expected:.1f} expected positives (< {min_expected:g})")
        return out
    low, high = _ratio_interval(y, s, p, uncertainty, n_boot=n_boot, seed=seed,
                                confidence=confidence)
    _judge_ratio(out, observed, expected, low, high, tolerance=tolerance, confidence=confidence)
    return out


def _calibration_unjudged(*, tolerance: float, confidence: float, n_labelled: int,
                          min_labelled: int) -> dict[str, Any]:
    """Step: the realized-calibration result before any judgement (``unavailable``)."""
    return {
        "status": UNAVAILABLE, "flagged": False, "observed": None, "expected": None,
        "ratio": None, "low": None, "high": None, "tolerance": tolerance,
        "confidence": confidence, "direction": None, "n_labelled": n_labelled,
        "min_labelled": min_labelled, "reason": "",
    }


def _ratio_interval(y: np.ndarray, s: np.ndarray, p: np.ndarray,
                    uncertainty: dict[str, Any] | None, *, n_boot: int, seed: int,
                    confidence: float) -> tuple[float, float]:
    """Step: the bootstrap interval of O/E (rows resampled, and one calibration map each)."""
    probs = replicate_probabilities(uncertainty, p, s)  # (replicates, n)
    rng = np.random.default_rng([seed, 11])
    ratios = np.empty(n_boot)
    for b, m in enumerate(rng.integers(0, len(probs), n_boot)):  # one map per replicate
        rows = rng.integers(0, len(y), len(y))
        ratios[b] = y[rows].sum() / max(probs[m, rows].sum(), _EPS)
    alpha = (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.quantile(ratios, [alpha, 1.0 - alpha]))
    return low, high


def _judge_ratio(out: dict[str, Any], observed: float, expected: float, low: float,
                 high: float, *, tolerance: float, confidence: float) -> None:
    """Step: flag an O/E whose whole interval lies outside the tolerance; sets the reason."""
    ratio = observed / expected
    upper, lower = 1.0 + tolerance, 1.0 / (1.0 + tolerance)
    flagged = bool(low > upper or high < lower)
    direction = "under" if ratio > 1 else "over"
    out.update(status=DRIFT if flagged else NO_DRIFT, flagged=flagged, ratio=round(ratio, 6),
               low=round(low, 6), high=round(high, 6), direction=direction)
    what = ("more positives than the model expected (it under-predicts)" if ratio > 1
            else "fewer positives than the model expected (it over-predicts)")
    out["reason"] = (
        f"{observed:.0f} positives arrived where the calibrated model expected {expected:.1f} "
        f"(O/E {ratio:.3f}, {confidence:.0%} interval {low:.3f} .. {high:.3f}; tolerance "
        f"{lower:.3f} .. {upper:.3f}): "
        + (f"flagged, {what}" if flagged else
           "within tolerance" if lower <= ratio <= upper else
           "not flagged: the interval reaches into the tolerance")
    )


__all__ = [
    "ASSUMPTIONS",
    "ESTIMATOR_JSON",
    "ESTIMATOR_NPZ",
    "LEGACY_LOSS_MODEL_FILE",
    "LOSS_MODEL_FILE",
    "PerformanceEstimator",
    "apply_calibration",
    "calibration_error",
    "calibration_replicates",
    "estimate_classification",
    "estimate_regression",
    "estimated_drift",
    "fit_calibration",
    "prediction_interval",
    "realized_calibration",
    "reliability",
]
