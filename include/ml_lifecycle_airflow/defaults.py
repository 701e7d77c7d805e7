"""Shared task defaults and the per-model assets the DAGs record events on.

DAG ids are ``settings.dag_ids(name)`` (``<name>__training``, ``<name>__scoring``,
``<name>__drift_check``); assets are ``ml_lifecycle__<name>__<kind>``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.sdk import Asset

from .notifier import KIND_TASK_FAILURE, LifecycleNotifier

TAGS = ["ml-lifecycle"]
TASK_TIMEOUT = dt.timedelta(hours=6)  # per task try (a sensor's total wait has its own timeout)
DAGRUN_TIMEOUT = dt.timedelta(hours=24)


# Asset events carry small JSON metadata (the UI shows them on the asset's page).
def asset_name(model: str, kind: str) -> str:
    return f"ml_lifecycle__{model}__{kind}"


def champion_asset(model: str) -> Asset:
    """Updated when a new champion of ``model`` is promoted."""
    return Asset(name=asset_name(model, "champion"))


def predictions_asset(model: str) -> Asset:
    """Updated when a day's batch of ``model`` is scored."""
    return Asset(name=asset_name(model, "predictions"))


def drift_verdict_asset(model: str) -> Asset:
    """Updated when a day of ``model`` is checked (the verdict is the event's metadata)."""
    return Asset(name=asset_name(model, "drift_verdict"))


def default_args(config_file: str | Path, on_failure: list[Any] | None = None
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
        "on_failure_callback": [LifecycleNotifier(KIND_TASK_FAILURE, config_file=config_file),
                                *(on_failure or [])],
    }
