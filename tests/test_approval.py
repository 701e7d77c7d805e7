"""Promotion by human approval (``promotion.mode: approval``) through the real scheduler.

An embedded Airflow (scheduler, dag-processor, triggerer, api-server; LocalExecutor, SQLite in a
temporary ``AIRFLOW_HOME``) serves two approval-mode models from one configs folder. The test
answers the approval task as a person would, through Airflow's REST API (the same endpoint as
Browse -> Required actions):

* approve (with a comment) -> promoted, the approver and the comment in the promotion history;
* reject -> not promoted, champion unchanged, ``approval_rejected`` alert;
* an answer for a run that no longer waits -> refused by Airflow, champion untouched;
* no answer (the second model's timeout is 36 s) -> the default, Reject, is taken.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import PROJECT_ROOT, make_config_dict, make_table
from ml_lifecycle.config import load_config
from ml_lifecycle.registry import Registry
from ml_lifecycle_airflow.embedded import EmbeddedAirflow, EmbeddedError

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

APPROVAL = "await_approval"


def write_model(folder: Path, name: str, timeout_hours: float) -> Path:
    raw = make_config_dict("../train.csv", f"../var/{name}/registry", name=name)
    raw["lifecycle"] = {k: f"../var/{name}/{k}"
                        for k in ("batches", "labels", "predictions", "reports", "alerts")}
    raw["promotion"] = {"mode": "approval", "approval_timeout_hours": timeout_hours}
    # The gate compares with the champion: a wide tolerance so a re-trained candidate passes.
    raw["gate"]["champion_tolerance"] = 0.5
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def wait_for_task(airflow: EmbeddedAirflow, dag_id: str, run_id: str, task_id: str,
                  states: set[str], timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        airflow.check_alive()
        state = airflow.task_states(dag_id, run_id).get(task_id)
        if state in states:
            return state
        if airflow.run_state(dag_id, run_id) in ("success", "failed"):
            break
        time.sleep(1)
    raise AssertionError(f"{dag_id}.{task_id} in run {run_id} is {state!r}, not in {states}; "
                         f"tasks: {airflow.task_states(dag_id, run_id)}")


def wait_until_parked(airflow: EmbeddedAirflow, dag_id: str, run_id: str) -> None:
    """Wait until the approval task is parked in ``awaiting_input``, then a little longer.

    The operator writes its request (so ``hitlDetails`` answers) a moment *before* the task is
    parked; an answer given in between is recorded while the task instance is still running.
    Airflow 3.3 resumes such a task when it parks, but with SQLite (no row locks) a CI run once
    saw it stay parked: the answer was taken, the task never resumed. A person answers seconds
    later at the earliest; so does this test.
    """
    wait_for_task(airflow, dag_id, run_id, APPROVAL, {"awaiting_input"})
    time.sleep(2)


def answer(airflow: EmbeddedAirflow, dag_id: str, run_id: str, option: str,
           comment: str) -> Any:
    return airflow.api(
        "PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{APPROVAL}/-1/hitlDetails",
        {"chosen_options": [option], "params_input": {"comment": comment}})


def alerts(cfg: Any, kind: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text())
            for p in sorted(Path(cfg.lifecycle.alerts).glob(f"{kind}__*.json"))]


def test_a_person_approves_or_rejects_each_promotion(tmp_path: Path) -> None:
    project = tmp_path / "project"
    configs = project / "configs"
    configs.mkdir(parents=True)
    make_table(n=1500).to_csv(project / "train.csv", index=False)
    churn = load_config(write_model(configs, "churn", 24.0))
    quiet = load_config(write_model(configs, "quiet", 0.01))  # 36 s without an answer
    training, quiet_training = "churn__training", "quiet__training"

    airflow = EmbeddedAirflow(PROJECT_ROOT, tmp_path / "airflow", parallelism=2,
                              idle_sleep=0.25, extra_env={
                                  "ML_LIFECYCLE_CONFIGS": str(configs),
                                  "ML_LIFECYCLE_DAILY_SCHEDULE": "none"})
    airflow.migrate()
    try:
        airflow.start()
        airflow.wait_for_dags([training, quiet_training])
        airflow.unpause(training)
        airflow.unpause(quiet_training)

        # 1. approve: the run waits at the approval task until a person answers
        first = airflow.trigger(training, conf={"reason": "first model", "force": True})
        wait_until_parked(airflow, training, first)
        assert airflow.run_state(training, first) == "running"
        assert Registry(churn.registry.root).champion() is None  # nothing promoted yet
        details = airflow.api(
            "GET", f"/api/v2/dags/{training}/dagRuns/{first}/taskInstances/{APPROVAL}/-1/"
                   "hitlDetails")
        assert "passed the promotion gate" in details["body"]
        assert "beats_baseline" in details["body"]
        answer(airflow, training, first, "Approve", "metrics look right")
        assert airflow.wait_for_run(training, first, 240) == "success"
        tasks = airflow.task_states(training, first)
        assert (tasks["promote"], tasks["not_approved"]) == ("success", "skipped"), tasks
        registry = Registry(churn.registry.root)
        assert registry.champion() == 1
        [event] = registry.history()
        assert event["actor"].startswith("approved by admin")
        assert "approved by admin: metrics look right" in event["reason"]

        # 2. reject: registered, not promoted, alert
        second = airflow.trigger(training, conf={"reason": "second try", "force": True})
        wait_until_parked(airflow, training, second)
        answer(airflow, training, second, "Reject", "wait for the new features")
        assert airflow.wait_for_run(training, second, 240) == "success"
        tasks = airflow.task_states(training, second)
        assert (tasks["promote"], tasks["not_approved"]) == ("skipped", "success"), tasks
        assert registry.champion() == 1 and [c["version"] for c in registry.list_versions()] \
            == [1, 2]
        [refused] = alerts(churn, "approval_rejected")
        assert "rejected by admin: wait for the new features" in refused["message"]

        # 3. an answer for a run that no longer waits is refused; nothing changes
        with pytest.raises(EmbeddedError, match=r"HTTP 4\d\d"):
            answer(airflow, training, second, "Approve", "too late")
        assert registry.champion() == 1 and len(registry.history()) == 1

        # 4. nobody answers: after the timeout the default (Reject) is taken
        quiet_run = airflow.trigger(quiet_training, conf={"reason": "nobody looks",
                                                          "force": True})
        assert airflow.wait_for_run(quiet_training, quiet_run, 300) == "success"
        tasks = airflow.task_states(quiet_training, quiet_run)
        assert (tasks["promote"], tasks["not_approved"]) == ("skipped", "success"), tasks
        assert Registry(quiet.registry.root).champion() is None
        [timed_out] = alerts(quiet, "approval_rejected")
        assert "no answer before the approval timeout" in timed_out["message"]
    finally:
        airflow.stop()
    assert airflow.leftover_pids() == []
