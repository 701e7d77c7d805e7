"""Data quality gate: checks the training table before any model is trained.

``quality_report(df, cfg)`` inspects the loaded table (sentinel values already turned into NaN
by ``data.load_table``) and returns a JSON-able report with stable keys::

    {
      "rows": int,
      "columns": {col: {"kind", "present", "dtype", "missing_rate", "n_missing", "n_nonfinite",
                        "n_non_numeric", "n_unique", "constant", "sentinel_count",
                        "spike": {...} | None}},
      "target": {"column", "present", "dtype", "n_missing", "missing_rate", "classes",
                 "class_rates", "minority_rate", "n_non_numeric", "n_non_finite", "stats"},
      "duplicates": {"count", "rate"},
      "sentinels": {col: count},
      "checks": [{"name", "column", "severity", "message", "value", "threshold"}],
      "passed": bool, "n_errors": int, "n_warnings": int,
    }

``severity`` is ``"error"`` (a hard failure: training must not start), ``"warning"`` (training
goes on, the issue is recorded) or ``"info"``. ``enforce_quality`` builds the report and raises
:class:`QualityGateError` (carrying the report) when any check is an error.

Checks (thresholds from ``cfg.quality``):

* ``min_rows``: fewer rows than ``min_rows`` is an error.
* ``missing_column``: a declared feature absent from the table is an error.
* ``all_missing``: a feature with no usable value is always an error.
* ``missing_rate``: per feature, the share of missing values (NaN, plus +-inf in numeric features,
  which the preprocessing treats as missing): error above ``max_missing_rate``, warning above
  ``warn_missing_rate``.
* ``non_numeric``: values of a declared numeric feature that do not parse as numbers (error).
* ``non_finite``: +-inf in a numeric feature (warning with the count; treated as missing).
* ``spike``: a single value of a numeric feature holding far more mass than its neighbours
  (warning); see :func:`detect_spike` for the rule.
* ``constant``: a feature with a single distinct non-missing value (warning, or error when
  ``fail_on_constant``).
* ``duplicates``: exact duplicate full rows (warning; error above ``max_duplicate_rate``).
* ``target_missing_column``: the target column is absent (error).
* ``target_missing``: rows without a target (warning, the trainer drops them; error above
  ``max_missing_rate``).
* classification: ``target_classes`` (exactly 2 classes, error otherwise), ``positive_label``
  (the configured positive class must be present, error), ``class_balance`` (error when the
  minority rate is below ``min_class_rate``; an "imbalanced" warning below 0.2).
* regression: ``target_non_numeric`` and ``target_non_finite`` (errors), ``target_constant``
  (error: nothing to learn).
* ``sentinels``: how many declared sentinel values the loader turned into NaN (info).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .config import Config
from .errors import QualityGateError
from .io import to_jsonable

__all__ = [
    "IMBALANCE_WARN_RATE",
    "detect_spike",
    "enforce_quality",
    "quality_report",
]

#: Minority class rate below which an "imbalanced" warning is emitted.
IMBALANCE_WARN_RATE = 0.2
#: Distinct values compared on each side of the candidate spike.
SPIKE_NEIGHBOURS = 5
#: The candidate value must occur at least this many times.
SPIKE_MIN_COUNT = 5
#: A column with at most this many distinct values lying on a regular grid is discrete.
SPIKE_MAX_DISCRETE_LEVELS = 50

SEVERITIES = ("error", "warning", "info")


# --------------------------------------------------------------------------- spike detector


def _is_lattice(levels: np.ndarray) -> bool:
    """True when the sorted distinct ``levels`` are integers or multiples of their smallest gap."""
    if levels.size < 2:
        return True
    if np.all(levels == np.round(levels)):
        return True
    gap = float(np.min(np.diff(levels)))
    if gap <= 0 or not np.isfinite(gap):
        return False
    steps = (levels - levels[0]) / gap
    return bool(np.allclose(steps, np.round(steps), rtol=0.0, atol=1e-6))


def detect_spike(
    values: np.ndarray,
    spike_ratio: float,
    min_share: float,
    *,
    neighbours: int = SPIKE_NEIGHBOURS,
    min_count: int = SPIKE_MIN_COUNT,
    max_discrete_levels: int = SPIKE_MAX_DISCRETE_LEVELS,
) -> dict[str, Any] | None:
    """Find a single value holding far more mass than its neighbours (e.g. 0 in a duration).

    Rule (on the finite values only; NaN and +-inf are ignored):

    1. Discrete columns are never flagged: a column with at most ``max_discrete_levels``
       distinct values lying on a regular grid (integers such as ``items_count`` 1..5 or
       ``hour_of_day``, or multiples of one step such as ratings 0.5, 1.0, ...) has no continuum
       for a value to stand out from, and a dominant level there (a 95% ``0`` in a 0/1 flag, a
       zero-inflated count) is a property of the variable, not a data error. Constant columns
       (one distinct value) are not spikes either (the constant check reports them).
    2. The candidate is the most frequent exact value ``v`` (the smallest one on ties), with
       ``count`` occurrences among ``n`` finite values and ``share = count / n``.
    3. Its neighbourhood is the ``neighbours`` nearest distinct values below and above ``v``
       (in sorted order; fewer at the edges). The typical mass of one value there is the
       *median* count of those neighbours (robust to another heavy value nearby), and
       ``ratio = count / median_neighbour_count``.
    4. ``v`` is a spike when ``count >= min_count``, ``share >= min_share`` and
       ``ratio >= spike_ratio``.

    In a continuous column every other value occurs about once, so 8% exact zeros give a ratio
    near ``0.08 * n``; in a rounded continuous column (ages, prices to the cent) adjacent values
    carry similar mass, so the ratio stays near 1.

    Args:
        values: numeric values (any array-like convertible to float).
        spike_ratio: minimum ``count / median neighbour count``.
        min_share: minimum share of the finite values held by the candidate.
        neighbours: distinct values compared on each side.
        min_count: minimum occurrences of the candidate.
        max_discrete_levels: at most this many grid-aligned distinct values = discrete column.

    Returns:
        ``None`` when there is no spike, else ``{"value", "count", "share", "neighbour_share",
        "ratio", "n_distinct"}`` (plain Python numbers).
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return None
    levels, counts = np.unique(x, return_counts=True)
    if levels.size < 2:
        return None
    if levels.size <= max_discrete_levels and _is_lattice(levels):
        return None
    i = int(np.argmax(counts))
    count = int(counts[i])
    share = count / n
    if count < min_count or share < min_share:
        return None
    k = max(1, int(neighbours))
    around = np.concatenate([counts[max(0, i - k) : i], counts[i + 1 : i + 1 + k]])
    typical = float(np.median(around))
    ratio = count / typical
    if ratio < spike_ratio:
        return None
    return {
        "value": float(levels[i]),
        "count": count,
        "share": float(share),
        "neighbour_share": typical / n,
        "ratio": float(ratio),
        "n_distinct": int(levels.size),
    }


# --------------------------------------------------------------------------- helpers


def _check(
    checks: list[dict[str, Any]],
    name: str,
    column: str | None,
    severity: str,
    message: str,
    value: Any = None,
    threshold: Any = None,
) -> None:
    assert severity in SEVERITIES, severity
    checks.append(
        {
            "name": name,
            "column": column,
            "severity": severity,
            "message": message,
            "value": value,
            "threshold": threshold,
        }
    )


def _numeric_view(series: pd.Series) -> tuple[pd.Series, int]:
    """Return ``(float series, number of present values that are not numbers)``."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("float64"), 0
    if pd.api.types.is_numeric_dtype(series.dtype):
        return pd.to_numeric(series, errors="coerce").astype("float64"), 0
    coerced = pd.to_numeric(series, errors="coerce").astype("float64")
    bad = int((series.notna() & coerced.isna()).sum())
    return coerced, bad


def _fmt(value: Any) -> str:
    """Short, readable rendering of a value for messages."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def _empty_column(kind: str, sentinel_count: int | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "present": False,
        "dtype": None,
        "missing_rate": None,
        "n_missing": None,
        "n_nonfinite": None,
        "n_non_numeric": None,
        "n_unique": None,
        "constant": None,
        "sentinel_count": sentinel_count,
        "spike": None,
    }


def _column_stats(series: pd.Series, kind: str) -> dict[str, Any]:
    """Counts of one present feature column: missing, infinite, not numeric, distinct values,
    and its usable values (finite numbers, or the non-missing categories)."""
    n_nonfinite = n_non_numeric = 0
    if kind == "numeric":
        numeric, n_non_numeric = _numeric_view(series)
        n_nonfinite = int(np.isinf(numeric.to_numpy()).sum())
        usable = numeric[np.isfinite(numeric.to_numpy())]
    else:
        usable = series.dropna()
    n_unique = int(usable.nunique())
    return {"n_missing": int(series.isna().sum()), "n_nonfinite": n_nonfinite,
            "n_non_numeric": n_non_numeric, "n_unique": n_unique, "usable": usable,
            "constant_value": usable.iloc[0] if n_unique == 1 else None}


def _missing_checks(col: str, rows: int, stats: dict[str, Any], dtype: Any, q: Any,
                    checks: list[dict[str, Any]]) -> float | None:
    """Non-numeric values, all missing, the missing rate (error / warning), infinities.

    Returns:
        the share of unusable (missing or infinite) rows.
    """
    n_unusable = stats["n_missing"] + stats["n_nonfinite"]
    missing_rate = n_unusable / rows if rows else None
    if stats["n_non_numeric"]:
        _check(checks, "non_numeric", col, "error",
               f"numeric feature '{col}' has {stats['n_non_numeric']} value(s) that are not "
               f"numbers (dtype {dtype})", stats["n_non_numeric"], 0)
    if rows > 0 and len(stats["usable"]) == 0 and stats["n_non_numeric"] == 0:
        _check(checks, "all_missing", col, "error",
               f"feature '{col}' has no usable value: all {rows} rows are missing",
               1.0, q.max_missing_rate)
    elif missing_rate is not None and missing_rate > q.max_missing_rate:
        _check(checks, "missing_rate", col, "error",
               f"feature '{col}' is missing in {missing_rate:.2%} of rows ({n_unusable}/{rows}), "
               f"above max_missing_rate {q.max_missing_rate:.2%}",
               missing_rate, q.max_missing_rate)
    elif missing_rate is not None and missing_rate > q.warn_missing_rate:
        _check(checks, "missing_rate", col, "warning",
               f"feature '{col}' is missing in {missing_rate:.2%} of rows ({n_unusable}/{rows}), "
               f"above warn_missing_rate {q.warn_missing_rate:.2%}",
               missing_rate, q.warn_missing_rate)
    if stats["n_nonfinite"]:
        _check(checks, "non_finite", col, "warning",
               f"numeric feature '{col}' has {stats['n_nonfinite']} infinite value(s); they "
               "are treated as missing", stats["n_nonfinite"], 0)
    return missing_rate


def _value_checks(col: str, kind: str, stats: dict[str, Any], sentinel_count: int | None,
                  q: Any, checks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A constant column, a spike (an undeclared sentinel?), declared sentinels converted.

    Returns:
        the spike found, if any.
    """
    n_unusable = stats["n_missing"] + stats["n_nonfinite"]
    if stats["n_unique"] == 1:
        extra = f" (ignoring {n_unusable} missing value(s))" if n_unusable else ""
        _check(checks, "constant", col, "error" if q.fail_on_constant else "warning",
               f"feature '{col}' is constant: its only value is "
               f"{_fmt(to_jsonable(stats['constant_value']))}{extra}; it carries no information",
               stats["n_unique"], 2)
    spike = None
    if kind == "numeric" and len(stats["usable"]) > 0:
        spike = detect_spike(stats["usable"].to_numpy(), q.spike_ratio, q.spike_min_share)
        if spike is not None:
            _check(checks, "spike", col, "warning",
                   f"feature '{col}': the value {_fmt(spike['value'])} holds "
                   f"{spike['share']:.2%} of rows ({spike['count']}), {spike['ratio']:.1f}x the "
                   f"typical share of neighbouring values ({spike['neighbour_share']:.3%}); "
                   f"thresholds: share >= {q.spike_min_share:.2%} and ratio >= "
                   f"{q.spike_ratio:g}. An undeclared sentinel or a default value? Declare it "
                   "in data.sentinels if it means missing", spike["ratio"], q.spike_ratio)
    if sentinel_count:
        _check(checks, "sentinels", col, "info",
               f"feature '{col}': {sentinel_count} sentinel value(s) declared in data.sentinels "
               "were converted to missing", sentinel_count, None)
    return spike


def _feature_report(
    df: pd.DataFrame,
    col: str,
    kind: str,
    cfg: Config,
    sentinel_count: int | None,
    checks: list[dict[str, Any]],
) -> dict[str, Any]:
    """Profile one feature column and append its checks."""
    if col not in df.columns:
        _check(checks, "missing_column", col, "error",
               f"feature '{col}' (declared {kind}) is not a column of the table")
        return _empty_column(kind, sentinel_count)
    series = df[col]
    stats = _column_stats(series, kind)
    missing_rate = _missing_checks(col, len(df), stats, series.dtype, cfg.quality, checks)
    spike = _value_checks(col, kind, stats, sentinel_count, cfg.quality, checks)
    return {
        "kind": kind,
        "present": True,
        "dtype": str(series.dtype),
        "missing_rate": missing_rate,
        "n_missing": stats["n_missing"],
        "n_nonfinite": stats["n_nonfinite"],
        "n_non_numeric": stats["n_non_numeric"],
        "n_unique": stats["n_unique"],
        "constant": stats["n_unique"] == 1,
        "sentinel_count": sentinel_count,
        "spike": spike,
    }


def _target_report(df: pd.DataFrame, cfg: Config, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Profile the target column and append its checks."""
    q = cfg.quality
    col = cfg.data.target
    rows = len(df)
    report: dict[str, Any] = {
        "column": col,
        "present": col in df.columns,
        "dtype": None,
        "n_missing": None,
        "missing_rate": None,
        "classes": None,
        "class_rates": None,
        "minority_rate": None,
        "n_non_numeric": None,
        "n_non_finite": None,
        "stats": None,
    }
    if col not in df.columns:
        _check(
            checks,
            "target_missing_column",
            col,
            "error",
            f"target column '{col}' (data.target) is not a column of the table",
        )
        return report

    series = df[col]
    n_missing = int(series.isna().sum())
    missing_rate = n_missing / rows if rows else None
    report.update(dtype=str(series.dtype), n_missing=n_missing, missing_rate=missing_rate)
    if n_missing and missing_rate is not None:
        severity = "error" if missing_rate > q.max_missing_rate else "warning"
        consequence = (
            f"above max_missing_rate {q.max_missing_rate:.2%}"
            if severity == "error"
            else "these rows will be dropped by the trainer"
        )
        _check(
            checks,
            "target_missing",
            col,
            severity,
            f"target '{col}' is missing in {n_missing} row(s) ({missing_rate:.2%}); {consequence}",
            missing_rate,
            q.max_missing_rate,
        )
    present = series.dropna()

    if cfg.is_classifier:
        _classification_target(present, cfg, report, checks)
    else:
        _regression_target(present, cfg, report, checks)
    return report


def _same_label(label: Any, positive: Any) -> bool:
    """Whether a target value is the configured positive label (1 matches 1.0 and "1")."""
    try:
        if bool(label == positive):
            return True
    except (TypeError, ValueError):
        pass
    return str(label) == str(positive)


def _classification_target(
    present: pd.Series, cfg: Config, report: dict[str, Any], checks: list[dict[str, Any]]
) -> None:
    q = cfg.quality
    col = cfg.data.target
    counts = present.value_counts(dropna=True)
    labels = sorted(counts.index.tolist(), key=lambda v: str(v))
    total = int(counts.sum())
    rates = {str(label): (int(counts[label]) / total if total else 0.0) for label in labels}
    report["classes"] = [to_jsonable(label) for label in labels]
    report["class_rates"] = rates
    binary = cfg.task == "classification"
    if (binary and len(labels) != 2) or len(labels) < 2:
        shown = [to_jsonable(label) for label in labels[:20]]
        more = f" (+{len(labels) - 20} more)" if len(labels) > 20 else ""
        hint = ("; for three or more classes set task: multiclass"
                if binary and len(labels) > 2 else "")
        wanted = "exactly 2 classes (binary classification)" if binary else "at least 2 classes"
        _check(
            checks,
            "target_classes",
            col,
            "error",
            f"target '{col}' must have {wanted}; found {len(labels)}: {shown}{more}{hint}",
            len(labels),
            2,
        )
        if len(labels) < 2:
            return
    minority = min(rates.values())
    report["minority_rate"] = minority
    minority_label = min(rates, key=lambda k: rates[k])

    positive = cfg.data.positive_label
    if positive is not None and not any(_same_label(label, positive) for label in labels):
        _check(
            checks,
            "positive_label",
            col,
            "error",
            f"data.positive_label {positive!r} is not a class of target '{col}'; classes found: "
            f"{list(rates)}",
            to_jsonable(positive),
            None,
        )

    if binary and len(labels) != 2:
        return
    if minority < q.min_class_rate:
        _check(
            checks,
            "class_balance",
            col,
            "error",
            f"target '{col}': minority class {minority_label!r} has rate {minority:.3%}, below "
            f"min_class_rate {q.min_class_rate:.3%}; too few examples to learn and evaluate",
            minority,
            q.min_class_rate,
        )
    elif minority < IMBALANCE_WARN_RATE:
        _check(
            checks,
            "class_balance",
            col,
            "warning",
            f"target '{col}' is imbalanced: minority class {minority_label!r} has rate "
            f"{minority:.2%} (< {IMBALANCE_WARN_RATE:.0%}); judge models with PR-AUC and "
            "balanced metrics rather than accuracy",
            minority,
            IMBALANCE_WARN_RATE,
        )


def _regression_target(
    present: pd.Series, cfg: Config, report: dict[str, Any], checks: list[dict[str, Any]]
) -> None:
    col = cfg.data.target
    numeric, n_non_numeric = _numeric_view(present)
    arr = numeric.to_numpy()
    n_non_finite = int(np.isinf(arr).sum())
    finite = arr[np.isfinite(arr)]
    report["n_non_numeric"] = n_non_numeric
    report["n_non_finite"] = n_non_finite
    if finite.size:
        report["stats"] = {
            "mean": float(np.mean(finite)),
            "std": float(np.std(finite)),
            "min": float(np.min(finite)),
            "max": float(np.max(finite)),
        }
    if n_non_numeric:
        examples = present[numeric.isna()].astype(str).unique()[:5].tolist()
        _check(
            checks,
            "target_non_numeric",
            col,
            "error",
            f"regression target '{col}' has {n_non_numeric} non-numeric value(s), e.g. "
            f"{examples} (dtype {present.dtype})",
            n_non_numeric,
            0,
        )
    if n_non_finite:
        _check(
            checks,
            "target_non_finite",
            col,
            "error",
            f"regression target '{col}' has {n_non_finite} infinite value(s)",
            n_non_finite,
            0,
        )
    if finite.size and np.unique(finite).size == 1:
        _check(
            checks,
            "target_constant",
            col,
            "error",
            f"regression target '{col}' is constant ({_fmt(float(finite[0]))}); nothing to learn",
            1,
            2,
        )


def _duplicates(df: pd.DataFrame, cfg: Config, checks: list[dict[str, Any]]) -> dict[str, Any]:
    q = cfg.quality
    rows = len(df)
    if rows == 0 or df.shape[1] == 0:
        return {"count": 0, "rate": 0.0}
    try:  # one 64-bit hash per row, then duplicates of the hashes: 4x faster than comparing rows
        count = int(pd.Series(pd.util.hash_pandas_object(df, index=False)).duplicated(
            keep="first").sum())
    except TypeError:  # unhashable cells (lists, dicts): compare their text
        count = int(df.astype(str).duplicated(keep="first").sum())
    rate = count / rows
    if count:
        severity = "error" if rate > q.max_duplicate_rate else "warning"
        bound = (
            f"above max_duplicate_rate {q.max_duplicate_rate:.2%}"
            if severity == "error"
            else f"max_duplicate_rate is {q.max_duplicate_rate:.2%}"
        )
        _check(
            checks,
            "duplicates",
            None,
            severity,
            f"{count} row(s) ({rate:.2%}) are exact duplicates of an earlier row; {bound}",
            rate,
            q.max_duplicate_rate,
        )
    return {"count": count, "rate": rate}


# --------------------------------------------------------------------------- public API


def quality_report(
    df: pd.DataFrame,
    cfg: Config,
    sentinel_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Build the data quality report of a training table (never raises on bad data).

    Args:
        df: the loaded training table (sentinels already replaced by NaN).
        cfg: the validated configuration (features, target, task and ``cfg.quality``).
        sentinel_counts: per column, how many sentinel values the loader converted to NaN;
            when ``None``, ``df.attrs["sentinel_counts"]`` is used if present.

    Returns:
        The JSON-able report described in the module docstring; ``passed`` is ``True`` exactly
        when no check has severity ``"error"``.
    """
    if sentinel_counts is None:
        attr = df.attrs.get("sentinel_counts")
        sentinel_counts = attr if isinstance(attr, dict) else None
    sentinels = {str(k): int(v) for k, v in (sentinel_counts or {}).items()}

    q = cfg.quality
    checks: list[dict[str, Any]] = []
    rows = len(df)
    if rows < q.min_rows:
        _check(
            checks,
            "min_rows",
            None,
            "error",
            f"the table has {rows} row(s), fewer than quality.min_rows {q.min_rows}",
            rows,
            q.min_rows,
        )

    features = cfg.data.features
    columns: dict[str, Any] = {}
    for kind, names in (("numeric", features.numeric), ("categorical", features.categorical)):
        for col in names:
            columns[col] = _feature_report(df, col, kind, cfg, sentinels.get(col), checks)
    for col, count in sentinels.items():
        if col not in columns and count:
            _check(
                checks,
                "sentinels",
                col,
                "info",
                f"column '{col}': {count} sentinel value(s) declared in data.sentinels were "
                "converted to missing",
                count,
                None,
            )

    target = _target_report(df, cfg, checks)
    duplicates = _duplicates(df, cfg, checks)

    n_errors = sum(1 for c in checks if c["severity"] == "error")
    n_warnings = sum(1 for c in checks if c["severity"] == "warning")
    report = {
        "rows": rows,
        "columns": columns,
        "target": target,
        "duplicates": duplicates,
        "sentinels": sentinels,
        "checks": checks,
        "passed": n_errors == 0,
        "n_errors": n_errors,
        "n_warnings": n_warnings,
    }
    return to_jsonable(report)


def format_failures(report: dict[str, Any]) -> str:
    """The failure message of a report: one line per error naming column, value and threshold."""
    errors = [c for c in report.get("checks", []) if c.get("severity") == "error"]
    lines = [f"data quality gate failed with {len(errors)} error(s):"]
    for c in errors:
        where = f" [column '{c['column']}']" if c.get("column") is not None else ""
        lines.append(
            f"  - {c['name']}{where}: {c['message']} "
            f"(value={_fmt(c.get('value'))}, threshold={_fmt(c.get('threshold'))})"
        )
    return "\n".join(lines)


def enforce_quality(
    df: pd.DataFrame,
    cfg: Config,
    sentinel_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Build the quality report and stop on hard failures.

    Returns:
        The report (see :func:`quality_report`) when no check is an error.

    Raises:
        QualityGateError: when any check has severity ``"error"``; its message lists each failed
            check with its column, value and threshold, and ``.report`` holds the full report.
    """
    report = quality_report(df, cfg, sentinel_counts=sentinel_counts)
    if not report["passed"]:
        raise QualityGateError(format_failures(report), report)
    return report
