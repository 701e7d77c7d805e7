"""Per-feature drift tests: agreement with scipy, reference-only bins, edge cases, the registry."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ml_lifecycle.drift.reference import (
    RARE,
    UNSEEN,
    build_categorical_reference,
    build_numeric_reference,
    prepare_categorical,
    prepare_numeric,
)
from ml_lifecycle.drift.stattests import (
    STAT_TESTS,
    TestResult,
    get_test,
    psi_value,
    register_test,
    run_test,
)
from ml_lifecycle.errors import ConfigError


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        (np.random.default_rng(1).normal(size=5000), np.random.default_rng(2).normal(0.1, 1, 800)),
        (np.random.default_rng(3).normal(size=300), np.random.default_rng(4).normal(size=20000)),
        (np.random.default_rng(5).integers(0, 12, 4000).astype(float),  # ties on both sides
         np.random.default_rng(6).integers(0, 13, 900).astype(float)),
        (np.random.default_rng(7).exponential(size=2000),
         np.random.default_rng(8).normal(1, 1, 50)),
    ],
)
def test_ks_statistic_and_p_value_match_scipy(ref: np.ndarray, cur: np.ndarray) -> None:
    res = run_test("ks", ref, cur)
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert res.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert res.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert res.effect_size == res.statistic


def test_ks_on_a_reference_sample_keeps_its_sample_size() -> None:
    rng = np.random.default_rng(0)
    ref = build_numeric_reference(rng.normal(size=50_000), "x", sample_size=5000)
    assert ref.sample_size == 5000 and ref.n_finite == 50_000
    res = get_test("ks").func(ref, prepare_numeric(rng.normal(size=1000)), 0.1)
    assert res.details == {"n_reference": 5000, "n_current": 1000}


def test_wasserstein_is_scipys_distance_in_reference_standard_deviations() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(10, 4, 20_000), rng.normal(11, 4, 5000)
    res = run_test("wasserstein", ref, cur)
    assert res.statistic == pytest.approx(stats.wasserstein_distance(ref, cur), rel=0.02)
    assert res.effect_size == pytest.approx(0.25, abs=0.03)  # a 1-unit shift of a 4-unit spread
    assert res.p_value is None


def test_wasserstein_scale_ignores_one_absurd_outlier() -> None:
    rng = np.random.default_rng(0)
    ref = np.concatenate([rng.exponential(1.0, 10_000), [9831.0]])  # the traffic rain_1h record
    res = run_test("wasserstein", ref, rng.exponential(1.0, 5000) + 0.3)
    assert res.details["spread"] < 2.0  # not the ~98 the raw standard deviation would give
    assert res.exceeded


def test_chi2_matches_scipy_on_the_aligned_table() -> None:
    rng = np.random.default_rng(0)
    ref = rng.choice(list("abcd"), 3000, p=[0.4, 0.3, 0.2, 0.1])
    cur = rng.choice(list("abcd"), 1000, p=[0.3, 0.3, 0.2, 0.2])
    res = run_test("chi2", ref, cur)
    table = np.array([[np.sum(ref == c) for c in "abcd"], [np.sum(cur == c) for c in "abcd"]])
    expected = stats.chi2_contingency(table, correction=False)
    assert res.statistic == pytest.approx(expected.statistic)
    assert res.p_value == pytest.approx(expected.pvalue)
    n1, n2 = table.sum(axis=1)
    assert res.effect_size == pytest.approx(np.sqrt(expected.statistic * (n1 + n2) / (n1 * n2)))


def test_chi2_counts_unseen_categories_and_detects_them() -> None:
    rng = np.random.default_rng(0)
    ref = build_categorical_reference(rng.choice(list("abc"), 5000), "c")
    values = np.concatenate([rng.choice(list("abc"), 800), ["new"] * 150, ["newer"] * 50])
    cur = prepare_categorical(values, ref)
    assert cur.n_unseen == 200 and cur.unseen_share == pytest.approx(0.2)
    assert cur.unseen_top == {"new": 150, "newer": 50}
    for new in ("new", "newer"):  # each new category with real mass keeps its own column
        assert cur.ref_counts[cur.labels.index(new)] == 0
    res = get_test("chi2").func(ref, cur, 0.1)
    assert res.p_value < 1e-20 and res.exceeded and res.details["n_unseen"] == 200


def test_a_single_unseen_value_is_pooled_with_rare_categories_not_a_crash() -> None:
    rng = np.random.default_rng(0)
    ref_values = np.concatenate([rng.choice(list("ab"), 4000), [f"r{i}" for i in range(30)]])
    ref = build_categorical_reference(ref_values, "c")
    cur = prepare_categorical(np.concatenate([rng.choice(list("ab"), 300), ["zzz"]]), ref)
    assert cur.n_unseen == 1
    assert cur.labels[-1] == RARE and UNSEEN not in cur.labels
    n1, n2 = cur.ref_counts.sum(), cur.cur_counts.sum()
    expected = np.outer([n1, n2], cur.ref_counts + cur.cur_counts) / (n1 + n2)
    assert expected[:, :-1].min() >= 5  # every kept column satisfies the chi-squared rule
    res = get_test("chi2").func(ref, cur, 0.1)
    assert 0.0 <= res.p_value <= 1.0 and not res.exceeded


def test_psi_bins_come_from_the_reference_only() -> None:
    rng = np.random.default_rng(0)
    ref_values = rng.normal(size=10_000)
    ref = build_numeric_reference(ref_values, "x", psi_bins=10)
    deciles = np.quantile(ref_values, np.arange(1, 10) / 10, method="inverted_cdf")
    assert np.array_equal(ref.psi_cuts[1:-1], deciles)
    assert ref.psi_cuts[-1] == ref_values.max() and ref.psi_cuts[0] < ref_values.min()
    shifted = rng.normal(3.0, 1.0, 5000)
    res = get_test("psi").func(ref, prepare_numeric(shifted), 0.1)
    # computed by hand on the reference deciles (plus the below/above-range bins)
    bins = np.searchsorted(ref.psi_cuts, shifted, side="left")
    cur_counts = np.bincount(bins, minlength=len(ref.psi_cuts) + 1)
    assert res.statistic == pytest.approx(psi_value(ref.psi_counts, cur_counts))
    # edges from reference + current together (the classic bug) give another value: this test
    # would notice if the implementation ever looked at the batch to place its bins
    pooled = np.quantile(np.concatenate([ref_values, shifted]), np.arange(1, 10) / 10)
    pooled_ref = np.histogram(ref_values, np.concatenate([[-np.inf], pooled, [np.inf]]))[0]
    pooled_cur = np.histogram(shifted, np.concatenate([[-np.inf], pooled, [np.inf]]))[0]
    assert psi_value(pooled_ref, pooled_cur) != pytest.approx(res.statistic, rel=0.01)
    # the reference's bins do not move whatever the batch
    before = ref.psi_cuts.copy()
    get_test("psi").func(ref, prepare_numeric(rng.normal(-5, 1, 100)), 0.1)
    assert np.array_equal(before, ref.psi_cuts)


def test_psi_reference_bins_are_near_equal_mass() -> None:
    ref = build_numeric_reference(np.random.default_rng(0).normal(size=10_000), "x", psi_bins=10)
    shares = ref.psi_counts / ref.psi_counts.sum()
    assert shares[0] == 0 and shares[-1] == 0  # nothing below min / above max
    assert np.allclose(shares[1:-1], 0.1, atol=0.002)


def test_nan_and_inf_are_counted_and_left_out_of_the_tests() -> None:
    rng = np.random.default_rng(0)
    ref_values = rng.normal(size=2000)
    ref_values[:100] = np.nan
    ref_values[100:110] = np.inf
    ref = build_numeric_reference(ref_values, "x")
    assert (ref.n_missing, ref.n_nonfinite, ref.n_finite) == (100, 10, 1890)
    cur_values = rng.normal(size=500)
    cur_values[:50] = np.nan
    cur_values[50:55] = -np.inf
    cur = prepare_numeric(cur_values)
    assert (cur.n, cur.n_missing, cur.n_nonfinite) == (445, 50, 5)
    assert cur.missing_rate == pytest.approx(0.11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("ks", "psi", "wasserstein", "jensen_shannon"):
            res = get_test(name).func(ref, cur, 0.1)
            assert np.isfinite(res.statistic) and not res.exceeded, name


def test_all_missing_batch_column_gives_no_result_rather_than_nan_errors() -> None:
    ref = build_numeric_reference(np.random.default_rng(0).normal(size=500), "x")
    cur = prepare_numeric(np.full(200, np.nan))
    for name in ("ks", "psi", "wasserstein", "jensen_shannon"):
        res = get_test(name).func(ref, cur, 0.1)
        assert not res.exceeded and res.p_value is None and "note" in res.details


def test_constant_column() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = build_numeric_reference(np.full(1000, 3.0), "c")
        assert list(ref.psi_cuts) == [np.nextafter(3.0, -np.inf), 3.0]  # below / equal / above
        assert ref.spread == 1.0
        same = prepare_numeric(np.full(300, 3.0))
        for name in ("ks", "psi", "wasserstein", "jensen_shannon"):
            res = get_test(name).func(ref, same, 0.1)
            assert res.statistic == 0.0 and not res.exceeded, name
        assert get_test("ks").func(ref, same, 0.1).p_value == 1.0
        for other in (2.0, 4.0):  # a different constant on either side is a change
            moved = prepare_numeric(np.full(300, other))
            for name in ("ks", "psi", "wasserstein", "jensen_shannon"):
                assert get_test(name).func(ref, moved, 0.1).exceeded, (name, other)
        cref = build_categorical_reference(["a"] * 500, "c")
        res = get_test("chi2").func(cref, prepare_categorical(["a"] * 100, cref), 0.1)
        assert (res.statistic, res.p_value, res.exceeded) == (0.0, 1.0, False)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=400),
    st.sampled_from(["ks", "psi", "wasserstein", "jensen_shannon"]),
)
def test_identical_numeric_data_has_zero_statistic(values: list[float], name: str) -> None:
    res = run_test(name, np.array(values), np.array(values))
    assert res.statistic == pytest.approx(0.0, abs=1e-12)
    assert not res.exceeded
    if res.p_value is not None:
        assert res.p_value == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(list("abcdefg")), min_size=1, max_size=300),
       st.sampled_from(["chi2", "psi", "jensen_shannon"]))
def test_identical_categorical_data_has_zero_statistic(values: list[str], name: str) -> None:
    res = run_test(name, np.array(values), np.array(values), kind="categorical")
    assert res.statistic == pytest.approx(0.0, abs=1e-12) and not res.exceeded


def test_ks_p_values_are_uniform_under_the_null() -> None:
    rng = np.random.default_rng(11)
    ref = build_numeric_reference(rng.normal(size=20_000), "x")
    p = np.array([get_test("ks").func(ref, prepare_numeric(rng.normal(size=2000)), 0.1).p_value
                  for _ in range(300)])
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.02 <= np.mean(p < 0.05) <= 0.09


def test_new_tests_plug_into_the_registry() -> None:
    @register_test("mean_shift", kinds=("numeric",), default_threshold=0.5, has_p_value=False,
                   effect_size_name="|mean difference| / spread", description="test only")
    def mean_shift(reference, current, threshold):  # type: ignore[no-untyped-def]
        effect = abs(float(np.mean(current.sorted)) - reference.mean) / reference.spread
        return TestResult("mean_shift", effect, None, effect, threshold, effect >= threshold)

    try:
        assert get_test("mean_shift").default_threshold == 0.5
        rng = np.random.default_rng(0)
        res = run_test("mean_shift", rng.normal(size=1000), rng.normal(1.0, 1, 1000))
        assert res.exceeded and res.threshold == 0.5
    finally:
        STAT_TESTS.pop("mean_shift")


def test_unknown_or_misapplied_tests_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown drift test 'kss'"):
        get_test("kss")
    with pytest.raises(ConfigError, match="applies to"):
        get_test("chi2", "numeric")


def test_every_builtin_test_has_a_default_threshold_and_one_signature() -> None:
    assert {"ks", "chi2", "psi", "wasserstein", "jensen_shannon"} <= set(STAT_TESTS)
    for test in STAT_TESTS.values():
        assert test.default_threshold > 0
        assert test.func.__code__.co_varnames[:3] == ("reference", "current", "threshold")


def test_chi2_keeps_its_level_on_a_long_tailed_feature_without_drift() -> None:
    """Reference 1,200 rows and batches of 600 from the same Zipf law over 400 categories (a
    merchant id): every batch holds tail values the reference sample never saw. Lumped into one
    column with reference count 0 they made chi2 reject in 100 % of such batches; with one
    column per category and symmetric pooling of sparse columns the false-positive rate at
    alpha = 0.05 stays near 0.05, while a new category carrying 10 % of the batch is caught."""
    rng = np.random.default_rng(7)
    cats = np.array([f"M{i:04d}" for i in range(400)])
    weights = 1 / np.arange(1, 401) ** 1.1
    weights /= weights.sum()
    chi2 = get_test("chi2").func
    replicates = 300
    rejected = 0
    for _ in range(replicates):
        ref = build_categorical_reference(rng.choice(cats, 1200, p=weights), "merchant")
        cur = prepare_categorical(rng.choice(cats, 600, p=weights), ref)
        rejected += chi2(ref, cur, 0.1).p_value <= 0.05
    # Binomial(300, 0.05): mean 15, sd 3.8; 30 is 4 sd above a correct level.
    assert rejected <= 30, f"false-positive rate {rejected / replicates:.3f} at alpha 0.05"
    caught = 0
    for _ in range(50):
        ref = build_categorical_reference(rng.choice(cats, 1200, p=weights), "merchant")
        batch = np.concatenate([rng.choice(cats, 540, p=weights), ["M_NEW"] * 60])
        caught += chi2(ref, prepare_categorical(batch, ref), 0.1).p_value <= 0.01
    assert caught == 50
