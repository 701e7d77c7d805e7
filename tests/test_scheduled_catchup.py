"""Scheduling as users run it: the scheduler creates the daily runs by itself (catchup).

An embedded Airflow (scheduler, dag-processor, triggerer, api-server; LocalExecutor, SQLite)
with the daily DAGs on their real ``@daily`` timetable and a start date six days ago: once the
drift check and the training DAG are unpaused, nothing is triggered by hand. The scheduler
creates one drift-check run per past day, one at a time (``max_active_runs=1``); the shifted
day triggers a real retrain and waits for it; the days after it are checked against the model
that came out of that retrain.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT, project_config_raw
from ml_lifecycle.config import apply_overrides, load_config
from ml_lifecycle.drift.store import day_json_path
from ml_lifecycle.registry import Registry
from ml_lifecycle.simulate import simulate
from ml_lifecycle.train import run_training
from ml_lifecycle_airflow.embedded import EmbeddedAirflow

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

DAYS = 6
SHIFT = 3  # the fourth day drifts
FAST = ["model.max_iter=60", "model.patience=5", "evaluation.bootstrap=20",
        "evaluation.importance_repeats=1", "gate.bootstrap=50", "quality.min_rows=100",
        "policy.min_severity=medium", "policy.cooldown_days=3", "policy.budget_max_retrains=4",
        # the scheduling is under test, not the decision: the drift-led rule makes "shifted
        # day -> retrain" certain on 600-row batches
        "policy.trigger=drift", "lifecycle.min_new_labels=0",
        # a retrained model replaces the champion unless it is much worse
        "gate.champion_tolerance=0.5"]
TRAINING, DRIFT = "late_delivery__training", "late_delivery__drift_check"


def test_the_scheduler_replays_past_days_in_order_and_retrains_on_the_drift_day(
        tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=DAYS)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    simulate(tmp_path / "var/demo/data", days=DAYS, seed=5, start_date=start,
             initial_rows=2000, rows_per_day=600, label_delay_days=3, shift_day=SHIFT,
             concept_day=99)
    raw = apply_overrides(project_config_raw(),
                          [*FAST, f"data.data_roots=[{tmp_path / 'var/demo'}]"])
    config_file = tmp_path / "configs" / "lifecycle.yaml"
    config_file.parent.mkdir()
    config_file.write_text(yaml.safe_dump(raw))
    cfg = load_config(config_file, base=tmp_path)
    before = (start - dt.timedelta(days=1)).isoformat()
    assert run_training(cfg, reason="fixture", trigger={"as_of": before})["promoted"]
    registry = Registry(cfg.registry.root)

    airflow = EmbeddedAirflow(PROJECT_ROOT, tmp_path / "airflow", parallelism=2,
                              idle_sleep=0.25, extra_env={
                                  "ML_LIFECYCLE_CONFIG": str(config_file),
                                  "ML_LIFECYCLE_BASE_DIR": str(tmp_path),
                                  "ML_LIFECYCLE_START_DATE": days[0]})  # schedule: @daily
    airflow.migrate()
    try:
        airflow.start()
        airflow.wait_for_dags([TRAINING, DRIFT])
        airflow.unpause(TRAINING)
        airflow.unpause(DRIFT)  # from here on, the scheduler alone creates the runs
        deadline = time.monotonic() + 600
        runs: list[dict] = []
        while time.monotonic() < deadline:
            runs = airflow.dag_runs(DRIFT)
            if len(runs) >= DAYS and all(r["state"] in ("success", "failed") for r in runs):
                break
            time.sleep(2)
        training_runs = airflow.dag_runs(TRAINING)
    finally:
        airflow.stop()
    assert airflow.leftover_pids() == []

    scheduled = [r for r in runs if r["run_type"] == "scheduled"]
    assert len(scheduled) == len(runs) == DAYS, runs  # no run was triggered by hand
    assert [r["logical_date"][:10] for r in runs] == days
    assert all(r["state"] == "success" for r in runs), [(r["dag_run_id"], r["state"])
                                                        for r in runs]
    # days were checked in order, one after the other
    checked = [json.loads(day_json_path(cfg.registry.root, d).read_text()) for d in days]
    stamps = [c["checked_at"] for c in checked]
    assert stamps == sorted(stamps)
    starts = [r["start_date"] for r in runs]
    ends = [r["end_date"] for r in runs]
    assert all(ends[i] <= starts[i + 1] for i in range(DAYS - 1))

    # the drift day triggered a real retrain; the scheduler ran it before the next day
    retrain_days = [c["day"] for c in checked if c.get("retrain")]
    assert retrain_days[:1] == [days[SHIFT]], [(c["day"], c["verdict"]) for c in checked]
    retrain = next(r for r in training_runs
                   if r["dag_run_id"] == f"drift_retrain__{days[SHIFT]}")
    assert retrain["state"] == "success"
    assert retrain["end_date"] <= starts[SHIFT + 1]
    versions = [c["model"]["version"] for c in checked]
    assert versions[: SHIFT + 1] == [1] * (SHIFT + 1)
    card = registry.get_card(2)
    assert card["trigger"]["run_id"] == f"drift_retrain__{days[SHIFT]}"
    expected = 2 if card["gate"]["passed"] else 1
    assert versions[SHIFT + 1] == expected  # checked against the model that came out of it
