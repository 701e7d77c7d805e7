"""Trigger-form parameters of the DAGs and the validation of what a run receives.

The ``Param`` objects build the typed form of the Airflow UI and are validated by Airflow against
their JSON schema when a run is created (UI, REST, ``airflow dags trigger --conf``): a value of
the wrong type or out of range is refused before any task runs. What a schema cannot express
(config overrides that must validate against the config model, paths that must stay inside the
data roots) is checked by ``resolve_training_request`` in the first task.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from airflow.sdk import Param

DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
OVERRIDE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=.*$"
DEFAULT_BATCH_WAIT_MINUTES = 360.0
DEFAULT_LABELS_WAIT_MINUTES = 720.0


def day_param(description: str) -> Param:
    return Param(None, type=["null", "string"], pattern=DAY_PATTERN, title="Day (YYYY-MM-DD)",
                 description=description)


def daily_params() -> dict[str, Param]:
    """Params of the daily DAGs (scoring, drift check)."""
    return {
        "day": day_param("Day to process. Empty: the run's logical date (for a run without one, "
                         "the day before it was triggered)."),
        "batch_wait_minutes": Param(
            DEFAULT_BATCH_WAIT_MINUTES, type="number", minimum=0, maximum=7 * 24 * 60,
            title="Wait for the batch (minutes)",
            description="How long the sensor waits for the day's batch file before the run "
                        "fails with 'batch not found'."),
    }


def drift_params() -> dict[str, Param]:
    params = daily_params()
    params["wait_for_retrain"] = Param(
        True, type="boolean", title="Wait for a triggered retrain",
        description="When the policy triggers a retrain, this run waits (deferred, no worker "
                    "slot) until the retrain finishes, so the next day is checked against the "
                    "model that came out of it.")
    return params


def training_params() -> dict[str, Param]:
    """Params of the training DAG: the manual-retrain form."""
    return {
        "reason": Param(
            "manual retrain", type="string", minLength=1, maxLength=300, title="Reason",
            description="Why this run happens; stored in the model card and promotion history."),
        "force": Param(
            False, type="boolean", title="Force",
            description="Train now: skip the wait for new labels. (The drift policy's cooldown "
                        "and budget only gate retrains the drift check triggers; a run started "
                        "by hand is never held back by them.)"),
        "window_days": Param(
            None, type=["null", "integer"], minimum=0, maximum=3650,
            title="Training window (days)", section="Training window",
            description="Also train on the labelled batches of the last N days (0: none). "
                        "Empty: lifecycle.training_window_days."),
        "include_original": Param(
            None, type=["null", "boolean"], title="Include the original training data",
            section="Training window",
            description="Train on data.path as well. Empty: lifecycle.include_original."),
        "as_of_day": Param(
            None, type=["null", "string"], pattern=DAY_PATTERN, title="As of day (YYYY-MM-DD)",
            section="Training window",
            description="The day the window ends (labels arrived by then). Empty: the run's "
                        "logical date, or the day it was triggered."),
        "config_overrides": Param(
            [], type="array", items={"type": "string", "pattern": OVERRIDE_PATTERN},
            maxItems=50, title="Config overrides", section="Advanced",
            description="dotted.key=value lines applied to the config for this run only, e.g. "
                        "model.max_iter=200 (values are YAML). Data paths must stay inside "
                        "data.data_roots; the registry, the output folders (predictions, "
                        "reports, alerts), the data roots and the promotion policy cannot be "
                        "overridden."),
        "labels_wait_minutes": Param(
            DEFAULT_LABELS_WAIT_MINUTES, type="number", minimum=0, maximum=14 * 24 * 60,
            title="Wait for new labels (minutes)", section="Advanced",
            description="How long the new-labels sensor waits before the run ends with the "
                        "training skipped."),
        "drift_report": Param(
            None, type=["null", "string"], maxLength=2000, title="Drift report", section="Advanced",
            description="Set by the drift check: the JSON report that caused this retrain "
                        "(must lie inside the reports folder or data.data_roots)."),
        "triggered_by": Param(
            None, type=["null", "string"], maxLength=200, title="Triggered by",
            section="Advanced", description="Set by the drift check: the triggering DAG run."),
        "trigger_id": Param(
            None, type=["null", "string"], maxLength=100, title="Policy trigger",
            section="Advanced",
            description="Set by the drift check: the retrain policy's trigger this run answers "
                        "(its end is recorded against it)."),
    }


def run_day(context: Any) -> str:
    """The day a daily run processes: ``params.day``, else its logical date, else the day
    before ``run_after`` (a manual run without a logical date processes yesterday)."""
    from ml_lifecycle.lifecycle import as_day

    params = context.get("params") or {}
    if params.get("day"):
        return as_day(params["day"])
    logical = context.get("logical_date")
    if logical is not None:
        return as_day(logical)
    run_after = context["dag_run"].run_after
    return as_day(run_after - dt.timedelta(days=1))


def resolve_training_request(
    params: dict[str, Any],
    *,
    config_file: str | Path,
    logical_date: dt.datetime | None,
    run_after: dt.datetime,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Validate a training run's params and decide its window. Small JSON, safe for XCom.

    Returns:
        ``{"reason", "force", "as_of", "overrides", "window_days", "include_original",
        "labelled_days_at_request", "trigger", "labels_wait_minutes"}``: ``trigger`` is the
        context stored in the model card (DAG run, triggering run, drift report and its summary).
        The training window itself is decided after the labels sensor (:func:`window_for`).

    Raises:
        ConfigError, PathNotAllowedError, DataError: with the offending key or path named.
    """
    from ml_lifecycle.io import read_json
    from ml_lifecycle.lifecycle import as_day, training_window

    from .settings import check_run_path, load_lifecycle_config

    overrides = [str(o) for o in params.get("config_overrides") or []]
    cfg = load_lifecycle_config(config_file, overrides)
    if params.get("as_of_day"):
        as_of = as_day(params["as_of_day"])
    else:
        as_of = as_day(logical_date if logical_date is not None else run_after)
    # Validates window_days/include_original now; the batches themselves are chosen after the
    # labels sensor (``window_for``), so label files that arrive while it waits are used.
    window = training_window(cfg, as_of, window_days=params.get("window_days"),
                             include_original=params.get("include_original"))
    trigger: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "as_of": as_of,
                               "window_days": window["window_days"],
                               "overrides": overrides}
    if params.get("triggered_by"):
        trigger["triggered_by"] = str(params["triggered_by"])
    report = params.get("drift_report")
    if report:
        resolved = check_run_path(cfg, str(report), "params.drift_report")
        trigger["drift_report"] = resolved
        from ml_lifecycle.storage import is_file

        if resolved.endswith(".json") and is_file(resolved):
            try:
                summary = read_json(resolved)
            except ValueError:  # not a drift report after all: keep only its path
                summary = None
            if isinstance(summary, dict):
                trigger["drift_summary"] = {
                    "day": summary.get("day"), "verdict": summary.get("verdict"),
                    "severity": summary.get("severity"),
                    "reasons": [str(r) for r in summary.get("reasons") or []][:10],
                }
    return {
        "reason": str(params.get("reason") or "manual retrain"),
        "force": bool(params.get("force")),
        "as_of": as_of,
        "overrides": overrides,
        "window_days": window["window_days"],
        "include_original": window["include_original"],
        "labelled_days_at_request": window["days"],
        "trigger": trigger,
        "labels_wait_minutes": params.get("labels_wait_minutes"),
    }


def window_for(cfg: Any, request: dict[str, Any], sensed: dict[str, Any] | None
               ) -> dict[str, Any]:
    """The training window, decided after the labels sensor: the labelled batches whose label
    files exist *now*, as of the day the sensor counted for (``sensed["as_of"]``, which is the
    request's as-of day: the run's logical date or requested day, never the wall clock).

    Returns:
        :func:`ml_lifecycle.lifecycle.training_window`'s dict (``pairs`` = the batch and label
        files used, ``days``, ``as_of``, ``window_days``, ``include_original``).
    """
    from ml_lifecycle.lifecycle import as_day, training_window

    as_of = as_day((sensed or {}).get("as_of") or request["as_of"])
    return training_window(cfg, as_of, window_days=request["window_days"],
                           include_original=request["include_original"])
