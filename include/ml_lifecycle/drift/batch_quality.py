"""Data quality of a batch, judged against the reference profile.

Two kinds of findings:

* **unusable batch** -> :class:`~ml_lifecycle.errors.DataError` naming the column: no rows, a
  feature column missing, text in a numeric feature. Nothing downstream runs on such a batch.
* **issues** with a severity (``warning`` / ``critical``): missing-rate increase per feature, a
  feature (almost) entirely missing, never-seen categories, values outside the reference range,
  infinite values, sentinel spikes (one value suddenly holding a large share of the batch, e.g. an
  undeclared ``-999`` or ``0 K``), extra columns (``info``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .profile import ReferenceProfile
from .reference import (
    CategoricalCurrent,
    CategoricalReference,
    NumericCurrent,
    NumericReference,
)
from .settings import DriftConfig

SEVERITY_ORDER = {"ok": 0, "info": 0, "warning": 1, "critical": 2}


def check_schema(
    batch: pd.DataFrame,
    profile: ReferenceProfile,
    *,
    source: str = "batch",
    known_columns: list[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Refuse an unusable batch; coerce numeric features stored as text.

    Args:
        batch: the batch as loaded.
        profile: the champion's reference profile (feature lists and dtypes).
        source: how to name the batch in messages (a path).
        known_columns: non-feature columns that are expected (id, time, target ...).

    Returns:
        (the batch, with numeric features as float64 where they were not numeric; schema facts:
        ``missing_columns``, ``extra_columns``, ``dtype_changes``).

    Raises:
        DataError: empty batch, missing feature columns, text in a numeric feature.
    """
    if batch.shape[0] == 0:
        raise DataError(f"{source}: the batch has no rows; nothing to check")
    missing = [c for c in profile.features if c not in batch.columns]
    if missing:
        raise DataError(
            f"{source}: missing feature column(s) {missing}; the model needs "
            f"{profile.features}, the batch has {list(batch.columns)[:30]}"
        )
    known = set(profile.features) | set(known_columns or [])
    known |= {c for c in (profile.id_column, profile.time_column) if c}
    extra = [str(c) for c in batch.columns if c not in known]
    coerced: dict[str, np.ndarray] = {}
    dtype_changes = []
    for name in profile.numeric:
        col = batch[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        text = col.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce")
        bad = text.notna() & (text != "") & values.isna()
        if bad.any():
            raise DataError(
                f"{source}: column '{name}' is a numeric feature but holds text, e.g. "
                f"{text[bad].iloc[0]!r} ({int(bad.sum())} such values)"
            )
        coerced[name] = values.to_numpy(dtype="float64", na_value=np.nan)
        dtype_changes.append({"column": name, "reference": profile.dtypes.get(name),
                              "current": str(col.dtype)})
    if coerced:
        batch = batch.assign(**coerced)
    return batch, {"missing_columns": [], "extra_columns": extra, "dtype_changes": dtype_changes}


def _issue(check: str, column: str | None, severity: str, value: Any, reference: Any,
           threshold: Any, message: str) -> dict[str, Any]:
    return {"check": check, "column": column, "severity": severity, "value": value,
            "reference": reference, "threshold": threshold, "message": message}


def _numeric_quality(ref: NumericReference, cur: NumericCurrent, cfg: DriftConfig,
                     issues: list[dict[str, Any]]) -> dict[str, Any]:
    name = ref.name
    x = cur.sorted
    out_low = int(np.searchsorted(x, ref.min, side="left")) if cur.n and ref.sample_size else 0
    out_high = int(cur.n - np.searchsorted(x, ref.max, side="right")) \
        if cur.n and ref.sample_size else 0
    oor = (out_low + out_high) / cur.n if cur.n else 0.0
    top_value, top_count = cur.top
    top_share = top_count / cur.n if cur.n else 0.0
    top_ref = ref.share_of(top_value) if top_value is not None else 0.0
    info = {"kind": "numeric", "missing_rate": cur.missing_rate,
            "missing_rate_reference": ref.missing_rate, "n_nonfinite": cur.n_nonfinite,
            "out_of_range_share": oor, "below_range": out_low, "above_range": out_high,
            "reference_min": ref.min, "reference_max": ref.max,
            "top_value": top_value, "top_share": top_share, "top_share_reference": top_ref}
    if cur.n_nonfinite:
        issues.append(_issue(
            "nonfinite", name, "warning", cur.n_nonfinite, ref.n_nonfinite, 0,
            f"'{name}': {cur.n_nonfinite} infinite values (treated as missing)"))
    if oor > cfg.max_out_of_range_share:
        issues.append(_issue(
            "out_of_range", name, "warning", oor, None, cfg.max_out_of_range_share,
            f"'{name}': {oor:.1%} of values outside the reference range "
            f"[{ref.min:.6g}, {ref.max:.6g}] ({out_low} below, {out_high} above)"))
    floor = 1.0 / max(ref.sample_size, 1)
    if (cur.n >= cfg.min_rows and top_share >= cfg.spike_min_share
            and top_ref <= cfg.spike_max_reference_share
            and top_share >= cfg.spike_ratio * max(top_ref, floor)):
        issues.append(_issue(
            "sentinel_spike", name, "warning", top_share, top_ref, cfg.spike_min_share,
            f"'{name}': the value {top_value:.6g} holds {top_share:.1%} of the batch vs "
            f"{top_ref:.2%} of the reference (an undeclared sentinel?)"))
    return info


def _categorical_quality(cur: CategoricalCurrent, ref_missing: float, cfg: DriftConfig,
                         issues: list[dict[str, Any]]) -> dict[str, Any]:
    info = {"kind": "categorical", "missing_rate": cur.missing_rate,
            "missing_rate_reference": ref_missing, "unseen_share": cur.unseen_share,
            "n_unseen": cur.n_unseen, "unseen_top": cur.unseen_top,
            "n_categories": len(cur.counts)}
    if cur.unseen_share > cfg.max_unseen_share:
        shown = ", ".join(repr(k) for k in list(cur.unseen_top)[:5])
        issues.append(_issue(
            "unseen_categories", cur.name, "warning", cur.unseen_share, 0.0,
            cfg.max_unseen_share,
            f"'{cur.name}': {cur.unseen_share:.1%} of values are categories never seen in "
            f"training ({shown})"))
    return info


def feature_quality(
    ref: NumericReference | CategoricalReference,
    cur: NumericCurrent | CategoricalCurrent,
    cfg: DriftConfig,
    *,
    n_rows: int,
    sentinels: int = 0,
    nonfinite_converted: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Quality facts and issues of one feature of a batch.

    Args:
        ref: the feature's reference summary.
        cur: the prepared batch column.
        cfg: drift settings (quality thresholds).
        n_rows: rows in the batch.
        sentinels: declared sentinel values the loader turned into NaN in this column.
        nonfinite_converted: infinite values the loader turned into NaN in this column.

    Returns:
        (facts, issues).
    """
    issues: list[dict[str, Any]] = []
    name = ref.name
    if isinstance(ref, NumericReference) and isinstance(cur, NumericCurrent):
        info = _numeric_quality(ref, cur, cfg, issues)
    else:
        info = _categorical_quality(cur, ref.missing_rate, cfg, issues)  # type: ignore[arg-type]
    missing, ref_missing = info["missing_rate"], info["missing_rate_reference"]
    info["sentinel_share"] = sentinels / n_rows if n_rows else 0.0
    info["nonfinite_converted"] = int(nonfinite_converted)
    note = f", {sentinels} of them declared sentinels" if sentinels else ""
    if missing >= cfg.critical_missing_rate and ref_missing < cfg.critical_missing_rate:
        issues.append(_issue(
            "missing_rate", name, "critical", missing, ref_missing, cfg.critical_missing_rate,
            f"'{name}': {missing:.1%} missing (reference {ref_missing:.1%}){note}; the "
            "feature is effectively absent"))
    elif missing - ref_missing > cfg.max_missing_increase:
        issues.append(_issue(
            "missing_rate", name, "warning", missing, ref_missing, cfg.max_missing_increase,
            f"'{name}': missing rate rose from {ref_missing:.1%} to {missing:.1%}{note}"))
    if nonfinite_converted:
        issues.append(_issue(
            "nonfinite", name, "warning", int(nonfinite_converted), None, 0,
            f"'{name}': {nonfinite_converted} infinite values turned into missing"))
    return info, issues


def summarize_quality(
    columns: dict[str, dict[str, Any]],
    feature_issues: list[dict[str, Any]],
    cfg: DriftConfig,
    *,
    n_rows: int,
    schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Batch-level quality report from the per-feature facts and issues.

    Returns:
        JSON-able dict: ``severity`` (``ok`` / ``warning`` / ``critical``), ``issues`` (each with
        check, column, severity, value, reference, threshold, message) and per-column facts.
    """
    schema = schema or {"missing_columns": [], "extra_columns": [], "dtype_changes": []}
    issues: list[dict[str, Any]] = []
    if schema.get("extra_columns"):
        issues.append(_issue("extra_columns", None, "info", schema["extra_columns"], None, None,
                             f"columns not used by the model: {schema['extra_columns']}"))
    for change in schema.get("dtype_changes", []):
        issues.append(_issue("dtype", change["column"], "warning", change["current"],
                             change["reference"], None,
                             f"'{change['column']}': numeric feature stored as "
                             f"{change['current']} (converted)"))
    if n_rows < cfg.min_rows:
        issues.append(_issue("min_rows", None, "info", n_rows, None, cfg.min_rows,
                             f"batch of {n_rows} rows (< drift.min_rows={cfg.min_rows}): "
                             "too small to judge drift"))
    issues.extend(feature_issues)
    severity = "ok"
    for issue in issues:
        if SEVERITY_ORDER[issue["severity"]] > SEVERITY_ORDER[severity]:
            severity = issue["severity"]
    counts = {s: sum(1 for i in issues if i["severity"] == s) for s in ("critical", "warning")}
    return {"severity": severity, "n_rows": n_rows, "n_critical": counts["critical"],
            "n_warnings": counts["warning"], "missing_columns": schema.get("missing_columns", []),
            "extra_columns": schema.get("extra_columns", []), "issues": issues,
            "columns": columns}


def batch_quality(
    profile: ReferenceProfile,
    currents: dict[str, NumericCurrent | CategoricalCurrent],
    cfg: DriftConfig,
    *,
    n_rows: int,
    schema: dict[str, Any] | None = None,
    sentinel_counts: dict[str, int] | None = None,
    nonfinite_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Quality findings of a batch compared with the reference profile.

    Args:
        profile: the reference profile.
        currents: prepared batch columns (:func:`~.decision.prepare_batch`).
        cfg: drift settings (quality thresholds).
        n_rows: rows in the batch.
        schema: the facts returned by :func:`check_schema`.
        sentinel_counts: declared sentinel values the loader turned into NaN, per column.
        nonfinite_counts: infinite values the loader turned into NaN, per column.

    Returns:
        See :func:`summarize_quality`.
    """
    sentinel_counts = sentinel_counts or {}
    nonfinite_counts = nonfinite_counts or {}
    columns: dict[str, Any] = {}
    issues: list[dict[str, Any]] = []
    for name in profile.features:
        info, found = feature_quality(
            profile.reference(name), currents[name], cfg, n_rows=n_rows,
            sentinels=int(sentinel_counts.get(name, 0)),
            nonfinite_converted=int(nonfinite_counts.get(name, 0)))
        columns[name] = info
        issues.extend(found)
    return summarize_quality(columns, issues, cfg, n_rows=n_rows, schema=schema)
