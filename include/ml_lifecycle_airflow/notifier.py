"""Alerts through Airflow's notifier mechanism: a log line and a JSON file, email/Slack if set.

``LifecycleNotifier`` is a ``BaseNotifier``: use an instance as a task callback
(``on_failure_callback=LifecycleNotifier(KIND_TASK_FAILURE, ...)``) or call it with the task
context from inside a task (``LifecycleNotifier(KIND_DRIFT_BREACH, details=...)(context)``).

Every alert is written to ``<lifecycle.alerts>/<kind>__<dag_id>__<run_id>__<task_id>.json``
(atomically; a rerun of the same task overwrites its own alert). Optional channels, configured by
environment variables of the Airflow components:

* ``ML_LIFECYCLE_ALERT_EMAIL``: comma-separated addresses; sent with the SMTP provider's
  ``SmtpNotifier`` through the ``smtp_default`` connection (or ``ML_LIFECYCLE_SMTP_CONN_ID``);
* ``ML_LIFECYCLE_SLACK_CONN_ID``: the id of an Airflow Connection of type ``slackwebhook``
  (the webhook URL, or its token, as the password: a secret kept by Airflow's connections or
  secrets backend and masked in logs); sent with the Slack provider's ``SlackWebhookHook``.
  ``ML_LIFECYCLE_SLACK_WEBHOOK_URL`` (a URL in the environment) is no longer read: its presence
  is logged as an error so the alert is not lost silently.

A channel that fails is logged; it never fails the task or hides the JSON alert.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

KIND_DRIFT_BREACH = "drift_breach"
KIND_GATE_REJECTED = "gate_rejected"
KIND_TASK_FAILURE = "task_failure"
KIND_MODEL_PROMOTED = "model_promoted"
KIND_RETRAIN_SKIPPED = "retrain_skipped"
KIND_DRIFT_RESOLVED = "drift_resolved"
KIND_APPROVAL_REJECTED = "approval_rejected"
KIND_ROLLED_BACK = "model_rolled_back"
KIND_TRACKING_FAILED = "tracking_failed"

#: kind -> (default severity, title)
KINDS: dict[str, tuple[str, str]] = {
    KIND_DRIFT_BREACH: ("warning", "Drift breach"),
    KIND_GATE_REJECTED: ("warning", "Candidate rejected by the promotion gate"),
    KIND_TASK_FAILURE: ("error", "Task failed"),
    KIND_MODEL_PROMOTED: ("info", "New champion promoted"),
    KIND_RETRAIN_SKIPPED: ("warning", "Retrain skipped: not enough new labels"),
    KIND_DRIFT_RESOLVED: ("info", "Drift episode resolved: the model is back within tolerance"),
    KIND_APPROVAL_REJECTED: ("warning", "Candidate not approved: rejected or no answer in time"),
    KIND_ROLLED_BACK: ("error", "Champion rolled back: worse than the one it replaced on live "
                                "labels"),
    KIND_TRACKING_FAILED: ("warning", "MLflow export failed: the lifecycle went on without it"),
}
EMAIL_ENV = "ML_LIFECYCLE_ALERT_EMAIL"
SMTP_CONN_ENV = "ML_LIFECYCLE_SMTP_CONN_ID"
SLACK_CONN_ENV = "ML_LIFECYCLE_SLACK_CONN_ID"
OLD_SLACK_URL_ENV = "ML_LIFECYCLE_SLACK_WEBHOOK_URL"  # no longer read: a secret in the env
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-")[:120] or "none"


class LifecycleNotifier(BaseNotifier):
    """Log an alert, write it as JSON under ``lifecycle.alerts``, and send it where configured.

    Args:
        kind: one of ``KINDS`` (``drift_breach``, ``gate_rejected``, ``task_failure``,
            ``model_promoted``, ``retrain_skipped``).
        config_file: used to find the config (see ``settings``).
        message: one line for humans (templated with the task context).
        details: small JSON-able dict stored in the alert.
        details_task_id: also store the XCom return value of this task under ``details``.
        severity: overrides the kind's default severity.
    """

    template_fields = ("message",)

    def __init__(
        self,
        kind: str,
        *,
        config_file: str | Path,
        message: str = "",
        details: dict[str, Any] | None = None,
        details_task_id: str | None = None,
        severity: str | None = None,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown alert kind '{kind}'; expected one of {sorted(KINDS)}")
        self.kind = kind
        self.config_file = str(config_file)
        self.message = message
        self.details = details or {}
        self.details_task_id = details_task_id
        self.severity = severity or KINDS[kind][0]

    # ------------------------------------------------------------------ building the alert

    def build_alert(self, context: Any) -> dict[str, Any]:
        """The alert record (JSON-able) for a task context."""
        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        logical = context.get("logical_date")
        details = dict(self.details)
        if self.details_task_id and ti is not None:
            try:
                pulled = ti.xcom_pull(task_ids=self.details_task_id)
            except Exception as exc:  # the alert must go out even if XCom is unavailable
                pulled = {"error": f"could not read XCom of {self.details_task_id}: {exc}"}
            if pulled is not None:
                details[self.details_task_id] = pulled
        exception = context.get("exception")
        alert: dict[str, Any] = {
            "kind": self.kind,
            "severity": self.severity,
            "title": KINDS[self.kind][1],
            "message": self.message or self._default_message(context, exception),
            "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
            "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
            "task_id": getattr(ti, "task_id", None),
            "try_number": getattr(ti, "try_number", None),
            "logical_date": logical.isoformat() if logical is not None else None,
            "params": dict(context.get("params") or {}),
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "details": details,
        }
        if exception is not None:
            alert["exception"] = f"{type(exception).__name__}: {exception}"
        try:
            alert["log_url"] = ti.log_url if ti is not None else None
        except Exception:  # log_url needs the api-server base URL; optional
            alert["log_url"] = None
        return alert

    def _default_message(self, context: Any, exception: BaseException | None) -> str:
        ti = context.get("ti")
        where = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}"
        if exception is not None:
            return f"{where} failed: {exception}"
        return f"{KINDS[self.kind][1]} ({where})"

    # ------------------------------------------------------------------ delivery

    def alerts_dir(self) -> Any:
        """``lifecycle.alerts`` of the config; if the config cannot be loaded (it may be why a
        task failed), ``var/<config file stem>/alerts`` under the config's base folder."""
        from .settings import base_dir, load_lifecycle_config

        try:
            from ml_lifecycle.storage import as_path

            return as_path(load_lifecycle_config(self.config_file).lifecycle.alerts)
        except Exception as exc:
            fallback = base_dir(self.config_file) / "var" / Path(self.config_file).stem / "alerts"
            log.warning("alerts: config unavailable (%s); writing to %s", exc, fallback)
            return fallback

    def alert_path(self, alert: dict[str, Any]) -> Any:
        name = "__".join(_safe(str(alert.get(k) or "none"))
                         for k in ("kind", "dag_id", "run_id", "task_id"))
        return self.alerts_dir() / f"{name}.json"

    def notify(self, context: Any) -> None:
        from ml_lifecycle.io import atomic_write_json

        alert = self.build_alert(context)
        path = self.alert_path(alert)
        alert["path"] = str(path)
        try:
            atomic_write_json(path, alert)
        except Exception as exc:  # e.g. the object store is down: still send email/Slack
            self.log.error("alerts: could not store %s (%s: %s)", path, type(exc).__name__, exc)
            alert["path"] = None
        level = {"info": logging.INFO, "warning": logging.WARNING}.get(self.severity,
                                                                       logging.ERROR)
        self.log.log(level, "ALERT %s [%s] %s -> %s", alert["kind"], alert["severity"],
                     alert["message"], path)
        self._send_email(alert, context)
        self._send_slack(alert)

    def _send_email(self, alert: dict[str, Any], context: Any) -> None:
        to = [a.strip() for a in os.environ.get(EMAIL_ENV, "").split(",") if a.strip()]
        if not to:
            return
        try:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            body = "<pre>" + html.escape(json.dumps(alert, indent=2, default=str)) + "</pre>"
            SmtpNotifier(
                to=to,
                subject=f"[ml-lifecycle] {alert['title']}: {alert['dag_id']}",
                html_content=body,
                smtp_conn_id=os.environ.get(SMTP_CONN_ENV) or None,
            ).notify(context)
        except Exception as exc:
            self.log.error("alert email to %s failed: %s", to, exc)

    def _send_slack(self, alert: dict[str, Any]) -> None:
        conn_id = os.environ.get(SLACK_CONN_ENV, "").strip()
        if not conn_id:
            if os.environ.get(OLD_SLACK_URL_ENV, "").strip():
                self.log.error("alert not sent to Slack: %s is no longer read (a secret in the "
                               "environment); create a 'slackwebhook' Connection with the URL "
                               "as its password and set %s to its id", OLD_SLACK_URL_ENV,
                               SLACK_CONN_ENV)
            return
        text = (f"*{alert['title']}* ({alert['severity']}) {alert['dag_id']} / "
                f"{alert['task_id']}\n{alert['message']}")
        try:
            from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

            SlackWebhookHook(slack_webhook_conn_id=conn_id).send(text=text)
        except Exception as exc:
            self.log.error("alert to Slack (connection %s) failed: %s", conn_id, exc)
