"""Concept drift from delayed labels: detection, stability, minimum data, weighted metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from conftest import make_config_dict
from ml_lifecycle.config import config_from_dict
from ml_lifecycle.drift.concept import (
    concept_drift,
    load_labelled,
    trailing_window,
)
from ml_lifecycle.errors import DataError
from ml_lifecycle.metrics import compute_metric, weighted_metric


def _world(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, 3))
    segment = x[:, 2] > 0.3  # about 38% of the rows
    logit = 1.8 * x[:, 0] - 1.2 * x[:, 1] + 0.5 * x[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y, segment


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, float]:
    rng = np.random.default_rng(0)
    x, y, _ = _world(rng, 8000)
    model = LogisticRegression().fit(x[:6000], y[:6000])
    test_auc = compute_metric("classification", "roc_auc", y[6000:],
                              model.predict_proba(x[6000:])[:, 1])
    return model, test_auc


def _check(y: np.ndarray, scores: np.ndarray, reference: float, **kw: object) -> dict:
    return concept_drift(y, scores, task="classification", metric="roc_auc",
                         reference_value=reference, **kw)  # type: ignore[arg-type]


def test_a_label_flip_in_30_percent_of_a_segment_is_detected(fitted) -> None:
    model, test_auc = fitted
    rng = np.random.default_rng(1)
    x, y, segment = _world(rng, 4000)
    flip = segment & (rng.random(len(y)) < 0.3)
    y_new = np.where(flip, 1 - y, y)
    result = _check(y_new, model.predict_proba(x)[:, 1], test_auc)
    assert result["status"] == "drift" and result["flagged"]
    assert result["drop"] > result["tolerance"] and result["drop_low"] > 0
    assert result["n_labelled"] == 4000


def test_stable_labels_are_not_flagged(fitted) -> None:
    model, test_auc = fitted
    for seed in range(2, 7):
        rng = np.random.default_rng(seed)
        x, y, _ = _world(rng, 4000)
        result = _check(y, model.predict_proba(x)[:, 1], test_auc)
        assert result["status"] == "no_drift" and not result["flagged"], seed
        assert result["drop_low"] <= 0 or result["drop"] <= result["tolerance"]


def test_a_real_but_tolerated_drop_is_not_flagged(fitted) -> None:
    model, test_auc = fitted
    rng = np.random.default_rng(8)
    x, y, segment = _world(rng, 4000)
    y = np.where(segment & (rng.random(len(y)) < 0.3), 1 - y, y)
    loose = _check(y, model.predict_proba(x)[:, 1], test_auc, tolerance=0.5)
    assert loose["status"] == "no_drift" and loose["drop_low"] > 0


def test_too_few_labels_or_one_class_is_insufficient(fitted) -> None:
    model, test_auc = fitted
    rng = np.random.default_rng(9)
    x, y, _ = _world(rng, 150)
    scores = model.predict_proba(x)[:, 1]
    assert _check(y, scores, test_auc)["status"] == "insufficient_data"
    assert _check(np.zeros(500), rng.random(500), test_auc)["status"] == "insufficient_data"
    assert _check(y, scores, None)["status"] == "unavailable"


def test_missing_labels_are_ignored_not_counted(fitted) -> None:
    model, test_auc = fitted
    rng = np.random.default_rng(10)
    x, y, _ = _world(rng, 1000)
    y = y.astype(float)
    y[:900] = np.nan
    result = _check(y, model.predict_proba(x)[:, 1], test_auc)
    assert result["n_labelled"] == 100 and result["status"] == "insufficient_data"


def test_regression_error_increase_is_flagged() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6000, 2))
    y = 3 * x[:, 0] - x[:, 1] + rng.normal(size=6000)
    model = LinearRegression().fit(x[:4000], y[:4000])
    test_rmse = compute_metric("regression", "rmse", y[4000:], model.predict(x[4000:]))
    x_new = rng.normal(size=(3000, 2))
    stable = 3 * x_new[:, 0] - x_new[:, 1] + rng.normal(size=3000)
    changed = 3.6 * x_new[:, 0] - x_new[:, 1] + rng.normal(size=3000)
    kw = {"task": "regression", "metric": "rmse", "reference_value": test_rmse}
    assert concept_drift(stable, model.predict(x_new), **kw)["status"] == "no_drift"
    result = concept_drift(changed, model.predict(x_new), **kw)
    assert result["status"] == "drift" and not result["higher_is_better"]
    assert result["value"] > test_rmse


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "brier", "accuracy", "precision",
                                    "recall", "f1", "balanced_accuracy"])
def test_weighted_classification_metrics_equal_the_evaluation_metrics(metric: str) -> None:
    rng = np.random.default_rng(12)
    y = (rng.random(2000) < 0.3).astype(float)
    scores = np.round(np.clip(0.3 * y + 0.7 * rng.random(2000), 0, 1), 2)  # many ties
    ones = weighted_metric(metric, y, scores, np.ones((1, 2000)), 0.4)[0]
    assert ones == pytest.approx(compute_metric("classification", metric, y, scores, 0.4))
    idx = rng.integers(0, 2000, 2000)  # a bootstrap resample equals integer weights
    counts = np.bincount(idx, minlength=2000)[None, :]
    expected = compute_metric("classification", metric, y[idx], scores[idx], 0.4)
    assert weighted_metric(metric, y, scores, counts, 0.4)[0] == pytest.approx(expected)


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_weighted_regression_metrics_equal_the_evaluation_metrics(metric: str) -> None:
    rng = np.random.default_rng(13)
    y = rng.normal(size=1000)
    pred = y + rng.normal(size=1000) * 0.5
    idx = rng.integers(0, 1000, 1000)
    counts = np.bincount(idx, minlength=1000)[None, :]
    expected = compute_metric("regression", metric, y[idx], pred[idx])
    assert weighted_metric(metric, y, pred, counts)[0] == pytest.approx(expected)


def test_labels_and_predictions_are_joined_by_id_in_a_trailing_window(tmp_path: Path) -> None:
    cfg = config_from_dict(make_config_dict(str(tmp_path / "t.csv"), str(tmp_path / "reg")))
    days = pd.date_range("2026-03-01", periods=40, freq="D")
    preds = pd.DataFrame({"row_id": [f"r{i}" for i in range(40)], "score": np.linspace(0, 1, 40),
                          "ts": days.astype(str)})
    labels = pd.DataFrame({"row_id": [f"r{i}" for i in range(39, -1, -1)],
                           "label": [i % 2 for i in range(39, -1, -1)]})
    preds.to_csv(tmp_path / "p.csv", index=False)
    labels.to_parquet(tmp_path / "l.parquet")
    frame = load_labelled(cfg, [(str(tmp_path / "l.parquet"), str(tmp_path / "p.csv"))])
    assert list(frame.columns) == ["y", "score", "time"] and len(frame) == 40
    assert frame.loc[frame["score"] == 0.0, "y"].item() == 0.0  # r0 joined to its own label
    window = trailing_window(frame, day="2026-04-09", window_days=10, max_rows=1000)
    assert len(window) == 10 and pd.Timestamp(window["time"].max()) == pd.Timestamp("2026-04-09")
    assert len(trailing_window(frame, day="2026-04-09", window_days=None, max_rows=5)) == 5
    with pytest.raises(DataError, match="score column"):
        load_labelled(cfg, labels)  # a labelled frame without scores


@pytest.mark.integration
def test_the_test_splits_own_error_enters_the_interval_of_the_drop() -> None:
    """Before: the test-split metric was treated as exact. On a 400-row test split its own
    sampling error is as large as the tolerance, so the interval of the drop was too narrow:
    it missed the true drop (zero here: same distribution) in ~40 % of clean windows and flagged
    clean windows whenever the test split happened to be lucky. Resampling the test rows too
    (``reference_y`` / ``reference_scores``) restores the interval's coverage."""
    rng = np.random.default_rng(11)
    covered = {False: 0, True: 0}
    flagged = {False: 0, True: 0}
    reps = 120
    for _ in range(reps):
        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            score = rng.random(n)  # a calibrated model: P(y=1 | score) = 0.25 + 0.5 * score
            return (rng.random(n) < 0.25 + 0.5 * score).astype(float), score

        test_y, test_s = draw(400)
        win_y, win_s = draw(3000)
        ref = compute_metric("classification", "roc_auc", test_y, test_s, 0.5)
        for resample in (False, True):
            out = concept_drift(
                win_y, win_s, task="classification", metric="roc_auc", reference_value=ref,
                tolerance=0.02, tolerance_mode="absolute", min_labelled=100, n_boot=200,
                seed=int(rng.integers(1 << 30)),
                reference_y=test_y if resample else None,
                reference_scores=test_s if resample else None)
            assert out["reference_resampled"] is resample
            covered[resample] += out["drop_low"] <= 0.0 <= out["drop_high"]
            flagged[resample] += out["flagged"]
    assert covered[True] / reps >= 0.88, covered
    assert covered[False] / reps <= 0.75, covered  # the old interval ignored the test's error
    assert flagged[True] / reps <= 0.08, flagged  # one-sided 2.5 % level, 120 windows
    assert flagged[False] > 2 * max(flagged[True], 1), flagged


def test_one_rule_picks_the_judged_days_in_production_and_in_the_backtest() -> None:
    """Before: the backtest judged concept drift on days an earlier champion scored."""
    from ml_lifecycle.backtest import Batch, _labelled_scores
    from ml_lifecycle.drift.concept import judged_days

    candidates = {"2026-03-01": [1], "2026-03-02": [1, 2], "2026-03-03": [2],
                  "2026-03-04": [2], "2026-03-09": [2]}
    assert judged_days(candidates, day="2026-03-05", window_days=30, champion=2) == [
        "2026-03-03", "2026-03-04"]
    assert judged_days(candidates, day="2026-03-05", window_days=3, champion=2) == [
        "2026-03-03", "2026-03-04"]
    assert judged_days(candidates, day="2026-03-05", window_days=2, champion=None) == [
        "2026-03-03", "2026-03-04"]
    assert judged_days(candidates, day="2026-03-05", window_days=0, champion=None) == [
        "2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    # the realized metric is judged on the most recent labelled day(s): a chunk
    assert judged_days(candidates, day="2026-03-05", window_days=30, champion=2,
                       recent_days=1) == ["2026-03-04"]

    cfg = config_from_dict(make_config_dict("unused.csv", "unused-registry"))
    scored, batches = {}, []
    for day, version in (("2026-03-01", 1), ("2026-03-02", 1), ("2026-03-03", 2)):
        ids = [f"{day}-{i}" for i in range(4)]
        scored[day] = pd.DataFrame({"row_id": ids, "score": [0.1, 0.9, 0.2, 0.8],
                                    "model_version": version})
        batches.append(Batch(day=day, path="unused", labels=pd.DataFrame(
            {"row_id": ids, "label": [0, 1, 0, 1]}), labels_available=day))
    rows = _labelled_scores(cfg, scored, batches, "2026-03-04", champion=2)
    assert rows is not None and set(rows["row_id"].str[:10]) == {"2026-03-03"}
    assert _labelled_scores(cfg, scored, batches, "2026-03-04", champion=3) is None
