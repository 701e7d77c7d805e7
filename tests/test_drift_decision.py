"""The decision rule (BH + effect size), the dataset verdict and prediction drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_lifecycle.drift.decision import (
    DRIFT,
    INSUFFICIENT,
    NO_DRIFT,
    benjamini_hochberg,
    data_drift,
    prediction_drift,
    prepare_batch,
)
from ml_lifecycle.drift.profile import ReferenceProfile, build_profile
from ml_lifecycle.drift.reference import build_numeric_reference
from ml_lifecycle.drift.settings import DriftConfig

CFG = DriftConfig()


def _numeric_profile(reference: pd.DataFrame, importances: dict[str, float] | None = None,
                     cfg: DriftConfig = CFG) -> ReferenceProfile:
    return build_profile(reference, numeric=list(reference.columns), categorical=[],
                         settings=cfg, importances=importances)


def _check(profile: ReferenceProfile, batch: pd.DataFrame, cfg: DriftConfig = CFG) -> dict:
    return data_drift(profile, prepare_batch(profile, batch, cfg), cfg, n_rows=len(batch))


def _normal_frame(rng: np.random.Generator, n: int, k: int) -> pd.DataFrame:
    return pd.DataFrame(rng.standard_normal((n, k)), columns=[f"x{i}" for i in range(k)])


def test_benjamini_hochberg_matches_the_step_up_procedure() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, np.nan])
    adj = benjamini_hochberg(p)
    order = np.argsort(p[:5])
    ranked = p[:5][order] * 5 / np.arange(1, 6)
    expected = np.minimum.accumulate(ranked[::-1])[::-1]
    assert np.allclose(adj[:5][order], expected)
    assert np.isnan(adj[5])
    assert list(adj[:5] <= 0.05) == [True, True, True, True, False]


def test_identical_distributions_are_never_flagged() -> None:
    rng = np.random.default_rng(1)
    profile = _numeric_profile(_normal_frame(rng, 20_000, 5))
    for _ in range(30):
        result = _check(profile, _normal_frame(rng, 5000, 5))
        assert result["verdict"] == NO_DRIFT and result["n_drifted"] == 0


def test_the_reference_itself_is_never_flagged() -> None:
    rng = np.random.default_rng(2)
    reference = _normal_frame(rng, 5000, 4)
    reference["cat"] = rng.choice(list("abcde"), 5000)
    profile = build_profile(reference, numeric=["x0", "x1", "x2", "x3"], categorical=["cat"])
    result = _check(profile, reference)
    assert result["n_drifted"] == 0
    for f in result["features"]:
        assert f["p_value"] == pytest.approx(1.0) and f["effect_size"] == pytest.approx(0.0)


def test_a_shift_of_a_fifth_of_a_standard_deviation_at_5000_rows_is_drift() -> None:
    rng = np.random.default_rng(3)
    profile = _numeric_profile(_normal_frame(rng, 20_000, 5))
    batch = _normal_frame(rng, 5000, 5)
    batch["x2"] += 0.2
    result = _check(profile, batch)
    assert result["drifted_features"] == ["x2"]
    x2 = result["features"][2]
    assert x2["status"] == DRIFT and x2["p_value_adjusted"] < 1e-6
    assert x2["effect_size"] == pytest.approx(0.2, abs=0.04)


@pytest.mark.integration
def test_false_alarms_over_200_days_of_25_features_stay_below_two_percent() -> None:
    """200 daily batches of 10,000 rows drawn from the reference distribution itself."""
    rng = np.random.default_rng(2024)
    k, n, days = 25, 10_000, 200
    cfg = DriftConfig()
    importances = {f"x{i}": float(w) for i, w in enumerate(rng.dirichlet(np.ones(k)))}
    profile = _numeric_profile(_normal_frame(rng, 50_000, k), importances, cfg)
    alarms, drifted_features, min_p = 0, 0, 1.0
    for _ in range(days):
        batch = pd.DataFrame(rng.standard_normal((n, k), dtype=np.float64),
                             columns=[f"x{i}" for i in range(k)])
        result = _check(profile, batch, cfg)
        alarms += result["verdict"] == DRIFT
        drifted_features += result["n_drifted"]
        min_p = min(min_p, *(f["p_value"] for f in result["features"]))
    assert alarms / days <= 0.02
    assert drifted_features / (days * k) <= 0.002
    assert min_p < 0.01  # the raw tests did fire by chance; the decision rule absorbed it


def test_a_tiny_shift_at_a_million_rows_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(4)
    n = 1_000_000
    reference = pd.DataFrame({"x": rng.standard_normal(n),
                              "c": rng.choice(list("abcd"), n, p=[0.4, 0.3, 0.2, 0.1])})
    profile = build_profile(reference, numeric=["x"], categorical=["c"])
    batch = pd.DataFrame({"x": rng.standard_normal(n) + 0.05,
                          "c": rng.choice(list("abcd"), n, p=[0.41, 0.3, 0.19, 0.1])})
    result = _check(profile, batch)
    for f in result["features"]:
        assert f["p_value_adjusted"] < 1e-20, f["feature"]  # a p-value alone would cry wolf
        assert f["tests"]["psi"]["statistic"] < 0.02, f["feature"]
        assert f["status"] == NO_DRIFT, f["feature"]
    assert result["verdict"] == NO_DRIFT


def test_a_batch_of_ten_rows_is_insufficient_data_never_drift() -> None:
    rng = np.random.default_rng(5)
    reference = _normal_frame(rng, 5000, 3)
    reference["c"] = rng.choice(list("ab"), 5000)
    profile = build_profile(reference, numeric=["x0", "x1", "x2"], categorical=["c"])
    batch = _normal_frame(rng, 10, 3) + 5.0  # hugely shifted, but only ten rows
    batch["c"] = "zzz"
    result = _check(profile, batch)
    assert result["verdict"] == INSUFFICIENT and result["n_drifted"] == 0
    assert {f["status"] for f in result["features"]} == {INSUFFICIENT}
    assert "min_rows" in result["reasons"][0]


def test_a_mostly_missing_feature_is_insufficient_alone() -> None:
    rng = np.random.default_rng(6)
    profile = _numeric_profile(_normal_frame(rng, 5000, 3))
    batch = _normal_frame(rng, 1000, 3)
    batch.loc[50:, "x1"] = np.nan
    # the value tests alone: 0 % -> 95 % missing is drift by the missing-share test, which
    # tests/test_drift_missing_share.py covers
    result = _check(profile, batch, DriftConfig(missing_share_test=False))
    status = {f["feature"]: f["status"] for f in result["features"]}
    assert status == {"x0": NO_DRIFT, "x1": INSUFFICIENT, "x2": NO_DRIFT}
    assert result["n_tested"] == 2 and result["verdict"] == NO_DRIFT


def test_drift_in_ignored_features_is_reported_but_weighted_low() -> None:
    rng = np.random.default_rng(7)
    importances = {"x0": 0.9, "x1": 0.02, "x2": 0.03, "x3": 0.05}
    profile = _numeric_profile(_normal_frame(rng, 10_000, 4), importances)
    batch = _normal_frame(rng, 3000, 4)
    batch[["x1", "x2"]] += 1.0
    result = _check(profile, batch)
    assert result["drifted_features"] == ["x1", "x2"]
    assert result["drift_by_share"] and not result["drift_by_importance"]
    assert result["weighted_drift"] == pytest.approx(0.05)
    assert result["verdict"] == DRIFT
    assert any("barely uses" in r for r in result["reasons"])


def test_drift_of_one_important_feature_is_a_dataset_drift() -> None:
    rng = np.random.default_rng(8)
    importances = {"x0": 0.6, "x1": 0.1, "x2": 0.1, "x3": 0.1, "x4": 0.1}
    profile = _numeric_profile(_normal_frame(rng, 10_000, 5), importances)
    batch = _normal_frame(rng, 3000, 5)
    batch["x0"] *= 1.5
    result = _check(profile, batch)
    assert result["drifted_features"] == ["x0"]
    assert result["drift_by_importance"] and not result["drift_by_share"]
    assert result["verdict"] == DRIFT
    assert result["features"][0]["importance_share"] == pytest.approx(0.6)


def test_prediction_drift_on_the_scores() -> None:
    rng = np.random.default_rng(9)
    validation = rng.beta(2, 5, 5000)
    ref = build_numeric_reference(validation, "__score__")
    stable = prediction_drift(ref, rng.beta(2, 5, 3000), CFG, threshold=0.5)
    assert stable["status"] == NO_DRIFT and not stable["drifted"]
    moved = prediction_drift(ref, rng.beta(3, 4, 3000), CFG, threshold=0.5)
    assert moved["status"] == DRIFT and moved["p_value"] < 1e-10
    assert moved["current_positive_rate"] > moved["reference_positive_rate"]
    assert prediction_drift(ref, rng.beta(3, 4, 20), CFG)["status"] == INSUFFICIENT
    assert prediction_drift(None, validation, CFG)["status"] == "unavailable"


def test_thresholds_and_tests_come_from_the_config() -> None:
    rng = np.random.default_rng(10)
    profile = _numeric_profile(_normal_frame(rng, 10_000, 2))
    batch = _normal_frame(rng, 5000, 2)
    batch["x0"] += 0.2
    strict = DriftConfig(thresholds={"wasserstein": 0.5})
    assert _check(profile, batch, strict)["n_drifted"] == 0
    by_psi = DriftConfig(numeric_effect_test="psi", thresholds={"psi": 0.02})
    result = _check(profile, batch, by_psi)
    assert result["drifted_features"] == ["x0"]
    assert result["features"][0]["effect_test"] == "psi"
