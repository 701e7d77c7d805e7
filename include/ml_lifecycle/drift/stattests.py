"""Per-feature drift tests behind a small registry.

Every test is one pure function with one signature::

    test(reference, current, threshold) -> TestResult

where ``reference`` is a :class:`~.reference.NumericReference` or
:class:`~.reference.CategoricalReference` (built at training time) and ``current`` the prepared
batch column (:func:`~.reference.prepare_numeric` / :func:`~.reference.prepare_categorical`). A
test returns its statistic, a p-value where the test defines one, and an effect size that does not
grow with the sample size; ``exceeded`` says whether the effect size reaches ``threshold`` (each
test registers a default). Whether a feature *drifted* is decided elsewhere
(:mod:`.decision`): significant after Benjamini-Hochberg AND an effect size past its threshold.

New tests plug in with :func:`register_test` without touching any caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial import distance

from ..errors import ConfigError
from .reference import (
    CategoricalCurrent,
    CategoricalReference,
    NumericCurrent,
    NumericReference,
    bin_counts_sorted,
    build_categorical_reference,
    build_numeric_reference,
    prepare_categorical,
    prepare_numeric,
    quantiles_sorted,
    unique_sorted,
    wasserstein_grid,
)

PSI_EPS = 1e-4  # proportions are floored here so an empty bin does not give an infinite PSI


@dataclass
class TestResult:
    """Outcome of one test on one feature."""

    __test__ = False  # not a pytest test class

    test: str
    statistic: float
    p_value: float | None
    effect_size: float
    threshold: float
    exceeded: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"test": self.test, "statistic": self.statistic, "p_value": self.p_value,
                "effect_size": self.effect_size, "threshold": self.threshold,
                "exceeded": bool(self.exceeded), "details": dict(self.details)}


TestFunction = Callable[[Any, Any, float], TestResult]


@dataclass(frozen=True)
class StatTest:
    """A registered test: its function, the feature kinds it applies to and its defaults."""

    __test__ = False

    name: str
    func: TestFunction
    kinds: frozenset[str]
    default_threshold: float
    has_p_value: bool
    effect_size_name: str
    description: str


STAT_TESTS: dict[str, StatTest] = {}


def register_test(
    name: str,
    *,
    kinds: tuple[str, ...],
    default_threshold: float,
    has_p_value: bool,
    effect_size_name: str,
    description: str,
) -> Callable[[TestFunction], TestFunction]:
    """Decorator registering a test function under ``name``.

    Args:
        name: registry key used in the config (``drift.numeric_tests`` ...).
        kinds: ``("numeric",)``, ``("categorical",)`` or both.
        default_threshold: minimum effect size that counts (``drift.thresholds`` overrides it).
        has_p_value: whether the test gives a p-value (only those can enter the BH correction).
        effect_size_name: what the effect size is, for reports.
        description: one line for reports and docs.

    Returns:
        The decorator (returns the function unchanged).
    """

    def decorate(func: TestFunction) -> TestFunction:
        STAT_TESTS[name] = StatTest(
            name=name, func=func, kinds=frozenset(kinds), default_threshold=default_threshold,
            has_p_value=has_p_value, effect_size_name=effect_size_name, description=description,
        )
        return func

    return decorate


def get_test(name: str, kind: str | None = None, setting: str = "drift") -> StatTest:
    """Look a test up by name, checking that it applies to ``kind``.

    Raises:
        ConfigError: unknown test or wrong feature kind, naming the setting.
    """
    test = STAT_TESTS.get(name)
    if test is None:
        raise ConfigError(f"{setting}: unknown drift test '{name}'; known: {sorted(STAT_TESTS)}")
    if kind is not None and kind not in test.kinds:
        raise ConfigError(
            f"{setting}: drift test '{name}' applies to {sorted(test.kinds)} features, not {kind}"
        )
    return test


def threshold_for(name: str, overrides: dict[str, float] | None = None) -> float:
    """The effect-size threshold of a test: the config override or the registry default."""
    if overrides and name in overrides:
        return float(overrides[name])
    return get_test(name).default_threshold


# --------------------------------------------------------------------------- helpers


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    if total <= 0:
        return np.full(len(counts), 1.0 / max(len(counts), 1))
    return counts / total


def psi_value(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index of two aligned count vectors (proportions floored at 1e-4).

    Args:
        ref_counts: reference counts per bin/category.
        cur_counts: current counts per bin/category (same order).

    Returns:
        ``sum((q - p) * ln(q / p))``.
    """
    p = np.maximum(_proportions(np.asarray(ref_counts, dtype=float)), PSI_EPS)
    q = np.maximum(_proportions(np.asarray(cur_counts, dtype=float)), PSI_EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def _numeric_empty(name: str, threshold: float, why: str) -> TestResult:
    return TestResult(name, float("nan"), None, float("nan"), threshold, False, {"note": why})


def _check_kind(reference: Any, current: Any, test: str) -> str:
    if isinstance(reference, NumericReference) and isinstance(current, NumericCurrent):
        return "numeric"
    if isinstance(reference, CategoricalReference) and isinstance(current, CategoricalCurrent):
        return "categorical"
    raise TypeError(
        f"test '{test}' got {type(reference).__name__} and {type(current).__name__}; expected a "
        "matching reference/current pair (prepare the batch column with prepare_numeric or "
        "prepare_categorical)"
    )


def _sup_abs_diff(cdf: np.ndarray, other_at: np.ndarray, other_before: np.ndarray) -> float:
    """sup |F_a - F_b| given F_a at its jump points and F_b at / just before those points.

    Between two jump points of F_a, F_a is constant and F_b monotone, so the sup is reached at a
    jump point or just before the next one.
    """
    cdf_before = np.concatenate([[0.0], cdf[:-1]])
    return float(max(np.max(np.abs(other_at - cdf)), np.max(np.abs(other_before - cdf_before))))


def ks_statistic(reference: NumericReference, current: NumericCurrent) -> float:
    """Exact two-sample KS statistic between the reference sample and the (sorted) batch.

    The ECDFs are compared at the jump points of the side with fewer distinct values, with binary
    searches into the other side (O(k log n), no merge and no re-sort).
    """
    x = current.sorted
    n = len(x)
    u, cdf = reference.values, reference.cdf
    if n >= len(u):
        return _sup_abs_diff(cdf, np.searchsorted(x, u, side="right") / n,
                             np.searchsorted(x, u, side="left") / n)
    points, counts = unique_sorted(x)
    ref_cdf = np.concatenate([[0.0], cdf])
    at = np.searchsorted(u, points, side="right")
    # u is unique: the left insertion point is one less exactly where the point equals u[at-1]
    before = at - ((at > 0) & (u[np.maximum(at - 1, 0)] == points))
    return _sup_abs_diff(np.cumsum(counts) / n, ref_cdf[at], ref_cdf[before])


# --------------------------------------------------------------------------- tests


@register_test(
    "ks", kinds=("numeric",), default_threshold=0.1, has_p_value=True,
    effect_size_name="KS distance D",
    description="Kolmogorov-Smirnov two-sample test (asymptotic p-value, as scipy ks_2samp)",
)
def ks_test(reference: NumericReference, current: NumericCurrent, threshold: float) -> TestResult:
    """Kolmogorov-Smirnov test of the batch against the stored reference sample.

    Args:
        reference: numeric reference (sorted sample).
        current: prepared batch column.
        threshold: minimum KS distance D that counts as a real change.

    Returns:
        Statistic D (also the effect size) and the p-value of ``scipy.stats.ks_2samp``'s
        asymptotic method (``kstwo.sf(D, round(m n / (m + n)))``).
    """
    _check_kind(reference, current, "ks")
    m, n = reference.sample_size, current.n
    if m == 0 or n == 0:
        return _numeric_empty("ks", threshold, "no finite values on one side")
    d = ks_statistic(reference, current)
    en = m * n / (m + n)
    p = float(np.clip(stats.kstwo.sf(d, max(1, int(np.round(en)))), 0.0, 1.0))
    return TestResult("ks", d, p, d, threshold, d >= threshold, {"n_reference": m, "n_current": n})


@register_test(
    "chi2", kinds=("categorical",), default_threshold=0.1, has_p_value=True,
    effect_size_name="Cohen's w",
    description="chi-squared test of homogeneity (rare categories pooled, unseen counted)",
)
def chi2_test(
    reference: CategoricalReference, current: CategoricalCurrent, threshold: float
) -> TestResult:
    """Chi-squared test on the 2 x k table of reference vs batch category counts.

    Args:
        reference: categorical reference counts.
        current: batch column aligned with the reference (rare categories pooled, unseen ones in
            their own column).
        threshold: minimum Cohen's w.

    Returns:
        Statistic chi2, p-value of ``scipy.stats.chi2_contingency`` (no continuity correction),
        effect size Cohen's w = sqrt(chi2 (N1 + N2) / (N1 N2)), which does not grow with N.
    """
    _check_kind(reference, current, "chi2")
    ref, cur = current.ref_counts, current.cur_counts
    n1, n2 = int(ref.sum()), int(cur.sum())
    details = {"n_reference": n1, "n_current": n2, "n_columns": len(current.labels),
               "n_unseen": current.n_unseen}
    if n1 == 0 or n2 == 0:
        return _numeric_empty("chi2", threshold, "no values on one side")
    if len(ref) < 2:
        return TestResult("chi2", 0.0, 1.0, 0.0, threshold, False, {**details, "dof": 0})
    res = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    chi2 = float(res.statistic)
    w = float(np.sqrt(chi2 * (n1 + n2) / (n1 * n2)))
    return TestResult("chi2", chi2, float(res.pvalue), w, threshold, w >= threshold,
                      {**details, "dof": int(res.dof)})


@register_test(
    "psi", kinds=("numeric", "categorical"), default_threshold=0.1, has_p_value=False,
    effect_size_name="PSI",
    description="population stability index (numeric: reference-quantile bins)",
)
def psi_test(reference: Any, current: Any, threshold: float) -> TestResult:
    """Population stability index, bins from the reference only.

    Numeric features use ``reference.psi_cuts`` (reference quantiles plus below/above-range
    bins), categorical ones the aligned category table.

    Args:
        reference: numeric or categorical reference.
        current: matching prepared batch column.
        threshold: minimum PSI (0.1 is the usual "moderate shift").

    Returns:
        PSI as statistic and effect size (no p-value).
    """
    kind = _check_kind(reference, current, "psi")
    if kind == "numeric":
        if reference.sample_size == 0 or current.n == 0:
            return _numeric_empty("psi", threshold, "no finite values on one side")
        ref_counts = reference.psi_counts
        cur_counts = bin_counts_sorted(current.sorted, reference.psi_cuts)
        details = {"bins": len(ref_counts)}
    else:
        if current.ref_counts.sum() == 0 or current.cur_counts.sum() == 0:
            return _numeric_empty("psi", threshold, "no values on one side")
        ref_counts, cur_counts = current.ref_counts, current.cur_counts
        details = {"bins": len(ref_counts)}
    value = psi_value(ref_counts, cur_counts)
    return TestResult("psi", value, None, value, threshold, value >= threshold, details)


@register_test(
    "wasserstein", kinds=("numeric",), default_threshold=0.1, has_p_value=False,
    effect_size_name="Wasserstein / reference spread",
    description="Wasserstein-1 distance in units of the reference's (robust) standard deviation",
)
def wasserstein_test(
    reference: NumericReference, current: NumericCurrent, threshold: float
) -> TestResult:
    """Wasserstein-1 (earth mover's) distance, normalised by the reference spread.

    Computed with ``scipy.stats.wasserstein_distance`` between the two quantile functions on a
    grid of G mid-point probabilities (G = ``drift.wasserstein_quantiles``): exact for the
    central 1 - 1/G of the mass, insensitive to a handful of absurd outliers.

    Args:
        reference: numeric reference (stored quantile grid and spread).
        current: prepared batch column.
        threshold: minimum normalised distance (0.1 = the distribution moved by a tenth of a
            standard deviation).

    Returns:
        Statistic W in the feature's units, effect size W / spread.
    """
    _check_kind(reference, current, "wasserstein")
    if reference.sample_size == 0 or current.n == 0 or len(reference.quantiles) == 0:
        return _numeric_empty("wasserstein", threshold, "no finite values on one side")
    grid = wasserstein_grid(len(reference.quantiles))
    cur_q = quantiles_sorted(current.sorted, grid)
    w = float(stats.wasserstein_distance(reference.quantiles, cur_q))
    effect = w / reference.spread
    return TestResult("wasserstein", w, None, effect, threshold, effect >= threshold,
                      {"spread": reference.spread})


@register_test(
    "jensen_shannon", kinds=("numeric", "categorical"), default_threshold=0.1, has_p_value=False,
    effect_size_name="Jensen-Shannon distance",
    description="Jensen-Shannon distance (base 2, in [0, 1]) on reference-quantile bins",
)
def jensen_shannon_test(reference: Any, current: Any, threshold: float) -> TestResult:
    """Jensen-Shannon distance between the binned distributions.

    Numeric features use ``reference.hist_cuts`` (reference quantiles), categorical ones the
    aligned category table; ``scipy.spatial.distance.jensenshannon`` with base 2.

    Args:
        reference: numeric or categorical reference.
        current: matching prepared batch column.
        threshold: minimum distance.

    Returns:
        The distance as statistic and effect size (no p-value).
    """
    kind = _check_kind(reference, current, "jensen_shannon")
    if kind == "numeric":
        if reference.sample_size == 0 or current.n == 0:
            return _numeric_empty("jensen_shannon", threshold, "no finite values on one side")
        ref_counts = reference.hist_counts
        cur_counts = bin_counts_sorted(current.sorted, reference.hist_cuts)
    else:
        if current.ref_counts.sum() == 0 or current.cur_counts.sum() == 0:
            return _numeric_empty("jensen_shannon", threshold, "no values on one side")
        ref_counts, cur_counts = current.ref_counts, current.cur_counts
    value = float(distance.jensenshannon(_proportions(ref_counts.astype(float)),
                                         _proportions(cur_counts.astype(float)), base=2))
    value = 0.0 if not np.isfinite(value) else value
    return TestResult("jensen_shannon", value, None, value, threshold, value >= threshold,
                      {"bins": len(ref_counts)})


# --------------------------------------------------------------------------- convenience


def run_test(
    name: str,
    reference_values: Any,
    current_values: Any,
    threshold: float | None = None,
    *,
    kind: str | None = None,
    **reference_options: Any,
) -> TestResult:
    """Run one registered test on two raw columns (builds the reference on the fly).

    Meant for notebooks and tests; the drift check itself uses stored reference profiles.

    Args:
        name: registry name of the test.
        reference_values: reference column.
        current_values: batch column.
        threshold: effect-size threshold (default: the test's).
        kind: ``numeric`` or ``categorical`` (default: the test's only kind, else inferred from
            the dtype of the reference values).
        **reference_options: passed to the reference builder (e.g. ``psi_bins=10``).

    Returns:
        The :class:`TestResult`.
    """
    test = get_test(name)
    if kind is None:
        if len(test.kinds) == 1:
            kind = next(iter(test.kinds))
        else:
            arr = np.asarray(reference_values)
            kind = "numeric" if arr.dtype.kind in "fiub" else "categorical"
    test = get_test(name, kind)
    thr = test.default_threshold if threshold is None else float(threshold)
    if kind == "numeric":
        ref = build_numeric_reference(reference_values, **reference_options)
        return test.func(ref, prepare_numeric(current_values), thr)
    rare = reference_options.pop("rare_min_expected", 5.0)
    cref = build_categorical_reference(reference_values, **reference_options)
    return test.func(cref, prepare_categorical(current_values, cref, rare_min_expected=rare), thr)
