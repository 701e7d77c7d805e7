"""The missing-share test of the data-drift check (each feature's share of missing rows).

Missing values are dropped before the value tests, so a feature going from 2 % to 90 % missing
with its remaining values unchanged is only caught by testing the missing share itself: Fisher's
exact test on the 2 x 2 table (batch / reference x missing / present), in the same
Benjamini-Hochberg family as the value tests, plus an effect size (absolute change of the share)
that must reach ``drift.missing_share_effect``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml_lifecycle.drift.check import evaluate_batch
from ml_lifecycle.drift.decision import (
    DRIFT,
    INSUFFICIENT,
    MISSING_TEST,
    NO_DRIFT,
    benjamini_hochberg,
    data_drift,
    missing_share_test,
    prepare_batch,
)
from ml_lifecycle.drift.profile import ReferenceProfile, build_profile
from ml_lifecycle.drift.settings import DriftConfig

CFG = DriftConfig()
OFF = DriftConfig(missing_share_test=False)
CATS = list("abcd")
CAT_P = [0.4, 0.3, 0.2, 0.1]
# reference missing shares of the module profile (exact: a fixed number of rows is blanked)
REF_MISSING = {"x": 0.02, "y": 0.0, "c": 0.03, "d": 0.0}
IMPORTANCES = {"x": 0.4, "y": 0.3, "c": 0.2, "d": 0.1}


def _blank(frame: pd.DataFrame, rng: np.random.Generator, shares: dict[str, float],
           exact: bool = True) -> pd.DataFrame:
    """Blank ``share`` of each column's rows (exactly that many rows, or Bernoulli draws)."""
    n = len(frame)
    for col, share in shares.items():
        if exact:
            rows = rng.permutation(n)[: round(share * n)]
            mask = np.zeros(n, dtype=bool)
            mask[rows] = True
        else:
            mask = rng.random(n) < share
        frame[col] = frame[col].mask(mask)  # NaN for floats, NaN (missing) for object columns
    return frame


def _rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Complete rows from the reference distribution: x, y ~ N(0, 1), c and d categorical."""
    return pd.DataFrame({
        "x": rng.standard_normal(n), "y": rng.standard_normal(n),
        "c": rng.choice(CATS, n, p=CAT_P).astype(object),
        "d": rng.choice(["p", "q"], n).astype(object),
    })


def _profile(frame: pd.DataFrame, importances: dict[str, float] | None = None
             ) -> ReferenceProfile:
    numeric = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    return build_profile(frame, numeric=numeric, categorical=categorical,
                         importances=importances)


def _check(profile: ReferenceProfile, batch: pd.DataFrame, cfg: DriftConfig = CFG) -> dict:
    return data_drift(profile, prepare_batch(profile, batch, cfg), cfg, n_rows=len(batch))


def _by_name(result: dict) -> dict[str, dict]:
    return {f["feature"]: f for f in result["features"]}


def _by_missing_share(result: dict) -> list[str]:
    """Features drifted through their missing share (profile order)."""
    return [f["feature"] for f in result["features"]
            if (f.get("missing_share") or {}).get("drifted")]


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    """200,000 reference rows: x 2 % and c 3 % missing, y and d complete."""
    rng = np.random.default_rng(100)
    reference = _blank(_rows(rng, 200_000), rng, {"x": 0.02, "c": 0.03})
    prof = _profile(reference, IMPORTANCES)
    for name, share in REF_MISSING.items():
        assert prof.reference(name).missing_rate == pytest.approx(share)
    return prof


# --------------------------------------------------------------------------- the test itself


def test_the_missing_share_test_is_fishers_exact_test_on_the_2x2_table() -> None:
    test, odds, p = missing_share_test(ref_missing=4000, ref_rows=200_000, cur_missing=70,
                                       cur_rows=2000)
    expected = stats.fisher_exact([[70, 1930], [4000, 196_000]])
    assert test == MISSING_TEST == "fisher_exact"
    assert p == pytest.approx(expected.pvalue) and odds == pytest.approx(expected.statistic)
    # a zero cell: the odds ratio is infinite, reported as None (JSON), the p-value stays exact
    test, odds, p = missing_share_test(0, 200_000, 3, 2000)
    assert test == MISSING_TEST and odds is None
    assert p == pytest.approx(stats.fisher_exact([[3, 1997], [0, 200_000]]).pvalue)
    # nothing missing (or nothing present) on either side: no information, p = 1, no test
    assert missing_share_test(0, 200_000, 0, 2000) == (None, None, 1.0)
    assert missing_share_test(500, 500, 2000, 2000) == (None, None, 1.0)
    with pytest.raises(ValueError, match="missing rows must lie between 0 and the row count"):
        missing_share_test(10, 100, 2001, 2000)


# --------------------------------------------------------------------------- (a) (b) (c)


def test_a_jump_to_90_percent_missing_is_drift_via_the_missing_share(profile) -> None:
    """(a) x: 2 % -> 90 %, c: 3 % -> 90 % missing, the remaining values from the reference."""
    rng = np.random.default_rng(1)
    batch = _blank(_rows(rng, 5000), rng, {"x": 0.9, "c": 0.9})
    result = evaluate_batch(profile, batch)["data_drift"]
    features = _by_name(result)
    for name, ref_share in (("x", "2.0%"), ("c", "3.0%")):
        f = features[name]
        ms = f["missing_share"]
        assert f["status"] == DRIFT and f["drifted"], f["reason"]
        assert f["n_current"] == 500  # the value test ran on the 500 values left ...
        assert f["significant"] is False  # ... and found nothing: the drift is the share
        assert ms["test"] == "fisher_exact" and ms["significant"] and ms["drifted"]
        assert ms["reference"] == pytest.approx(REF_MISSING[name])
        assert ms["current"] == pytest.approx(0.9)
        assert ms["effect"] == pytest.approx(0.9 - REF_MISSING[name])
        assert ms["effect_exceeded"] and ms["threshold"] == CFG.missing_share_effect
        assert ms["p_value_adjusted"] < 1e-100 and ms["p_value"] <= ms["p_value_adjusted"]
        assert f["reason"].startswith(f"missing share {ref_share} -> 90.0% (fisher_exact")
        assert "; values: ks adjusted p=" in f["reason"] or "; values: chi2 adjusted p=" in \
            f["reason"]
    for name in ("y", "d"):  # complete on both sides: nothing to test, never drifted
        f = features[name]
        assert f["status"] == NO_DRIFT and "missing share" not in f["reason"]
        assert f["missing_share"]["test"] is None and f["missing_share"]["drifted"] is False
        assert f["missing_share"]["p_value"] == 1.0
    assert result["drifted_features"] == ["x", "c"]
    assert _by_missing_share(result) == ["x", "c"]
    assert result["n_tested"] == 4 and result["drifted_share"] == pytest.approx(0.5)
    assert result["weighted_drift"] == pytest.approx(0.6)  # importance of x + c
    assert result["verdict"] == DRIFT
    assert any("in their missing share: x, c" in r for r in result["reasons"])


def test_a_complete_feature_going_90_percent_missing_is_drift(profile) -> None:
    """y (numeric) and d (categorical) are complete in the reference and 90 % missing in the
    batch, the remaining 10 % drawn from the reference: the value tests see nothing, so the
    value tests alone (the rule before the missing-share test) call the batch clean."""
    rng = np.random.default_rng(11)
    batch = _blank(_rows(rng, 5000), rng, {"y": 0.9, "d": 0.9})
    result = evaluate_batch(profile, batch)["data_drift"]
    features = _by_name(result)
    for name in ("y", "d"):
        f, ms = features[name], features[name]["missing_share"]
        assert f["status"] == DRIFT and f["drifted"], f["reason"]
        assert f["n_current"] == 500 and f["significant"] is False
        assert ms["reference"] == 0.0 and ms["current"] == pytest.approx(0.9)
        assert ms["test"] == MISSING_TEST and ms["significant"] and ms["drifted"]
        assert f["reason"].startswith("missing share 0.0% -> 90.0% (fisher_exact")
    assert result["drifted_features"] == ["y", "d"] and result["verdict"] == DRIFT
    before = _check(profile, batch, OFF)
    assert before["drifted_features"] == [] and before["verdict"] == NO_DRIFT


def test_the_missing_share_of_the_reference_is_not_drift(profile) -> None:
    """(b) the batch's missing shares equal the reference's."""
    rng = np.random.default_rng(2)
    batch = _blank(_rows(rng, 5000), rng, {"x": 0.02, "c": 0.03})
    result = evaluate_batch(profile, batch)["data_drift"]
    for name in ("x", "c"):
        f = _by_name(result)[name]
        ms = f["missing_share"]
        assert ms["test"] == "fisher_exact" and ms["p_value"] > 0.5
        assert ms["current"] == pytest.approx(REF_MISSING[name])
        assert ms["significant"] is False and ms["drifted"] is False
        assert f["status"] == NO_DRIFT and "missing share" not in f["reason"]
    assert result["n_drifted"] == 0 and _by_missing_share(result) == []
    assert result["verdict"] == NO_DRIFT


def test_a_feature_that_went_entirely_missing_is_drift_not_insufficient(profile) -> None:
    """(c) x and c 100 % missing in a 2,000-row batch: no values to test, but the share moved."""
    rng = np.random.default_rng(3)
    batch = _rows(rng, 2000)
    batch["x"] = np.nan
    batch["c"] = None
    result = evaluate_batch(profile, batch)["data_drift"]
    features = _by_name(result)
    for name in ("x", "c"):
        f = features[name]
        assert f["n_current"] == 0 and f["p_value"] is None and f["tests"] == {}
        assert f["status"] == DRIFT and f["drifted"]
        assert f["missing_share"]["current"] == 1.0 and f["missing_share"]["drifted"]
        assert "-> 100.0%" in f["reason"]
        assert "values not tested: 0 usable values in the batch (< drift.min_rows=100)" \
            in f["reason"]
    assert result["drifted_features"] == ["x", "c"]
    assert result["n_tested"] == 4 and result["verdict"] == DRIFT
    # the same batch without the missing-share test: today's rule, silently insufficient
    before = _check(profile, batch, OFF)
    assert {f["feature"]: f["status"] for f in before["features"]} == {
        "x": INSUFFICIENT, "c": INSUFFICIENT, "y": NO_DRIFT, "d": NO_DRIFT}
    assert before["n_tested"] == 2 and before["verdict"] == NO_DRIFT


def test_too_few_values_and_a_stable_share_stays_insufficient() -> None:
    """A feature 97 % missing in the reference and the batch: values untestable, share fine."""
    rng = np.random.default_rng(4)
    reference = _blank(_rows(rng, 50_000), rng, {"x": 0.97})
    prof = _profile(reference)
    batch = _blank(_rows(rng, 2000), rng, {"x": 0.97})  # 60 values < min_rows
    result = _check(prof, batch)
    x = _by_name(result)["x"]
    assert x["status"] == INSUFFICIENT and not x["drifted"]
    assert x["missing_share"]["test"] == "fisher_exact" and not x["missing_share"]["drifted"]
    assert x["reason"] == "60 usable values in the batch (< drift.min_rows=100)"
    assert result["n_tested"] == 3


def test_a_batch_below_min_rows_gets_no_missing_share_test(profile) -> None:
    rng = np.random.default_rng(5)
    batch = _rows(rng, 50)
    batch["x"] = np.nan
    result = _check(profile, batch)
    assert result["verdict"] == INSUFFICIENT and result["n_drifted"] == 0
    ms = _by_name(result)["x"]["missing_share"]
    assert ms["test"] is None and ms["p_value"] is None and ms["drifted"] is False
    assert ms["current"] == 1.0  # still reported


# --------------------------------------------------------------------------- (d) large batch


def test_a_small_change_of_the_share_at_a_million_rows_is_significant_not_drift() -> None:
    """(d) 2 % -> 3 % missing at 1,000,000 rows: a p-value alone would cry wolf."""
    rng = np.random.default_rng(6)
    n = 1_000_000
    reference = pd.DataFrame({"x": rng.standard_normal(n),
                              "c": rng.choice(CATS, n, p=CAT_P).astype(object)})
    prof = _profile(_blank(reference, rng, {"x": 0.02, "c": 0.02}))
    batch = pd.DataFrame({"x": rng.standard_normal(n),
                          "c": rng.choice(CATS, n, p=CAT_P).astype(object)})
    result = _check(prof, _blank(batch, rng, {"x": 0.03, "c": 0.03}))
    for f in result["features"]:
        ms = f["missing_share"]
        assert ms["p_value_adjusted"] < 1e-100 and ms["significant"], f["feature"]
        assert ms["effect"] == pytest.approx(0.01) and not ms["effect_exceeded"], f["feature"]
        assert ms["drifted"] is False and f["status"] == NO_DRIFT, f["feature"]
        assert "missing share" not in f["reason"]
    assert result["verdict"] == NO_DRIFT and _by_missing_share(result) == []


def test_the_effect_threshold_comes_from_the_config() -> None:
    rng = np.random.default_rng(7)
    prof = _profile(_blank(_rows(rng, 100_000), rng, {"x": 0.02, "c": 0.02}))
    batch = _blank(_rows(rng, 20_000), rng, {"x": 0.07, "c": 0.02})
    assert _by_name(_check(prof, batch))["x"]["status"] == NO_DRIFT  # +5 points < 0.1
    strict = DriftConfig(missing_share_effect=0.05)
    x = _by_name(_check(prof, batch, strict))["x"]
    assert x["status"] == DRIFT and x["missing_share"]["threshold"] == 0.05
    assert "change 0.05 >= 0.05" in x["reason"]


# --------------------------------------------------------------------------- one BH family


def test_value_and_missing_share_p_values_share_one_bh_family(profile) -> None:
    rng = np.random.default_rng(8)
    batch = _blank(_rows(rng, 3000), rng, {"x": 0.04, "c": 0.2})
    batch["y"] += 0.05
    result = _check(profile, batch)
    features = result["features"]
    raw = [f["p_value"] for f in features]
    raw += [f["missing_share"]["p_value"] for f in features if f["missing_share"]["test"]]
    assert len(raw) == 6  # 4 value tests + the 2 informative missing-share tables (x, c)
    expected = benjamini_hochberg(raw)
    got = [f["p_value_adjusted"] for f in features]
    got += [f["missing_share"]["p_value_adjusted"] for f in features
            if f["missing_share"]["test"]]
    assert np.allclose(got, expected)
    # the uninformative tables (y and d complete everywhere) stay out: adjusted p = 1
    for name in ("y", "d"):
        assert _by_name(result)[name]["missing_share"]["p_value_adjusted"] == 1.0


# --------------------------------------------------------------------------- (e) false positives


@pytest.mark.integration
def test_missing_share_false_positives_stay_rare_and_p_values_uniform() -> None:
    """(e) 250 clean batches: the reference's own distribution, missing shares unchanged.

    The reference (200,000 rows) and every batch (3,000 rows) draw their missing rows from the
    same Bernoulli shares (2 %, 5 %, 20 %, 3 % and 30 %), and every feature carries a fifth of
    the importance, so one drifted feature makes the whole batch drift: the strictest setting
    for the batch's false-positive rate. Each batch is checked with and without the
    missing-share test. Seeded (about 10 s).
    """
    rng = np.random.default_rng(0)
    shares = {"x": 0.02, "y": 0.05, "z": 0.2, "c": 0.03, "e": 0.3}

    def draw(n: int) -> pd.DataFrame:
        frame = _rows(rng, n).drop(columns=["d"])
        frame["z"] = rng.exponential(1.0, n)
        frame["e"] = rng.choice(["u", "v", "w"], n).astype(object)
        return _blank(frame, rng, shares, exact=False)  # Bernoulli: the population's share

    prof = _profile(draw(200_000), {name: 0.2 for name in shares})
    days = 250
    by_missing = significant = 0
    drifted = {"on": 0, "off": 0}  # (feature, batch) pairs drifted for any reason
    batch_drift = {"on": 0, "off": 0}  # batches whose verdict is drift
    p_values: dict[str, list[float]] = {name: [] for name in shares}
    for _ in range(days):
        batch = draw(3000)
        results = {"on": _check(prof, batch), "off": _check(prof, batch, OFF)}
        for key, res in results.items():
            drifted[key] += res["n_drifted"]
            batch_drift[key] += res["verdict"] == DRIFT
        result = results["on"]
        by_missing += len(_by_missing_share(result))
        significant += any(f["missing_share"]["significant"] for f in result["features"])
        for f in result["features"]:
            p_values[f["feature"]].append(f["missing_share"]["p_value"])
    pairs = days * len(shares)
    # feature level: no feature is drifted through its missing share (the effect size of 0.1
    # is ~10 standard errors of the 5 % share at 3,000 rows) ...
    assert by_missing == 0
    # ... and the test does not inflate the false positives of the whole check
    assert drifted["on"] / pairs <= 0.01 and drifted["on"] <= drifted["off"] + 2
    assert batch_drift["on"] / days <= 0.03 and batch_drift["on"] <= batch_drift["off"] + 2
    # even ignoring the effect size, BH keeps the family-wise rate of the share tests ~q = 0.05
    assert significant / days <= 0.08
    every = np.concatenate([np.asarray(v) for v in p_values.values()])
    assert len(every) == pairs
    assert 0.02 <= float(np.mean(every < 0.05)) <= 0.09
    # uniform p-values where the batch expects 150 or more missing rows ...
    assert stats.kstest(p_values["y"] + p_values["z"] + p_values["e"], "uniform").pvalue > 0.01
    # ... and not anti-conservative where it expects few (60 and 90 rows: discrete counts)
    assert float(np.mean(np.asarray(p_values["x"] + p_values["c"]) < 0.05)) <= 0.08


# --------------------------------------------------------------------------- (f) switched off


def test_switched_off_the_result_is_todays(profile) -> None:
    """(f) ``missing_share_test=False``: no new keys, the value tests alone, as before."""
    rng = np.random.default_rng(9)
    batch = _blank(_rows(rng, 5000), rng, {"x": 0.9, "c": 0.9})
    batch.loc[:, "d"] = None  # 100 % missing: insufficient, as before
    result = _check(profile, batch, OFF)
    features = result["features"]
    assert all("missing_share" not in f for f in features)
    status = {f["feature"]: f["status"] for f in features}
    assert status == {"x": NO_DRIFT, "y": NO_DRIFT, "c": NO_DRIFT, "d": INSUFFICIENT}
    valued = [f for f in features if f["status"] != INSUFFICIENT]
    assert np.allclose([f["p_value_adjusted"] for f in valued],
                       benjamini_hochberg([f["p_value"] for f in valued]))
    assert result["n_tested"] == 3 and result["verdict"] == NO_DRIFT
    assert all("missing share" not in f["reason"] for f in features)
    assert all("missing share" not in r for r in result["reasons"])
    # and switched on, the same batch is drift in x, c and d
    assert _check(profile, batch)["drifted_features"] == ["x", "c", "d"]


def test_without_missing_values_switching_the_test_on_changes_nothing(profile) -> None:
    """Complete data: every missing-share table is uninformative, so the BH family and every
    decision are exactly those of the value tests alone."""
    rng = np.random.default_rng(10)
    reference = _rows(rng, 20_000)
    prof = _profile(reference)
    batch = _rows(rng, 3000)
    batch["x"] += 0.2
    on, off = _check(prof, batch), _check(prof, batch, OFF)
    assert _by_missing_share(on) == []
    for f in on["features"]:
        assert f.pop("missing_share")["test"] is None
    assert on == off
    assert off["drifted_features"] == ["x"]
