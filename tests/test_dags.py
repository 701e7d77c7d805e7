"""DAG integrity: the files import cleanly, cheaply, with the expected structure and forms.

Airflow is imported only in subprocesses with a temporary ``AIRFLOW_HOME``, so these tests
never touch ``~/airflow`` and do not depend on other tests' Airflow configuration.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ml_lifecycle_airflow.dagtest import airflow_env

pytestmark = pytest.mark.airflow

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted(p.name for p in (PROJECT_ROOT / "dags").glob("*.py"))
HEAVY = ("pandas", "sklearn", "scipy")
# configs/demo.yaml and configs/adult.yaml: one DAG set each
TRAINING, SCORING, DRIFT = "late_delivery__training", "late_delivery__scoring", \
    "late_delivery__drift_check"
MODELS = ("late_delivery", "adult_income")

INSPECT = r"""
import copy, json, sys, time
from airflow.dag_processing.dagbag import DagBag

started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()},
       "seconds": time.perf_counter() - started, "dags": {}, "invalid": {}}
for dag in bag.dags.values():
    out["dags"][dag.dag_id] = {
        "fileloc": dag.fileloc,
        "doc_md": dag.doc_md,
        "tags": sorted(dag.tags),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "dagrun_timeout": dag.dagrun_timeout.total_seconds() if dag.dagrun_timeout else None,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "schedule": getattr(dag.timetable, "_expression", None) or str(dag.schedule),
        "params": dag.params.dump(),
        "tasks": {t.task_id: {"downstream": sorted(t.downstream_task_ids),
                              "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                              "retries": t.retries,
                              "execution_timeout": (t.execution_timeout.total_seconds()
                                                    if t.execution_timeout else None),
                              "type": type(t).__name__,
                              "mode": getattr(t, "mode", None),
                              "has_failure_callback": bool(t.on_failure_callback)}
                  for t in dag.tasks},
    }
for dag_id, conf in json.loads(sys.argv[2]):
    try:
        params = copy.deepcopy(bag.dags[dag_id].params)
        params.update(conf)
        params.validate()
        out["invalid"].setdefault(dag_id, []).append(None)
    except Exception as exc:
        out["invalid"].setdefault(dag_id, []).append(f"{type(exc).__name__}: {exc}")
print(json.dumps(out, default=str))
"""

INVALID_CONFS = [
    (TRAINING, {"window_days": -3}),
    (TRAINING, {"reason": ""}),
    (TRAINING, {"force": "yes"}),
    (TRAINING, {"as_of_day": "March 5th"}),
    (TRAINING, {"config_overrides": ["model.max_iter 200"]}),
    (TRAINING, {"labels_wait_minutes": -1}),
    (DRIFT, {"day": "2026-13"}),
    (DRIFT, {"batch_wait_minutes": "soon"}),
    (SCORING, {"wait_for_retrain": "maybe", "day": 5}),
]
VALID_CONFS = [
    (TRAINING, {"reason": "drift", "force": True, "window_days": 7,
                     "include_original": False, "as_of_day": "2026-03-05",
                     "config_overrides": ["model.max_iter=200"], "drift_report": "/x.json"}),
    (DRIFT, {"day": "2026-03-05", "wait_for_retrain": False}),
]


@pytest.fixture(scope="module")
def inspected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("airflow-home")
    proc = subprocess.run(
        [sys.executable, "-c", INSPECT, str(PROJECT_ROOT / "dags"),
         json.dumps(INVALID_CONFS + VALID_CONFS)],
        env=airflow_env(home, PROJECT_ROOT), capture_output=True, text=True, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dagbag_has_no_import_errors(inspected: dict[str, Any]) -> None:
    assert inspected["import_errors"] == {}
    assert set(inspected["dags"]) == {f"{m}__{k}" for m in MODELS
                                      for k in ("training", "scoring", "drift_check")}


def test_training_dag_structure(inspected: dict[str, Any]) -> None:
    dag = inspected["dags"][TRAINING]
    tasks = {k: v["downstream"] for k, v in dag["tasks"].items()}
    assert tasks == {
        "prepare_request": ["promote", "train_candidate", "wait_for_new_labels"],
        "wait_for_new_labels": ["train_candidate"],
        "train_candidate": ["gate_decision", "promote", "reject"],
        "gate_decision": ["promote", "reject"],
        "promote": ["notify"],
        "reject": ["notify"],
        "notify": [],
    }
    assert dag["tasks"]["gate_decision"]["type"] == "_BranchPythonDecoratedOperator"
    assert dag["tasks"]["notify"]["trigger_rule"] == "none_failed_min_one_success"
    sensor = dag["tasks"]["wait_for_new_labels"]
    assert sensor["type"] == "NewLabelsSensor" and sensor["mode"] == "reschedule"
    assert dag["max_active_runs"] == 1 and dag["catchup"] is False
    assert dag["schedule"] == "None"  # ML_LIFECYCLE_TRAINING_SCHEDULE unset: off


def test_daily_dags_structure(inspected: dict[str, Any]) -> None:
    drift = inspected["dags"][DRIFT]
    assert {k: v["downstream"] for k, v in drift["tasks"].items()} == {
        "wait_for_batch": ["check_drift"],
        "check_drift": ["retrain_decision"],
        "retrain_decision": ["no_retrain", "trigger_retrain"],
        "trigger_retrain": [],
        "no_retrain": [],
    }
    assert drift["tasks"]["trigger_retrain"]["type"] == "TriggerDagRunOperator"
    assert drift["tasks"]["wait_for_batch"]["mode"] == "reschedule"
    scoring = inspected["dags"][SCORING]
    assert {k: v["downstream"] for k, v in scoring["tasks"].items()} == {
        "wait_for_batch": ["score_batch"], "score_batch": []}
    for dag in (drift, scoring):
        assert dag["catchup"] is True and dag["max_active_runs"] == 1
        assert "0 0 * * *" in dag["schedule"]  # @daily, data intervals, UTC


def test_dags_follow_the_house_rules(inspected: dict[str, Any]) -> None:
    for dag_id, dag in inspected["dags"].items():
        assert dag["doc_md"] and dag_id in dag["doc_md"], dag_id
        assert dag["start_date"] == "2026-01-01T00:00:00+00:00", dag_id
        assert "ml-lifecycle" in dag["tags"], dag_id
        assert dag_id.split("__")[0] in dag["tags"], dag_id  # the model's name
        assert dag["dagrun_timeout"] == 24 * 3600, dag_id  # no run hangs forever
        for task_id, task in dag["tasks"].items():
            assert task["execution_timeout"] == 6 * 3600, (dag_id, task_id)
            assert task["retries"] == 1, (dag_id, task_id)
            assert task["has_failure_callback"], (dag_id, task_id)


def test_branch_task_ids_are_module_constants() -> None:
    source = (PROJECT_ROOT / "include" / "ml_lifecycle_airflow" / "factory.py").read_text()
    for constant in ("PROMOTE_TASK_ID", "REJECT_TASK_ID", "TRIGGER_TASK_ID",
                     "NO_RETRAIN_TASK_ID"):
        assert f"{constant} = " in source
        assert f"return {constant}" in source or f"else {constant}" in source


def test_trigger_forms_refuse_invalid_values(inspected: dict[str, Any]) -> None:
    results = {dag_id: list(r) for dag_id, r in inspected["invalid"].items()}
    training = results[TRAINING]
    assert all(r and "ParamValidationError" in r for r in training[:6]), training
    assert "window_days" in training[0] and "minimum" in training[0]
    assert training[-1] is None  # the valid form passes
    drift = results[DRIFT]
    assert all(r and "ParamValidationError" in r for r in drift[:2]) and drift[-1] is None
    assert "ParamValidationError" in results[SCORING][0]


def test_training_form_fields(inspected: dict[str, Any]) -> None:
    params = inspected["dags"][TRAINING]["params"]
    assert params["reason"] == "manual retrain" and params["force"] is False
    assert {"window_days", "include_original", "config_overrides", "as_of_day",
            "labels_wait_minutes", "drift_report", "triggered_by", "trigger_id"} <= set(params)


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_dag_file_imports_no_heavy_library_and_parses_fast(
        dag_file: str, tmp_path: Path) -> None:
    path = str(PROJECT_ROOT / "dags" / dag_file)
    code = (
        "import importlib.util, json, sys, time\n"
        "t = time.perf_counter()\n"
        f"spec = importlib.util.spec_from_file_location('dagfile', {path!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(json.dumps({'seconds': time.perf_counter() - t,"
        f" 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=airflow_env(tmp_path, PROJECT_ROOT),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"{dag_file} imports {result['heavy']} at parse time"
    assert result["seconds"] < 10, result  # Airflow itself is most of it (~2 s here)
    assert not list(tmp_path.glob("**/*.csv")), "parsing must not write files"


NOTIFY = r"""
import http.server, json, os, sys, threading
from types import SimpleNamespace
from ml_lifecycle_airflow.notifier import LifecycleNotifier

received = []

class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=server.serve_forever, daemon=True).start()
# Slack through the provider and a Connection (a local endpoint stands in for Slack): the URL
# is the connection's secret, not an environment variable the DAG code reads.
os.environ["AIRFLOW_CONN_ML_SLACK"] = json.dumps({
    "conn_type": "slackwebhook", "password": f"http://127.0.0.1:{server.server_port}/hook"})
os.environ["ML_LIFECYCLE_SLACK_CONN_ID"] = "ml_slack"
ti = SimpleNamespace(dag_id="ml_drift_check", run_id="manual__2026-03-05T00:00:00+00:00",
                     task_id="check_drift", try_number=1, log_url="http://x/log",
                     xcom_pull=lambda task_ids: {"verdict": "drift"})
context = {"ti": ti, "params": {"day": "2026-03-05"}, "exception": ValueError("boom")}
notifier = LifecycleNotifier("task_failure", config_file=sys.argv[1],
                             details_task_id="check_drift")
notifier(context)
server.shutdown()
print(json.dumps({"received": received, "path": str(notifier.alert_path(
    {"kind": "task_failure", "dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id}))}))
"""


def test_notifier_writes_the_alert_file_and_posts_to_slack(tmp_path: Path) -> None:
    # The config cannot be read (it may be why a task failed): the default folder is used.
    env = airflow_env(tmp_path / "home", PROJECT_ROOT, {
        "ML_LIFECYCLE_CONFIG": str(tmp_path / "missing.yaml"),
        "ML_LIFECYCLE_BASE_DIR": str(tmp_path)})
    proc = subprocess.run([sys.executable, "-c", NOTIFY, str(tmp_path / "missing.yaml")], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    path = Path(out["path"])
    assert path.parent == tmp_path / "var/missing/alerts"  # var/<config stem>/alerts
    assert path.name == ("task_failure__ml_drift_check__manual__2026-03-05T00-00-00-00-00"
                         "__check_drift.json")
    alert = json.loads(path.read_text())
    assert alert["severity"] == "error" and alert["exception"] == "ValueError: boom"
    assert alert["message"] == "ml_drift_check.check_drift failed: boom"
    assert alert["details"] == {"check_drift": {"verdict": "drift"}}
    [slack] = out["received"]
    assert "Task failed" in slack["text"] and "boom" in slack["text"]
