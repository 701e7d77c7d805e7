"""
### ml_training: train a candidate, gate it, promote it or reject it

```
prepare_request -> wait_for_new_labels -> train_candidate -> gate_decision -+-> promote -+-> notify
                                                                            +-> reject  -+
```

* **prepare_request** validates the trigger form / conf (config overrides must validate and keep
  paths inside `data.data_roots`; a drift report path must lie in the reports folder) and picks
  the training window: the original data (`include_original`) plus the labelled batches of the
  last `window_days` days whose labels have arrived by the as-of day.
* **wait_for_new_labels** (reschedule mode) waits until `lifecycle.min_new_labels` labelled rows
  exist after the champion's training cut-off. `force=true` or no champion: passes at once.
  **Timeout** (`labels_wait_minutes`): the sensor is *skipped*, so are training and promotion;
  the run succeeds with the champion unchanged and a `retrain_skipped` alert is written.
* **train_candidate** runs the core pipeline (quality gate, split, preprocess+train with
  validation early stopping, one evaluation on test, gate) and registers the candidate
  **without promoting it**; the model card records the reason, this run and the drift report.
* **gate_decision** branches to **promote** (compare-and-swap on the champion the candidate was
  gated against; records an `ml_lifecycle_champion` asset event) or **reject**.
* **notify** sends `model_promoted` or `gate_rejected`. Any task failure sends `task_failure`.
  When the drift check triggered the run, its end (promoted, rejected, skipped or failed) is
  recorded in the retrain policy's state, which clears the pending trigger.

Triggered by: `ml_drift_check` (conf: reason, drift_report, as_of_day, triggered_by, trigger_id
= the policy's trigger this run answers), by hand
(the form, or `airflow dags trigger ml_training --conf '{"reason": "...", "force": true}'`),
and on `ML_LIFECYCLE_TRAINING_SCHEDULE` (off by default). One run at a time; a run still going
after 24 hours is failed (the drift check waiting for it then moves on).
"""

from __future__ import annotations

import os

from airflow.sdk import TriggerRule, dag, task

from ml_lifecycle_airflow import settings, steps
from ml_lifecycle_airflow.defaults import (
    CHAMPION_ASSET,
    DAGRUN_TIMEOUT,
    TAGS,
    TRAINING_DAG_ID,
    default_args,
)
from ml_lifecycle_airflow.notifier import KIND_RETRAIN_SKIPPED, LifecycleNotifier
from ml_lifecycle_airflow.params import training_params
from ml_lifecycle_airflow.sensors import NewLabelsSensor

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PREPARE_TASK_ID = "prepare_request"
WAIT_LABELS_TASK_ID = "wait_for_new_labels"
TRAIN_TASK_ID = "train_candidate"
GATE_TASK_ID = "gate_decision"
PROMOTE_TASK_ID = "promote"
REJECT_TASK_ID = "reject"
NOTIFY_TASK_ID = "notify"

_REQUEST = "ti.xcom_pull(task_ids='" + PREPARE_TASK_ID + "')"


@dag(
    dag_id=TRAINING_DAG_ID,
    schedule=settings.training_schedule(),
    start_date=settings.start_date(),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=DAGRUN_TIMEOUT,
    params=training_params(),
    default_args=default_args(PROJECT_ROOT,
                              on_failure=[steps.RetrainFinished(PROJECT_ROOT, "failed")]),
    render_template_as_native_obj=True,
    tags=[*TAGS, "training"],
    doc_md=__doc__,
)
def ml_training() -> None:
    @task(task_id=PREPARE_TASK_ID)
    def prepare_request(**context) -> dict:
        return steps.prepare_training_request(PROJECT_ROOT, context)

    wait_for_new_labels = NewLabelsSensor(
        task_id=WAIT_LABELS_TASK_ID,
        project_root=PROJECT_ROOT,
        as_of="{{ " + _REQUEST + "['as_of'] }}",
        force="{{ " + _REQUEST + "['force'] }}",
        config_overrides="{{ " + _REQUEST + "['overrides'] }}",
        timeout_minutes="{{ params.labels_wait_minutes }}",
        poke_interval=600,
        on_skipped_callback=[
            LifecycleNotifier(
                KIND_RETRAIN_SKIPPED, project_root=PROJECT_ROOT, details_task_id=PREPARE_TASK_ID,
                message="{{ ti.xcom_pull(task_ids='" + WAIT_LABELS_TASK_ID
                        + "', key='skip_reason') }}"),
            steps.RetrainFinished(PROJECT_ROOT, "skipped: not enough new labels"),
        ],
    )

    @task(task_id=TRAIN_TASK_ID)
    def train_candidate(request: dict, **context) -> dict:
        return steps.train_candidate(PROJECT_ROOT, request, context)

    @task.branch(task_id=GATE_TASK_ID)
    def gate_decision(result: dict) -> str:
        return PROMOTE_TASK_ID if result["gate_passed"] else REJECT_TASK_ID

    @task(task_id=PROMOTE_TASK_ID, outlets=[CHAMPION_ASSET])
    def promote(request: dict, result: dict, **context) -> dict:
        return steps.promote_candidate(PROJECT_ROOT, request, result, context, CHAMPION_ASSET)

    @task(task_id=REJECT_TASK_ID)
    def reject(result: dict) -> dict:
        return steps.reject_candidate(result)

    @task(task_id=NOTIFY_TASK_ID, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def notify(**context) -> dict:
        return steps.notify_training_outcome(
            PROJECT_ROOT, context, train_task_id=TRAIN_TASK_ID,
            promote_task_id=PROMOTE_TASK_ID, reject_task_id=REJECT_TASK_ID)

    request = prepare_request()
    result = train_candidate(request)
    request >> wait_for_new_labels >> result
    gate_decision(result) >> [promote(request, result), reject(result)] >> notify()


ml_training()
