"""Tests of the data quality gate (ml_lifecycle.quality)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_lifecycle.config import Config, config_from_dict
from ml_lifecycle.errors import QualityGateError
from ml_lifecycle.quality import detect_spike, enforce_quality, quality_report

REPORT_KEYS = {
    "rows",
    "columns",
    "target",
    "duplicates",
    "sentinels",
    "checks",
    "passed",
    "n_errors",
    "n_warnings",
}
COLUMN_KEYS = {
    "kind",
    "present",
    "dtype",
    "missing_rate",
    "n_missing",
    "n_nonfinite",
    "n_non_numeric",
    "n_unique",
    "constant",
    "sentinel_count",
    "spike",
}
CHECK_KEYS = {"name", "column", "severity", "message", "value", "threshold"}


# --------------------------------------------------------------------------- fixtures


def make_cfg(
    task: str = "classification",
    numeric: tuple[str, ...] = ("x",),
    categorical: tuple[str, ...] = ("c",),
    target: str = "y",
    positive_label: Any = None,
    **quality: Any,
) -> Config:
    """A minimal valid config; ``quality`` overrides cfg.quality fields."""
    data: dict[str, Any] = {
        "path": "data.csv",
        "target": target,
        "features": {"numeric": list(numeric), "categorical": list(categorical)},
    }
    if positive_label is not None:
        data["positive_label"] = positive_label
    raw = {
        "task": task,
        "data": data,
        "quality": quality,
        "split": {"strategy": "stratified" if task == "classification" else "random"},
        "registry": {"root": "registry"},
    }
    return config_from_dict(raw)


def clean_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Continuous x, 3-level category c, binary y with exactly 30% positives."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(10.0, 2.0, n),
            "c": np.array(["a", "b", "c"])[np.arange(n) % 3],
            "y": (np.arange(n) % 10 < 3).astype(int),
        }
    )


def checks_named(report: dict, name: str, column: str | None = None) -> list[dict]:
    return [
        c
        for c in report["checks"]
        if c["name"] == name and (column is None or c["column"] == column)
    ]


def severities(report: dict, name: str, column: str | None = None) -> set[str]:
    return {c["severity"] for c in checks_named(report, name, column)}


# --------------------------------------------------------------------------- structure


def test_clean_frame_passes_without_findings() -> None:
    report = enforce_quality(clean_frame(), make_cfg())
    assert report["passed"] is True
    assert report["n_errors"] == 0
    assert report["n_warnings"] == 0
    assert report["checks"] == []
    assert report["rows"] == 200
    assert report["target"]["classes"] == [0, 1]
    assert report["target"]["class_rates"] == {"0": 0.7, "1": 0.3}
    assert report["columns"]["x"]["spike"] is None


def test_report_is_json_serialisable_with_stable_keys() -> None:
    df = clean_frame()
    df.loc[:9, "x"] = np.inf  # non-finite values
    df.loc[10:30, "c"] = None  # missing values
    report = quality_report(df, make_cfg(), sentinel_counts={"x": 3})
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert set(report) == REPORT_KEYS
    assert set(report["columns"]) == {"x", "c"}
    for col in report["columns"].values():
        assert set(col) == COLUMN_KEYS
    assert set(report["duplicates"]) == {"count", "rate"}
    assert report["checks"], "this frame has findings"
    for check in report["checks"]:
        assert set(check) == CHECK_KEYS
        assert check["severity"] in {"error", "warning", "info"}


def test_missing_everything_report_is_still_json_serialisable() -> None:
    df = pd.DataFrame({"other": [1, 2, 3]})
    report = quality_report(df, make_cfg())
    json.dumps(report, allow_nan=False)
    assert set(report) == REPORT_KEYS
    assert report["columns"]["x"]["present"] is False
    assert set(report["columns"]["x"]) == COLUMN_KEYS


@pytest.mark.parametrize(
    "mutate",
    [
        lambda df: df,
        lambda df: df.head(10),
        lambda df: df.assign(x=np.nan),
        lambda df: df.assign(y=1),
        lambda df: df.drop(columns="y"),
        lambda df: pd.concat([df, df.head(20)], ignore_index=True),
        lambda df: df.assign(c="same"),
    ],
    ids=["clean", "few_rows", "all_missing", "single_class", "no_target", "dups", "constant"],
)
def test_passed_flag_is_consistent_with_errors(mutate: Any) -> None:
    report = quality_report(mutate(clean_frame()), make_cfg())
    errors = [c for c in report["checks"] if c["severity"] == "error"]
    warnings = [c for c in report["checks"] if c["severity"] == "warning"]
    assert report["n_errors"] == len(errors)
    assert report["n_warnings"] == len(warnings)
    assert report["passed"] is (not errors)
    if errors:
        with pytest.raises(QualityGateError):
            enforce_quality(mutate(clean_frame()), make_cfg())
    else:
        assert enforce_quality(mutate(clean_frame()), make_cfg())["passed"] is True


# --------------------------------------------------------------------------- rows / columns


def test_min_rows() -> None:
    cfg = make_cfg(min_rows=50)
    few = quality_report(clean_frame(n=30), cfg)
    assert severities(few, "min_rows") == {"error"}
    check = checks_named(few, "min_rows")[0]
    assert (check["value"], check["threshold"]) == (30, 50)
    assert checks_named(quality_report(clean_frame(n=60), cfg), "min_rows") == []


def test_missing_feature_column_is_an_error() -> None:
    df = clean_frame().drop(columns="c")
    report = quality_report(df, make_cfg())
    assert severities(report, "missing_column", "c") == {"error"}
    assert report["columns"]["c"]["present"] is False


@pytest.mark.parametrize(
    ("n_missing", "expected"),
    [(4, set()), (20, {"warning"}), (120, {"error"})],
)
def test_missing_rate_thresholds(n_missing: int, expected: set[str]) -> None:
    df = clean_frame(n=200)
    df.loc[: n_missing - 1, "x"] = np.nan
    report = quality_report(df, make_cfg(warn_missing_rate=0.05, max_missing_rate=0.5))
    assert report["columns"]["x"]["missing_rate"] == pytest.approx(n_missing / 200)
    assert severities(report, "missing_rate", "x") == expected


def test_all_missing_feature_raises_naming_the_column() -> None:
    df = clean_frame().assign(x=np.nan)
    cfg = make_cfg(max_missing_rate=1.0)  # even when any missing rate is tolerated
    with pytest.raises(QualityGateError) as info:
        enforce_quality(df, cfg)
    assert "'x'" in str(info.value)
    assert "all_missing" in str(info.value)
    assert info.value.report["passed"] is False
    assert severities(info.value.report, "all_missing", "x") == {"error"}


def test_all_missing_categorical_feature_is_an_error() -> None:
    df = clean_frame().assign(c=None)
    report = quality_report(df, make_cfg())
    assert severities(report, "all_missing", "c") == {"error"}


def test_infinite_values_warn_with_counts_and_count_as_missing() -> None:
    df = clean_frame(n=200)
    df.loc[:5, "x"] = np.inf
    df.loc[6:7, "x"] = -np.inf
    report = quality_report(df, make_cfg())
    [check] = checks_named(report, "non_finite", "x")
    assert check["severity"] == "warning"
    assert check["value"] == 8
    assert "8" in check["message"]
    assert report["columns"]["x"]["n_nonfinite"] == 8
    assert report["columns"]["x"]["missing_rate"] == pytest.approx(8 / 200)
    assert report["passed"] is True


def test_no_infinite_warning_on_clean_numeric() -> None:
    assert checks_named(quality_report(clean_frame(), make_cfg()), "non_finite") == []


def test_non_numeric_values_in_numeric_feature_are_an_error() -> None:
    df = clean_frame()
    df["x"] = df["x"].astype(object)
    df.loc[:2, "x"] = "oops"
    report = quality_report(df, make_cfg())
    assert severities(report, "non_numeric", "x") == {"error"}


def test_constant_column_warning_or_error() -> None:
    df = clean_frame().assign(c="same")
    report = quality_report(df, make_cfg())
    assert severities(report, "constant", "c") == {"warning"}
    assert report["columns"]["c"]["constant"] is True
    strict = quality_report(df, make_cfg(fail_on_constant=True))
    assert severities(strict, "constant", "c") == {"error"}
    assert checks_named(quality_report(clean_frame(), make_cfg()), "constant") == []


def test_sentinel_counts_are_reported() -> None:
    report = quality_report(clean_frame(), make_cfg(), sentinel_counts={"x": 7, "other": 2})
    assert report["sentinels"] == {"x": 7, "other": 2}
    assert report["columns"]["x"]["sentinel_count"] == 7
    assert report["columns"]["c"]["sentinel_count"] is None
    assert {c["column"] for c in checks_named(report, "sentinels")} == {"x", "other"}
    assert severities(report, "sentinels") == {"info"}
    assert report["passed"] is True


# --------------------------------------------------------------------------- duplicates


def test_duplicates_warning_then_error() -> None:
    base = clean_frame(n=200)
    few = pd.concat([base, base.head(10)], ignore_index=True)
    report = quality_report(few, make_cfg(max_duplicate_rate=0.2))
    assert report["duplicates"]["count"] == 10
    assert severities(report, "duplicates") == {"warning"}
    many = pd.concat([base, base.head(100)], ignore_index=True)
    report = quality_report(many, make_cfg(max_duplicate_rate=0.2))
    assert report["duplicates"]["rate"] == pytest.approx(100 / 300)
    assert severities(report, "duplicates") == {"error"}
    assert checks_named(quality_report(base, make_cfg()), "duplicates") == []


# --------------------------------------------------------------------------- spikes


def test_spike_detected_on_continuous_column_with_8pct_zeros() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    duration = rng.exponential(300.0, n)
    duration[rng.choice(n, size=160, replace=False)] = 0.0
    spike = detect_spike(duration, spike_ratio=10.0, min_share=0.02)
    assert spike is not None
    assert spike["value"] == 0.0
    assert spike["share"] == pytest.approx(0.08)
    assert spike["ratio"] >= 10.0

    df = clean_frame(n=n).assign(x=duration)
    report = quality_report(df, make_cfg())
    [check] = checks_named(report, "spike", "x")
    assert check["severity"] == "warning"
    assert check["threshold"] == 10.0
    assert "8.00%" in check["message"] and "value 0" in check["message"]
    assert report["columns"]["x"]["spike"]["value"] == 0.0
    assert report["passed"] is True


@pytest.mark.parametrize(
    "name",
    ["items_count", "hour_of_day", "binary_flag", "zero_inflated_count", "half_star_rating"],
)
def test_discrete_columns_are_not_spiky(name: str) -> None:
    rng = np.random.default_rng(2)
    n = 3000
    values = {
        "items_count": rng.choice([1, 2, 3, 4, 5], n, p=[0.6, 0.2, 0.1, 0.06, 0.04]),
        "hour_of_day": rng.integers(0, 24, n),
        "binary_flag": (rng.random(n) < 0.03).astype(int),
        "zero_inflated_count": np.where(rng.random(n) < 0.9, 0, rng.poisson(4, n)),
        "half_star_rating": rng.choice(np.arange(1, 11) / 2, n),
    }[name].astype(float)
    assert detect_spike(values, spike_ratio=10.0, min_share=0.02) is None
    df = clean_frame(n=n).assign(x=values)
    assert checks_named(quality_report(df, make_cfg()), "spike") == []


def test_rounded_continuous_column_is_not_spiky() -> None:
    rng = np.random.default_rng(3)
    age = np.clip(np.round(rng.normal(40, 12, 5000)), 17, 90)  # ~70 integer levels
    assert detect_spike(age, spike_ratio=10.0, min_share=0.02) is None


def test_spike_needs_both_share_and_ratio() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 1000)
    x[:15] = 0.0  # 1.5% zeros: ratio 15 but share below 2%
    assert detect_spike(x, spike_ratio=10.0, min_share=0.02) is None
    assert detect_spike(x, spike_ratio=10.0, min_share=0.01) is not None
    assert detect_spike(x, spike_ratio=20.0, min_share=0.01) is None


def test_spike_ignores_nan_inf_and_degenerate_input() -> None:
    assert detect_spike(np.array([]), 10.0, 0.02) is None
    assert detect_spike(np.array([np.nan, np.inf]), 10.0, 0.02) is None
    assert detect_spike(np.full(100, 3.5), 10.0, 0.02) is None  # constant, not a spike


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    loc=st.floats(-1e6, 1e6),
    scale=st.floats(1e-3, 1e6),
    resolution_steps=st.one_of(st.none(), st.integers(20, 1000)),
)
def test_normal_column_is_never_spiky(
    seed: int, n: int, loc: float, scale: float, resolution_steps: int | None
) -> None:
    """A normal sample (raw, or rounded to a grid finer than scale/20) never holds a spike."""
    x = np.random.default_rng(seed).normal(loc, scale, n)
    if resolution_steps is not None:
        step = scale / resolution_steps
        x = np.round(x / step) * step
    assert detect_spike(x, spike_ratio=10.0, min_share=0.02) is None


# --------------------------------------------------------------------------- target


def test_missing_target_column_is_an_error() -> None:
    df = clean_frame().drop(columns="y")
    with pytest.raises(QualityGateError) as info:
        enforce_quality(df, make_cfg())
    assert "target_missing_column" in str(info.value)
    assert "'y'" in str(info.value)
    assert info.value.report["target"]["present"] is False


def test_missing_target_values_warn_then_fail() -> None:
    df = clean_frame(n=200)
    df["y"] = df["y"].astype("float64")
    df.loc[:9, "y"] = np.nan
    report = quality_report(df, make_cfg(max_missing_rate=0.5))
    assert report["target"]["n_missing"] == 10
    [check] = checks_named(report, "target_missing")
    assert check["severity"] == "warning"
    assert "dropped" in check["message"]
    df.loc[:150, "y"] = np.nan
    assert severities(quality_report(df, make_cfg()), "target_missing") == {"error"}


def test_single_class_is_an_error_naming_the_class() -> None:
    df = clean_frame().assign(y="yes")
    with pytest.raises(QualityGateError) as info:
        enforce_quality(df, make_cfg())
    assert "target_classes" in str(info.value)
    assert "'yes'" in str(info.value)


def test_three_classes_is_an_error_naming_the_classes() -> None:
    df = clean_frame()
    df["y"] = np.array(["lo", "mid", "hi"])[np.arange(len(df)) % 3]
    report = quality_report(df, make_cfg())
    [check] = checks_named(report, "target_classes")
    assert check["severity"] == "error"
    assert check["value"] == 3
    assert all(label in check["message"] for label in ("lo", "mid", "hi"))


def test_imbalanced_target_warns_with_pr_auc_advice() -> None:
    df = clean_frame(n=200).assign(y=(np.arange(200) % 10 == 0).astype(int))  # 10% positives
    report = quality_report(df, make_cfg())
    [check] = checks_named(report, "class_balance")
    assert check["severity"] == "warning"
    assert "imbalanced" in check["message"]
    assert "PR-AUC" in check["message"]
    assert report["target"]["minority_rate"] == pytest.approx(0.1)
    assert report["passed"] is True


def test_too_rare_minority_class_is_an_error() -> None:
    df = clean_frame(n=1000).assign(y=(np.arange(1000) < 2).astype(int))  # 0.2% positives
    report = quality_report(df, make_cfg(min_class_rate=0.005))
    assert severities(report, "class_balance") == {"error"}


def test_balanced_target_has_no_balance_finding() -> None:
    assert checks_named(quality_report(clean_frame(), make_cfg()), "class_balance") == []


def test_unknown_positive_label_is_an_error() -> None:
    report = quality_report(clean_frame(), make_cfg(positive_label="yes"))
    assert severities(report, "positive_label") == {"error"}
    ok = quality_report(clean_frame(), make_cfg(positive_label=1))
    assert checks_named(ok, "positive_label") == []
    for dtype in ("float64", str):  # 0.0 / 1.0 and "0" / "1" both contain the label 1
        frame = clean_frame().assign(y=lambda d, t=dtype: d["y"].astype(t))
        report = quality_report(frame, make_cfg(positive_label=1))
        assert checks_named(report, "positive_label") == []


def test_regression_target_checks() -> None:
    cfg = make_cfg(task="regression")
    df = clean_frame().assign(y=lambda d: d["x"] * 2.0 + 1.0)
    report = enforce_quality(df, cfg)
    assert report["target"]["stats"]["min"] < report["target"]["stats"]["max"]
    assert report["target"]["classes"] is None

    bad = df.assign(y=df["y"].astype(object))
    bad.loc[:2, "y"] = "n/a"
    assert severities(quality_report(bad, cfg), "target_non_numeric") == {"error"}

    inf = df.copy()
    inf.loc[:4, "y"] = np.inf
    [check] = checks_named(quality_report(inf, cfg), "target_non_finite")
    assert (check["severity"], check["value"]) == ("error", 5)


# --------------------------------------------------------------------------- enforce


def test_enforce_returns_report_on_warnings_only() -> None:
    df = clean_frame(n=200)
    df.loc[:19, "x"] = np.nan  # 10% missing -> warning
    report = enforce_quality(df, make_cfg())
    assert report["passed"] is True
    assert report["n_warnings"] >= 1


def test_enforce_message_lists_each_error_with_column_value_threshold() -> None:
    df = clean_frame(n=200).assign(c=None, row_id=np.arange(200))  # row_id: no duplicates
    df.loc[:149, "x"] = np.nan  # 75% missing > 50%
    with pytest.raises(QualityGateError) as info:
        enforce_quality(df, make_cfg(max_missing_rate=0.5))
    text = str(info.value)
    assert "2 error(s)" in text
    assert "missing_rate [column 'x']" in text
    assert "value=0.75" in text and "threshold=0.5" in text
    assert "all_missing [column 'c']" in text
    assert info.value.exit_code == 2
