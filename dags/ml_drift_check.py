"""
### ml_drift_check: check each day for drift and trigger a retrain when the policy says so

```
wait_for_batch -> check_drift -> retrain_decision -+-> trigger_retrain  ==> ml_training (conf)
                  [asset event:                    +-> no_retrain
                   ml_lifecycle_drift_verdict]
```

* **wait_for_batch** (reschedule mode) waits for the day's batch; after `batch_wait_minutes` the
  run fails with "no batch file ... for <day>" (`task_failure` alert). Nothing else runs.
* **check_drift** runs the drift core for the day: the champion's label-free performance
  estimate, its realized metric on the labels that have arrived for earlier days (joined with
  `ml_batch_scoring`'s predictions), batch quality, data and prediction drift against the
  champion's reference profile (the explanation), and the retrain policy (performance-led
  severity, cooldown, budget). It writes the JSON and HTML reports, records an
  `ml_lifecycle_drift_verdict` asset event with the verdict as metadata, and sends a
  `drift_breach` alert once per alert episode (`drift_resolved` when it closes). A batch that
  lacks a column fails here, naming it; no retrain is triggered and the champion is untouched.
* **retrain_decision** branches on the policy's decision.
* **trigger_retrain** starts `ml_training` for real with conf `{reason, drift_report,
  as_of_day, triggered_by, trigger_id}` and run id `drift_retrain__<day>` (a re-run of the day never
  triggers twice). With `wait_for_retrain` (default) it waits, deferred, until that retrain
  finishes (promoted, rejected, skipped or failed), so the next day is checked against the
  model that came out of it. If `ml_training` is paused, the task fails at once (a
  `task_failure` alert) instead of waiting for a run that would never start.

The day is the run's logical date (the `day` param overrides it). Daily schedule
(`ML_LIFECYCLE_DAILY_SCHEDULE`), `catchup=True` so history can be replayed, and
`max_active_runs=1` so days are checked in order.
"""

from __future__ import annotations

import os

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from ml_lifecycle_airflow import settings, steps
from ml_lifecycle_airflow.defaults import (
    DAGRUN_TIMEOUT,
    DRIFT_DAG_ID,
    DRIFT_VERDICT_ASSET,
    TAGS,
    TRAINING_DAG_ID,
    default_args,
)
from ml_lifecycle_airflow.params import drift_params
from ml_lifecycle_airflow.sensors import BatchFileSensor

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WAIT_BATCH_TASK_ID = "wait_for_batch"
CHECK_TASK_ID = "check_drift"
DECISION_TASK_ID = "retrain_decision"
TRIGGER_TASK_ID = "trigger_retrain"
NO_RETRAIN_TASK_ID = "no_retrain"

_CHECK = "ti.xcom_pull(task_ids='" + CHECK_TASK_ID + "')"


@dag(
    dag_id=DRIFT_DAG_ID,
    schedule=settings.daily_schedule(),
    start_date=settings.start_date(),
    catchup=True,
    max_active_runs=1,
    dagrun_timeout=DAGRUN_TIMEOUT,
    params=drift_params(),
    default_args=default_args(PROJECT_ROOT),
    render_template_as_native_obj=True,
    tags=[*TAGS, "monitoring"],
    doc_md=__doc__,
)
def ml_drift_check() -> None:
    wait_for_batch = BatchFileSensor(
        task_id=WAIT_BATCH_TASK_ID,
        project_root=PROJECT_ROOT,
        timeout_minutes="{{ params.batch_wait_minutes }}",
        poke_interval=300,
    )

    @task(task_id=CHECK_TASK_ID, outlets=[DRIFT_VERDICT_ASSET])
    def check_drift(**context) -> dict:
        return steps.check_drift(PROJECT_ROOT, context, DRIFT_VERDICT_ASSET)

    @task.branch(task_id=DECISION_TASK_ID)
    def retrain_decision(result: dict) -> str:
        return TRIGGER_TASK_ID if result["retrain"] else NO_RETRAIN_TASK_ID

    trigger_retrain = TriggerDagRunOperator(
        task_id=TRIGGER_TASK_ID,
        on_failure_callback=[*default_args(PROJECT_ROOT)["on_failure_callback"],
                             steps.TriggerFailed(PROJECT_ROOT, CHECK_TASK_ID)],
        trigger_dag_id=TRAINING_DAG_ID,
        trigger_run_id="{{ " + _CHECK + "['retrain_run_id'] }}",
        conf="{{ " + _CHECK + "['retrain_conf'] }}",
        logical_date=None,
        skip_when_already_exists=True,
        fail_when_dag_is_paused=True,  # fail clearly instead of waiting for a run never started
        wait_for_completion="{{ params.wait_for_retrain }}",
        deferrable=True,
        poke_interval=3,
        allowed_states=["success", "failed"],
        failed_states=[],
    )
    no_retrain = EmptyOperator(task_id=NO_RETRAIN_TASK_ID)

    result = check_drift()
    wait_for_batch >> result
    retrain_decision(result) >> [trigger_retrain, no_retrain]


ml_drift_check()
