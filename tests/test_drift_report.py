"""Reports (stable JSON keys, self-contained HTML) and the per-day monitoring store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_lifecycle.drift.check import evaluate_batch
from ml_lifecycle.drift.profile import build_profile, load_profile
from ml_lifecycle.drift.report import render_html, to_json
from ml_lifecycle.drift.store import (
    day_json_path,
    drift_history,
    read_day,
    validate_day,
    write_day,
)
from ml_lifecycle.errors import DataError, IntegrityError, RegistryError

FEATURE_KEYS = {
    "feature", "kind", "status", "drifted", "n_reference", "n_current",
    "missing_rate_reference", "missing_rate_current", "significance_test", "p_value",
    "p_value_adjusted", "significant", "effect_test", "effect_size", "effect_threshold",
    "effect_exceeded", "importance", "importance_share", "tests", "reason", "plot",
}
DATA_KEYS = {
    "verdict", "n_rows", "n_features", "n_tested", "n_drifted", "drifted_features",
    "drifted_share", "weighted_drift", "share_threshold", "weighted_threshold", "fdr_q",
    "drift_by_share", "drift_by_importance", "reasons", "features",
}


def _wide_frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    data: dict[str, object] = {"row_id": [f"ROW-{i:07d}-SECRET" for i in range(n)]}
    for i in range(40):
        data[f"num_{i}"] = rng.normal(shift if i < 10 else 0.0, 1 + i / 10, n)
    for i, card in enumerate([5, 10, 30, 100, 300, 1000, 1000, 50, 20, 7]):
        weights = 1 / np.arange(1, card + 1)
        data[f"cat_{i}"] = rng.choice([f"v{j}" for j in range(card)], n, p=weights / weights.sum())
    return pd.DataFrame(data)


@pytest.fixture(scope="module")
def wide() -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    reference = _wide_frame(rng, 20_000)
    numeric = [c for c in reference if c.startswith("num_")]
    categorical = [c for c in reference if c.startswith("cat_")]
    importances = {c: float(v) for c, v in zip(numeric + categorical,
                                                rng.dirichlet(np.ones(50)), strict=True)}
    profile = build_profile(reference, numeric=numeric, categorical=categorical,
                            importances=importances, validation_scores=rng.beta(2, 5, 5000),
                            test_metrics={"roc_auc": {"value": 0.9}}, id_column="row_id")
    batch = _wide_frame(rng, 10_000, shift=0.5)
    batch.loc[:1999, "cat_3"] = "<script>alert(1)</script>"
    result = evaluate_batch(profile, batch, scores=rng.beta(2, 4, 10_000))
    result.update(day="2026-05-01", checked_at="2026-05-01T06:00:00+00:00", retrain=True,
                  severity="high", reasons=["[high] data drift"], decision={"notes": []},
                  model={"name": "m", "version": 3, "task": "classification"})
    return result, {"profile": profile}


def test_result_has_stable_keys(wide) -> None:
    result, _ = wide
    assert set(result["data_drift"]) == DATA_KEYS
    for feature in result["data_drift"]["features"]:
        assert set(feature) == FEATURE_KEYS
    assert {"severity", "issues", "columns", "n_rows"} <= set(result["quality"])
    assert {"status", "drifted", "p_value", "effect_size"} <= set(result["prediction_drift"])
    text = to_json(result)
    assert json.loads(text)["data_drift"]["n_features"] == 50
    assert "NaN" not in text and "Infinity" not in text
    assert result["data_drift"]["drifted_features"] == [*(f"num_{i}" for i in range(10)), "cat_3"]


def test_html_report_is_self_contained_small_and_holds_no_raw_rows(wide) -> None:
    result, _ = wide
    page = render_html(result)
    size = len(page.encode("utf-8"))
    assert size < 2 * 1024 * 1024, size
    lowered = page.lower()
    assert "<script" not in lowered and "http" not in lowered and "src=" not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # category names are escaped
    assert "SECRET" not in page and "SECRET" not in to_json(result)  # no ids, no rows
    assert page.count("<svg") == 51  # 50 features + the scores
    # verdict first, then quality, features, prediction drift, performance
    order = [page.index(s) for s in ("Drift report", "Data quality", "<h2>Features",
                                     "Prediction drift", "Performance on delayed labels")]
    assert order == sorted(order)
    for column in ("p-value", "adjusted p", "effect size", "importance"):
        assert column in page


def test_profile_round_trip_and_integrity(wide, tmp_path: Path) -> None:
    profile = wide[1]["profile"]
    written = profile.save(tmp_path)
    assert [p.name for p in written] == ["reference_profile.npz", "reference_profile.json"]
    loaded = load_profile(tmp_path)
    assert loaded.features == profile.features and loaded.importances == profile.importances
    for name in profile.numeric:
        a, b = profile.numeric[name], loaded.numeric[name]
        assert np.array_equal(a.values, b.values) and np.array_equal(a.psi_cuts, b.psi_cuts)
        assert (a.spread, a.min, a.max, a.n_missing) == (b.spread, b.min, b.max, b.n_missing)
    assert loaded.categorical["cat_5"].categories == profile.categorical["cat_5"].categories
    assert np.array_equal(loaded.scores.values, profile.scores.values)
    assert loaded.test_metrics == {"roc_auc": {"value": 0.9}}
    assert not list(tmp_path.glob("*.tmp"))
    with np.load(tmp_path / "reference_profile.npz") as npz:  # the sample is stored sorted
        assert np.all(np.diff(npz["n0__values"]) > 0)
    (tmp_path / "reference_profile.npz").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="sha256"):
        load_profile(tmp_path)
    with pytest.raises(RegistryError, match="no reference profile"):
        load_profile(tmp_path / "elsewhere")


def test_store_keeps_one_result_per_day(tmp_path: Path, wide) -> None:
    result, _ = wide
    for day, verdict in (("2026-05-02", "no_drift"), ("2026-05-01", "drift"),
                         ("2026-05-02", "drift")):
        write_day(tmp_path, day, {**result, "day": day, "verdict": verdict}, "<html></html>")
    history = drift_history(tmp_path)
    assert [h["day"] for h in history] == ["2026-05-01", "2026-05-02"]
    assert history[1]["verdict"] == "drift"  # the re-check overwrote the first result
    assert history[0]["drifted_features"] == result["data_drift"]["drifted_features"]
    assert history[0]["report_html"].endswith("monitoring/reports/2026-05-01.html")
    assert read_day(tmp_path, "2026-05-01")["day"] == "2026-05-01"
    assert read_day(tmp_path, "2026-04-30") is None
    assert day_json_path(tmp_path, "2026-05-01").parent == tmp_path / "monitoring" / "days"
    assert sorted(p.name for p in (tmp_path / "monitoring" / "reports").iterdir()) == [
        "2026-05-01.html", "2026-05-02.html"]
    assert drift_history(tmp_path / "nothing") == []


@pytest.mark.parametrize("day", ["2026-5-1", "2026-02-30", "yesterday", "../../etc"])
def test_days_must_be_real_iso_dates(day: str) -> None:
    with pytest.raises(DataError, match="day"):
        validate_day(day)
