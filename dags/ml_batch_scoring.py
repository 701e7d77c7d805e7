"""
### ml_batch_scoring: score each day's batch with the champion

```
wait_for_batch -> score_batch  [asset event: ml_lifecycle_predictions]
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

from __future__ import annotations

import os

from airflow.sdk import dag, task

from ml_lifecycle_airflow import settings, steps
from ml_lifecycle_airflow.defaults import (
    DAGRUN_TIMEOUT,
    PREDICTIONS_ASSET,
    SCORING_DAG_ID,
    TAGS,
    default_args,
)
from ml_lifecycle_airflow.params import daily_params
from ml_lifecycle_airflow.sensors import BatchFileSensor

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WAIT_BATCH_TASK_ID = "wait_for_batch"
SCORE_TASK_ID = "score_batch"


@dag(
    dag_id=SCORING_DAG_ID,
    schedule=settings.daily_schedule(),
    start_date=settings.start_date(),
    catchup=True,
    max_active_runs=1,
    dagrun_timeout=DAGRUN_TIMEOUT,
    params=daily_params(),
    default_args=default_args(PROJECT_ROOT),
    render_template_as_native_obj=True,
    tags=[*TAGS, "scoring"],
    doc_md=__doc__,
)
def ml_batch_scoring() -> None:
    wait_for_batch = BatchFileSensor(
        task_id=WAIT_BATCH_TASK_ID,
        project_root=PROJECT_ROOT,
        timeout_minutes="{{ params.batch_wait_minutes }}",
        poke_interval=300,
    )

    @task(task_id=SCORE_TASK_ID, outlets=[PREDICTIONS_ASSET])
    def score_batch(**context) -> dict:
        return steps.score_day(PROJECT_ROOT, context, PREDICTIONS_ASSET)

    wait_for_batch >> score_batch()


ml_batch_scoring()
