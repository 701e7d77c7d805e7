"""Batch data quality against the reference profile: unusable batches and graded issues."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_lifecycle.drift.batch_quality import batch_quality, check_schema
from ml_lifecycle.drift.check import evaluate_batch
from ml_lifecycle.drift.decision import prepare_batch
from ml_lifecycle.drift.profile import ReferenceProfile, build_profile
from ml_lifecycle.drift.settings import DriftConfig
from ml_lifecycle.errors import DataError

CFG = DriftConfig()


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "age": rng.normal(40, 10, n).round(),
        "income": rng.lognormal(10, 0.5, n),
        "city": rng.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2]),
    })


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    reference = _frame(np.random.default_rng(0), 5000)
    reference.loc[:49, "income"] = np.nan  # 1% missing in training
    return build_profile(reference, numeric=["age", "income"], categorical=["city"],
                         id_column="id")


def _quality(profile: ReferenceProfile, batch: pd.DataFrame, **kw: object) -> dict:
    batch, schema = check_schema(batch, profile)
    currents = prepare_batch(profile, batch, CFG)
    return batch_quality(profile, currents, CFG, n_rows=len(batch), schema=schema,
                         **kw)  # type: ignore[arg-type]


def _checks(report: dict) -> dict[tuple[str, str | None], str]:
    return {(i["check"], i["column"]): i["severity"] for i in report["issues"]}


def test_a_clean_batch_has_no_issue(profile) -> None:
    report = _quality(profile, _frame(np.random.default_rng(1), 1000))
    assert report["severity"] == "ok" and report["issues"] == []
    assert set(report["columns"]) == {"age", "income", "city"}


def test_missing_feature_columns_make_the_batch_unusable(profile) -> None:
    batch = _frame(np.random.default_rng(2), 100).drop(columns=["income"])
    with pytest.raises(DataError, match=r"missing feature column\(s\) \['income'\]"):
        check_schema(batch, profile, source="batch.csv")
    with pytest.raises(DataError, match="income"):
        evaluate_batch(profile, batch)


def test_an_empty_batch_is_unusable(profile) -> None:
    with pytest.raises(DataError, match="no rows"):
        check_schema(_frame(np.random.default_rng(3), 0), profile)


def test_text_in_a_numeric_feature_is_unusable_and_names_the_column(profile) -> None:
    batch = _frame(np.random.default_rng(4), 100)
    batch["age"] = batch["age"].astype(str)
    batch.loc[7, "age"] = "forty"
    with pytest.raises(DataError, match=r"'age'.*'forty'"):
        check_schema(batch, profile)


def test_numbers_stored_as_text_are_converted_with_a_warning(profile) -> None:
    batch = _frame(np.random.default_rng(5), 500)
    batch["age"] = batch["age"].astype(str)
    report = _quality(profile, batch)
    assert _checks(report)[("dtype", "age")] == "warning"
    assert report["columns"]["age"]["out_of_range_share"] == 0.0


def test_extra_columns_are_reported_but_ids_are_expected(profile) -> None:
    batch = _frame(np.random.default_rng(6), 300).assign(id=range(300), notes="x")
    report = _quality(profile, batch)
    assert report["extra_columns"] == ["notes"]
    assert _checks(report)[("extra_columns", None)] == "info"
    assert report["severity"] == "ok"


def test_missing_rate_increase_and_an_absent_feature(profile) -> None:
    batch = _frame(np.random.default_rng(7), 1000)
    batch.loc[:299, "income"] = np.nan
    batch["city"] = None
    report = _quality(profile, batch, sentinel_counts={"income": 120})
    checks = _checks(report)
    assert checks[("missing_rate", "income")] == "warning"
    assert checks[("missing_rate", "city")] == "critical"
    assert report["severity"] == "critical"
    income = next(i for i in report["issues"] if i["column"] == "income")
    assert "120 of them declared sentinels" in income["message"]
    assert report["columns"]["income"]["sentinel_share"] == pytest.approx(0.12)


def test_unseen_categories_share(profile) -> None:
    batch = _frame(np.random.default_rng(8), 1000)
    batch.loc[:99, "city"] = "marseille"
    report = _quality(profile, batch)
    assert _checks(report)[("unseen_categories", "city")] == "warning"
    assert report["columns"]["city"]["unseen_share"] == pytest.approx(0.1)
    assert report["columns"]["city"]["unseen_top"] == {"marseille": 100}


def test_values_outside_the_reference_range(profile) -> None:
    batch = _frame(np.random.default_rng(9), 1000)
    batch.loc[:79, "age"] = 150.0
    report = _quality(profile, batch)
    assert _checks(report)[("out_of_range", "age")] == "warning"
    assert report["columns"]["age"]["above_range"] == 80


def test_an_undeclared_sentinel_spike(profile) -> None:
    batch = _frame(np.random.default_rng(10), 1000)
    batch.loc[:149, "income"] = -999.0
    report = _quality(profile, batch)
    checks = _checks(report)
    assert checks[("sentinel_spike", "income")] == "warning"
    spike = next(i for i in report["issues"] if i["check"] == "sentinel_spike")
    assert spike["value"] == pytest.approx(0.15) and "-999" in spike["message"]
    # a value that is common in the reference too (a round age) is no spike
    assert ("sentinel_spike", "age") not in checks


def test_infinite_values_are_counted_and_do_not_break_scoring(profile) -> None:
    batch = _frame(np.random.default_rng(11), 500)
    batch.loc[:4, "income"] = np.inf
    seen: list[pd.DataFrame] = []

    def scorer(frame: pd.DataFrame) -> np.ndarray:
        seen.append(frame)
        return np.zeros(len(frame))

    result = evaluate_batch(profile, batch, scorer=scorer)
    assert ("nonfinite", "income") in _checks(result["quality"])
    assert result["quality"]["columns"]["income"]["n_nonfinite"] == 5
    assert np.isfinite(seen[0]["income"].to_numpy()[5:]).all()
    assert seen[0]["income"].isna().sum() == 5  # the model sees missing values, not inf


def test_a_common_value_that_grows_is_drift_not_a_sentinel_spike() -> None:
    rng = np.random.default_rng(12)
    reference = pd.DataFrame({"month": rng.integers(1, 13, 12_000).astype(float)})
    prof = build_profile(reference, numeric=["month"], categorical=[])
    january = pd.DataFrame({"month": np.ones(700)})
    report = _quality(prof, january)
    assert ("sentinel_spike", "month") not in _checks(report)
    assert report["columns"]["month"]["top_share"] == 1.0
