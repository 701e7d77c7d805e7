"""Per-feature reference summaries (built at training time) and prepared current batches.

A drift check compares a batch with the training split. Everything that depends on the reference
alone is computed once, when the model is trained, and stored with it:

* numeric features: a seeded random sample of the finite values, stored sorted as unique values
  with counts (so the check never sorts the reference again), PSI and histogram bin cuts from
  reference quantiles (never from the batch), the reference counts in those bins, a quantile grid
  for the Wasserstein distance, range, spread and the share of the most frequent value;
* categorical features: the value counts.

A batch column is *prepared* once per check (numeric: the finite values, sorted; categorical:
value counts aligned with the reference categories, rare ones pooled) and every statistical test
then works on that prepared form, so adding a test costs almost nothing.

Binning convention (numeric): ``cuts`` = [just below the reference minimum, interior reference
quantiles, the reference maximum] (duplicates removed); bin ``j`` holds ``cuts[j-1] < x <=
cuts[j]``. Bin 0 is "below the reference range" and the last bin "above it", so values outside the
reference range are never silently merged into the extreme quantile bins, and a constant feature
still gets three bins (below, equal, above).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..labels import text_key

UNSEEN = "__unseen__"  # new current categories + the profile's pooled-away ones (n_other > 0)
RARE = "__rare__"  # categories pooled because their expected count is too small


# --------------------------------------------------------------------------- helpers


def to_float_array(values: Any) -> np.ndarray:
    """Return ``values`` as a float64 numpy array (pandas NA -> NaN, no copy when possible).

    Args:
        values: a pandas Series, numpy array or sequence of numbers.

    Returns:
        A 1-D float64 array.
    """
    if isinstance(values, pd.Series):
        if pd.api.types.is_bool_dtype(values):
            values = values.astype("float64")
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(values, dtype="float64").ravel()


def reference_cuts(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """Bin cuts from reference quantiles, with below/above-range guard bins.

    Args:
        sorted_values: the finite reference values, sorted ascending (not empty).
        bins: number of quantile bins inside the reference range.

    Returns:
        Strictly increasing cuts; ``len(cuts) + 1`` bins (see module docstring).
    """
    lo, hi = float(sorted_values[0]), float(sorted_values[-1])
    interior = quantiles_sorted(sorted_values, np.arange(1, bins) / bins)
    cuts = np.concatenate([[np.nextafter(lo, -np.inf)], interior, [hi]])
    return np.unique(cuts)


def quantiles_sorted(sorted_values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles of a sorted array by the inverted-CDF rule (a data value, no interpolation).

    Args:
        sorted_values: values sorted ascending (not empty).
        probs: probabilities in [0, 1].

    Returns:
        ``sorted_values[ceil(p * n) - 1]`` for each p (clipped to the valid index range).
    """
    n = len(sorted_values)
    idx = np.clip(np.ceil(np.asarray(probs) * n).astype(np.int64) - 1, 0, n - 1)
    return sorted_values[idx]


def bin_counts_sorted(sorted_values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Counts per bin of a *sorted* array for the module's binning convention (O(k log n)).

    Args:
        sorted_values: values sorted ascending.
        cuts: strictly increasing cuts.

    Returns:
        ``len(cuts) + 1`` int64 counts.
    """
    at_or_below = np.searchsorted(sorted_values, cuts, side="right")
    edges = np.concatenate([[0], at_or_below, [len(sorted_values)]])
    return np.diff(edges).astype(np.int64)


def wasserstein_grid(size: int) -> np.ndarray:
    """Mid-point probabilities ``(k + 0.5) / size`` on which quantile functions are compared."""
    return (np.arange(size) + 0.5) / size


def _robust_spread(sorted_values: np.ndarray) -> float:
    """Standard deviation of the reference clipped to its 0.5%/99.5% quantiles.

    Clipping keeps one absurd value (a 9,831 mm hourly rainfall) from inflating the scale that the
    Wasserstein effect size is measured in; zero-inflated features keep a positive spread. Falls
    back to the plain standard deviation, then to 1.0 for a constant feature.
    """
    lo, hi = quantiles_sorted(sorted_values, np.array([0.005, 0.995]))
    spread = float(np.std(np.clip(sorted_values, lo, hi)))
    if not spread > 0:
        spread = float(np.std(sorted_values))
    return spread if spread > 0 and np.isfinite(spread) else 1.0


# --------------------------------------------------------------------------- numeric


@dataclass
class NumericReference:
    """What the tests need from the reference values of one numeric feature.

    ``values``/``counts`` hold a seeded random sample of at most ``sample_size`` finite values as
    sorted unique values and their counts; everything else is computed on all reference values.
    """

    name: str
    values: np.ndarray
    counts: np.ndarray
    n_rows: int
    n_missing: int
    n_nonfinite: int
    mean: float
    std: float
    spread: float
    min: float
    max: float
    psi_cuts: np.ndarray
    psi_counts: np.ndarray
    hist_cuts: np.ndarray
    hist_counts: np.ndarray
    quantiles: np.ndarray
    top_value: float | None
    top_share: float

    kind: str = field(default="numeric", init=False)

    @property
    def n_finite(self) -> int:
        """Number of finite reference values."""
        return int(self.psi_counts.sum())

    @property
    def sample_size(self) -> int:
        """Number of values in the stored sample (the KS test's reference size)."""
        return int(self.counts.sum())

    @property
    def missing_rate(self) -> float:
        """Share of reference rows that are missing or non-finite."""
        return (self.n_missing + self.n_nonfinite) / self.n_rows if self.n_rows else 0.0

    @cached_property
    def cdf(self) -> np.ndarray:
        """Empirical CDF of the sample at each unique value."""
        return np.cumsum(self.counts) / max(self.sample_size, 1)

    def share_of(self, value: float) -> float:
        """Share of the reference sample equal to ``value``."""
        if self.sample_size == 0:
            return 0.0
        i = int(np.searchsorted(self.values, value))
        if i < len(self.values) and self.values[i] == value:
            return float(self.counts[i]) / self.sample_size
        return 0.0

    def summary(self) -> dict[str, Any]:
        """Scalar facts (JSON-able) about the reference."""
        return {
            "kind": "numeric", "n_rows": self.n_rows, "n_missing": self.n_missing,
            "n_nonfinite": self.n_nonfinite, "missing_rate": self.missing_rate,
            "mean": self.mean, "std": self.std, "spread": self.spread, "min": self.min,
            "max": self.max, "sample_size": self.sample_size, "top_value": self.top_value,
            "top_share": self.top_share,
        }


def build_numeric_reference(
    values: Any,
    name: str = "feature",
    *,
    sample_size: int = 100_000,
    psi_bins: int = 10,
    hist_bins: int = 20,
    quantile_grid: int = 1000,
    seed: int = 42,
) -> NumericReference:
    """Summarise the reference values of a numeric feature.

    Args:
        values: reference values (NaN = missing; +-inf counted as non-finite).
        name: feature name.
        sample_size: finite values kept (sorted) for the KS test.
        psi_bins: quantile bins of the PSI test.
        hist_bins: quantile bins of the Jensen-Shannon test and plots.
        quantile_grid: quantiles kept for the Wasserstein distance.
        seed: seed of the sample.

    Returns:
        The :class:`NumericReference`.
    """
    arr = to_float_array(values)
    finite = np.isfinite(arr)
    n_missing = int(np.isnan(arr).sum())
    n_nonfinite = int(len(arr) - finite.sum() - n_missing)
    x = np.sort(arr[finite])
    if len(x) == 0:
        empty_f = np.array([], dtype="float64")
        empty_i = np.array([], dtype=np.int64)
        return NumericReference(
            name=name, values=empty_f, counts=empty_i, n_rows=len(arr), n_missing=n_missing,
            n_nonfinite=n_nonfinite, mean=float("nan"), std=float("nan"), spread=1.0,
            min=float("nan"), max=float("nan"), psi_cuts=empty_f,
            psi_counts=np.zeros(1, np.int64), hist_cuts=empty_f, hist_counts=np.zeros(1, np.int64),
            quantiles=empty_f, top_value=None, top_share=0.0,
        )
    if len(x) > sample_size:
        rng = np.random.default_rng(seed)
        sample = np.sort(x[rng.choice(len(x), size=sample_size, replace=False)])
    else:
        sample = x
    uniq, counts = unique_sorted(sample)
    top = int(np.argmax(counts))
    psi_cuts = reference_cuts(x, psi_bins)
    hist_cuts = reference_cuts(x, hist_bins)
    return NumericReference(
        name=name,
        values=uniq,
        counts=counts,
        n_rows=len(arr),
        n_missing=n_missing,
        n_nonfinite=n_nonfinite,
        mean=float(np.mean(x)),
        std=float(np.std(x)),
        spread=_robust_spread(x),
        min=float(x[0]),
        max=float(x[-1]),
        psi_cuts=psi_cuts,
        psi_counts=bin_counts_sorted(x, psi_cuts),
        hist_cuts=hist_cuts,
        hist_counts=bin_counts_sorted(x, hist_cuts),
        quantiles=quantiles_sorted(x, wasserstein_grid(quantile_grid)),
        top_value=float(uniq[top]),
        top_share=float(counts[top]) / len(sample),
    )


def unique_sorted(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique values and counts of a sorted array (O(n), no re-sort)."""
    if len(sorted_values) == 0:
        return sorted_values, np.array([], dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    counts = np.diff(np.concatenate([starts, [len(sorted_values)]])).astype(np.int64)
    return sorted_values[starts], counts


@dataclass
class NumericCurrent:
    """A batch column prepared for the numeric tests: its finite values, sorted."""

    name: str
    sorted: np.ndarray
    n_rows: int
    n_missing: int
    n_nonfinite: int

    @property
    def n(self) -> int:
        """Number of finite values."""
        return len(self.sorted)

    @property
    def missing_rate(self) -> float:
        """Share of rows that are missing or non-finite."""
        return (self.n_missing + self.n_nonfinite) / self.n_rows if self.n_rows else 0.0

    @cached_property
    def top(self) -> tuple[float | None, int]:
        """The most frequent finite value and its count (run lengths of the sorted values)."""
        x = self.sorted
        if len(x) == 0:
            return None, 0
        change = np.flatnonzero(x[1:] != x[:-1])
        if len(change) == len(x) - 1:  # all distinct
            return float(x[0]), 1
        ends = np.concatenate([change, [len(x) - 1]])
        lengths = np.diff(np.concatenate([[-1], ends]))
        i = int(np.argmax(lengths))
        return float(x[ends[i]]), int(lengths[i])


def prepare_numeric(values: Any, name: str = "feature") -> NumericCurrent:
    """Prepare a batch column for the numeric tests (drop NaN/inf, sort once).

    Args:
        values: the batch values.
        name: feature name.

    Returns:
        The :class:`NumericCurrent`.
    """
    arr = to_float_array(values)
    finite = np.isfinite(arr)
    n_finite = int(finite.sum())
    n_missing = int(np.isnan(arr).sum()) if n_finite < len(arr) else 0
    x = arr[finite] if n_finite < len(arr) else arr.copy()
    x.sort()
    return NumericCurrent(
        name=name, sorted=x, n_rows=len(arr), n_missing=n_missing,
        n_nonfinite=len(arr) - n_finite - n_missing,
    )


# --------------------------------------------------------------------------- categorical


@dataclass
class CategoricalReference:
    """Value counts of one categorical feature in the reference (missing values excluded)."""

    name: str
    categories: list[str]
    counts: np.ndarray
    n_rows: int
    n_missing: int
    n_other: int = 0  # reference values pooled beyond the kept categories

    kind: str = field(default="categorical", init=False)

    @property
    def n_nonmissing(self) -> int:
        """Number of non-missing reference values."""
        return int(self.counts.sum()) + self.n_other

    @property
    def missing_rate(self) -> float:
        """Share of reference rows that are missing."""
        return self.n_missing / self.n_rows if self.n_rows else 0.0

    @cached_property
    def index(self) -> dict[str, int]:
        """Category -> position in ``categories``."""
        return {c: i for i, c in enumerate(self.categories)}

    def summary(self) -> dict[str, Any]:
        """Scalar facts (JSON-able) about the reference."""
        return {
            "kind": "categorical", "n_rows": self.n_rows, "n_missing": self.n_missing,
            "missing_rate": self.missing_rate, "n_categories": len(self.categories),
            "n_other": self.n_other,
        }


def value_counts(values: Any) -> tuple[dict[str, int], int, int]:
    """Count the non-missing values of a categorical column by their text key.

    Args:
        values: a pandas Series or array-like.

    Returns:
        (counts by key, number of rows, number of missing values).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    vc = series.value_counts(dropna=True, sort=False)
    n_missing = int(len(series) - int(vc.sum()))
    counts: dict[str, int] = {}
    for key, count in zip(vc.index.tolist(), vc.to_numpy().tolist(), strict=True):
        text = text_key(key)
        counts[text] = counts.get(text, 0) + int(count)
    return counts, len(series), n_missing


def build_categorical_reference(
    values: Any, name: str = "feature", *, max_categories: int = 5000
) -> CategoricalReference:
    """Summarise the reference values of a categorical feature.

    Args:
        values: reference values (NaN/None = missing).
        name: feature name.
        max_categories: most frequent categories kept; the rest are pooled (``n_other``).

    Returns:
        The :class:`CategoricalReference`.
    """
    counts, n_rows, n_missing = value_counts(values)
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept, rest = items[:max_categories], items[max_categories:]
    return CategoricalReference(
        name=name,
        categories=[k for k, _ in kept],
        counts=np.array([v for _, v in kept], dtype=np.int64),
        n_rows=n_rows,
        n_missing=n_missing,
        n_other=int(sum(v for _, v in rest)),
    )


@dataclass
class CategoricalCurrent:
    """A batch column aligned with the reference categories, ready for the tests.

    ``labels``/``ref_counts``/``cur_counts`` form the 2 x k contingency table the tests use:
    reference categories, then each current value the reference never had (all of them in one
    ``__unseen__`` column when the profile pooled categories away), with columns whose expected
    count is below ``rare_min_expected`` pooled into ``__rare__``.
    """

    name: str
    labels: list[str]
    ref_counts: np.ndarray
    cur_counts: np.ndarray
    n_rows: int
    n_missing: int
    n_unseen: int
    unseen_top: dict[str, int]
    counts: dict[str, int]  # raw current counts by category (for plots and quality)

    @property
    def n(self) -> int:
        """Number of non-missing values."""
        return int(self.cur_counts.sum())

    @property
    def missing_rate(self) -> float:
        """Share of rows that are missing."""
        return self.n_missing / self.n_rows if self.n_rows else 0.0

    @property
    def unseen_share(self) -> float:
        """Share of non-missing values whose category the reference never had."""
        return self.n_unseen / self.n if self.n else 0.0


def prepare_categorical(
    values: Any,
    reference: CategoricalReference,
    *,
    rare_min_expected: float = 5.0,
    name: str | None = None,
) -> CategoricalCurrent:
    """Count a batch column and align it with the reference categories.

    Args:
        values: the batch values.
        reference: the feature's reference counts.
        rare_min_expected: columns of the 2 x k table with a smaller expected count (in either
            row) are pooled into ``__rare__`` so the chi-squared approximation holds.
        name: feature name (default: the reference's).

    Returns:
        The :class:`CategoricalCurrent`.
    """
    counts, n_rows, n_missing = value_counts(values)
    index = reference.index
    k = len(reference.categories)
    unseen: dict[str, int] = {}
    seen = np.zeros(k, dtype=np.int64)
    for key, count in counts.items():
        i = index.get(key)
        if i is None:
            unseen[key] = count
        else:
            seen[i] = count
    # Pitfall avoided: lumping every current-only category into one column (reference count 0)
    # makes a long-tailed feature (ids, merchants) "drift" on data from the very same
    # distribution: a batch always holds tail values the finite reference sample happened to
    # miss (about the reference's share of singletons, Good-Turing), while the reference's own
    # tail values missing from the batch are spread over many columns. Each current-only
    # category is therefore its own column, like each reference category; the sparse ones on
    # *both* sides are then pooled into __rare__ by their combined expected counts (symmetric
    # under "no drift"), and a new category with real mass keeps its own column and is
    # detected. Only when the profile itself pooled categories away (``n_other``) can a new
    # value not be told from a pooled one: those share the __unseen__ column.
    ref_parts: list[Any] = [reference.counts]
    cur_parts: list[Any] = [seen]
    labels = list(reference.categories)
    if reference.n_other > 0:
        ref_parts.append([reference.n_other])
        cur_parts.append([sum(unseen.values())])
        labels.append(UNSEEN)
    elif unseen:
        new = sorted(unseen)
        ref_parts.append(np.zeros(len(new), dtype=np.int64))
        cur_parts.append([unseen[c] for c in new])
        labels.extend(new)
    ref = np.concatenate(ref_parts).astype(np.int64)
    cur = np.concatenate(cur_parts).astype(np.int64)
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    labels = [lab for lab, kept in zip(labels, keep.tolist(), strict=True) if kept]
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if n_ref and n_cur and rare_min_expected > 0 and len(labels) > 2:
        total = n_ref + n_cur
        expected_min = (ref + cur) * (min(n_ref, n_cur) / total)
        rare = expected_min < rare_min_expected
        if rare.sum() >= 1 and (~rare).sum() >= 1:
            ref = np.concatenate([ref[~rare], [ref[rare].sum()]])
            cur = np.concatenate([cur[~rare], [cur[rare].sum()]])
            labels = [lab for lab, r in zip(labels, rare.tolist(), strict=True) if not r] + [RARE]
    top_unseen = dict(sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
    return CategoricalCurrent(
        name=name or reference.name, labels=labels, ref_counts=ref, cur_counts=cur,
        n_rows=n_rows, n_missing=n_missing, n_unseen=int(sum(unseen.values())),
        unseen_top=top_unseen, counts=counts,
    )
