"""Task bodies of the DAGs: thin glue between an Airflow task context and the pure core.

Each function takes the project root (to find the config) and the task context, calls the core,
and returns a small JSON-able dict for XCom (paths, versions, metrics, decisions). Expected
failures of the core (``MLLifecycleError``: bad data, bad config, failed quality gate, ...) are
re-raised as ``AirflowFailException`` with the same message: they are deterministic, so retrying
them would only delay the alert.

Idempotency per run: scoring and the drift check rewrite their own files for their day; a
re-run training task finds the version its run already registered instead of registering a
second one; promotion is a no-op when the candidate already is the champion.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from .notifier import (
    KIND_APPROVAL_REJECTED,
    KIND_DRIFT_BREACH,
    KIND_DRIFT_RESOLVED,
    KIND_GATE_REJECTED,
    KIND_MODEL_PROMOTED,
    KIND_ROLLED_BACK,
    KIND_TRACKING_FAILED,
    LifecycleNotifier,
)
from .params import resolve_training_request, run_day, window_for
from .settings import load_lifecycle_config

TOP_REASONS = 5


@contextlib.contextmanager
def fail_on_core_errors() -> Iterator[None]:
    """Turn the core's expected errors into a non-retried task failure with the same message.

    A :class:`~ml_lifecycle.errors.StorageError` (object store unreachable, throttled, denied)
    stays a normal exception: it may be transient, so the task's retries apply.
    """
    from ml_lifecycle.errors import MLLifecycleError, StorageError

    try:
        yield
    except StorageError:
        raise
    except MLLifecycleError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def _run_ids(context: Any) -> tuple[str, str]:
    dag_run = context["dag_run"]
    return dag_run.dag_id, dag_run.run_id


# --------------------------------------------------------------------------- training


def prepare_training_request(config_file: str | Path, context: Any) -> dict[str, Any]:
    """Validate the run's params/conf; decide the as-of day and the training window."""
    dag_id, run_id = _run_ids(context)
    with fail_on_core_errors():
        request = resolve_training_request(
            dict(context["params"]), config_file=config_file,
            logical_date=context.get("logical_date"), run_after=context["dag_run"].run_after,
            dag_id=dag_id, run_id=run_id)
    print(f"training request: reason={request['reason']!r} as_of={request['as_of']} "
          f"force={request['force']} original={request['include_original']} "
          f"window_days={request['window_days']} labelled days so far="
          f"{len(request['labelled_days_at_request'])} overrides={request['overrides']} "
          "(the batches are chosen after the labels sensor)")
    return request


def _summary(result: dict[str, Any], reused: bool) -> dict[str, Any]:
    gate = result["gate"]
    metric = result["primary_metric"]
    value = (result.get("metrics") or {}).get(metric) or {}
    return {
        "version": result["version"],
        "gate_passed": bool(gate["passed"]),
        "gate_reasons": list(gate.get("reasons") or []),
        "mlflow_warnings": list(((result.get("tracking") or {}).get("mlflow") or {}).get(
            "warnings") or []),
        "primary_metric": metric,
        "metric": value.get("value") if isinstance(value, dict) else value,
        "champion_before": result.get("champion_before"),
        "rows_per_split": result.get("rows_per_split"),
        "gate_rules": [f"{'PASS' if r.get('passed') else 'FAIL'} {r.get('name')}: "
                       f"{r.get('detail')}" for r in gate.get("rules") or []],
        "reused": reused,
    }


def _version_of_run(registry: Any, dag_id: str, run_id: str) -> dict[str, Any] | None:
    for card in reversed(registry.list_versions()):
        trigger = card.get("trigger") or {}
        if trigger.get("dag_id") == dag_id and trigger.get("run_id") == run_id:
            return card
    return None


RUN_LOCK_DIR = ".run-locks"
RUN_LOCK_TIMEOUT = 6 * 3600.0


@contextlib.contextmanager
def run_lock(registry_root: str | Path, dag_id: str, run_id: str,
             timeout: float = RUN_LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive lock of one DAG run's training (``<registry>/.run-locks/<hash>.lock``, flock).

    Held from "has this run registered a version?" to "registered": a second attempt of the same
    task running at the same time (a zombie attempt still alive when the retry starts) waits,
    then finds and reuses the first attempt's version. The kernel releases the lock when its
    holder dies, so a killed attempt never blocks the retry.
    """
    import fcntl
    import hashlib
    import os
    import time

    from ml_lifecycle.storage import lock_folder

    # On an object-store registry the lock is local to this worker (object stores have no file
    # locks): two attempts on different workers could each register a version (one gets
    # promoted: the promotion is a compare-and-swap), which Airflow's zombie detection makes
    # rare.
    folder = lock_folder(registry_root, RUN_LOCK_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(f"{dag_id}/{run_id}".encode()).hexdigest()[:32]
    fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AirflowFailException(
                        f"another attempt of {dag_id} run {run_id} has held its training lock "
                        f"for more than {timeout:g} s; expected it to finish or die") from None
                if not waited:
                    print(f"another attempt of run {run_id} is training: waiting for it")
                    waited = True
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def train_candidate(config_file: str | Path, request: dict[str, Any],
                    context: Any, sensed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Quality gate -> split -> preprocess+train -> evaluate -> gate -> register (not promote).

    The training window is decided here, after the labels sensor (``sensed``: its XCom), so
    every label file that arrived by then is used; the card's ``data.window.pairs`` lists the
    batch and label files. A retry or re-run of the same DAG run returns the version that run
    already registered; two attempts running at once register one version (``run_lock``).
    """
    from ml_lifecycle.registry import open_registry
    from ml_lifecycle.train import run_training

    dag_id, run_id = _run_ids(context)
    with fail_on_core_errors():
        cfg = load_lifecycle_config(config_file, request["overrides"])
        with run_lock(cfg.registry.root, dag_id, run_id):
            registry = open_registry(cfg.registry.root)
            card = _version_of_run(registry, dag_id, run_id)
            if card is not None:
                print(f"run {run_id} already registered version {card['version']}: reusing it")
                return _summary({
                    "version": card["version"], "gate": card["gate"],
                    "primary_metric": card["primary_metric"], "metrics": card["metrics"],
                    "champion_before": card.get("champion_at_training"),
                    "rows_per_split": card["data"].get("rows_per_split"),
                }, reused=True)
            window = window_for(cfg, request, sensed)
            trigger = {**request["trigger"], "window_batch_days": window["days"]}
            print(f"training window as of {window['as_of']}: original="
                  f"{window['include_original']}, {len(window['pairs'])} labelled batch(es) "
                  f"{window['days']}")
            result = run_training(cfg, reason=request["reason"], trigger=trigger,
                                  window={"include_original": window["include_original"],
                                          "pairs": window["pairs"]},
                                  promote=False, actor=f"airflow:{dag_id}")
    summary = _summary(result, reused=False)
    print(f"registered v{summary['version']}: {summary['primary_metric']}={summary['metric']} "
          f"gate={'PASSED' if summary['gate_passed'] else 'REJECTED'} "
          f"{summary['gate_reasons']}")
    return summary


def promote_candidate(config_file: str | Path, request: dict[str, Any], result: dict[str, Any],
                      context: Any, asset: Any = None,
                      approval: dict[str, Any] | None = None) -> dict[str, Any]:
    """Promote the candidate with a compare-and-swap on the champion it was gated against.

    ``approval`` (approval mode): the answer of the approval task; the approver becomes the
    actor of the promotion and their comment part of its reason in the history.
    """
    from ml_lifecycle.registry import open_registry

    dag_id, _ = _run_ids(context)
    version = int(result["version"])
    reason, actor = request["reason"], f"airflow:{dag_id}"
    if approval:
        actor = f"approved by {approval.get('by')} (airflow:{dag_id})"
        comment = approval.get("comment")
        reason = f"{reason}; approved by {approval.get('by')}" + (f": {comment}" if comment
                                                                  else "")
    with fail_on_core_errors():
        cfg = load_lifecycle_config(config_file, request["overrides"])
        registry = open_registry(cfg.registry.root)
        if registry.champion() == version:
            print(f"v{version} already is the champion (re-run): nothing to do")
        else:
            registry.promote(version, reason=reason, actor=actor,
                             expected_champion=result.get("champion_before"))
        from ml_lifecycle.mlflow_export import sync_champion

        alias = sync_champion(cfg, registry)  # MLflow's champion alias; never raises
    if alias and alias.get("status") == "failed":
        print(f"WARNING {alias['warning']}: {alias['error']}")
    outcome = {"promoted": version, "previous": result.get("champion_before"),
               "reason": reason, "approval": approval, "mlflow": alias}
    if asset is not None:
        context["outlet_events"][asset].extra = {**outcome, "metric": result.get("metric")}
    print(f"promoted v{version} (was {result.get('champion_before')})")
    return outcome


def not_approved(result: dict[str, Any], approval: dict[str, Any] | None) -> dict[str, Any]:
    """Approval mode: the candidate passed the gate but was rejected, or nobody answered in
    time. It stays registered; the champion is unchanged."""
    approval = approval or {"by": None, "comment": "", "timed_out": True}
    why = ("no answer before the approval timeout" if approval.get("timed_out")
           else f"rejected by {approval.get('by')}"
           + (f": {approval['comment']}" if approval.get("comment") else ""))
    print(f"v{result['version']} passed the gate but was not approved ({why}); champion stays "
          f"v{result.get('champion_before')}")
    return {"not_approved": result["version"], "champion": result.get("champion_before"),
            "why": why, "approval": approval}


def reject_candidate(result: dict[str, Any]) -> dict[str, Any]:
    """The gate rejected the candidate: it stays registered, the champion is unchanged."""
    print(f"v{result['version']} rejected by the gate; champion stays "
          f"v{result.get('champion_before')}: {result['gate_reasons']}")
    return {"rejected": result["version"], "champion": result.get("champion_before"),
            "reasons": result["gate_reasons"]}


class RetrainFinished:
    """Task callback: tell the retrain policy that a drift-triggered retrain ended.

    Clears the policy's pending trigger (``drift.policy.mark_retrain_finished``) so the next
    breach may trigger again. Only for runs the drift check triggered (``triggered_by`` set);
    the outcome is given (``skipped``, ``failed``) or read from the candidate's XCom.
    """

    def __init__(self, config_file: str | Path, outcome: str) -> None:
        self.config_file = str(config_file)
        self.outcome = outcome

    def __call__(self, context: Any) -> None:
        mark_finished(self.config_file, context, self.outcome, None)


def mark_finished(config_file: str | Path, context: Any, outcome: str,
                  version: int | None) -> None:
    from ml_lifecycle.drift.policy import mark_retrain_finished

    params = context.get("params") or {}
    if not params.get("triggered_by"):
        return
    try:
        cfg = load_lifecycle_config(config_file)
        mark_retrain_finished(cfg.registry.root, outcome=outcome, version=version,
                              trigger_id=params.get("trigger_id"))
        print(f"retrain policy: pending trigger marked finished ({outcome})")
    except Exception as exc:  # bookkeeping must not fail the run; the trigger expires anyway
        print(f"retrain policy: could not mark the trigger finished: {exc}")


def notify_training_outcome(config_file: str | Path, context: Any, *, train_task_id: str,
                            promote_task_id: str, reject_task_id: str,
                            not_approved_task_id: str | None = None) -> dict[str, Any]:
    """Send ``model_promoted``, ``gate_rejected`` or ``approval_rejected`` with the candidate's
    summary."""
    ti = context["ti"]
    result = ti.xcom_pull(task_ids=train_task_id) or {}
    promoted = ti.xcom_pull(task_ids=promote_task_id)
    rejected = ti.xcom_pull(task_ids=reject_task_id)
    refused = ti.xcom_pull(task_ids=not_approved_task_id) if not_approved_task_id else None
    params = context["params"]
    if refused and not promoted:
        LifecycleNotifier(KIND_APPROVAL_REJECTED, config_file=config_file,
                          message=(f"v{result.get('version')} passed the gate but was not "
                                   f"promoted: {refused.get('why')}; champion stays "
                                   f"v{result.get('champion_before')}"),
                          details={"candidate": result, "outcome": refused})(context)
        mark_finished(config_file, context, "not approved", result.get("version"))
        return {"alert": KIND_APPROVAL_REJECTED, "version": result.get("version")}
    if promoted:
        kind = KIND_MODEL_PROMOTED
        message = (f"v{result.get('version')} promoted (was v{result.get('champion_before')}); "
                   f"{result.get('primary_metric')}={result.get('metric')}; reason: "
                   f"{params.get('reason')}")
    else:
        kind = KIND_GATE_REJECTED
        message = (f"v{result.get('version')} rejected, champion stays "
                   f"v{result.get('champion_before')}: "
                   + "; ".join(result.get("gate_reasons") or []))
    LifecycleNotifier(kind, config_file=config_file, message=message,
                      details={"candidate": result, "outcome": promoted or rejected})(context)
    _tracking_alert(config_file, context, result, promoted)
    mark_finished(config_file, context, "promoted" if promoted else "rejected",
                  result.get("version"))
    return {"alert": kind, "version": result.get("version")}


def _tracking_alert(config_file: str | Path, context: Any, result: dict[str, Any],
                    promoted: dict[str, Any] | None) -> None:
    """``tracking_failed``: MLflow could not be reached or refused a step; the lifecycle went on
    (the package's registry is the source of truth), the MLflow copy is behind."""
    warnings = list(result.get("mlflow_warnings") or [])
    alias = (promoted or {}).get("mlflow") or {}
    if alias.get("status") == "failed":
        warnings.append(alias["warning"])
    if warnings:
        LifecycleNotifier(KIND_TRACKING_FAILED, config_file=config_file,
                          message=f"v{result.get('version')}: " + "; ".join(warnings),
                          details={"candidate": result, "alias": alias})(context)


# --------------------------------------------------------------------------- scoring


def score_day(config_file: str | Path, context: Any, asset: Any = None) -> dict[str, Any]:
    """Score the run's day with the champion; write ``<predictions>/<day>.csv``."""
    from ml_lifecycle.lifecycle import score_batch
    from ml_lifecycle.registry import open_registry
    from ml_lifecycle.shadow import score_shadow

    with fail_on_core_errors():
        cfg = load_lifecycle_config(config_file)
        registry = open_registry(cfg.registry.root)
        result = score_batch(cfg, run_day(context), registry=registry)
        # the champion the last promotion replaced scores the same batch (shadow period)
        shadow = score_shadow(cfg, result["day"], registry)
    if shadow is not None:
        result["shadow"] = {k: shadow[k] for k in ("path", "model_version", "pair")}
        print(f"shadow: v{shadow['model_version']} (replaced by v{shadow['pair'][0]}) scored "
              f"the same batch -> {shadow['path']}")
    if asset is not None:
        context["outlet_events"][asset].extra = {
            k: result[k] for k in ("day", "path", "rows", "model_version")}
    print(f"scored {result['rows']} rows of {result['day']} with v{result['model_version']} "
          f"-> {result['path']}")
    return result


# --------------------------------------------------------------------------- drift check


def retrain_run_id(day: str) -> str:
    """Run id of the retrain triggered by the drift check of ``day`` (one per day at most)."""
    return f"drift_retrain__{day}"


def check_drift(config_file: str | Path, context: Any, asset: Any = None) -> dict[str, Any]:
    """Run the drift check for the run's day; decide the retrain; alert once per episode.

    The decision time is the end of the checked day (data clock), so re-running a day, or
    replaying history, gives the same decision as the day's original run; the registry is
    read through ``DataClockRegistry`` for the same reason. Concept drift is judged on the
    past days the champion scored whose labels have arrived by the day.

    Alerts follow the policy's episodes (``policy.alert_min_severity``,
    ``policy.alert_reminder_days``): a ``drift_breach`` when an episode opens, escalates or is
    due a reminder, a ``drift_resolved`` when it closes, nothing on the quiet days between.

    Returns (XCom): ``{"day", "verdict", "severity", "retrain", "breach", "alert", "reasons",
    "estimated", "report_json", "report_html", "champion", "retrain_run_id",
    "retrain_conf"}``.
    """
    from ml_lifecycle.drift.check import run_drift_check
    from ml_lifecycle.lifecycle import DataClockRegistry, batch_path, concept_pairs, day_end
    from ml_lifecycle.registry import open_registry

    day = run_day(context)
    dag_id, run_id = _run_ids(context)
    from ml_lifecycle.shadow import maybe_rollback

    with fail_on_core_errors():
        cfg = load_lifecycle_config(config_file)
        registry = open_registry(cfg.registry.root)
        # live evidence first: a new champion worse than the one it replaced is rolled back
        # (policy.auto_rollback), so the day is then checked against the restored champion
        rollback = maybe_rollback(cfg, day, registry, actor=f"auto-rollback:{dag_id}/{run_id}")
        labels = concept_pairs(cfg, day, champion=registry.champion())
        result = run_drift_check(cfg, batch_path=str(batch_path(cfg, day)), day=day,
                                 labels=labels or None, report_dir=cfg.lifecycle.reports,
                                 registry=DataClockRegistry(registry), now=day_end(day))
    summary = summarize_drift(result, day)
    summary["shadow"] = ({k: v for k, v in rollback.items() if k != "event"}
                         if rollback is not None else None)
    if rollback and rollback.get("rolled_back"):
        new, previous = rollback["pair"]
        LifecycleNotifier(
            KIND_ROLLED_BACK, config_file=config_file,
            message=(f"{day}: v{new} rolled back to v{previous}: {rollback['why']}"),
            details={"shadow": summary["shadow"], "event": rollback.get("event")},
        )(context)
    summary["retrain_run_id"] = retrain_run_id(day)
    summary["retrain_conf"] = {
        "reason": retrain_reason(day, summary["severity"], result.get("reasons") or []),
        "drift_report": summary["report_json"],
        "as_of_day": day,
        "triggered_by": f"{dag_id}/{run_id}",
        "trigger_id": (result.get("decision") or {}).get("trigger_id"),
    }
    if asset is not None:
        context["outlet_events"][asset].extra = {
            k: summary[k] for k in ("day", "verdict", "severity", "retrain", "reasons",
                                    "report_json", "champion")}
    print(f"drift check {day}: verdict={summary['verdict']} severity={summary['severity']} "
          f"retrain={summary['retrain']} champion=v{summary['champion']} "
          f"labelled days={len(labels)} reasons={summary['reasons']} "
          f"report={summary['report_html']}")
    details = {k: v for k, v in summary.items() if k != "retrain_conf"}
    if summary["breach"]:
        LifecycleNotifier(
            KIND_DRIFT_BREACH, config_file=config_file,
            message=(f"{day}: {summary['alert']} - {summary['verdict']} (severity "
                     f"{summary['severity']}); retrain "
                     f"{'triggered' if summary['retrain'] else 'not triggered'}: "
                     + "; ".join(summary["reasons"][:TOP_REASONS])),
            details=details,
        )(context)
    elif summary["alert"] == "resolved":
        LifecycleNotifier(
            KIND_DRIFT_RESOLVED, config_file=config_file,
            message=f"{day}: the drift episode is resolved (severity {summary['severity']})",
            details=details,
        )(context)
    return summary


SEVERITY_ORDER = ("critical", "high", "medium", "low")
#: alert-episode actions that send a ``drift_breach`` alert (``resolved`` sends
#: ``drift_resolved``; quiet days send nothing)
ALERTING_ACTIONS = ("open", "escalated", "reminder")
REASON_MAX_CHARS = 280  # the training form's reason holds at most 300 characters


def retrain_reason(day: str, severity: str, reasons: list[Any]) -> str:
    """One line for the model card: the day, its severity and its most severe reasons."""

    def rank(reason: str) -> int:
        for position, level in enumerate(SEVERITY_ORDER):
            if reason.startswith(f"[{level}]"):
                return position
        return len(SEVERITY_ORDER)

    ranked = sorted((str(r) for r in reasons if not str(r).startswith("blocked")), key=rank)
    text = f"drift check {day} ({severity}): " + ("; ".join(ranked[:2]) or "retrain policy")
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 1] + "…"


class TriggerFailed:
    """Task callback of ``trigger_retrain``: the retrain could not be started, so the policy's
    pending trigger is cleared (otherwise it would block retrains until it expires)."""

    def __init__(self, config_file: str | Path, check_task_id: str) -> None:
        self.config_file = str(config_file)
        self.check_task_id = check_task_id

    def __call__(self, context: Any) -> None:
        from ml_lifecycle.drift.policy import mark_retrain_finished

        try:
            check = context["ti"].xcom_pull(task_ids=self.check_task_id) or {}
            cfg = load_lifecycle_config(self.config_file)
            mark_retrain_finished(cfg.registry.root,
                                  outcome=f"not started: {context.get('exception')}",
                                  trigger_id=(check.get("retrain_conf") or {}).get("trigger_id"))
            print("retrain policy: pending trigger cleared (the retrain could not start)")
        except Exception as exc:  # bookkeeping must not hide the failure itself
            print(f"retrain policy: could not clear the pending trigger: {exc}")


def summarize_drift(result: dict[str, Any], day: str) -> dict[str, Any]:
    """The small part of a drift-check result that goes to XCom, alerts and the asset event."""
    reports = result.get("report_paths") or {}
    decision = result.get("decision") or {}
    data = result.get("data_drift") or {}
    verdict = str(result.get("verdict") or "unknown")
    retrain = bool(result.get("retrain"))
    alert = (result.get("alert") or {}).get("action")
    estimated = result.get("estimated_performance") or {}
    return {
        "day": day,
        "verdict": verdict,
        "severity": str(result.get("severity") or "none"),
        "retrain": retrain,
        "alert": alert,
        "breach": alert in ALERTING_ACTIONS,
        "estimated": {k: estimated.get(k) for k in (
            "metric", "value", "low", "high", "reference_value", "status", "reliability")},
        "blocked_by": list(decision.get("blocked_by") or []),
        "reasons": [str(r) for r in result.get("reasons") or []][:TOP_REASONS],
        "drifted_features": list(data.get("drifted_features") or [])[:20],
        "report_json": reports.get("json") or reports.get("store_json"),
        "report_html": reports.get("html") or reports.get("store_html"),
        "champion": (result.get("model") or {}).get("version"),
    }
