"""The DAG factory: one training, one scoring and one drift-check DAG per model config.

A DAG file only needs::

    from ml_lifecycle_airflow.factory import build_dag_sets

    globals().update(build_dag_sets(__file__))

``build_dag_sets`` reads the configs folder (``settings.discover``: ``ML_LIFECYCLE_CONFIGS``, else
``configs/`` next to the DAG file's folder) and builds, for each model ``<name>``:

* ``<name>__training``: train a candidate, gate it, promote or reject it;
* ``<name>__scoring``: score each day's batch with the champion;
* ``<name>__drift_check``: estimate performance, explain it with drift, trigger
  ``<name>__training`` when the retrain policy says so.

Each DAG set has its own assets (``ml_lifecycle__<name>__champion`` / ``__predictions`` /
``__drift_verdict``), reads only its own config, and its drift check triggers only its own
training DAG. Parsing validates each config (YAML + pydantic) and reads no data; pandas,
scikit-learn and scipy are imported inside tasks only.

A config that cannot be used (invalid, a bad ``name``, a name or registry another config
already uses) does not stop the others: its model gets one stand-in DAG
``<file stem>__config_error`` whose description carries the error and whose only task fails
with it, and the error is logged by the dag-processor. (A DAG file has one import-error slot
for all the models it builds; raising would hide every model's DAGs.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, TriggerRule, task

from . import settings, steps
from .approval import XCOM_KEY, PromotionApproval
from .defaults import (
    DAGRUN_TIMEOUT,
    TAGS,
    champion_asset,
    default_args,
    drift_verdict_asset,
    predictions_asset,
)
from .notifier import KIND_RETRAIN_SKIPPED, LifecycleNotifier
from .params import daily_params, drift_params, training_params
from .sensors import BatchFileSensor, NewLabelsSensor

log = logging.getLogger(__name__)

# Task ids (branches return them; tests and the UI refer to them).
PREPARE_TASK_ID = "prepare_request"
WAIT_LABELS_TASK_ID = "wait_for_new_labels"
TRAIN_TASK_ID = "train_candidate"
GATE_TASK_ID = "gate_decision"
PROMOTE_TASK_ID = "promote"
REJECT_TASK_ID = "reject"
NOTIFY_TASK_ID = "notify"
APPROVAL_TASK_ID = "await_approval"
NOT_APPROVED_TASK_ID = "not_approved"
WAIT_BATCH_TASK_ID = "wait_for_batch"
SCORE_TASK_ID = "score_batch"
CHECK_TASK_ID = "check_drift"
DECISION_TASK_ID = "retrain_decision"
TRIGGER_TASK_ID = "trigger_retrain"
NO_RETRAIN_TASK_ID = "no_retrain"
CONFIG_ERROR_TASK_ID = "config_error"

_REQUEST = "ti.xcom_pull(task_ids='" + PREPARE_TASK_ID + "')"
_CHECK = "ti.xcom_pull(task_ids='" + CHECK_TASK_ID + "')"

TRAINING_DOC = """
### {training}: train a candidate of `{name}`, gate it, promote it or reject it

Config: `{config}`

```
prepare_request -> wait_for_new_labels -> train_candidate -> gate_decision -+-> promote -+-> notify
                                                                            +-> reject  -+
```

* **prepare_request** validates the trigger form / conf (config overrides must validate and keep
  paths inside `data.data_roots`; a drift report path must lie in the reports folder) and picks
  the as-of day (the `as_of_day` param, else the run's logical date, else the day it was
  triggered).
* **wait_for_new_labels** (reschedule mode) waits until `lifecycle.min_new_labels` labelled rows
  exist after the champion's training cut-off. `force=true` or no champion: passes at once.
  **Timeout** (`labels_wait_minutes`): the sensor is *skipped*, so are training and promotion;
  the run succeeds with the champion unchanged and a `retrain_skipped` alert is written.
* **train_candidate** picks the training window *after* the sensor: the original data
  (`include_original`) plus the labelled batches of the last `window_days` days whose label
  files exist by then (so labels that arrived during the wait are used; the card lists the
  label files), runs the core pipeline (quality gate, split, preprocess+train with validation
  early stopping, one evaluation on test, gate) and registers the candidate **without
  promoting it**; the model card records the reason, this run and the drift report.
* **gate_decision** branches to **promote** (compare-and-swap on the champion the candidate was
  gated against; records a `{champion_asset}` asset event) or **reject**. With
  `promotion.mode: approval` a passing candidate first waits at **await_approval** (Browse ->
  Required actions): *Approve* -> promote (the approver and comment go to the promotion
  history), *Reject* or no answer within `promotion.approval_timeout_hours` -> **not_approved**
  (`approval_rejected` alert).
* **notify** sends `model_promoted` or `gate_rejected`. Any task failure sends `task_failure`.
  When the drift check triggered the run, its end (promoted, rejected, skipped or failed) is
  recorded in the retrain policy's state, which clears the pending trigger.

Triggered by: `{drift}` (conf: reason, drift_report, as_of_day, triggered_by, trigger_id =
the policy's trigger this run answers), by hand (the form, or
`airflow dags trigger {training} --conf '{{"reason": "...", "force": true}}'`; unpause the DAG
first), and on `lifecycle.training_schedule` (off by default). One run at a time; a run still
going after 24 hours is failed (the drift check waiting for it then moves on).
"""

SCORING_DOC = """
### {scoring}: score each day's batch of `{name}` with the champion

Config: `{config}`

```
wait_for_batch -> score_batch  [asset event: {predictions_asset}]
```

* **wait_for_batch** (reschedule mode) waits for `<lifecycle.batches>/<day>.csv`; after
  `batch_wait_minutes` the run fails with "no batch file ... for <day>" and a `task_failure`
  alert.
* **score_batch** loads the champion (sha256-verified), scores the batch and writes
  `<lifecycle.predictions>/<day>.csv` with the id, `score`, `prediction` (the champion's
  threshold) and `model_version`. A re-run rewrites the same file. The drift check reads these
  predictions (concept drift: once the day's labels have arrived).

The day is the run's logical date (the `day` param overrides it). Daily schedule
(`ML_LIFECYCLE_DAILY_SCHEDULE`), `catchup` so past days can be replayed, one run at a time.
"""

DRIFT_DOC = """
### {drift}: check each day of `{name}` and trigger a retrain when the policy says so

Config: `{config}`

```
wait_for_batch -> check_drift -> retrain_decision -+-> trigger_retrain  ==> {training} (conf)
                  [asset event:                    +-> no_retrain
                   {verdict_asset}]
```

* **wait_for_batch** (reschedule mode) waits for the day's batch; after `batch_wait_minutes` the
  run fails with "no batch file ... for <day>" (`task_failure` alert). Nothing else runs.
* **check_drift** runs the drift core for the day: the champion's label-free performance
  estimate, its realized metric on the labels that have arrived for earlier days (joined with
  `{scoring}`'s predictions), batch quality, data and prediction drift against the
  champion's reference profile (the explanation), and the retrain policy (performance-led
  severity, cooldown, budget). It writes the JSON and HTML reports, records a
  `{verdict_asset}` asset event with the verdict as metadata, and sends a `drift_breach` alert
  once per alert episode (`drift_resolved` when it closes). A batch that lacks a column fails
  here, naming it; no retrain is triggered and the champion is untouched.
* **retrain_decision** branches on the policy's decision.
* **trigger_retrain** starts `{training}` for real with conf `{{reason, drift_report,
  as_of_day, triggered_by, trigger_id}}` and run id `drift_retrain__<day>` (a re-run of the day
  never triggers twice). With `wait_for_retrain` (default) it waits, deferred, until that
  retrain finishes (promoted, rejected, skipped or failed), so the next day is checked against
  the model that came out of it. If `{training}` is paused, the task fails at once (a
  `task_failure` alert) instead of waiting for a run that would never start.

The day is the run's logical date (the `day` param overrides it). Daily schedule
(`ML_LIFECYCLE_DAILY_SCHEDULE`), `catchup=True` so history can be replayed, and
`max_active_runs=1` so days are checked in order.
"""

CONFIG_ERROR_DOC = """
### This model's config cannot be used

Config: `{config}`

```
{error}
```

The other models' DAGs are not affected. Fix the file; the dag-processor re-parses it and this
stand-in DAG is replaced by the model's three DAGs.
"""


def _doc_fields(spec: settings.ModelSpec) -> dict[str, str]:
    ids = settings.dag_ids(spec.name)
    return {"name": spec.name, "config": spec.config_file, **ids,
            "champion_asset": champion_asset(spec.name).name,
            "predictions_asset": predictions_asset(spec.name).name,
            "verdict_asset": drift_verdict_asset(spec.name).name}


def _common(spec: settings.ModelSpec, kind: str) -> dict[str, Any]:
    return {"max_active_runs": 1, "dagrun_timeout": DAGRUN_TIMEOUT,
            "render_template_as_native_obj": True,
            "tags": [*TAGS, spec.name, kind],
            "start_date": settings.start_date()}


def build_training_dag(spec: settings.ModelSpec) -> DAG:
    """``<name>__training``: prepare -> wait for labels -> train -> gate -> promote/reject."""
    config = spec.config_file
    champion = champion_asset(spec.name)
    with DAG(
        dag_id=settings.dag_ids(spec.name)["training"],
        schedule=settings.training_schedule(spec.training_schedule),
        catchup=False,
        params=training_params(),
        default_args=default_args(config, on_failure=[steps.RetrainFinished(config, "failed")]),
        doc_md=TRAINING_DOC.format(**_doc_fields(spec)),
        description=f"Train, gate and promote {spec.name}",
        **_common(spec, "training"),
    ) as dag:
        @task(task_id=PREPARE_TASK_ID)
        def prepare_request(**context: Any) -> dict:
            return steps.prepare_training_request(config, context)

        wait_for_new_labels = NewLabelsSensor(
            task_id=WAIT_LABELS_TASK_ID,
            config_file=config,
            as_of="{{ " + _REQUEST + "['as_of'] }}",
            force="{{ " + _REQUEST + "['force'] }}",
            config_overrides="{{ " + _REQUEST + "['overrides'] }}",
            timeout_minutes="{{ params.labels_wait_minutes }}",
            poke_interval=600,
            on_skipped_callback=[
                LifecycleNotifier(
                    KIND_RETRAIN_SKIPPED, config_file=config, details_task_id=PREPARE_TASK_ID,
                    message="{{ ti.xcom_pull(task_ids='" + WAIT_LABELS_TASK_ID
                            + "', key='skip_reason') }}"),
                steps.RetrainFinished(config, "skipped: not enough new labels"),
            ],
        )

        @task(task_id=TRAIN_TASK_ID)
        def train_candidate(request: dict, sensed: dict, **context: Any) -> dict:
            return steps.train_candidate(config, request, context, sensed)

        approval = spec.promotion == "approval"
        after_gate = APPROVAL_TASK_ID if approval else PROMOTE_TASK_ID

        @task.branch(task_id=GATE_TASK_ID)
        def gate_decision(result: dict) -> str:
            return after_gate if result["gate_passed"] else REJECT_TASK_ID

        @task(task_id=PROMOTE_TASK_ID, outlets=[champion])
        def promote(request: dict, result: dict, **context: Any) -> dict:
            answer = (context["ti"].xcom_pull(task_ids=APPROVAL_TASK_ID, key=XCOM_KEY)
                      if approval else None)
            return steps.promote_candidate(config, request, result, context, champion, answer)

        @task(task_id=REJECT_TASK_ID)
        def reject(result: dict) -> dict:
            return steps.reject_candidate(result)

        @task(task_id=NOTIFY_TASK_ID, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def notify(**context: Any) -> dict:
            return steps.notify_training_outcome(
                config, context, train_task_id=TRAIN_TASK_ID,
                promote_task_id=PROMOTE_TASK_ID, reject_task_id=REJECT_TASK_ID,
                not_approved_task_id=NOT_APPROVED_TASK_ID if approval else None)

        request = prepare_request()
        request >> wait_for_new_labels
        result = train_candidate(request, wait_for_new_labels.output)
        decision = gate_decision(result)
        promoted, rejected, notified = promote(request, result), reject(result), notify()
        decision >> rejected >> notified
        if approval:
            _approval_step(spec, decision, promoted, result, notified)
        else:
            decision >> promoted >> notified
    return dag


def _approval_step(spec: settings.ModelSpec, decision: Any, promoted: Any, result: Any,
                   notified: Any) -> None:
    """``promotion.mode: approval``: gate passed -> await_approval -> promote | not_approved."""

    @task(task_id=NOT_APPROVED_TASK_ID)
    def not_approved(result: dict, **context: Any) -> dict:
        answer = context["ti"].xcom_pull(task_ids=APPROVAL_TASK_ID, key=XCOM_KEY)
        return steps.not_approved(result, answer)

    ask = PromotionApproval(
        task_id=APPROVAL_TASK_ID, model=spec.name, train_task_id=TRAIN_TASK_ID,
        promote_task_id=PROMOTE_TASK_ID, reject_task_id=NOT_APPROVED_TASK_ID,
        timeout_hours=spec.approval_timeout_hours, approvers=spec.approvers)
    decision >> ask >> [promoted, not_approved(result)] >> notified


def _daily_dag(spec: settings.ModelSpec, kind: str, params: dict[str, Any], doc: str,
               description: str, tag: str) -> DAG:
    """A daily DAG of a model: its timetable, catchup, params, defaults and docs."""
    return DAG(
        dag_id=settings.dag_ids(spec.name)[kind],
        schedule=settings.daily_schedule(),
        catchup=True,
        params=params,
        default_args=default_args(spec.config_file),
        doc_md=doc.format(**_doc_fields(spec)),
        description=description,
        **_common(spec, tag),
    )


def _wait_for_batch(config: str) -> BatchFileSensor:
    return BatchFileSensor(task_id=WAIT_BATCH_TASK_ID, config_file=config,
                           timeout_minutes="{{ params.batch_wait_minutes }}", poke_interval=300)


def build_scoring_dag(spec: settings.ModelSpec) -> DAG:
    """``<name>__scoring``: wait for the day's batch -> score it with the champion."""
    config = spec.config_file
    predictions = predictions_asset(spec.name)
    with _daily_dag(spec, "scoring", daily_params(), SCORING_DOC,
                    f"Score each day's batch with the {spec.name} champion", "scoring") as dag:
        wait_for_batch = _wait_for_batch(config)

        @task(task_id=SCORE_TASK_ID, outlets=[predictions])
        def score_batch(**context: Any) -> dict:
            return steps.score_day(config, context, predictions)

        wait_for_batch >> score_batch()
    return dag


def build_drift_dag(spec: settings.ModelSpec) -> DAG:
    """``<name>__drift_check``: check the day -> trigger ``<name>__training`` or not."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    config = spec.config_file
    verdict = drift_verdict_asset(spec.name)
    ids = settings.dag_ids(spec.name)
    with _daily_dag(spec, "drift", drift_params(), DRIFT_DOC,
                    f"Estimate {spec.name}'s performance, explain it, retrain when it harms",
                    "monitoring") as dag:
        wait_for_batch = _wait_for_batch(config)

        @task(task_id=CHECK_TASK_ID, outlets=[verdict])
        def check_drift(**context: Any) -> dict:
            return steps.check_drift(config, context, verdict)

        @task.branch(task_id=DECISION_TASK_ID)
        def retrain_decision(result: dict) -> str:
            return TRIGGER_TASK_ID if result["retrain"] else NO_RETRAIN_TASK_ID

        trigger_retrain = TriggerDagRunOperator(
            task_id=TRIGGER_TASK_ID,
            on_failure_callback=[*default_args(config)["on_failure_callback"],
                                 steps.TriggerFailed(config, CHECK_TASK_ID)],
            trigger_dag_id=ids["training"],  # this model's training DAG, never another's
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
    return dag


def build_config_error_dag(broken: settings.BrokenConfig) -> DAG:
    """A stand-in DAG for a config that cannot be used: its doc and its one task show why."""
    error = broken.error

    with DAG(
        dag_id=settings.config_error_dag_id(broken.config_file),
        schedule=None,
        start_date=settings.start_date(),
        catchup=False,
        tags=[*TAGS, "config-error"],
        description=f"Config error: {error.splitlines()[0][:200]}",
        doc_md=CONFIG_ERROR_DOC.format(config=broken.config_file, error=error),
    ) as dag:
        @task(task_id=CONFIG_ERROR_TASK_ID, retries=0)
        def config_error() -> None:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(error)

        config_error()
    return dag


def build_dag_sets(dag_file: str | Path | None = None) -> dict[str, DAG]:
    """All DAGs of all models, keyed by DAG id (for ``globals().update(...)`` in a DAG file).

    Args:
        dag_file: the calling DAG file (``__file__``); the project whose ``configs/`` folder
            is the default is the folder above the DAG file's folder. Not needed when
            ``ML_LIFECYCLE_CONFIGS`` or ``ML_LIFECYCLE_CONFIG`` is set.

    Raises:
        ConfigError: the configs folder is missing, unreadable or holds no config: an import
            error of the DAG file, naming the folder (there is no model to keep).
    """
    project = Path(dag_file).absolute().parent.parent if dag_file else None
    specs, broken = settings.discover(project)
    dags: dict[str, DAG] = {}
    for spec in specs:
        for build in (build_training_dag, build_scoring_dag, build_drift_dag):
            dag = build(spec)
            dags[dag.dag_id] = dag
    for item in broken:
        log.error("ml-lifecycle: %s", item.error)
        dag = build_config_error_dag(item)
        dags[dag.dag_id] = dag
    return dags
