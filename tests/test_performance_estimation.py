"""Label-free performance estimation (CBPE for classification, DLE for regression).

The worlds here are simulated so that the truth is known: ``P(y | x)`` is a fixed logistic
function, batches are drawn from shifted feature distributions (covariate shift) and labelled
from the same ``P(y | x)``, or labelled from a changed one (concept change). The model is a
class-weighted logistic regression, as the demo weights its classes: its raw scores are badly
calibrated, so the estimator must calibrate them on the validation split.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ml_lifecycle.drift.decision import DRIFT, INSUFFICIENT, NO_DRIFT, UNAVAILABLE
from ml_lifecycle.drift.estimate import (
    ESTIMATOR_JSON,
    ESTIMATOR_NPZ,
    LOSS_MODEL_FILE,
    PerformanceEstimator,
    apply_calibration,
    calibration_error,
    calibration_replicates,
    estimate_classification,
    estimated_drift,
    fit_calibration,
    fit_sigmoid,
    realized_calibration,
    reliability,
)

BETA = np.array([1.2, -0.9, 0.7, 0.4, 0.0])
INTERCEPT = -2.2  # about 17 % positive on the training distribution
THRESHOLD = 0.5


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> object:
    """One OpenMP thread (as ``make`` sets): many small gradient-boosting predictions on a busy
    machine otherwise spend their time waking threads."""
    with threadpool_limits(limits=1):
        yield


def true_probability(x: np.ndarray, beta: np.ndarray = BETA) -> np.ndarray:
    return 1 / (1 + np.exp(-(INTERCEPT + x @ beta)))


def draw(rng: np.random.Generator, n: int, mu: float | np.ndarray = 0.0, sd: float = 1.0,
         beta: np.ndarray = BETA) -> tuple[np.ndarray, np.ndarray]:
    """Features from N(mu, sd^2 I), labels from the fixed P(y|x) (or ``beta``'s)."""
    x = rng.normal(mu, sd, size=(n, len(BETA)))
    return x, (rng.random(n) < true_probability(x, beta)).astype(int)


def trained(seed: int, *, n_train: int = 20_000, n_val: int = 10_000
            ) -> tuple[np.random.Generator, LogisticRegression, PerformanceEstimator]:
    """A class-weighted model fitted on unshifted rows and its estimator fitted on validation."""
    rng = np.random.default_rng(seed)
    x_train, y_train = draw(rng, n_train)
    x_val, y_val = draw(rng, n_val)
    model = LogisticRegression(class_weight="balanced").fit(x_train, y_train)
    estimator = PerformanceEstimator("classification", threshold=THRESHOLD, seed=seed)
    estimator.fit(y_val, model.predict_proba(x_val)[:, 1])
    return rng, model, estimator


def realized(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"roc_auc": float(roc_auc_score(y, scores)),
            "f1": float(f1_score(y, scores >= THRESHOLD))}


def coverage_under_covariate_shift(seed: int, models: int = 5,
                                   batches_per_model: int = 50) -> dict[str, Any]:
    """The done-criterion's experiment: covariate-shifted batches of 300-2500 rows.

    Each batch moves every feature's mean by up to 0.8 standard deviations and scales the
    spread by 0.8-1.25 (easier and harder batches); P(y|x) never changes. The batches are
    spread over ``models`` deployments, each trained and calibrated on its own rows: all the
    batches of one model share its calibration error, so the share of them that one model's
    intervals cover depends on how lucky its validation split was (an error of two standard
    errors, one model in twenty, costs 5-10 points); the 95 % interval covers that error too,
    which is a statement over validation splits as well as over batches.

    Returns:
        ``coverage`` (share of batches whose realized ROC-AUC / F1 lie inside the estimate's
        interval), ``series`` ((estimated, realized) per batch) and ``methods`` (chosen maps).
    """
    inside = {"roc_auc": 0, "f1": 0}
    series: dict[str, list[tuple[float, float]]] = {"roc_auc": [], "f1": []}
    methods = []
    for k in range(models):
        rng, model, estimator = trained(1000 * seed + k)
        methods.append(estimator.calibration_["method"])
        for _ in range(batches_per_model):
            n = int(rng.integers(300, 2500))
            x, y = draw(rng, n, rng.uniform(-0.8, 0.8, size=len(BETA)), rng.uniform(0.8, 1.25))
            scores = model.predict_proba(x)[:, 1]
            # the estimator's own code path, restricted to the two metrics checked (faster)
            estimate = estimate_classification(
                estimator.calibration_, scores, THRESHOLD, metrics=("roc_auc", "f1"),
                draws=estimator.draws, seed=estimator.seed,
                uncertainty=estimator.calibration_uncertainty_)
            truth = realized(y, scores)
            for metric in inside:
                entry = estimate[metric]
                inside[metric] += entry["low"] <= truth[metric] <= entry["high"]
                series[metric].append((entry["value"], truth[metric]))
    total = models * batches_per_model
    return {"coverage": {m: v / total for m, v in inside.items()}, "series": series,
            "methods": methods}


# --------------------------------------------------------------------------- calibration


def test_calibration_is_learned_from_validation_only() -> None:
    rng, model, estimator = trained(0, n_train=6000, n_val=3000)
    x_test, y_test = draw(rng, 3000)
    scores_test = model.predict_proba(x_test)[:, 1]
    calibration = json.dumps(estimator.calibration_, sort_keys=True)
    uncertainty = json.dumps(estimator.calibration_uncertainty_, sort_keys=True)

    estimator.set_reference(y_test, scores_test)
    first = estimator.reference_["f1"]["realized"]
    # other test labels and other test scores: the reference changes, the calibration does not
    estimator.set_reference(1 - y_test, np.clip(scores_test[::-1] * 0.7, 0, 1))
    assert estimator.reference_["f1"]["realized"] != pytest.approx(first, abs=0.05)
    assert json.dumps(estimator.calibration_, sort_keys=True) == calibration
    assert json.dumps(estimator.calibration_uncertainty_, sort_keys=True) == uncertainty
    assert estimator.calibration_["n_rows"] == 3000  # the validation rows, nothing else


def test_fit_calibration_keeps_calibrated_scores_as_they_are() -> None:
    rng = np.random.default_rng(11)
    chosen = []
    for _ in range(10):  # ten independent validation splits of a perfectly calibrated model
        x, y = draw(rng, 3000)
        chosen.append(fit_calibration(y, true_probability(x), seed=int(rng.integers(1000)))[
            "method"])
    # a map fitted on 3000 rows only adds noise to calibrated scores; it must not be chosen
    # by chance (a comparison of binned calibration errors picks one about half of the time)
    assert chosen.count("none") >= 8, chosen


@pytest.mark.parametrize("distort", ["overconfident", "class_weighted"])
def test_fit_calibration_fixes_badly_calibrated_scores(distort: str) -> None:
    rng = np.random.default_rng(5)
    x, y = draw(rng, 4000)
    logit = INTERCEPT + x @ BETA
    raw = 1 / (1 + np.exp(-(3 * logit if distort == "overconfident" else logit + 1.6)))
    calibration = fit_calibration(y, raw)
    errors = calibration["calibration_error"]  # out-of-fold, on validation rows
    assert calibration["method"] in ("sigmoid", "isotonic")
    assert errors[calibration["method"]] < errors["none"] / 2, errors
    # and on fresh rows of the same distribution the calibrated scores are calibrated
    x_new, y_new = draw(rng, 20_000)
    logit_new = INTERCEPT + x_new @ BETA
    raw_new = 1 / (1 + np.exp(-(3 * logit_new if distort == "overconfident"
                                else logit_new + 1.6)))
    fixed = calibration_error(y_new, apply_calibration(calibration, raw_new))
    assert fixed < 0.02 < calibration_error(y_new, raw_new)


def _sklearn_sigmoid(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    lr = LogisticRegression(C=1e6, tol=1e-12, max_iter=100_000).fit(x[:, None], y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


@pytest.mark.parametrize("case", ["calibrated", "overconfident", "shifted", "nearly_separable",
                                  "tiny"])
def test_fit_sigmoid_finds_scikit_learns_logistic_regression(case: str) -> None:
    rng = np.random.default_rng(len(case))
    n = 30 if case == "tiny" else 4000
    x = rng.normal(0.0, 2.0, n)
    true = {"calibrated": x, "overconfident": x / 3, "shifted": 0.8 * x - 1.5,
            "nearly_separable": 8 * x, "tiny": x}[case]
    y = (rng.random(n) < 1 / (1 + np.exp(-true))).astype(float)
    a, b = fit_sigmoid(x, y)
    want_a, want_b = _sklearn_sigmoid(x, y)
    assert a.shape == b.shape == (1,)
    assert a[0] == pytest.approx(want_a, rel=1e-5, abs=1e-6)
    assert b[0] == pytest.approx(want_b, rel=1e-5, abs=1e-6)


def test_fit_sigmoid_with_bootstrap_counts_is_the_fit_on_the_resampled_rows() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.5, 1500)
    y = (rng.random(1500) < 1 / (1 + np.exp(-(0.7 * x + 0.4)))).astype(float)
    draws = [rng.integers(0, 1500, 1500) for _ in range(6)]
    counts = np.stack([np.bincount(idx, minlength=1500) for idx in draws])
    a, b = fit_sigmoid(x, y, counts)
    for r, idx in enumerate(draws):  # each replicate on its own, and in a batch of six
        want_a, want_b = _sklearn_sigmoid(x[idx], y[idx])
        assert (a[r], b[r]) == (pytest.approx(want_a, rel=1e-5), pytest.approx(want_b, rel=1e-5))
    assert len(set(np.round(a, 6))) == 6  # six different resamples, six different maps


def test_calibration_replicates_are_the_sigmoid_maps_of_bootstrap_resamples() -> None:
    rng = np.random.default_rng(8)
    x, y = draw(rng, 3000)
    scores = 1 / (1 + np.exp(-(INTERCEPT + x @ BETA + 1.0)))  # miscalibrated
    out = calibration_replicates(y, scores, "none", replicates=20, seed=4)
    assert out is not None and out["method"] == "sigmoid"
    grid, deltas = np.asarray(out["grid"]), np.asarray(out["deltas"])
    assert deltas.shape == (20, len(grid))
    # the same resamples, each refitted by scikit-learn: the deltas agree to the rounding
    logit = np.log(scores / (1 - scores))
    draws = np.random.default_rng([4, 7])
    for r in range(20):
        idx = draws.integers(0, len(y), len(y))
        a, b = _sklearn_sigmoid(logit[idx], y[idx])
        want = apply_calibration({"method": "sigmoid", "a": a, "b": b}, grid) - np.clip(grid, 0, 1)
        np.testing.assert_allclose(deltas[r], want, atol=2e-6)
    assert deltas.std(axis=0).max() > 0.005  # the resamples do move the map


# --------------------------------------------------------------------------- the done-criterion


@pytest.mark.integration
def test_estimate_covers_the_realized_metric_under_covariate_shift() -> None:
    result = coverage_under_covariate_shift(seed=1)
    coverage = result["coverage"]
    # the class weights must have been calibrated away
    assert set(result["methods"]) == {"sigmoid"}, result["methods"]
    message = (f"share of 250 covariate-shifted batches (5 models x 50) whose realized metric "
               f"lies in the 95 % interval: {coverage}")
    assert coverage["roc_auc"] >= 0.90, message
    assert coverage["f1"] >= 0.90, message
    # the estimate follows the batches' real ups and downs, not only their average
    for metric, pairs in result["series"].items():
        estimated, real = np.asarray(pairs).T
        corr = float(np.corrcoef(estimated, real)[0, 1])
        assert corr > 0.7, f"{metric}: correlation of estimated and realized {corr:.2f}"


def test_a_shift_to_harder_rows_lowers_the_estimate_as_it_lowers_the_metric() -> None:
    rng, model, estimator = trained(2)
    x_test, y_test = draw(rng, 5000)
    estimator.set_reference(y_test, model.predict_proba(x_test)[:, 1])
    ref = estimator.reference_["roc_auc"]
    # rows closer together (sd 0.55): the classes overlap more, ranking is harder
    x, y = draw(rng, 3000, 0.0, 0.55)
    scores = model.predict_proba(x)[:, 1]
    estimate = estimator.estimate(scores)["roc_auc"]
    truth = realized(y, scores)["roc_auc"]
    assert ref["realized"] - truth > 0.05  # the shift really hurts
    assert ref["estimated"] - estimate["value"] > 0.05  # and the estimate says so
    # rows further apart: easier, both go up
    x, y = draw(rng, 3000, 0.0, 1.6)
    scores = model.predict_proba(x)[:, 1]
    assert estimator.estimate(scores)["roc_auc"]["value"] - ref["estimated"] > 0.03
    assert realized(y, scores)["roc_auc"] - ref["realized"] > 0.03


def test_a_concept_change_is_invisible_to_the_estimate() -> None:
    """The stated assumption: P(y|x) unchanged. When it changes, only labels can tell."""
    rng, model, estimator = trained(3)
    x_test, y_test = draw(rng, 5000)
    estimator.set_reference(y_test, model.predict_proba(x_test)[:, 1])
    ref = estimator.reference_["roc_auc"]
    changed = BETA * np.array([-1.0, 1.0, 1.0, 1.0, 1.0])  # the first feature now protects
    x, y = draw(rng, 3000, beta=changed)  # same inputs, other labels
    scores = model.predict_proba(x)[:, 1]
    estimate = estimator.estimate(scores)["roc_auc"]
    truth = realized(y, scores)["roc_auc"]
    assert ref["realized"] - truth > 0.25  # the model is badly hurt
    assert abs(estimate["value"] - ref["estimated"]) < 0.02  # the estimate sees nothing
    assert truth < estimate["low"]


def test_a_batch_larger_than_max_rows_scales_the_sampling_error_only() -> None:
    rng, model, estimator = trained(4, n_train=6000, n_val=2000)
    x, _ = draw(rng, 100_000, 0.3)
    scores = model.predict_proba(x)[:, 1]

    def width(n: int, uncertainty: object) -> float:
        e = estimate_classification(estimator.calibration_, scores[:n], THRESHOLD,
                                    metrics=("roc_auc",), max_rows=5000,
                                    uncertainty=uncertainty)["roc_auc"]
        return e["high"] - e["low"]

    sampling_5k, sampling_100k = width(5000, None), width(100_000, None)
    # sampling error alone shrinks like 1 / sqrt(n): by sqrt(20) from 5k to 100k rows
    assert sampling_100k == pytest.approx(sampling_5k / np.sqrt(20), rel=0.35)
    # the calibration's error does not shrink with the batch: it keeps the interval wide
    both_100k = width(100_000, estimator.calibration_uncertainty_)
    assert both_100k > 2 * sampling_100k


def test_empty_and_non_finite_batches_give_no_estimate() -> None:
    _, _, estimator = trained(6, n_train=3000, n_val=1500)
    empty = estimator.estimate(np.array([np.nan, np.inf]))
    assert all(v == {"value": None, "low": None, "high": None} for v in empty.values())
    one_side = estimator.estimate(np.full(300, 0.01))  # nobody above the threshold
    assert one_side["recall"]["value"] == pytest.approx(0.0)
    assert one_side["roc_auc"]["value"] == pytest.approx(0.5)  # every score tied


# --------------------------------------------------------------------------- regression (DLE)


REG_COLUMNS = ["x0", "x1", "x2"]


def draw_regression(rng: np.random.Generator, n: int, mu0: float = 0.0
                    ) -> tuple[pd.DataFrame, np.ndarray]:
    """Noise sd 1, but 3 where x0 > 1 (16 % of the training rows): heteroscedastic."""
    x = rng.normal(0.0, 1.0, size=(n, 3))
    x[:, 0] += mu0
    noise = np.where(x[:, 0] > 1.0, 3.0, 1.0)
    y = 2 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] ** 2 + rng.normal(0, 1, n) * noise
    return pd.DataFrame(x, columns=REG_COLUMNS), y


@pytest.fixture(scope="module")
def regression() -> tuple[np.random.Generator, Pipeline, PerformanceEstimator]:
    rng = np.random.default_rng(21)
    x_train, y_train = draw_regression(rng, 8000)
    x_val, y_val = draw_regression(rng, 8000)
    pipeline = Pipeline([("scale", StandardScaler()),
                         ("model", HistGradientBoostingRegressor(max_iter=100, random_state=0))])
    pipeline.fit(x_train, y_train)
    estimator = PerformanceEstimator("regression", seed=21)
    estimator.fit(y_val, pipeline.predict(x_val), pipeline=pipeline, x_val=x_val)
    return rng, pipeline, estimator


def _errors(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    e = y - prediction
    return {"mae": float(np.mean(np.abs(e))), "rmse": float(np.sqrt(np.mean(e ** 2)))}


def test_dle_matches_the_realized_error_and_sees_noisier_regions(regression) -> None:
    rng, pipeline, estimator = regression
    clean_x, clean_y = draw_regression(rng, 20_000)
    clean = estimator.estimate(pipeline.predict(clean_x), pipeline=pipeline, features=clean_x)
    truth = _errors(clean_y, pipeline.predict(clean_x))
    for metric in ("mae", "rmse"):
        assert clean[metric]["value"] == pytest.approx(truth[metric], rel=0.05)
    # the batch moves into the noisy region: the model is the same, its errors are not
    noisy_x, noisy_y = draw_regression(rng, 20_000, mu0=1.2)
    noisy = estimator.estimate(pipeline.predict(noisy_x), pipeline=pipeline, features=noisy_x)
    truth_noisy = _errors(noisy_y, pipeline.predict(noisy_x))
    for metric in ("mae", "rmse"):
        assert noisy[metric]["value"] > 1.4 * clean[metric]["value"]
        assert noisy[metric]["value"] == pytest.approx(truth_noisy[metric], rel=0.08)


@pytest.mark.integration
def test_dle_intervals_cover_the_realized_error(regression) -> None:
    rng, pipeline, estimator = regression
    inside = {"mae": 0, "rmse": 0}
    batches = 60
    for _ in range(batches):
        x, y = draw_regression(rng, int(rng.integers(300, 3000)), rng.uniform(-0.5, 1.2))
        prediction = pipeline.predict(x)
        estimate = estimator.estimate(prediction, pipeline=pipeline, features=x)
        truth = _errors(y, prediction)
        for metric in inside:
            inside[metric] += estimate[metric]["low"] <= truth[metric] <= estimate[metric]["high"]
    coverage = {m: v / batches for m, v in inside.items()}
    assert min(coverage.values()) >= 0.8, coverage


def test_regression_needs_the_pipeline_and_features() -> None:
    with pytest.raises(ValueError, match="needs the pipeline"):
        PerformanceEstimator("regression").fit(np.zeros(10), np.zeros(10))


# --------------------------------------------------------------------------- storage


def _stored(directory: Path) -> tuple[dict, dict[str, np.ndarray], object]:
    from ml_lifecycle.model_format import loads

    meta = json.loads((directory / ESTIMATOR_JSON).read_text(encoding="utf-8"))
    with np.load(directory / ESTIMATOR_NPZ, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    path = directory / LOSS_MODEL_FILE  # the safe format: no pickle
    return meta, arrays, (loads(path.read_bytes(), "skops", allow_pickle=False, where=str(path))
                          if path.is_file() else None)


def test_the_reference_estimate_is_the_estimate_of_the_test_scores() -> None:
    rng, model, estimator = trained(9, n_train=4000, n_val=2000)
    x_test, y_test = draw(rng, 1500)
    scores = model.predict_proba(x_test)[:, 1]
    estimator.set_reference(y_test, scores)
    full = estimator.estimate(scores)
    assert {m: r["estimated"] for m, r in estimator.reference_.items()} == {
        m: full[m]["value"] for m in estimator.metrics}
    assert all(r["estimated"] is not None for r in estimator.reference_.values())


def test_classification_estimator_round_trips_through_its_files(tmp_path: Path) -> None:
    rng, model, estimator = trained(7, n_train=4000, n_val=2000)
    x_test, y_test = draw(rng, 1500)
    estimator.set_reference(y_test, model.predict_proba(x_test)[:, 1])
    written = estimator.save(tmp_path)
    assert {Path(str(p)).name for p in written} == {ESTIMATOR_JSON, ESTIMATOR_NPZ}

    meta, arrays, _ = _stored(tmp_path)
    again = PerformanceEstimator.from_stored(meta, arrays)
    x, _ = draw(rng, 25_000, 0.4)  # larger than max_rows: the sampled path too
    scores = model.predict_proba(x)[:, 1]
    assert again.estimate(scores) == estimator.estimate(scores)
    assert again.estimate(scores[:800]) == estimator.estimate(scores[:800])
    assert again.reference_ == estimator.reference_
    np.testing.assert_array_equal(again.test_scores_, estimator.test_scores_)
    assert meta["assumptions"] and meta["method"] == "cbpe"


def test_an_estimator_saved_without_calibration_replicates_still_loads(tmp_path: Path) -> None:
    rng, model, estimator = trained(8, n_train=3000, n_val=1500)
    estimator.set_reference(*(lambda x, y: (y, model.predict_proba(x)[:, 1]))(*draw(rng, 800)))
    meta = estimator.to_dict()
    meta.pop("calibration_uncertainty")
    meta.pop("replicates")
    old = PerformanceEstimator.from_stored(meta)
    entry = old.estimate(model.predict_proba(draw(rng, 1000)[0])[:, 1])["roc_auc"]
    assert entry["low"] <= entry["value"] <= entry["high"]


def test_regression_estimator_round_trips_through_its_files(regression, tmp_path: Path) -> None:
    rng, pipeline, estimator = regression
    x_test, y_test = draw_regression(rng, 1000)
    estimator.set_reference(y_test, pipeline.predict(x_test), pipeline=pipeline, x_test=x_test)
    estimator.save(tmp_path)
    meta, arrays, loss_models = _stored(tmp_path)
    again = PerformanceEstimator.from_stored(meta, arrays, loss_models)
    x, _ = draw_regression(rng, 700, 0.5)
    prediction = pipeline.predict(x)
    assert (again.estimate(prediction, pipeline=pipeline, features=x)
            == estimator.estimate(prediction, pipeline=pipeline, features=x))
    assert meta["method"] == "dle"
    with pytest.raises(ValueError, match=LOSS_MODEL_FILE):
        PerformanceEstimator.from_stored(meta, arrays, None)


# --------------------------------------------------------------------------- the judgement


REFERENCE = {"roc_auc": {"estimated": 0.85, "realized": 0.86},
             "rmse": {"estimated": 2.0, "realized": 2.1}}
judge: Callable[..., dict] = lambda estimates, **kw: estimated_drift(  # noqa: E731
    estimates, REFERENCE, method="cbpe", **{"metric": "roc_auc", "tolerance": 0.05,
                                            "n_rows": 1000, **kw})


def _auc(value: float, low: float, high: float) -> dict:
    return {"roc_auc": {"value": value, "low": low, "high": high}}


def test_a_drop_beyond_tolerance_with_the_interval_below_the_reference_is_flagged() -> None:
    out = judge(_auc(0.75, 0.72, 0.78))
    assert out["status"] == DRIFT and out["flagged"]
    assert out["drop"] == pytest.approx(0.10)
    assert out["tolerance"] == pytest.approx(0.05 * 0.85)  # relative to the reference
    assert out["drop_low"] == pytest.approx(0.07)
    assert out["reference_realized"] == 0.86 and "flagged" in out["reason"]
    assert out["metrics"]["roc_auc"]["reference_value"] == 0.85


def test_a_drop_within_tolerance_or_inside_the_noise_is_not_flagged() -> None:
    small = judge(_auc(0.83, 0.80, 0.86))
    assert small["status"] == NO_DRIFT and not small["flagged"]
    assert "within tolerance" in small["reason"]
    noisy = judge(_auc(0.78, 0.70, 0.86))  # beyond tolerance, but the interval holds 0.85
    assert noisy["status"] == NO_DRIFT and not noisy["flagged"]
    assert "interval includes no drop" in noisy["reason"]
    absolute = judge(_auc(0.78, 0.76, 0.80), tolerance=0.1, tolerance_mode="absolute")
    assert not absolute["flagged"] and absolute["tolerance"] == 0.1


def test_an_error_metric_is_flagged_when_it_rises() -> None:
    out = judge({"rmse": {"value": 2.6, "low": 2.4, "high": 2.8}}, metric="rmse")
    assert out["flagged"] and not out["higher_is_better"]
    assert out["drop"] == pytest.approx(0.6) and out["drop_low"] == pytest.approx(0.4)
    assert not judge({"rmse": {"value": 1.5, "low": 1.4, "high": 1.6}}, metric="rmse")["flagged"]


def test_small_batches_and_missing_estimates_are_not_judged() -> None:
    small = judge(_auc(0.5, 0.3, 0.7), n_rows=50, min_rows=100)
    assert small["status"] == INSUFFICIENT and not small["flagged"]
    assert "50 rows" in small["reason"]
    undefined = judge(_auc(0.5, None, None))  # type: ignore[arg-type]
    assert undefined["status"] == INSUFFICIENT
    none = judge(None)
    assert none["status"] == UNAVAILABLE and not none["flagged"] and none["value"] is None
    other = judge({"f1": {"value": 0.5, "low": 0.4, "high": 0.6}})
    assert other["status"] == UNAVAILABLE and "no estimate of 'roc_auc'" in other["reason"]


def test_an_unreliable_estimate_says_so() -> None:
    out = judge(_auc(0.75, 0.72, 0.78), reliability_value=0.6,
                outside={"distance_km": 0.5, "region": 0.0})
    assert out["flagged"] and not out["reliable"]
    assert out["outside_support"] == {"distance_km": 0.5}
    assert "reliability 60%" in out["reason"]


def test_reliability_weights_the_outside_share_by_importance() -> None:
    columns = {"a": {"out_of_range_share": 0.5}, "b": {"unseen_share": 0.0},
               "c": {"out_of_range_share": None}}
    value, outside = reliability(columns, {"a": 0.0, "b": 1.0, "c": 1.0})
    assert value == 1.0 and outside == {"a": 0.5, "b": 0.0, "c": 0.0}
    assert reliability(columns, {"a": 1.0, "b": 0.0, "c": 0.0})[0] == pytest.approx(0.5)
    assert reliability(columns, {"a": 1.0, "b": 1.0, "c": -5.0})[0] == pytest.approx(0.75)
    # no positive importance at all: every feature weighs the same
    assert reliability(columns, {"a": -1.0})[0] == pytest.approx(1 - 0.5 / 3)
    assert reliability({}, {"a": 1.0}) == (1.0, {})


# --------------------------------------------------------------------------- realized calibration


def _labelled_batch(rng: np.random.Generator, model: LogisticRegression, n: int,
                    beta: np.ndarray = BETA, mu: float | np.ndarray = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    x, y = draw(rng, n, mu, beta=beta)
    return y, model.predict_proba(x)[:, 1]


@pytest.mark.integration
def test_realized_calibration_stays_quiet_on_a_calibrated_model_at_every_batch_size() -> None:
    """Minimum-effect test: flagged only when the whole O/E interval is beyond the tolerance,
    so clean batches of 300 rows alarm no more than batches of 5,000 (the daily-noise false
    flags of a point-beyond-tolerance rule grow as batches shrink)."""
    flagged, ratios = 0, []
    for k in range(4):
        rng, model, estimator = trained(500 + k)
        for n in (300, 1000, 5000) * 20:
            y, scores = _labelled_batch(rng, model, n,
                                        mu=rng.uniform(-0.5, 0.5, size=len(BETA)))
            out = realized_calibration(y, scores, estimator.calibration_,
                                       uncertainty=estimator.calibration_uncertainty_,
                                       min_labelled=100, n_boot=200, seed=k)
            assert out["status"] in (NO_DRIFT, DRIFT, INSUFFICIENT)
            if out["status"] == INSUFFICIENT:
                continue
            assert out["low"] <= out["ratio"] <= out["high"]
            ratios.append(out["ratio"])
            flagged += out["flagged"]
    assert len(ratios) >= 200
    assert flagged / len(ratios) <= 0.01, f"{flagged} of {len(ratios)} clean batches flagged"
    # covariate shift with P(y|x) fixed keeps a calibrated model calibrated on average
    assert abs(float(np.median(ratios)) - 1.0) < 0.05


def test_realized_calibration_flags_a_model_wrong_about_the_positive_rate() -> None:
    rng, model, estimator = trained(11)
    kwargs = {"uncertainty": estimator.calibration_uncertainty_, "n_boot": 200}
    # more positives than the model expects: a stronger intercept in the true P(y|x)
    x = rng.normal(size=(4000, len(BETA)))
    y_more = (rng.random(4000) < 1 / (1 + np.exp(-(INTERCEPT + 0.6 + x @ BETA)))).astype(int)
    under = realized_calibration(y_more, model.predict_proba(x)[:, 1], estimator.calibration_,
                                 **kwargs)
    assert under["flagged"] and under["status"] == DRIFT and under["direction"] == "under"
    assert under["low"] > 1.10 and "under-predicts" in under["reason"]
    assert under["observed"] == y_more.sum()
    y_fewer = (rng.random(4000) < 1 / (1 + np.exp(-(INTERCEPT - 0.6 + x @ BETA)))).astype(int)
    over = realized_calibration(y_fewer, model.predict_proba(x)[:, 1], estimator.calibration_,
                                **kwargs)
    assert over["flagged"] and over["direction"] == "over" and over["high"] < 1 / 1.10
    # the same miscalibration on too few rows is not judged beyond its interval
    small = realized_calibration(y_more[:150], model.predict_proba(x[:150])[:, 1],
                                 estimator.calibration_, min_labelled=100, **kwargs)
    assert not small["flagged"] and small["low"] <= 1.10
    # a tolerance wider than the miscalibration keeps it quiet
    wide = realized_calibration(y_more, model.predict_proba(x)[:, 1], estimator.calibration_,
                                tolerance=0.8, **kwargs)
    assert not wide["flagged"] and wide["status"] == NO_DRIFT


def test_realized_calibration_needs_a_map_and_enough_rows() -> None:
    rng, model, estimator = trained(12)
    y, scores = _labelled_batch(rng, model, 1000)
    assert realized_calibration(y, scores, None)["status"] == UNAVAILABLE
    few = realized_calibration(y[:50], scores[:50], estimator.calibration_)
    assert few["status"] == INSUFFICIENT and "labelled rows" in few["reason"]
    rare = realized_calibration(np.zeros(500), np.full(500, 0.001), {"method": "none"})
    assert rare["status"] == INSUFFICIENT and "expected positives" in rare["reason"]
