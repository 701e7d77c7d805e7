"""``dag.test()`` runs of each DAG on small simulated data: both gate branches, both policy
branches, the new-labels sensor, and the bad-input cases (missing batch, missing column,
invalid trigger form, paths outside the data roots).

Each test runs its DAG runs in one subprocess (``ml_lifecycle_airflow.dagtest``) against a
SQLite database migrated once for the module; tasks run in that process (no scheduler), so a
``TriggerDagRunOperator`` only *creates* the triggered run (the end-to-end test runs it).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from conftest import project_config_raw
from ml_lifecycle.config import apply_overrides, load_config
from ml_lifecycle.registry import Registry
from ml_lifecycle.simulate import simulate
from ml_lifecycle_airflow.dagtest import airflow_env, run_steps

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START = dt.date(2026, 3, 1)
FAST = ["model.max_iter=60", "model.patience=5", "evaluation.bootstrap=20",
        "evaluation.importance_repeats=1", "gate.bootstrap=50", "quality.min_rows=100",
        # The policy the assertions rely on, whatever the demo config says.
        "policy.min_severity=medium", "policy.cooldown_days=3", "policy.budget_max_retrains=4",
        # DAG wiring, not the decision, is under test here: the drift-led rule makes "shifted
        # day -> retrain" certain on 500-row batches (the performance-led default is tested in
        # test_drift_check.py, test_drift_policy.py and the backtest)
        "policy.trigger=drift"]

# configs/demo.yaml's model (name late_delivery): its DAG set
TRAINING, SCORING, DRIFT = (f"late_delivery__{k}" for k in ("training", "scoring", "drift_check"))
VERDICT_ASSET = "ml_lifecycle__late_delivery__drift_verdict"



def day(offset: int) -> str:
    return (START + dt.timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                          env=airflow_env(home, PROJECT_ROOT), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home


class World:
    """Simulated data + a config file under ``base``, and the environment to run DAGs on it."""

    def __init__(self, base: Path, home: Path, *, days: int = 4, shift_day: int = 99,
                 overrides: tuple[str, ...] = ()) -> None:
        self.base = base
        simulate(base / "var/demo/data", days=days, seed=11, start_date=START,
                 initial_rows=1500, rows_per_day=500, label_delay_days=3, shift_day=shift_day,
                 concept_day=99)
        raw = apply_overrides(project_config_raw(),
                              [*FAST, f"data.data_roots=[{base / 'var/demo'}]", *overrides])
        self.config_file = base / "lifecycle.yaml"
        self.config_file.write_text(yaml.safe_dump(raw))
        self.cfg = load_config(self.config_file, base=base)
        self.env = airflow_env(home, PROJECT_ROOT, {
            "ML_LIFECYCLE_CONFIG": str(self.config_file), "ML_LIFECYCLE_BASE_DIR": str(base)})

    @property
    def registry(self) -> Registry:
        return Registry(self.cfg.registry.root)

    def train_champion(self, as_of: str) -> None:
        """A champion trained on train.csv, as if by a training run on ``as_of``."""
        from ml_lifecycle.train import run_training

        assert run_training(self.cfg, reason="fixture", trigger={"as_of": as_of})["promoted"]

    def run(self, *steps: dict[str, Any]) -> list[dict[str, Any]]:
        return run_steps(list(steps), self.env)

    def alerts(self, kind: str) -> list[dict[str, Any]]:
        folder = Path(self.cfg.lifecycle.alerts)
        return [json.loads(p.read_text()) for p in sorted(folder.glob(f"{kind}__*.json"))]


def assert_ran(result: dict[str, Any], state: str, **tasks: str) -> None:
    assert result.get("error") is None, result.get("error")
    got = {k: result["tasks"].get(k) for k in tasks}
    assert (result["state"], got) == (state, tasks), result["log"][-6000:]


# --------------------------------------------------------------------------- training DAG


def test_training_dag_promotes_then_rejects(airflow_home: Path, tmp_path: Path) -> None:
    world = World(tmp_path, airflow_home)
    first, strict = world.run(
        {"dag_id": TRAINING, "logical_date": None,
         "conf": {"reason": "initial training", "as_of_day": day(-1)}},
        {"dag_id": TRAINING, "logical_date": None,
         "conf": {"reason": "stricter floor", "force": True,
                  "config_overrides": ["gate.floors.roc_auc=0.999"]}},
    )
    assert_ran(first, "success", wait_for_new_labels="success", train_candidate="success",
               gate_decision="success", promote="success", reject="skipped", notify="success")
    assert first["xcom"]["wait_for_new_labels"]["champion"] is None  # first model: no wait
    card = world.registry.get_card(1)
    assert card["trigger"]["reason"] == "initial training"
    assert card["trigger"]["run_id"] == first["run_id"] and card["trigger"]["as_of"] == day(-1)
    assert [e["extra"]["promoted"] for e in first["asset_events"]] == [1]

    assert_ran(strict, "success", train_candidate="success", promote="skipped",
               reject="success", notify="success")
    assert world.registry.champion() == 1  # the rejected v2 is registered, not promoted
    assert world.registry.get_card(2)["gate"]["passed"] is False
    assert "roc_auc" in strict["xcom"]["reject"]["reasons"][0]
    [rejected] = world.alerts("gate_rejected")
    assert rejected["severity"] == "warning" and "v2 rejected, champion stays v1" in \
        rejected["message"]
    assert [a["details"]["candidate"]["version"] for a in world.alerts("model_promoted")] == [1]


def test_mlflow_down_still_promotes_and_sends_a_tracking_alert(airflow_home: Path,
                                                               tmp_path: Path) -> None:
    """``tracking.mlflow`` pointing at a port nothing listens on (and, in this venv, MLflow's
    client is not even installed): the run promotes as without MLflow, the card says why the
    copy is missing, and a ``tracking_failed`` alert is written next to ``model_promoted``."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    world = World(tmp_path, airflow_home, overrides=(
        f"tracking.mlflow={{tracking_uri: 'http://127.0.0.1:{port}', "
        "request_timeout_seconds: 1, max_retries: 0}",))
    [run] = world.run({"dag_id": TRAINING, "logical_date": None,
                       "conf": {"reason": "initial training", "as_of_day": day(-1)}})
    assert_ran(run, "success", train_candidate="success", promote="success", notify="success")
    assert world.registry.champion() == 1
    assert world.registry.get_card(1)["tracking"]["mlflow"]["status"] == "failed"
    assert len(world.alerts("model_promoted")) == 1
    [tracking] = world.alerts("tracking_failed")
    assert tracking["severity"] == "warning"
    assert "v1: MLflow logging failed; the lifecycle went on without it" in tracking["message"]


def test_new_labels_sensor_waits_times_out_or_is_forced(airflow_home: Path,
                                                        tmp_path: Path) -> None:
    world = World(tmp_path, airflow_home, days=6)
    world.train_champion(as_of=day(-1))  # trained on data up to the day before START
    timed_out, forced, enough = world.run(
        # No label of the batches has arrived by day 1: the sensor gives up after 3 s.
        {"dag_id": TRAINING, "logical_date": None,
         "conf": {"reason": "too early", "as_of_day": day(1), "labels_wait_minutes": 0.05}},
        {"dag_id": TRAINING, "logical_date": None,
         "conf": {"reason": "forced", "as_of_day": day(1), "force": True,
                  "labels_wait_minutes": 0.05}},
        # By day 5 the labels of days 0-2 arrived: 1500 rows >= min_new_labels=1000.
        {"dag_id": TRAINING, "logical_date": None,
         "conf": {"reason": "enough labels", "as_of_day": day(5), "window_days": 3}},
    )
    assert_ran(timed_out, "success", wait_for_new_labels="skipped",
               train_candidate="skipped", promote="skipped", reject="skipped",
               notify="skipped")
    [skipped] = world.alerts("retrain_skipped")
    assert skipped["message"].startswith(
        f"retrain skipped: only 0 of 1000 labelled rows arrived after the champion's cut-off "
        f"{day(-1)} (as of {day(1)})")
    assert skipped["details"]["prepare_request"]["as_of"] == day(1)

    assert_ran(forced, "success", wait_for_new_labels="success", train_candidate="success")
    assert forced["xcom"]["wait_for_new_labels"]["forced"] is True

    assert_ran(enough, "success", wait_for_new_labels="success", train_candidate="success")
    sensed = enough["xcom"]["wait_for_new_labels"]
    assert (sensed["rows"], sensed["cutoff"], sensed["forced"]) == (1500, day(-1), False)
    window = world.registry.get_card(3)["data"]["window"]  # chosen after the sensor
    assert [Path(b).name for b, _ in window["pairs"]] == [f"{day(k)}.csv" for k in (2,)]
    assert [c["version"] for c in world.registry.list_versions()] == [1, 2, 3]


def test_a_worse_champion_is_shadowed_then_rolled_back_by_the_drift_check(
        airflow_home: Path, tmp_path: Path) -> None:
    from ml_lifecycle.config import load_config
    from ml_lifecycle.train import run_training

    world = World(tmp_path, airflow_home, days=6,
                  overrides=("policy.auto_rollback=true", "policy.shadow_days=3"))
    world.train_champion(as_of=day(-1))
    train = pd.read_csv(world.cfg.data.path)
    train[world.cfg.data.target] = train[world.cfg.data.target].sample(
        frac=1.0, random_state=0).to_numpy()
    shuffled = tmp_path / "var/demo/data/shuffled.csv"
    train.to_csv(shuffled, index=False)
    hasty = load_config(world.config_file, [f"data.path={shuffled}", "gate.floors={}",
                                            "gate.champion_tolerance=1"], base=tmp_path)
    assert run_training(hasty, reason="hasty", trigger={"as_of": day(-1)},
                        promote=False)["version"] == 2
    world.registry.promote(2, reason="promoted by hand", actor="test")

    *scored, checked = world.run(
        *[{"dag_id": SCORING, "logical_date": day(k)} for k in range(3)],
        {"dag_id": DRIFT, "logical_date": day(5), "conf": {"wait_for_retrain": False}})
    for run in scored:
        assert_ran(run, "success", score_batch="success")
        assert run["xcom"]["score_batch"]["model_version"] == 2
        assert run["xcom"]["score_batch"]["shadow"]["model_version"] == 1
    assert_ran(checked, "success", check_drift="success")
    evidence = checked["xcom"]["check_drift"]["shadow"]
    assert evidence["rolled_back"] is True and evidence["rows"] == 1500
    assert evidence["difference"] < 0 and evidence["high"] < 0
    assert checked["xcom"]["check_drift"]["champion"] == 1  # the day is checked against v1
    assert world.registry.champion() == 1
    assert [(e["event"], e["version"]) for e in world.registry.history()] == [
        ("promote", 1), ("promote", 2), ("rollback", 1)]
    [alert] = world.alerts("model_rolled_back")
    assert alert["message"].startswith(f"{day(5)}: v2 rolled back to v1: on 1500 labelled rows")


def test_trigger_form_and_conf_are_validated(airflow_home: Path, tmp_path: Path) -> None:
    world = World(tmp_path, airflow_home)
    invalid, outside, override = world.run(
        {"dag_id": TRAINING, "logical_date": None, "conf": {"window_days": -1}},
        {"dag_id": TRAINING, "logical_date": None,
         "conf": {"drift_report": "/etc/passwd", "force": True}},
        {"dag_id": TRAINING, "logical_date": None,
         "conf": {"force": True, "config_overrides": [f"registry.root={tmp_path / 'elsewhere'}"]}},
    )
    assert "ParamValidationError" in invalid["error"] and "window_days" in invalid["error"]
    assert_ran(outside, "failed", prepare_request="failed", train_candidate="upstream_failed")
    assert "params.drift_report: path '/etc/passwd' resolves to" in outside["log"]
    assert_ran(override, "failed", prepare_request="failed")
    assert "config override registry.root" in override["log"]
    assert world.registry.list_versions() == []
    failures = world.alerts("task_failure")
    assert len(failures) == 2 and all(a["task_id"] == "prepare_request" for a in failures)


# --------------------------------------------------------------------------- daily DAGs


def test_scoring_and_drift_dags_on_a_clean_and_a_drifted_day(airflow_home: Path,
                                                             tmp_path: Path) -> None:
    world = World(tmp_path, airflow_home, days=5, shift_day=4)
    world.train_champion(as_of=day(-4))
    scored, rescored, clean, drifted = world.run(
        {"dag_id": SCORING, "logical_date": day(0)},
        {"dag_id": SCORING, "logical_date": day(0)},
        {"dag_id": DRIFT, "logical_date": day(0), "conf": {"wait_for_retrain": False}},
        {"dag_id": DRIFT, "logical_date": day(4), "conf": {"wait_for_retrain": False}},
    )
    assert_ran(scored, "success", wait_for_batch="success", score_batch="success")
    predictions = pd.read_csv(scored["xcom"]["score_batch"]["path"])
    assert list(predictions.columns) == ["order_id", "score", "prediction", "model_version"]
    assert scored["asset_events"][0]["extra"]["model_version"] == 1
    assert_ran(rescored, "success", score_batch="success")
    assert rescored["xcom"]["score_batch"] == scored["xcom"]["score_batch"]
    # `ml-lifecycle score` on the same batch writes exactly what the scoring DAG wrote
    cli_out = tmp_path / "cli-predictions.csv"
    batch = Path(world.cfg.lifecycle.batches) / f"{day(0)}.csv"
    done = subprocess.run([sys.executable, "-m", "ml_lifecycle", "score", "--config",
                           str(world.config_file), "--batch", str(batch), "--out", str(cli_out)],
                          env=world.env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(cli_out), predictions)

    assert_ran(clean, "success", check_drift="success", retrain_decision="success",
               no_retrain="success", trigger_retrain="skipped")
    assert clean["xcom"]["check_drift"]["verdict"] == "no_drift"
    assert clean["triggered"] == []

    assert_ran(drifted, "success", check_drift="success", trigger_retrain="success",
               no_retrain="skipped")
    check = drifted["xcom"]["check_drift"]
    assert check["verdict"] == "drift" and check["retrain"] is True
    assert Path(check["report_html"]).is_file() and Path(check["report_json"]).is_file()
    [event] = [e for e in drifted["asset_events"] if e["asset"] == VERDICT_ASSET]
    assert event["extra"]["verdict"] == "drift" and event["extra"]["day"] == day(4)
    [triggered] = drifted["triggered"]
    assert triggered["dag_id"] == TRAINING
    assert triggered["run_id"] == f"drift_retrain__{day(4)}"
    assert triggered["conf"]["as_of_day"] == day(4)
    assert triggered["conf"]["trigger_id"] == f"drift-{day(4)}"
    assert triggered["conf"]["drift_report"] == check["report_json"]
    assert triggered["conf"]["reason"].startswith(f"drift check {day(4)} (")
    assert len(triggered["conf"]["reason"]) <= 300  # fits the training form's reason field
    [breach] = world.alerts("drift_breach")
    assert breach["details"]["retrain"] is True and "retrain triggered" in breach["message"]


def test_missing_batch_and_missing_column_fail_clearly(airflow_home: Path,
                                                       tmp_path: Path) -> None:
    world = World(tmp_path, airflow_home, days=2)
    world.train_champion(as_of=day(-4))
    batch = Path(world.cfg.lifecycle.batches) / f"{day(1)}.csv"
    pd.read_csv(batch).drop(columns=["distance_km"]).to_csv(batch, index=False)
    champion_card = world.registry.get_card(1)
    missing, broken = world.run(
        {"dag_id": DRIFT, "logical_date": day(7),
         "conf": {"batch_wait_minutes": 0.05, "wait_for_retrain": False}},
        {"dag_id": DRIFT, "logical_date": day(1), "conf": {"wait_for_retrain": False}},
    )
    assert_ran(missing, "failed", wait_for_batch="failed", check_drift="upstream_failed")
    [timeout] = [a for a in world.alerts("task_failure") if a["task_id"] == "wait_for_batch"]
    assert f"no batch file {world.cfg.lifecycle.batches}/{day(7)}.csv for {day(7)}" in \
        timeout["exception"]

    assert_ran(broken, "failed", wait_for_batch="success", check_drift="failed",
               retrain_decision="upstream_failed", trigger_retrain="upstream_failed")
    [failure] = [a for a in world.alerts("task_failure") if a["task_id"] == "check_drift"]
    assert "distance_km" in failure["exception"] and "missing" in failure["exception"]
    assert failure["try_number"] == 1  # a data error is not retried
    assert broken["triggered"] == []
    assert world.registry.champion() == 1
    assert world.registry.get_card(1) == champion_card
    assert [c["version"] for c in world.registry.list_versions()] == [1]
