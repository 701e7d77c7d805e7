"""DAG ids, shared task defaults and the assets the DAGs record events on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.sdk import Asset

from .notifier import KIND_TASK_FAILURE, LifecycleNotifier

TRAINING_DAG_ID = "ml_training"
SCORING_DAG_ID = "ml_batch_scoring"
DRIFT_DAG_ID = "ml_drift_check"
TAGS = ["ml-lifecycle"]
TASK_TIMEOUT = dt.timedelta(hours=6)  # per task try (a sensor's total wait has its own timeout)
DAGRUN_TIMEOUT = dt.timedelta(hours=24)

# Asset events carry small JSON metadata (the UI shows them on the asset's page).
CHAMPION_ASSET = Asset(name="ml_lifecycle_champion")
PREDICTIONS_ASSET = Asset(name="ml_lifecycle_predictions")
DRIFT_VERDICT_ASSET = Asset(name="ml_lifecycle_drift_verdict")


def default_args(project_root: str | Path, on_failure: list[Any] | None = None
                 ) -> dict[str, Any]:
    """Retries for transient errors; every task failure produces a ``task_failure`` alert; a
    task still running after :data:`TASK_TIMEOUT` is failed (a hung read of a batch or of the
    object store must not hold a worker slot for a day).

    Expected core errors (bad data, failed quality gate) and sensor timeouts are not retried
    (see ``steps.fail_on_core_errors``). ``on_failure``: more failure callbacks.
    """
    return {
        "owner": "ml-platform",
        "retries": 1,
        "retry_delay": dt.timedelta(seconds=30),
        "execution_timeout": TASK_TIMEOUT,
        "on_failure_callback": [LifecycleNotifier(KIND_TASK_FAILURE, project_root=project_root),
                                *(on_failure or [])],
    }
