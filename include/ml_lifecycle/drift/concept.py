"""Concept drift from delayed labels: is the model still as good as on its test split?

:func:`concept_drift` is a pure function: given the labels and the model's scores for the rows of
past batches whose labels have arrived (a trailing window), it computes the model's metric, its
drop against the test value recorded at training, and a bootstrap interval of that drop. The
model is flagged when the drop exceeds the tolerance AND the whole interval lies above zero (the
drop is not sampling noise), with a minimum number of labelled rows.

:func:`load_labelled` assembles the window from ``(labels_path, predictions_path)`` pairs joined
by the id column, or takes a frame of already scored and labelled rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..labels import apply_label_map, binary_labels, text_key
from ..metrics import bootstrap_metric, compute_metric, higher_is_better
from ..scoring import PROBA_PREFIX
from .decision import DRIFT, INSUFFICIENT, NO_DRIFT, UNAVAILABLE

if TYPE_CHECKING:
    from ..config import Config

SCORE_COLUMNS = ("score", "prediction", "probability", "proba", "y_score")
DEFAULT_METRIC = {"classification": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "rmse"}


# --------------------------------------------------------------------------- the test


def concept_drift(
    y_true: Any,
    scores: Any,
    *,
    task: str,
    metric: str,
    reference_value: float | None,
    tolerance: float = 0.05,
    tolerance_mode: str = "relative",
    min_labelled: int = 200,
    n_boot: int = 300,
    confidence: float = 0.95,
    seed: int = 42,
    threshold: float = 0.5,
    reference_y: Any = None,
    reference_scores: Any = None,
) -> dict[str, Any]:
    """Compare the model's metric on labelled recent rows with its test metric.

    Args:
        y_true: labels (classification: 0/1) or targets of the window's rows.
        scores: the model's scores (P(positive)) or predictions for the same rows.
        task: ``classification`` or ``regression``.
        metric: metric name (see :func:`~ml_lifecycle.metrics.weighted_metric`).
        reference_value: the metric on the test split at training time (None: unavailable).
        tolerance: allowed drop; a share of ``reference_value`` (relative) or metric units.
        tolerance_mode: ``relative`` or ``absolute``.
        min_labelled: fewer labelled rows give ``insufficient_data``.
        n_boot: bootstrap replicates of the window's rows.
        confidence: level of the interval of the drop.
        seed: bootstrap seed.
        threshold: decision threshold for threshold metrics.
        reference_y: the test split's labels (a sample), with ``reference_scores``: the test
            value is then resampled too, so the interval of the drop carries the test split's
            own sampling error (on a 400-row test split it is as large as a 5 % tolerance).
        reference_scores: the model's scores on those test rows.

    Returns:
        JSON-able dict: ``status`` (``drift`` / ``no_drift`` / ``insufficient_data`` /
        ``unavailable``), ``flagged``, ``value``, ``reference_value``, ``drop``, ``drop_low``,
        ``drop_high``, ``tolerance`` (in metric units), ``n_labelled``, ``reason``.
    """
    y, s = _finite_rows(y_true, scores)
    out = _unjudged(metric, reference_value, tolerance_mode=tolerance_mode,
                    confidence=confidence, n_labelled=len(y), min_labelled=min_labelled)
    if reference_value is None or not np.isfinite(reference_value):
        out["reason"] = f"the model card has no test value of '{metric}'"
        return out
    tol = tolerance * abs(reference_value) if tolerance_mode == "relative" else tolerance
    out["tolerance"] = tol
    if task == "classification" and len(y):
        out["positive_rate"] = float(y.mean())
    insufficient = _insufficient_reason(task, y, min_labelled)
    if insufficient:
        out.update(status=INSUFFICIENT, reason=insufficient)
        return out
    if task == "multiclass":  # a class absent from the window is left out of the averages
        out["classes_present"] = len(np.unique(y))
        out["per_class_roc_auc"] = _per_class_auc(y, s, reference_y, reference_scores)
    sign = 1.0 if higher_is_better(metric) else -1.0
    value = compute_metric(task, metric, y, s, threshold)
    drop = sign * (reference_value - value)
    low, high = _drop_interval(out, metric, y, s, reference_value, sign=sign, n_boot=n_boot,
                               confidence=confidence, seed=seed, threshold=threshold,
                               reference_y=reference_y, reference_scores=reference_scores)
    flagged = bool(drop > tol and low > 0)
    out.update(status=DRIFT if flagged else NO_DRIFT, flagged=flagged, value=float(value),
               drop=float(drop), drop_low=low, drop_high=high)
    out["reason"] = _concept_reason(metric, value, len(y), reference_value, drop=drop, tol=tol,
                                    confidence=confidence, low=low, high=high, flagged=flagged)
    return out


def _unjudged(metric: str, reference_value: float | None, *, tolerance_mode: str,
              confidence: float, n_labelled: int, min_labelled: int) -> dict[str, Any]:
    """Step: the result before any judgement (``unavailable``, no value, no drop)."""
    return {
        "status": UNAVAILABLE, "flagged": False, "metric": metric,
        "higher_is_better": higher_is_better(metric), "reference_value": reference_value,
        "value": None, "drop": None, "drop_low": None, "drop_high": None, "tolerance": None,
        "tolerance_mode": tolerance_mode, "confidence": confidence, "n_labelled": n_labelled,
        "min_labelled": min_labelled, "positive_rate": None, "reason": "",
    }


def _finite_rows(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Step: the labels and scores as floats, without the rows where either is not finite."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(scores, dtype=float)  # multiclass: (n, K) class probabilities
    ok = np.isfinite(y) & (np.isfinite(s).all(axis=1) if s.ndim == 2 else np.isfinite(s))
    return y[ok], s[ok]


def _insufficient_reason(task: str, y: np.ndarray, min_labelled: int) -> str | None:
    """Step: why the window is too small to judge (None: it is large and varied enough)."""
    if len(y) < min_labelled:
        return f"{len(y)} labelled rows (< drift.performance_min_labelled={min_labelled})"
    if task in ("classification", "multiclass") and len(np.unique(y)) < 2:
        return "the labelled rows hold one class only"
    return None


def _drop_interval(out: dict[str, Any], metric: str, y: np.ndarray, s: np.ndarray,
                   reference_value: float, *, sign: float, n_boot: int, confidence: float,
                   seed: int, threshold: float, reference_y: Any,
                   reference_scores: Any) -> tuple[float, float]:
    """Step: the bootstrap interval of the drop (sets ``out["reference_resampled"]``)."""
    values = bootstrap_metric(metric, y, s, n_boot=n_boot, seed=seed, threshold=threshold)
    if reference_y is not None and reference_scores is not None and len(reference_y):
        # the test value is an estimate too: resample the test rows alongside
        ref_values = bootstrap_metric(metric, np.asarray(reference_y, dtype=float),
                                      np.asarray(reference_scores, dtype=float), n_boot=n_boot,
                                      seed=seed + 1, threshold=threshold)
        ref_boot = ref_values - np.nanmean(ref_values) + reference_value
        out["reference_resampled"] = True
    else:
        ref_boot = np.full(len(values), reference_value)
        out["reference_resampled"] = False
    ok = np.isfinite(values) & np.isfinite(ref_boot)
    alpha = (1 - confidence) / 2
    drops = sign * (ref_boot[ok] - values[ok])
    return (float(np.quantile(drops, alpha)), float(np.quantile(drops, 1 - alpha))) \
        if len(drops) else (float("nan"), float("nan"))


def _concept_reason(metric: str, value: float, n: int, reference_value: float, *, drop: float,
                    tol: float, confidence: float, low: float, high: float,
                    flagged: bool) -> str:
    """Step: the human-readable reason of a judged window."""
    why = []
    if drop <= tol:
        why.append(f"drop <= tolerance {tol:.4g}")
    if not low > 0:
        why.append("the interval includes no drop")
    return (
        f"{metric} {value:.4g} on {n} labelled rows vs {reference_value:.4g} at test: drop "
        f"{drop:.4g} ({confidence:.0%} interval {low:.4g} .. {high:.4g}); "
        + ("flagged: drop > tolerance and the interval excludes no drop" if flagged
           else "not flagged: " + " and ".join(why))
    )


def _per_class_auc(y: np.ndarray, probs: np.ndarray, reference_y: Any,
                   reference_scores: Any) -> list[dict[str, Any]]:
    """Multiclass: each class's one-vs-rest ROC-AUC on the window and on the test sample (which
    class the model now confuses; None where a class has no positive or no negative row)."""
    def auc(labels: np.ndarray, p: np.ndarray, k: int) -> float | None:
        value = compute_metric("classification", "roc_auc", (labels == k).astype(float), p[:, k])
        return float(value) if np.isfinite(value) else None

    ref_y = None if reference_y is None else np.asarray(reference_y, dtype=float)
    ref_p = None if reference_scores is None else np.asarray(reference_scores, dtype=float)
    usable = ref_y is not None and ref_p is not None and ref_p.ndim == 2 and len(ref_y) > 0
    return [{"class_index": k, "value": auc(y, probs, k),
             "reference_value": auc(ref_y, ref_p, k) if usable else None}
            for k in range(probs.shape[1])]


def judged_days(
    candidates: Mapping[str, Iterable[int] | None],
    *,
    day: str,
    window_days: int | None,
    champion: int | None,
    recent_days: int | None = None,
) -> list[str]:
    """The past days whose labelled scores may judge the champion on ``day`` (one rule for the
    drift check in production, ``lifecycle.concept_pairs``, and for the backtest).

    A past day counts when its labels have arrived by ``day`` and its predictions exist (the
    caller's ``candidates``), it lies within ``drift.performance_window_days`` before ``day``
    (0 or None: no limit) and, with ``champion`` given, every one of its rows was scored by the
    champion: after a promotion the old model's errors are no evidence against the new one.

    Args:
        candidates: ``{past day: model versions that scored it}`` for the past days with
            arrived labels and stored predictions (None: versions unknown, kept only without
            ``champion``).
        day: the checked day, ``YYYY-MM-DD``.
        window_days: look back this many days.
        champion: the model in place on ``day``.
        recent_days: keep only the most recent N of those days
            (``drift.performance_recent_days``; None: all).

    Returns:
        The judged days, oldest first.
    """
    first = (date.fromisoformat(day) - timedelta(days=window_days)).isoformat() \
        if window_days else None
    out = []
    for past, versions in sorted(candidates.items()):
        if past > day or (first and past < first):
            continue
        if champion is not None:
            scored_by = {int(v) for v in versions} if versions is not None else set()
            if scored_by != {int(champion)}:
                continue
        out.append(past)
    return out[-recent_days:] if recent_days else out


# --------------------------------------------------------------------------- loading labels


def _read_table(path: str | Path) -> pd.DataFrame:
    from ..storage import as_path, is_file

    p = as_path(path)
    if not is_file(p):
        raise DataError(f"labels/predictions file '{p}' does not exist")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(str(p))
        return pd.read_csv(str(p), low_memory=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"labels/predictions file '{p}' cannot be read: {exc}") from None


def score_column(frame: pd.DataFrame, preferred: str, source: str) -> str:
    """The column holding the model's score (``drift.score_column`` or a usual name)."""
    for name in (preferred, *SCORE_COLUMNS):
        if name in frame.columns:
            return name
    raise DataError(
        f"{source}: no score column (looked for '{preferred}' and {list(SCORE_COLUMNS)}); "
        f"columns are {list(frame.columns)[:20]}"
    )


def encode_labels(values: pd.Series, cfg: Config, positive_label: Any = None,
                  classes: list[Any] | None = None) -> np.ndarray:
    """Targets as floats: 0/1 for classification (positive label from the card or config),
    the class index in the champion's ``classes`` for multiclass.

    Rows with a missing target (or, multiclass, a class the champion does not know) become NaN
    (and are ignored by :func:`concept_drift`).
    """
    if cfg.task == "multiclass":
        if not classes:
            raise DataError("concept drift: the champion's classes are unknown (its card has "
                            "no data.target.classes); retrain the model")
        index = {str(c): k for k, c in enumerate(classes)}
        mapped = apply_label_map(values, cfg.data.label_map)
        keys = mapped.map(lambda v: None if pd.isna(v) else text_key(v))
        return keys.map(lambda k: index.get(str(k), np.nan) if k is not None
                        else np.nan).to_numpy(dtype="float64")
    if cfg.task == "regression":
        mapped = apply_label_map(values, cfg.data.label_map)
        return pd.to_numeric(mapped, errors="coerce").to_numpy(dtype="float64")
    positive = positive_label if positive_label is not None else cfg.data.positive_label
    if positive is None:
        raise DataError("concept drift: the positive label is unknown (set data.positive_label)")
    return binary_labels(values, positive, label_map=cfg.data.label_map)


def probability_columns(frame: pd.DataFrame, prefix: str = PROBA_PREFIX) -> list[str]:
    """A multiclass predictions frame's ``proba_<class>`` columns (the model's class order)."""
    return [str(c) for c in frame.columns if str(c).startswith(prefix)]


def multiclass_rows(frame: pd.DataFrame, cfg: Config, columns: list[str],
                    prefix: str = PROBA_PREFIX) -> tuple[np.ndarray, np.ndarray]:
    """(class index of each row's label, probabilities) of labelled multiclass predictions;
    the classes are those of the ``proba_<class>`` columns, in their order (NaN: a missing
    label or a class the model does not know)."""
    classes = [c[len(prefix):] for c in columns]
    y = encode_labels(frame[cfg.data.target], cfg, classes=classes)
    return y, frame[columns].to_numpy(dtype="float64")


def load_labelled(
    cfg: Config,
    labels: pd.DataFrame | list[tuple[str, str]] | None,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
) -> pd.DataFrame:
    """Assemble past scored rows whose labels arrived into one frame.

    Args:
        cfg: the config (id, target and time columns, score column, label map).
        labels: ``(labels_path, predictions_path)`` pairs joined by ``data.id_column``, or a frame
            that already holds the target and score columns (and optionally the time column).
        positive_label: the champion's positive class (from its card).
        classes: multiclass: the champion's classes (from its card); the predictions hold
            one ``proba_<class>`` column per class.

    Returns:
        A frame with columns ``y`` (encoded), ``score`` and ``time`` (may be NaT); multiclass
        also ``score_0`` .. ``score_<K-1>`` (the class probabilities, the card's order).

    Raises:
        DataError: unreadable files, missing id/target/score columns.
    """
    from ..data import attach_labels

    target, id_col, time_col = cfg.data.target, cfg.data.id_column, cfg.data.time_column
    if labels is None:
        return pd.DataFrame({"y": [], "score": [], "time": []})
    if isinstance(labels, pd.DataFrame):
        frames = [("labelled frame", labels)]
    else:
        frames = []
        for pair in labels:
            labels_path, predictions_path = pair
            lab, pred = _read_table(labels_path), _read_table(predictions_path)
            if not id_col:
                raise DataError("delayed labels need data.id_column to join labels to predictions")
            joined = attach_labels(pred, lab, id_column=id_col, target=target,
                                   source=f"labels '{labels_path}' + predictions "
                                          f"'{predictions_path}'")
            frames.append((f"predictions '{predictions_path}'", joined))
    parts = []
    for source, frame in frames:
        if target not in frame.columns:
            raise DataError(f"{source}: no target column '{target}'")
        col = score_column(frame, cfg.drift.score_column, source)
        times = pd.to_datetime(frame[time_col], errors="coerce") \
            if time_col and time_col in frame.columns else pd.Series(pd.NaT, index=frame.index)
        part = pd.DataFrame({
            "y": encode_labels(frame[target], cfg, positive_label, classes),
            "score": pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64"),
            "time": times.to_numpy(),
        })
        if cfg.task == "multiclass":
            wanted = [f"{PROBA_PREFIX}{c}" for c in classes or []]
            missing = [c for c in wanted if c not in frame.columns]
            if missing:
                raise DataError(f"{source}: no class probability column(s) {missing[:5]} (a "
                                "multiclass model's predictions hold one proba_<class> column "
                                "per class)")
            for k, name in enumerate(wanted):
                part[f"score_{k}"] = pd.to_numeric(frame[name], errors="coerce").to_numpy(
                    dtype="float64")
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {"y": [], "score": [], "time": []})


def trailing_window(
    labelled: pd.DataFrame, *, day: str | None, window_days: int | None, max_rows: int
) -> pd.DataFrame:
    """Keep the labelled rows of the trailing window before (and on) ``day``, newest last.

    Rows without a time stamp are kept (their batch was chosen by the caller); at most
    ``max_rows`` of the most recent rows remain.
    """
    frame = labelled
    if len(frame) and day and window_days and "time" in frame.columns:
        times = pd.to_datetime(frame["time"], errors="coerce")
        if getattr(times.dt, "tz", None) is not None:
            times = times.dt.tz_localize(None)
        end = pd.Timestamp(date.fromisoformat(day) + timedelta(days=1))
        start = end - pd.Timedelta(days=window_days)
        keep = times.isna() | ((times >= start) & (times < end))
        frame = frame[keep.to_numpy()]
        frame = frame.assign(_t=times[keep.to_numpy()]).sort_values("_t", kind="stable",
                                                                       na_position="first")
        frame = frame.drop(columns="_t")
    if len(frame) > max_rows:
        frame = frame.iloc[-max_rows:]
    return frame.reset_index(drop=True)
