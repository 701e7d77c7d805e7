"""The monitoring plugin's app (plugins/ml_monitoring): every route, access control, empty states.

The registry is real: ``simulate`` writes a small demo data set, ``run_training`` trains three
versions (v1 initial; v2 a drift-triggered retrain "by the DAG", promoted; v3 a retrain rejected
by the gate) and ``run_drift_check`` stores six checked days (covariate shift from day 3). Most
tests call the app in-process with Airflow's auth dependency overridden; the anonymous tests run
the real dependency; ``test_real_tokens_through_airflow`` mounts the plugin the way the
api-server does (Airflow's plugin loader, its auth manager, a migrated SQLite database) in a
subprocess and uses real tokens from ``POST /auth/token``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import PROJECT_ROOT, project_config_raw

PLUGINS = PROJECT_ROOT / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

DEMO_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"
M = "/models/late_delivery"  # the model's pages
A = "/api/models/late_delivery"  # its JSON
START = dt.date(2026, 3, 1)
N_DAYS = 6
RETRAIN_DAY = 2  # index of the day whose drift triggers the promoted retrain (v2)
REJECTED_DAY = 4  # index of the day whose retrain is rejected by the gate (v3)
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # Starlette's TestClient asks for httpx2; Airflow 3.3 pins httpx (same client API)
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]


# --------------------------------------------------------------------------- registry builder


def lifecycle_raw(base: Path) -> dict[str, Any]:
    """configs/demo.yaml with its paths under ``base`` and small, fast settings."""
    from ml_lifecycle.config import apply_overrides

    data = base / "data"
    return apply_overrides(project_config_raw(), [
        f"data.path={data / 'train.csv'}",
        f"registry.root={base / 'registry'}",
        f"lifecycle.batches={data / 'batches'}",
        f"lifecycle.labels={data / 'labels'}",
        f"lifecycle.predictions={base / 'predictions'}",
        f"lifecycle.reports={base / 'reports'}",
        f"lifecycle.alerts={base / 'alerts'}",
        "lifecycle.label_delay_days=1",
        "model.max_iter=60",
        "model.patience=5",
        "evaluation.bootstrap=40",
        "evaluation.importance_repeats=2",
        "evaluation.slices=[]",
        "gate.bootstrap=60",
        "policy.cooldown_days=0",
        "drift.performance_min_labelled=100",
    ])


def write_config(base: Path, raw: dict[str, Any]) -> Path:
    path = base / "lifecycle.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def build_lifecycle(base: Path) -> dict[str, Any]:
    """Demo data, three versions and six checked days under ``base``; returns what was built.

    Only core functions are used (no Airflow): v2 carries the trigger fields the training DAG
    writes (dag_id, run_id, as_of, triggered_by), so the pages link it to its DAG run.
    """
    from ml_lifecycle.config import apply_overrides, config_from_dict
    from ml_lifecycle.drift.check import run_drift_check
    from ml_lifecycle.lifecycle import batch_path, concept_pairs, score_batch, training_window
    from ml_lifecycle.registry import Registry
    from ml_lifecycle.simulate import simulate
    from ml_lifecycle.train import run_training

    base.mkdir(parents=True, exist_ok=True)
    simulate(base / "data", days=N_DAYS, seed=7, start_date=START, initial_rows=3000,
             rows_per_day=800, label_delay_days=1, shift_day=RETRAIN_DAY, concept_day=4)
    raw = lifecycle_raw(base)
    config = write_config(base, raw)
    cfg = config_from_dict(raw, source=str(config))
    registry = Registry(cfg.registry.root)

    def at(day: str, hour: int) -> dt.datetime:
        return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")

    first = run_training(cfg, reason="initial training",
                         now=at((START - dt.timedelta(days=1)).isoformat(), 12))
    assert first["promoted"], first
    days = [(START + dt.timedelta(days=i)).isoformat() for i in range(N_DAYS)]
    runs: dict[str, Any] = {}
    for index, day in enumerate(days):
        score_batch(cfg, day)
        champion = registry.champion()
        run_drift_check(cfg, batch_path=str(batch_path(cfg, day)), day=day,
                        labels=concept_pairs(cfg, day, champion) or None, now=at(day, 22))
        if index in (RETRAIN_DAY, REJECTED_DAY):
            run_id = f"drift_retrain__{day}"
            trigger = {"dag_id": "late_delivery__training", "run_id": run_id, "as_of": day,
                       "triggered_by":
                           f"late_delivery__drift_check/scheduled__{day}T00:00:00+00:00"}
            # v2 must be promoted and v3 rejected whatever the sampling noise: a wide champion
            # tolerance for v2, an unreachable floor for v3 (the pages show either outcome).
            change = ("gate.champion_tolerance=0.1" if index == RETRAIN_DAY
                      else "gate.floors.roc_auc=0.99")
            train_cfg = config_from_dict(apply_overrides(raw, [change]), source=change)
            runs[day] = run_training(
                train_cfg, reason=f"drift check {day}: data drift", trigger=trigger,
                window=training_window(cfg, day), actor="airflow:late_delivery__training",
                now=at(day, 23))
    v2 = runs[days[RETRAIN_DAY]]
    v3 = runs[days[REJECTED_DAY]]
    assert v2["version"] == 2 and v2["promoted"], v2.get("gate")
    assert v3["version"] == 3 and not v3["promoted"], v3.get("gate")
    return {"base": base, "config": config, "root": Path(cfg.registry.root), "days": days,
            "champion": 2, "raw": raw}


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_lifecycle(tmp_path_factory.mktemp("plugin_lifecycle"))


# --------------------------------------------------------------------------- clients


def make_client(config: Path, monkeypatch: pytest.MonkeyPatch, *, logged_in: bool = True) -> Any:
    from fastapi.testclient import TestClient
    from ml_monitoring.app import authenticated, create_app, dag_reader

    monkeypatch.setenv("ML_LIFECYCLE_CONFIG", str(config))
    app = create_app()
    if logged_in:
        app.dependency_overrides[authenticated] = lambda: None
        app.dependency_overrides[dag_reader] = lambda: (lambda dag_ids: True)
    return TestClient(app)


@pytest.fixture
def client(lifecycle: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    return make_client(lifecycle["config"], monkeypatch)


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    """A config whose registry does not exist yet (a fresh install)."""
    return write_config(tmp_path, lifecycle_raw(tmp_path))


def page_routes(lifecycle: dict[str, Any]) -> list[str]:
    day = lifecycle["days"][-1]
    return [f"{M}/", f"{M}/versions/2", f"{M}/drift", f"{M}/drift/reports/{day}",
            f"{A}/versions", f"{A}/versions/2", f"{A}/champion", f"{A}/drift", f"{A}/drift/{day}"]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --------------------------------------------------------------------------- the plugin object


def test_the_plugin_mounts_the_app_and_adds_a_navigation_entry() -> None:
    import ml_monitoring
    import ml_monitoring_plugin

    plugin = ml_monitoring_plugin.MLMonitoringPlugin
    [app] = plugin.fastapi_apps
    [view] = plugin.external_views
    assert app["url_prefix"] == "/ml-monitoring"
    assert isinstance(app["app"], ml_monitoring.LazyApp)
    assert view["href"] == "ml-monitoring/", "the UI needs the trailing slash"
    assert view["url_route"] == "ml-monitoring" and view["destination"] == "nav"
    assert view["nav_top_level"] is True


def test_the_plugin_file_is_cheap_to_import(tmp_path: Path) -> None:
    """Airflow imports plugin files in every component: no pandas, scikit-learn or app there."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(PLUGINS)!r})
        import ml_monitoring_plugin
        heavy = [m for m in ("pandas", "sklearn", "scipy", "ml_lifecycle", "ml_monitoring.app",
                             "ml_monitoring.pages") if m in sys.modules]
        print("HEAVY", heavy)
    """)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow_home")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env, check=False)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr[-3000:]


def test_the_lazy_app_is_built_on_first_use(lifecycle: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient
    from ml_monitoring import LazyApp

    monkeypatch.setenv("ML_LIFECYCLE_CONFIG", str(lifecycle["config"]))
    lazy = LazyApp()
    assert lazy._app is None
    reply = TestClient(lazy).get(f"{A}/champion")  # the real dependency: nobody logged in
    assert reply.status_code == 401
    assert lazy._app is not None and lazy.get_app() is lazy._app


# --------------------------------------------------------------------------- access control


def test_anonymous_requests_are_refused_on_every_route(lifecycle: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(lifecycle["config"], monkeypatch, logged_in=False)
    for path in page_routes(lifecycle):
        reply = client.get(path)
        assert reply.status_code == 401, (path, reply.status_code)
        assert "Champion" not in reply.text and "drift" not in reply.text.lower(), path


def test_every_route_is_a_read_and_no_docs_are_served(client: Any) -> None:
    for route in client.app.routes:
        methods = getattr(route, "methods", None) or set()
        assert methods <= {"GET", "HEAD"}, (route.path, methods)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404, path


def test_html_pages_forbid_scripts_and_foreign_frames(client: Any,
                                                      lifecycle: dict[str, Any]) -> None:
    for path in (f"{M}/", f"{M}/versions/1", f"{M}/drift"):
        reply = client.get(path)
        csp = reply.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "frame-ancestors 'self'" in csp
        assert reply.headers["cache-control"] == "no-store"
        assert "<script" not in reply.text.lower()
    report = client.get(f"{M}/drift/reports/{lifecycle['days'][0]}")
    assert "sandbox" in report.headers["content-security-policy"]


def test_the_pages_never_write_to_the_registry(client: Any, lifecycle: dict[str, Any]) -> None:
    root = lifecycle["root"]

    def snapshot() -> dict[str, tuple[str, float]]:
        return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                           p.stat().st_mtime)
                for p in sorted(root.rglob("*")) if p.is_file()}

    before = snapshot()
    for path in [*page_routes(lifecycle), f"{M}/versions/1", f"{M}/versions/3",
                 f"{A}/versions/3"]:
        assert client.get(path).status_code == 200, path
    assert snapshot() == before


# --------------------------------------------------------------------------- Models page


def test_models_page_shows_versions_champion_gate_and_history(client: Any,
                                                              lifecycle: dict[str, Any]) -> None:
    reply = client.get(f"{M}/")
    assert reply.status_code == 200
    html = reply.text
    text = text_of(html)
    champion = re.search(r'id="champion" data-version="(\d+)"', html)
    assert champion and champion.group(1) == "2"
    rows = dict(re.findall(r'<tr class="(\w*)" data-version="(\d+)"', html)[::-1])
    assert set(re.findall(r'data-version="(\d+)"><td>', html)) == {"1", "2", "3"}
    assert rows  # the champion row is marked
    assert re.search(r'<tr class="champion" data-version="2">', html)
    for status in ("champion", "former champion", "rejected by the gate"):
        assert status in text, status
    # key metrics with their intervals, e.g. "0.485 [0.391, 0.596]"
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", text)
    assert "pr_auc" in text and "roc_auc" in text
    # the gate reason of the rejected version, the trigger reasons, created-at
    assert "roc_auc = " in text and "floor 0.99" in text
    assert f"drift check {lifecycle['days'][RETRAIN_DAY]}: data drift" in text
    assert "initial training" in text and "2026-02-28 12:00 UTC" in text
    # the link to the DAG run that produced v2, in the Airflow UI
    run_id = f"drift_retrain__{lifecycle['days'][RETRAIN_DAY]}"
    assert f'href="../../../dags/late_delivery__training/runs/{run_id}" class="dag-run"' in html
    assert "not from a DAG run" in text  # v1 was trained from the CLI
    # promotion history: two promotions, newest first
    history = html.split('id="history"', 1)[1]
    assert history.count("<tr><td") == 2 and "airflow:late_delivery__training" in history
    assert 'data-plot="version-metrics"' in html
    assert 'href="versions/2"' in html and 'href="drift"' in html


def test_version_page_shows_card_curve_importances_errors_and_quality(
        client: Any, lifecycle: dict[str, Any]) -> None:
    from ml_lifecycle.registry import Registry

    card = Registry(lifecycle["root"]).get_card(2)
    reply = client.get(f"{M}/versions/2")
    assert reply.status_code == 200
    html = reply.text
    text = text_of(html)
    assert "v2" in text and "champion" in text
    curve = re.search(r'<svg[^>]*data-plot="validation-curve".*?</svg>', html, re.S)
    assert curve, "validation curve missing"
    best = card["model"]["validation_curve"]["best_iteration"]
    assert f"best: {best}" in curve.group(0)
    stopped = card["model"]["validation_curve"]["stopped_iteration"]
    assert f"stopped: {stopped}" in curve.group(0)  # where training stopped ...
    assert card["model"]["stopping_iteration"] == best  # ... and the trees kept: up to the best
    assert f"kept {best} iterations" in text and f"stopped after {stopped}" in text
    assert curve.group(0).count('data-role="marker"') == 2
    importances = re.search(r'<svg[^>]*data-plot="importances".*?</svg>', html, re.S)
    assert importances and all(f in importances.group(0) for f in card["importances"])
    matrix = re.search(r'<svg[^>]*data-plot="confusion-matrix".*?</svg>', html, re.S)
    assert matrix
    for key in ("tn", "fp", "fn", "tp"):
        assert f"{card['confusion_matrix'][key]:,}" in matrix.group(0)
    assert "quality gate passed" in text and "sentinels" in text
    assert "gate passed" in text and "beats_baseline" in text
    run_id = f"drift_retrain__{lifecycle['days'][RETRAIN_DAY]}"
    assert f'href="../../../../dags/late_delivery__training/runs/{run_id}"' in html
    assert "triggered_by" in text and "All models" in text
    # v3: rejected, with its failing rule
    rejected = text_of(client.get(f"{M}/versions/v0003").text)
    assert "rejected by the gate" in rejected and "gate rejected" in rejected


def test_version_page_shows_residuals_for_a_regression_card(tmp_path: Path) -> None:
    from ml_monitoring import pages

    card = {
        "version": 1, "name": "r", "task": "regression", "created_at": "2026-01-01T00:00:00",
        "metrics": {"rmse": {"value": 1.5, "low": 1.2, "high": 1.9}}, "primary_metric": "rmse",
        "residuals": {"quantiles": {"0.5": 0.1}, "histogram": [1, 4, 2],
                      "bin_edges": [-1.0, 0.0, 1.0, 2.0]},
        "model": {"family": "ridge", "validation_curve": {}},
    }
    view = {"card": card, "summary": {"version": 1, "status": "champion"},
            "quality_report": None, "promotions": []}
    html = pages.version_page(view)
    assert 'data-plot="residuals"' in html and "confusion" not in html.lower()
    assert "stores no validation curve" in html


def test_unknown_or_malformed_versions_are_not_found(client: Any) -> None:
    for path in (f"{M}/versions/99", f"{M}/versions/abc", f"{M}/versions/0",
                 f"{A}/versions/99", f"{A}/versions/-1"):
        reply = client.get(path)
        assert reply.status_code == 404, path
    assert "known versions" in client.get(f"{A}/versions/99").json()["detail"]


# --------------------------------------------------------------------------- Drift page


def test_drift_page_shows_days_effect_sizes_performance_and_reports(
        client: Any, lifecycle: dict[str, Any]) -> None:
    from ml_lifecycle.drift.store import drift_history

    history = drift_history(lifecycle["root"])
    reply = client.get(f"{M}/drift")
    assert reply.status_code == 200
    html = reply.text
    rows = re.findall(r'<tr data-day="([\d-]+)">', html)
    assert sorted(rows) == lifecycle["days"] and rows[0] == lifecycle["days"][-1]
    drifted = [d for d in history if d["verdict"] == "drift"]
    assert drifted, "the simulated shift should drift"
    for day in history:
        row = html.split(f'<tr data-day="{day["day"]}">', 1)[1].split("</tr>", 1)[0]
        assert day["verdict"] in row
        assert ("retrain triggered" in row) == bool(day["retrain"])
        assert f'href="drift/reports/{day["day"]}"' in row
        for feature in day["drifted_features"]:
            assert feature in row
    # one effect-size plot per feature (plus the model scores), each with its threshold
    plots = re.findall(r'<svg[^>]*data-plot="effect-size".*?</svg>', html, re.S)
    features = json.loads((lifecycle["root"] / "monitoring" / "days" /
                           f"{lifecycle['days'][0]}.json").read_text())["data_drift"]["features"]
    assert len(plots) == len(features) + 1
    assert all('data-role="threshold"' in p for p in plots)
    assert 'fill="#c62828"' in "".join(plots)  # drifted days are drawn red
    # the performance chart comes first, above the drift plots (drift explains it)
    performance = re.search(r'<svg[^>]*data-plot="performance".*?</svg>', html, re.S)
    assert performance, "labels arrive one day later: the realized metric is plotted"
    assert html.index('data-plot="performance"') < html.index('data-plot="effect-size"')
    chart = performance.group(0)
    assert 'data-role="reference"' in chart and 'data-role="tolerance"' in chart
    realized = [d for d in history if d.get("realized_metric") is not None]
    assert realized and chart.count('data-role="realized-point"') == len(realized)
    estimated = [d for d in history if d.get("estimated_metric") is not None]
    assert chart.count('data-role="estimated-point"') + chart.count('data-role="flagged"') \
        == len(estimated)
    # the history table: estimated (value [low, high]) and realized columns, the alert action
    head = html.split('<table id="drift-days">', 1)[1].split("</tr>", 1)[0]
    for column in ("estimated", "realized", "alert"):
        assert f"<th>{column}</th>" in head, column
    for day in history:
        row = html.split(f'<tr data-day="{day["day"]}">', 1)[1].split("</tr>", 1)[0]
        cell = row.split('class="small realized">', 1)[1].split("</td>", 1)[0]
        if day.get("realized_metric") is None:
            assert "no labels" in cell
        else:
            assert f"{day['realized_metric']:.3f}" in cell
        cell = row.split('class="small estimated">', 1)[1].split("</td>", 1)[0]
        if day.get("estimated_metric") is not None:
            assert re.search(r"\d\.\d{3} <span class=\"muted\">\[\d\.\d{3}, \d\.\d{3}\]", cell)


def test_day_reports_are_served_and_unknown_days_are_not_found(
        client: Any, lifecycle: dict[str, Any]) -> None:
    day = lifecycle["days"][RETRAIN_DAY]
    reply = client.get(f"{M}/drift/reports/{day}")
    assert reply.status_code == 200 and f"Drift report &mdash; {day}" in reply.text
    for path in (f"{M}/drift/reports/2020-01-01", f"{M}/drift/reports/2026-13-45",
                 f"{M}/drift/reports/..%2F..%2Fchampion.json", f"{A}/drift/2020-01-01",
                 f"{A}/drift/not-a-day"):
        assert client.get(path).status_code == 404, path


def _estimated_result(day: str, value: float, *, flagged: bool = False,
                      realized: float | None = None, alert: str | None = None) -> dict[str, Any]:
    """A stored check result with the performance parts of issue 13 (synthetic)."""
    return {
        "day": day, "checked_at": f"{day}T06:00:00+00:00", "verdict": "no_drift",
        "severity": "high" if flagged else "none", "retrain": flagged, "reasons": [],
        "decision": {"blocked_by": []}, "model": {"name": "m", "version": 1},
        "data_drift": {"verdict": "no_drift", "n_tested": 3, "n_drifted": 0, "features": []},
        "prediction_drift": {"status": "no_drift"},
        "concept_drift": {"status": "no_drift" if realized is not None else "insufficient_data",
                          "metric": "roc_auc", "value": realized, "reference_value": 0.857,
                          "tolerance": 0.043},
        "estimated_performance": {
            "status": "drift" if flagged else "no_drift", "flagged": flagged, "method": "cbpe",
            "metric": "roc_auc", "higher_is_better": True, "value": value,
            "low": value - 0.02, "high": value + 0.02, "confidence": 0.95,
            "reference_value": 0.86, "reference_realized": 0.857, "tolerance": 0.043,
            "reliability": 0.97, "reliable": True, "min_reliability": 0.9,
            "outside_support": {}, "metrics": {}, "assumptions": [], "n_rows": 800,
            "reason": "synthetic"},
        "alert": {"action": alert, "episode": None},
    }


def test_drift_page_shows_the_estimated_performance(empty_config: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored days with the label-free estimate: chart above the drift plots, table columns."""
    from ml_lifecycle.drift.store import write_day

    raw = yaml.safe_load(empty_config.read_text())
    root = Path(raw["registry"]["root"])
    days = [(START + dt.timedelta(days=i)).isoformat() for i in range(4)]
    write_day(root, days[0], {**_estimated_result(days[0], 0.85),
                              "estimated_performance": None, "alert": None}, None)
    write_day(root, days[1], _estimated_result(days[1], 0.84, realized=0.85), None)
    write_day(root, days[2], _estimated_result(days[2], 0.83, realized=0.84, alert=EVIL), None)
    write_day(root, days[3], _estimated_result(days[3], 0.80, flagged=True, alert="open"), None)
    html = make_client(empty_config, monkeypatch).get(f"{M}/drift").text
    assert "<script>" not in html and "&lt;script&gt;" in html  # the alert text is escaped
    chart = re.search(r'<svg[^>]*data-plot="performance".*?</svg>', html, re.S).group(0)
    assert chart.count('data-role="estimated-point"') == 2
    assert chart.count('data-role="flagged"') == 1
    assert chart.count('data-role="realized-point"') == 2
    assert 'data-role="interval"' in chart and "reference 0.860" in chart
    assert "tolerance boundary 0.817" in chart
    assert "with the estimated performance flagged" in html
    row = html.split(f'<tr data-day="{days[3]}">', 1)[1].split("</tr>", 1)[0]
    assert "roc_auc 0.800 <span class=\"muted\">[0.780, 0.820]</span>" in row
    assert ">flagged</span>" in row and ">open</span>" in row and "reliability 97%" in row
    assert "no labels" in row
    row = html.split(f'<tr data-day="{days[1]}">', 1)[1].split("</tr>", 1)[0]
    assert "roc_auc 0.850" in row and "test 0.857" in row
    row = html.split(f'<tr data-day="{days[0]}">', 1)[1].split("</tr>", 1)[0]
    assert "no estimate" in row
    api = make_client(empty_config, monkeypatch).get(f"{A}/drift").json()
    assert [d["estimated_metric"] for d in api["days"]] == [None, 0.84, 0.83, 0.80]
    assert api["days"][3]["alert"] == "open" and api["days"][3]["estimated_flagged"] is True


# --------------------------------------------------------------------------- JSON API


def test_json_api(client: Any, lifecycle: dict[str, Any]) -> None:
    versions = client.get(f"{A}/versions")
    assert versions.status_code == 200 and versions.headers["content-type"].startswith(
        "application/json")
    body = versions.json()
    assert body["champion"] == 2 and body["message"] is None
    assert [v["version"] for v in body["versions"]] == [3, 2, 1]
    by_version = {v["version"]: v for v in body["versions"]}
    assert by_version[2]["is_champion"] and by_version[2]["dag_id"] == "late_delivery__training"
    assert by_version[3]["gate_passed"] is False and by_version[3]["gate_reasons"]
    assert set(by_version[1]["metrics"]["pr_auc"]) == {"value", "low", "high"}
    assert [e["version"] for e in body["history"]] == [1, 2]

    one = client.get(f"{A}/versions/1").json()
    assert one["card"]["version"] == 1 and one["quality_report"]["passed"] is True
    assert one["summary"]["status"] == "former champion"
    assert [p["event"] for p in one["promotions"]] == ["promote"]

    champion = client.get(f"{A}/champion").json()
    assert champion["champion"] == 2 and champion["card"]["version"] == 2
    assert champion["promoted"]["actor"] == "airflow:late_delivery__training"

    drift = client.get(f"{A}/drift").json()
    assert [d["day"] for d in drift["days"]] == lifecycle["days"]
    assert drift["features"]["distance_km"]["points"][0]["threshold"] is not None
    assert len(drift["prediction"]) == len(lifecycle["days"])
    assert drift["performance"], "labels arrive one day later"

    day = client.get(f"{A}/drift/{lifecycle['days'][0]}").json()
    assert day["day"] == lifecycle["days"][0] and "data_drift" in day


# --------------------------------------------------------------------------- states and errors


def test_empty_state_before_any_training(empty_config: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(empty_config, monkeypatch)
    models = client.get(f"{M}/")
    assert models.status_code == 200
    assert "No model trained yet" in models.text and "late_delivery__training" in models.text
    assert 'data-state="empty"' in models.text
    drift = client.get(f"{M}/drift")
    assert drift.status_code == 200 and "No drift history yet" in drift.text
    assert client.get(f"{A}/versions").json()["versions"] == []
    champion = client.get(f"{A}/champion").json()
    assert champion["champion"] is None and "No model trained yet" in champion["message"]
    assert client.get(f"{A}/drift").json()["days"] == []
    assert client.get(f"{M}/versions/1").status_code == 404
    assert not (empty_config.parent / "registry").exists(), "reading must not create anything"


def test_the_config_is_read_on_every_request(lifecycle: dict[str, Any], empty_config: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client(lifecycle["config"], monkeypatch)
    assert client.get(f"{A}/champion").json()["champion"] == 2
    monkeypatch.setenv("ML_LIFECYCLE_CONFIG", str(empty_config))
    assert client.get(f"{A}/champion").json()["champion"] is None


def test_a_broken_config_gives_a_clear_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The model list names the config file that cannot be used and why; its model's pages
    are not found (no traceback), and the API says the same."""
    client = make_client(tmp_path / "missing.yaml", monkeypatch)
    page = client.get("/")
    assert page.status_code == 200
    assert 'data-state="broken-config"' in page.text
    assert "missing.yaml" in page.text and "does not exist" in page.text
    listed = client.get("/api/models").json()
    assert listed["models"] == []
    assert "does not exist" in listed["broken_configs"][0]["error"]
    assert client.get(f"{M}/").status_code == 404
    api = client.get(f"{A}/versions")
    assert api.status_code == 404 and "late_delivery" in api.json()["detail"]


def test_versions_without_a_champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_lifecycle.config import apply_overrides, config_from_dict
    from ml_lifecycle.simulate import simulate
    from ml_lifecycle.train import run_training

    simulate(tmp_path / "data", days=1, seed=5, start_date=START, initial_rows=1500,
             rows_per_day=100)
    raw = apply_overrides(lifecycle_raw(tmp_path), ["gate.floors.roc_auc=0.99"])
    config = write_config(tmp_path, raw)
    assert not run_training(config_from_dict(raw), reason="first try")["promoted"]
    client = make_client(config, monkeypatch)
    page = client.get(f"{M}/")
    assert page.status_code == 200 and 'data-state="no-champion"' in page.text
    assert "rejected by the gate" in page.text and "No model trained yet" not in page.text
    champion = client.get(f"{A}/champion").json()
    assert champion["champion"] is None and "no champion" in champion["message"]
    assert client.get(f"{A}/versions").json()["versions"][0]["status"] == "rejected by the gate"


def test_stored_text_is_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trigger reason comes from the trigger form: it must never become markup."""
    from ml_lifecycle.config import config_from_dict
    from ml_lifecycle.simulate import simulate
    from ml_lifecycle.train import run_training

    simulate(tmp_path / "data", days=1, seed=3, start_date=START, initial_rows=1500,
             rows_per_day=100)
    raw = lifecycle_raw(tmp_path)
    config = write_config(tmp_path, raw)
    run_training(config_from_dict(raw), reason=EVIL,
                 trigger={"dag_id": "late_delivery__training", "run_id": 'x"><b>run', "note": EVIL})
    client = make_client(config, monkeypatch)
    for path in (f"{M}/", f"{M}/versions/1"):
        html = client.get(path).text
        assert "<script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
        assert 'x"><b>run' not in html
    assert 'runs/x%22%3E%3Cb%3Erun"' in client.get(f"{M}/").text


# --------------------------------------------------------------------------- real Airflow


REAL_AIRFLOW_SCRIPT = r"""
import json, sys
from fastapi.testclient import TestClient
from airflow import plugins_manager
from airflow.api_fastapi.app import create_app

client = TestClient(create_app())
out = {}
token = client.post("/auth/token", json={"username": "viewer", "password": sys.argv[1]})
out["token_status"] = token.status_code
jwt = token.json()["access_token"]
bearer = {"Authorization": "Bearer " + jwt}
out["anonymous"] = client.get("/ml-monitoring/").status_code
out["anonymous_api"] = client.get("/ml-monitoring/api/models/late_delivery/champion").status_code
reply = client.get("/ml-monitoring/api/models/late_delivery/champion", headers=bearer)
out["bearer"] = [reply.status_code, reply.json().get("champion")]
reply = client.get("/ml-monitoring/models/late_delivery/", cookies={"_token": jwt})
out["cookie"] = [reply.status_code, 'id="champion" data-version="2"' in reply.text]
out["invalid_token"] = client.get("/ml-monitoring/api/models/late_delivery/champion",
                                  headers={"Authorization": "Bearer not.a.jwt"}).status_code
plugins = client.get("/api/v2/plugins", headers=bearer).json()["plugins"]
out["plugins"] = [p["name"] for p in plugins]
out["external_views"] = [v for p in plugins for v in p["external_views"]]
out["import_errors"] = plugins_manager.get_import_errors()
print("RESULT " + json.dumps(out, default=str))
"""


@pytest.mark.airflow
@pytest.mark.slow
def test_real_tokens_through_airflow(lifecycle: dict[str, Any], tmp_path: Path) -> None:
    """Airflow's own plugin loader mounts the app; its auth manager checks real JWTs."""
    from ml_lifecycle_airflow.embedded import EmbeddedAirflow

    airflow = EmbeddedAirflow(PROJECT_ROOT, tmp_path / "airflow_home", extra_env={
        "ML_LIFECYCLE_CONFIG": str(lifecycle["config"]),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
    })
    airflow.home.mkdir(parents=True)
    airflow.password_file.write_text(json.dumps({"admin": "admin-pw", "viewer": "viewer-pw"}))
    airflow.migrate()
    out = subprocess.run([sys.executable, "-c", REAL_AIRFLOW_SCRIPT, "viewer-pw"],
                         env=airflow.env(), capture_output=True, text=True, timeout=180,
                         cwd=PROJECT_ROOT, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stdout[-3000:] + out.stderr[-5000:]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["token_status"] == 201
    assert result["anonymous"] == 401 and result["anonymous_api"] == 401
    assert result["bearer"] == [200, 2]
    assert result["cookie"] == [200, True]
    assert result["invalid_token"] == 403
    assert result["plugins"] == ["ml_monitoring"], "helper modules must not load as plugins"
    [view] = result["external_views"]
    assert view["href"] == "ml-monitoring/" and view["url_route"] == "ml-monitoring"
    assert not result["import_errors"]
