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
    "missing_share",
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
    # verdict first, then the model's performance, quality, and drift as the explanation
    order = [page.index(s) for s in ("Drift report", "Model performance", "Data quality",
                                     "Why the inputs moved: data drift", "<h3>Features",
                                     "Why the scores moved: prediction drift")]
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


# --------------------------------------------------------------------------- performance first

EVIL = '<script>alert("x")</script>'


def _estimate(**changes: object) -> dict:
    """An ``estimated_performance`` part as the check writes it (issue 13)."""
    entry = {
        "status": "drift", "flagged": True, "method": "cbpe", "metric": "roc_auc",
        "higher_is_better": True, "value": 0.81, "low": 0.79, "high": 0.83, "confidence": 0.95,
        "reference_value": 0.86, "reference_realized": 0.857, "drop": 0.05, "tolerance": 0.043,
        "metrics": {
            "roc_auc": {"value": 0.81, "low": 0.79, "high": 0.83, "reference_value": 0.86,
                        "reference_realized": 0.857},
            "f1": {"value": 0.61, "low": 0.58, "high": 0.64, "reference_value": 0.66,
                   "reference_realized": 0.65},
            "precision": {"value": 0.7, "low": None, "high": None, "reference_value": 0.72,
                          "reference_realized": 0.71},
        },
        "reliability": 0.97, "reliable": True, "min_reliability": 0.9,
        "outside_support": {f"dist{EVIL}": 0.12, "age": 0.03}, "n_rows": 2000,
        "assumptions": [f"P(y|x) is unchanged {EVIL}", "the batch lies inside the support"],
        "reason": f"estimated roc_auc 0.81 vs 0.86 {EVIL}",
    }
    entry.update(changes)
    return entry


def _result(day: str = "2026-05-05", **changes: object) -> dict:
    """A small check result with the performance parts (synthetic, no model needed)."""
    result = {
        "day": day, "checked_at": f"{day}T06:00:00+00:00", "verdict": "drift",
        "severity": "high", "retrain": True, "reasons": ["[high] estimated performance drop"],
        "decision": {"blocked_by": [], "notes": []},
        "model": {"name": "m", "version": 2, "task": "classification"},
        "batch": {"n_rows": 2000},
        "data_drift": {"verdict": "drift", "n_tested": 1, "n_drifted": 1,
                       "drifted_features": ["dist"], "features": []},
        "prediction_drift": {"status": "no_drift", "reason": "scores stable"},
        "quality": {"severity": "ok", "issues": []},
        "concept_drift": {"status": "no_drift", "flagged": False, "metric": "roc_auc",
                          "higher_is_better": True, "value": 0.84, "reference_value": 0.857,
                          "drop": 0.017, "drop_low": -0.01, "drop_high": 0.04,
                          "tolerance": 0.043, "n_labelled": 1500, "reason": "within tolerance"},
        "estimated_performance": _estimate(),
        "alert": {"action": "open", "episode": {"opened": day}},
    }
    result.update(changes)
    return result


def _history(n: int = 4) -> list[dict]:
    """Summaries of ``n`` earlier days (2026-05-01..), with gaps (None) on purpose."""
    from ml_lifecycle.drift.store import summarize

    out = []
    for i in range(n):
        day = f"2026-05-{i + 1:02d}"
        est = _estimate(value=0.86 - 0.01 * i, low=0.84 - 0.01 * i, high=0.88 - 0.01 * i,
                        flagged=False, status="no_drift")
        result = _result(day, estimated_performance=est)
        if i == 1:
            result["estimated_performance"] = None  # a day checked before the estimate existed
        if i == 2:
            result["concept_drift"] = {**result["concept_drift"], "value": None}
        out.append(summarize(result))
    return out


def _svg(page: str, kind: str = "performance") -> str:
    import re

    match = re.search(rf'<svg[^>]*data-plot="{kind}".*?</svg>', page, re.S)
    assert match, f"no {kind} chart"
    return match.group(0)


def test_summarize_flattens_the_estimated_and_realized_performance() -> None:
    from ml_lifecycle.drift.store import summarize

    summary = summarize(_result())
    assert summary["estimated_metric"] == 0.81
    assert (summary["estimated_low"], summary["estimated_high"]) == (0.79, 0.83)
    assert summary["estimated_reference"] == 0.86
    assert summary["estimated_flagged"] is True and summary["estimated_status"] == "drift"
    assert summary["reliability"] == 0.97
    assert summary["realized_metric"] == 0.84 and summary["realized_reference"] == 0.857
    assert summary["tolerance"] == 0.043 and summary["alert"] == "open"
    assert summary["watched_metric"] == "roc_auc" and summary["higher_is_better"] is True
    # the older keys stay as they were
    assert summary["performance_value"] == 0.84 and summary["concept_drift"] == "no_drift"


@pytest.mark.parametrize("missing", [None, "absent"])
def test_summarize_of_older_results_gives_none(missing: str | None) -> None:
    from ml_lifecycle.drift.store import summarize

    result = _result()
    for key in ("estimated_performance", "alert"):
        if missing == "absent":
            del result[key]
        else:
            result[key] = None
    summary = summarize(result)
    for key in ("estimated_metric", "estimated_low", "estimated_high", "estimated_reference",
                "estimated_flagged", "estimated_status", "reliability", "alert"):
        assert summary[key] is None, key
    # the realized side still gives the tolerance and the reference
    assert summary["tolerance"] == 0.043 and summary["realized_reference"] == 0.857
    assert summary["watched_metric"] == "roc_auc"
    empty = summarize({})
    assert empty["realized_metric"] is None and empty["tolerance"] is None
    assert empty["estimated_flagged"] is None and empty["alert"] is None


def test_stored_days_carry_the_performance_keys(tmp_path: Path) -> None:
    write_day(tmp_path, "2026-05-01", _result("2026-05-01", estimated_performance=None,
                                              alert=None), None)
    write_day(tmp_path, "2026-05-02", _result("2026-05-02"), None)
    old, new = drift_history(tmp_path)
    assert old["estimated_metric"] is None and old["realized_metric"] == 0.84
    assert new["estimated_metric"] == 0.81 and new["alert"] == "open"


def test_report_shows_model_performance_first(tmp_path: Path) -> None:
    page = render_html(_result(), history=_history())
    lowered = page.lower()
    assert "<script" not in lowered and "http" not in lowered and "src=" not in lowered
    order = [page.index(s) for s in ("Drift report", '<h2 id="performance">Model performance',
                                     "<h2>Data quality", "Why the inputs moved: data drift",
                                     "<h3>Features", "Why the scores moved: prediction drift")]
    assert order == sorted(order)
    section = page.split('<h2 id="performance">', 1)[1].split("<h2>Data quality", 1)[0]
    # the estimate with its interval, vs the reference and the tolerance boundary
    assert "Estimated roc_auc" in section and "0.8100" in section
    assert "[0.7900, 0.8300]" in section and "95% interval" in section
    assert "0.8600" in section and "boundary 0.8170" in section
    assert "confidence-based performance estimation (CBPE)" in section
    # the realized metric, the reliability with the features outside support, the assumptions
    assert "Realized roc_auc" in section and "0.8400" in section and "1,500" in section
    assert "97.0%" in section and "12.0%" in section
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in section
    assert section.count("<li>") == 2 and "P(y|x) is unchanged" in section
    # the per-metric table, the watched metric first
    table = section.split('id="estimated-metrics"', 1)[1].split("</table>", 1)[0]
    assert table.index("roc_auc") < table.index("f1") and "precision" in table
    assert '<tr class="watched"><td>roc_auc' in table
    # the alert of the day in the summary table
    assert ">open</span>" in page
    # the chart: history + today, with the interval, reference and tolerance lines
    chart = _svg(section)
    assert "xmlns" not in chart
    # one level per run of days: 05-02 predates the estimate, its level is the realized test
    # value (0.857), the others the estimator's test level (0.86)
    assert chart.count('data-role="reference"') == 3
    assert chart.count('data-role="tolerance"') == 3
    assert 'data-role="interval"' in chart and 'data-role="estimated"' in chart
    assert chart.count('data-role="flagged"') == 1  # today
    assert chart.count('data-role="estimated-point"') == 3  # 4 earlier days, one without
    assert chart.count('data-role="realized-point"') == 4  # 5 days, one without labels
    assert ">05-05</text>" in chart and "day (2026)" in chart and ">roc_auc</text>" in chart
    for legend in ("estimated roc_auc", "estimate interval", "realized roc_auc",
                   "reference 0.860", "tolerance boundary 0.817", "flagged"):
        assert legend in chart, legend
    (tmp_path / "report.html").write_text(page, encoding="utf-8")


def test_report_of_an_older_result_still_renders() -> None:
    old = _result()
    del old["estimated_performance"], old["alert"]
    old["concept_drift"] = {"status": "insufficient_data", "metric": "roc_auc", "value": None,
                            "reason": "12 labelled rows"}
    page = render_html(old)
    assert "No label-free estimate in this result" in page
    assert "No realized value" in page and "12 labelled rows" in page
    assert "Nothing to plot yet" in page and 'data-plot="performance"' not in page
    assert page.index("Model performance") < page.index("Why the inputs moved")
    assert "<th>estimated performance</th>" not in page  # no summary row without it
    minimal = render_html({"estimated_performance": None, "alert": None})
    assert "Model performance" in minimal and "Drift report" in minimal
    # a stored history brings the chart even when today has no performance
    assert 'data-plot="performance"' in render_html(old, history=_history(2))


def test_report_history_with_gaps_duplicates_and_unreadable_days() -> None:
    history = [
        *_history(3),
        {"day": "2026-05-04", "verdict": "unreadable", "error": "bad json"},
        {"day": None, "estimated_metric": 0.5},  # no day: left out
        {"day": "2026-05-05", "estimated_metric": 0.1, "estimated_flagged": True},  # stale
        {"day": "2026-05-06", "estimated_metric": None, "estimated_low": None,
         "estimated_high": 0.9, "realized_metric": float("nan"), "tolerance": None},
        "not a summary",
    ]
    page = render_html(_result(), history=history)
    chart = _svg(page)
    # 05-01..05-06: the stored 05-05 is replaced by today's result, the gaps are skipped
    assert chart.count('data-role="estimated-point"') + chart.count('data-role="flagged"') == 3
    assert chart.count('data-role="flagged"') == 1 and "estimated roc_auc 0.100" not in chart
    assert ">05-06</text>" in chart and "nan" not in chart.lower()
    from ml_lifecycle.drift.report import MAX_CHART_DAYS, chart_days

    days = chart_days(_result(), history)
    assert [d["day"] for d in days] == [f"2026-05-0{i}" for i in range(1, 7)]
    many = [{"day": f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}", "estimated_metric": 0.8}
            for i in range(150)]
    assert len(chart_days(_result("2026-12-31"), many)) == MAX_CHART_DAYS


def test_performance_chart_with_one_day_many_days_and_none() -> None:
    from ml_lifecycle.charts import performance_chart

    empty = performance_chart([])
    assert empty.startswith("<svg") and 'data-state="empty"' in empty
    assert performance_chart([{"day": "2026-05-01"}, {}]).count("<circle") == 0
    one = performance_chart([{"day": "2026-05-01", "estimated_metric": 0.8,
                              "estimated_low": 0.78, "estimated_high": 0.82,
                              "estimated_reference": 0.85, "tolerance": 0.04,
                              "watched_metric": "roc_auc"}])
    assert one.count('data-role="interval"') == 1 and "<path" in one  # a whisker
    assert ">05-01</text>" in one and 'data-role="reference"' in one
    days = []
    for i in range(60):
        value = None if i in (10, 11) else 0.8 - 0.001 * i
        days.append({"day": f"2026-{3 + i // 30:02d}-{1 + i % 30:02d}",
                     "estimated_metric": value, "estimated_low": value and value - 0.01,
                     "estimated_high": value and value + 0.01, "estimated_reference": 0.81,
                     "tolerance": 0.04, "estimated_flagged": i >= 55,
                     "realized_metric": 0.79 if i < 50 else None})
    many = performance_chart(days, metric="roc_auc")
    assert many.count('data-role="interval"') == 2  # two runs around the gap
    assert many.count('data-role="flagged"') == 5 and many.count('data-role="flagged-day"') == 5
    assert many.count('data-role="realized-point"') == 50
    assert many.count('data-role="reference"') == 1  # one level: one straight line
    labels = many.count('font-size="10" text-anchor=')
    assert 6 <= labels <= 20, labels  # readable: a subset of the 60 days is labelled
    assert ">04-30</text>" in many  # the newest day is always labelled
    # lower-is-better: the tolerance boundary lies above the reference
    import re

    rmse = performance_chart([{"day": "2026-05-01", "estimated_metric": 1.2,
                               "estimated_reference": 1.0, "tolerance": 0.1,
                               "higher_is_better": False, "watched_metric": "rmse"}])
    ref_y = float(re.search(r'y1="([\d.]+)"[^>]*data-role="reference"', rmse).group(1))
    tol_y = float(re.search(r'y1="([\d.]+)"[^>]*data-role="tolerance"', rmse).group(1))
    assert tol_y < ref_y  # higher on screen = larger value
    assert "tolerance boundary 1.1<" in rmse and f"{EVIL}" not in performance_chart(
        [{"day": EVIL, "estimated_metric": 0.5}], metric=EVIL)


def test_the_demo_table_shows_estimated_and_realized() -> None:
    import importlib.util

    pytest.importorskip("airflow", reason="scripts/demo.py drives Airflow")

    from conftest import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("demo_script",
                                                  PROJECT_ROOT / "scripts" / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    with_estimate = demo.performance_of(_result())
    assert with_estimate == {
        "watched_metric": "roc_auc",
        "estimated": {"value": 0.81, "low": 0.79, "high": 0.83, "flagged": True},
        "realized": {"value": 0.84, "flagged": False}}
    old = demo.performance_of({"concept_drift": None})
    assert old == {"watched_metric": None, "estimated": None, "realized": None}
    base = {"regime": "shift", "verdict": "drift", "severity": "high", "top_reason": "r",
            "retrain_triggered": False, "blocked_by": [], "gate": "", "champion": 1,
            "live_metric": None}
    rows = [{**base, "day": "2026-05-01", **with_estimate},
            {**base, "day": "2026-05-02", **old}]
    lines = demo.table_lines(rows, "pr_auc")
    assert "estimated" in lines[0] and "realized" in lines[0]
    assert "0.810 [0.790,0.830] !" in lines[2] and "0.840" in lines[2]
    cells = lines[3].split()
    assert cells[:4] == ["2026-05-02", "shift", "-", "-"]
    assert "roc_auc" in lines[-1]
    assert len({len(line.rstrip()) for line in lines[2:4]}) == 1  # aligned columns
