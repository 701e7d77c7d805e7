"""The retrain policy: performance, drift, quality and registry state -> retrain or not.

:func:`decide_retrain` is one pure function. It first grades the evidence into a severity. With
``policy.trigger: performance`` (the default) the model's *performance* drives it and drift
explains it:

==========  ================================================================================
none        nothing moved (or the batch is too small to judge)
low         data or prediction drift without any estimated or realized drop beyond the
            tolerance (drift explains, it does not retrain); quality warnings
medium      data drift in important features while the label-free estimate is unreliable
            (part of the batch outside the training support), only with
            ``policy.escalate_unreliable``
high        the label-free estimate of the watched metric dropped beyond the tolerance, or the
            realized metric on arrived labels did (concept drift), or the arrived labels show
            the model miscalibrated beyond ``drift.calibration_tolerance`` (observed /
            expected positives; its probabilities, threshold and estimate are off)
critical    a realized drop >= ``policy.critical_drop_factor`` x the tolerance; a critical
            data-quality finding (alerts, and blocks the retrain: retraining would not fix the
            data)
==========  ================================================================================

``policy.trigger: drift`` keeps the earlier rule (data drift in important features or prediction
drift is ``medium``, both or heavily weighted data drift ``high``), so the backtest can compare
the two.

A retrain is recommended from ``policy.min_severity`` on (critical quality never asks for one),
unless blocked by, in this order: a critical data-quality finding, a retrain already pending
(never two triggers), the cooldown after the last retrain (unless the performance drop is
critical), or the retrain budget of the period. A re-run of the check for a day that already
triggered returns the same trigger (``rerun``), so retries neither lose nor double a trigger.

**Alert episodes** (:func:`alert_episode`): a check at or above ``policy.alert_min_severity``
opens an episode and alerts once; later days of the same episode stay quiet unless the severity
rises (``escalated``) or ``policy.alert_reminder_days`` passed since the last alert
(``reminder``); the first judged day below that severity closes it (``resolved``). A re-run of a
day repeats that day's action.

The policy state (pending trigger, trigger history, open episode) lives in
``<registry.root>/monitoring/policy_state.json``; :func:`record_decision` updates it (pure) and
:func:`mark_retrain_finished` clears the pending trigger when the retrain run ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, read_json
from .settings import SEVERITIES, PolicyConfig

STATE_FILE = "policy_state.json"
STATE_VERSION = 1
HISTORY_DAYS = 400  # triggers older than this are dropped from the state file


def severity_rank(severity: str) -> int:
    """Position of a severity in none < low < medium < high < critical."""
    return SEVERITIES.index(severity)


def _max_severity(a: str, b: str) -> str:
    return a if severity_rank(a) >= severity_rank(b) else b


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def empty_state() -> dict[str, Any]:
    """A fresh policy state."""
    return {"schema_version": STATE_VERSION, "pending": None, "triggers": [], "finished": [],
            "episode": None, "episodes": []}


def assess_severity(
    data_drift: dict[str, Any] | None,
    prediction_drift: dict[str, Any] | None,
    performance: dict[str, Any] | None,
    quality: dict[str, Any] | None,
    cfg: PolicyConfig,
    *,
    estimated: dict[str, Any] | None = None,
) -> tuple[str, list[str]]:
    """Grade the evidence of one check (the table in the module docstring).

    Args:
        data_drift: :func:`~.decision.decide_dataset` result.
        prediction_drift: :func:`~.decision.prediction_drift` result.
        performance: :func:`~.concept.concept_drift` result (the realized metric).
        quality: :func:`~.batch_quality.batch_quality` result.
        cfg: policy settings.
        estimated: :func:`~.estimate.estimated_drift` result (the label-free estimate).

    Returns:
        (severity, reasons), one reason per signal that contributed.
    """
    retrain_level, quality_level, reasons = grade(
        data_drift, prediction_drift, performance, quality, cfg, estimated=estimated)
    return _max_severity(retrain_level, quality_level), reasons


def grade(
    data_drift: dict[str, Any] | None,
    prediction_drift: dict[str, Any] | None,
    performance: dict[str, Any] | None,
    quality: dict[str, Any] | None,
    cfg: PolicyConfig,
    *,
    estimated: dict[str, Any] | None = None,
) -> tuple[str, str, list[str]]:
    """:func:`assess_severity` split in two: (severity of the signals that can ask for a
    retrain, severity of the critical data quality, which alerts but never asks for one,
    reasons)."""
    by_performance = cfg.trigger == "performance"
    est, perf, data = estimated or {}, performance or {}, data_drift or {}
    calibration = perf.get("calibration") or {}
    harmed = bool(est.get("flagged") or perf.get("flagged") or calibration.get("flagged"))
    signals, notes = _grade_data_drift(data, est, cfg, harmed=harmed)
    pred = prediction_drift or {}
    if pred.get("drifted"):
        level = "low"
        if not by_performance:
            level = "medium" if cfg.retrain_on_prediction_drift else "low"
            if any(kind == "important" for kind, _, _ in signals):
                level = "high"
        signals.append(("prediction", level, f"prediction drift: {pred.get('reason', '')}"))
    if by_performance and est.get("flagged"):
        signals.append(("estimate", "high", f"estimated performance drop "
                        f"({est.get('method', 'estimate')}): {est.get('reason', '')}"))
    if by_performance and calibration.get("flagged"):
        signals.append(("calibration", "high",
                        f"realized miscalibration: {calibration.get('reason', '')}"))
    if perf.get("flagged"):
        tol, drop = perf.get("tolerance") or 0.0, perf.get("drop") or 0.0
        level = "critical" if tol > 0 and drop >= cfg.critical_drop_factor * tol else "high"
        signals.append(("realized", level,
                        f"realized performance drop (concept drift): {perf.get('reason', '')}"))
    q = quality or {}
    if q.get("severity") == "warning":
        signals.append(("quality", "low", f"data quality: {q.get('n_warnings', 0)} warning(s)"))
    severity, reasons = "none", list(notes)  # the data-drift note first, as its signal would be
    for _, level, reason in signals:
        severity = _max_severity(severity, level)
        reasons.append(f"[{level}] {reason}")
    quality_level = "none"
    if q.get("severity") == "critical":
        quality_level = "critical"
        shown = "; ".join(i.get("message", "") for i in q.get("issues", [])
                          if i.get("severity") == "critical")[:300]
        reasons.append(f"[critical] data quality: {q.get('n_critical', 0)} critical issue(s)"
                       + (f": {shown}" if shown else ""))
    return severity, quality_level, reasons


def _grade_data_drift(data: dict[str, Any], est: dict[str, Any], cfg: PolicyConfig, *,
                      harmed: bool) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The data-drift signal: ``([(kind, level, reason)], notes)``; ``kind`` is ``important``
    when the drifted features matter to the model (the drift trigger escalates prediction
    drift on top of it). Under the performance trigger drift explains (``low``), unless the
    estimate is unreliable and ``policy.escalate_unreliable`` is on (``medium``)."""
    if data.get("verdict") == "insufficient_data":
        return [], ["[none] " + "; ".join(data.get("reasons", ["batch too small to judge"]))]
    if data.get("verdict") != "drift":
        return [], []
    weighted = data.get("weighted_drift")
    names = ", ".join(data.get("drifted_features", [])[:8])
    if not (data.get("drift_by_importance") or weighted is None):
        return [("minor", "low", f"data drift in {data.get('drifted_share', 0):.0%} of the "
                 f"features ({names}), but they carry only {weighted:.0%} of the importance")], []
    if weighted is None:
        level, what = "medium", (f"data drift in {data.get('drifted_share', 0):.0%} of the "
                                 f"features ({names}); no importances to weigh them")
    else:
        level = "high" if weighted >= cfg.high_weighted_drift else "medium"
        what = f"data drift in features carrying {weighted:.0%} of the model's importance ({names})"
    if cfg.trigger != "performance":
        return [("important", level, what)], []
    unreliable = est.get("status") not in (None, "unavailable") and not est.get("reliable", True)
    if unreliable and cfg.escalate_unreliable:
        return [("important", "medium", f"{what}, and the label-free estimate is unreliable "
                 f"(reliability {est.get('reliability', 0):.0%} < {cfg.min_reliability:.0%}; "
                 "policy.escalate_unreliable)")], []
    why = "explains the performance drop" if harmed else (
        "no estimated or realized performance drop"
        + (" (but the estimate is unreliable: watch the realized metric)" if unreliable else ""))
    return [("important", "low", f"{what}; {why}")], []


def _latest_model_time(registry_state: dict[str, Any]) -> datetime | None:
    """When the newest model version (champion or not) was created."""
    times = [_parse_time(registry_state.get(k))
             for k in ("latest_created_at", "champion_created_at")]
    return max([t for t in times if t is not None], default=None)


def _active_pending(state: dict[str, Any], registry_state: dict[str, Any], now: datetime,
                    cfg: PolicyConfig) -> tuple[dict[str, Any] | None, str | None]:
    """The pending trigger if it still blocks, else (None, why it no longer blocks)."""
    pending = state.get("pending")
    if not pending:
        return None, None
    at = _parse_time(pending.get("at"))
    latest_at = _latest_model_time(registry_state)
    if at is not None and latest_at is not None and at < latest_at <= now:
        return None, "resolved: a model version was registered after the trigger"
    if at is not None and now - at >= timedelta(hours=cfg.pending_timeout_hours):
        return None, f"expired after {cfg.pending_timeout_hours:g} h"
    return pending, None


def _retrain_history(state: dict[str, Any], registry_state: dict[str, Any], now: datetime,
                     cfg: PolicyConfig) -> tuple[datetime | None, list[dict[str, Any]]]:
    """(the last retrain, by trigger or model version, as seen from ``now``; the triggers of
    the budget period). Events after ``now`` (a replay of past days) do not exist yet."""
    triggers = [t for t in state.get("triggers", []) if _parse_time(t.get("at"))]
    last_trigger = max((_parse_time(t["at"]) for t in triggers), default=None)
    last_trigger = last_trigger if last_trigger is not None and last_trigger <= now else None
    model_at = _latest_model_time(registry_state)
    last_retrain = max([t for t in (last_trigger, model_at) if t is not None and t <= now],
                       default=None)
    period_start = now - timedelta(days=cfg.budget_period_days)
    return last_retrain, [t for t in triggers if period_start < _parse_time(t["at"]) <= now]


def _guards(pending: dict[str, Any] | None, last_retrain: datetime | None, in_period: int, *,
            now: datetime, cfg: PolicyConfig, critical: bool, blocked: list[str],
            reasons: list[str], notes: list[str]) -> None:
    """The guards of a wanted retrain: a pending one, the cooldown and the budget (the last two
    overridden by a critical drop when the settings say so)."""
    if pending:
        blocked.append("pending")
        reasons.append(f"blocked: retrain '{pending.get('trigger_id')}' triggered at "
                       f"{pending.get('at')} is still pending")
    if last_retrain is not None and now - last_retrain < timedelta(days=cfg.cooldown_days):
        if critical and cfg.critical_overrides_cooldown:
            notes.append("cooldown overridden: severity is critical")
        else:
            blocked.append("cooldown")
            reasons.append(f"blocked: cooldown, last retrain at {last_retrain.isoformat()} "
                           f"is less than {cfg.cooldown_days:g} day(s) ago")
    if in_period >= cfg.budget_max_retrains:
        if critical and cfg.critical_overrides_budget:
            notes.append("budget overridden: severity is critical")
        else:
            blocked.append("budget")
            reasons.append(f"blocked: budget, {in_period} retrain(s) in the last "
                           f"{cfg.budget_period_days:g} days (max {cfg.budget_max_retrains})")


def decide_retrain(
    *,
    data_drift: dict[str, Any] | None,
    prediction_drift: dict[str, Any] | None,
    performance: dict[str, Any] | None,
    quality: dict[str, Any] | None,
    state: dict[str, Any] | None,
    registry_state: dict[str, Any] | None,
    now: datetime,
    cfg: PolicyConfig,
    day: str | None = None,
    estimated: dict[str, Any] | None = None,
    verdict: str | None = None,
) -> dict[str, Any]:
    """Decide whether to retrain and whether to alert (pure: no I/O, ``now`` is an argument).

    Args:
        data_drift: data drift result (dataset verdict, weighted drift ...).
        prediction_drift: prediction drift result.
        performance: concept drift result (the realized metric).
        quality: batch quality result.
        state: the policy state (:func:`load_policy_state`).
        registry_state: ``{"champion": int | None, "champion_created_at": iso | None,
            "latest_created_at": iso | None}`` (the newest version, promoted or not: a
            finished retrain releases the pending trigger and starts the cooldown).
        now: the decision time (timezone-aware).
        cfg: policy settings.
        day: the checked day (``YYYY-MM-DD``); a re-run for a day that already triggered
            returns that trigger again.
        estimated: the label-free performance estimate (:func:`~.estimate.estimated_drift`).
        verdict: the check's overall verdict (``insufficient_data`` keeps an alert episode
            open: nothing could be judged).

    Returns:
        ``{"retrain", "severity", "reasons", "blocked_by", "trigger_id", "rerun", "alert",
        ...}``; ``alert`` is :func:`alert_episode`'s ``{"action", "episode"}``.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    state = state or empty_state()
    registry_state = registry_state or {}
    retrain_level, quality_level, reasons = grade(
        data_drift, prediction_drift, performance, quality, cfg, estimated=estimated)
    severity = _max_severity(retrain_level, quality_level)
    # critical data quality alerts (severity) but never asks for a retrain by itself
    wants = retrain_level != "none" and \
        severity_rank(retrain_level) >= severity_rank(cfg.min_severity)
    guarded = _check_guards(state, registry_state, now=now, cfg=cfg, day=day, wants=wants,
                            severity=severity, retrain_level=retrain_level,
                            quality_level=quality_level, reasons=reasons)
    retrain = bool(guarded.wants and not guarded.blocked)
    if not reasons:
        reasons.append("no drift, no performance drop: no action")
    alert = alert_episode(_episode_of(state, day), severity=severity, verdict=verdict, day=day,
                          now=now, cfg=cfg, retrain=retrain, blocked_by=guarded.blocked)
    return _decision(cfg, guarded, alert=alert, retrain=retrain, severity=severity,
                     reasons=reasons, now=now)


@dataclass
class _Guarded:
    """What the guards made of one check's wish to retrain (see :func:`_check_guards`)."""

    wants: bool
    rerun: bool
    trigger_id: str
    blocked: list[str]
    notes: list[str]
    pending: dict[str, Any] | None
    last_retrain: datetime | None
    in_period: int


def _check_guards(state: dict[str, Any], registry_state: dict[str, Any], *, now: datetime,
                  cfg: PolicyConfig, day: str | None, wants: bool, severity: str,
                  retrain_level: str, quality_level: str, reasons: list[str]) -> _Guarded:
    """Step: a re-run, critical quality, a pending retrain, the cooldown and the budget (their
    reasons are appended to ``reasons``)."""
    critical = retrain_level == "critical"
    bad_quality = quality_level == "critical"
    blocked: list[str] = []
    notes: list[str] = []
    trigger_id = f"drift-{day}" if day else f"drift-{now:%Y%m%dT%H%M%S}"

    pending, pending_note = _active_pending(state, registry_state, now, cfg)
    if pending_note:
        notes.append(f"earlier pending retrain {pending_note}")
    last_retrain, in_period = _retrain_history(state, registry_state, now, cfg)

    rerun = bool(pending and day and pending.get("day") == day)
    if rerun:
        trigger_id = pending.get("trigger_id", trigger_id)
        reasons.append(f"this day already triggered retrain '{trigger_id}' (re-run of the check)")
        wants = True
    elif bad_quality and (cfg.block_on_critical_quality or not wants):
        # blocked whatever the other signals say (with block_on_critical_quality off, only
        # when nothing else asks for a retrain: quality alone never triggers one)
        blocked.append("quality")
        reasons.append("blocked: the batch has critical data-quality issues; fix the data "
                       "first, retraining on it would not help")
    elif wants:
        _guards(pending, last_retrain, len(in_period), now=now, cfg=cfg, critical=critical,
                blocked=blocked, reasons=reasons, notes=notes)
    elif severity != "none":
        reasons.append(f"severity {severity} is below policy.min_severity={cfg.min_severity}")
    return _Guarded(wants, rerun, trigger_id, blocked, notes, pending, last_retrain,
                    len(in_period))


def _episode_of(state: dict[str, Any], day: str | None) -> dict[str, Any] | None:
    """Step: the alert episode this check continues (the open one, or the re-run day's)."""
    episode = state.get("episode")
    closed = (state.get("episodes") or [])[-1:]
    if not episode and day and closed and closed[0].get("last_action_day") == day:
        episode = closed[0]  # a re-run of the day that resolved the last episode
    return episode


def _decision(cfg: PolicyConfig, guarded: _Guarded, *, alert: dict[str, Any], retrain: bool,
              severity: str, reasons: list[str], now: datetime) -> dict[str, Any]:
    """Step: the JSON-able decision of :func:`decide_retrain`."""
    return {
        "trigger": cfg.trigger,
        "alert": alert,
        "retrain": retrain,
        "severity": severity,
        "reasons": reasons,
        "notes": guarded.notes,
        "blocked_by": guarded.blocked,
        "trigger_id": guarded.trigger_id if retrain else None,
        "rerun": guarded.rerun,
        "evaluated_at": now.isoformat(),
        "last_retrain_at": guarded.last_retrain.isoformat() if guarded.last_retrain else None,
        "retrains_in_period": guarded.in_period,
        "pending": guarded.pending,
        "min_severity": cfg.min_severity,
    }


def alert_episode(
    episode: dict[str, Any] | None,
    *,
    severity: str,
    verdict: str | None,
    day: str | None,
    now: datetime,
    cfg: PolicyConfig,
    retrain: bool = False,
    blocked_by: list[str] | None = None,
) -> dict[str, Any]:
    """Whether this check alerts: one alert per episode, reminders, and a resolution (pure).

    An episode opens on the first check at or above ``policy.alert_min_severity`` (``open``).
    While it stays open, a check alerts again only when its severity is above every severity
    the episode alerted with (``escalated``) or when ``policy.alert_reminder_days`` have passed
    since the episode's last alert (``reminder``); otherwise it is quiet (``None``), whether the
    policy retrained, was blocked by the cooldown or the budget, or a retrain is pending. The
    first check below that severity that could judge the batch closes it (``resolved``); a
    check that could not judge (``insufficient_data``) keeps it open and quiet. A re-run of the
    day of the episode's last action repeats that action (a retried task does not lose it).

    Args:
        episode: the open episode from the policy state (None: no open episode).
        severity: this check's severity.
        verdict: this check's overall verdict.
        day: the checked day.
        now: the decision time.
        cfg: policy settings.
        retrain: whether this check triggers a retrain (recorded in the episode).
        blocked_by: what blocked the retrain (recorded).

    Returns:
        ``{"action": "open" | "reminder" | "escalated" | "resolved" | None, "episode": the
        episode after this check (closed when resolved) or None, "open": bool}``.
    """
    alerting = severity != "none" and \
        severity_rank(severity) >= severity_rank(cfg.alert_min_severity)
    stamp = now.isoformat()
    if episode and day is not None and episode.get("last_action_day") == day:
        # a re-run of the day of the last action: same action, same episode
        action = episode.get("last_action")
        return {"action": action, "episode": episode, "open": action != "resolved"}
    if not episode:
        if not alerting:
            return {"action": None, "episode": None, "open": False}
        opened = _opened_episode(severity=severity, day=day, now=now, retrain=retrain,
                                 blocked_by=blocked_by)
        return {"action": "open", "episode": opened, "open": True}
    current = dict(episode)
    current.update(last_seen_day=day, days=int(current.get("days", 1)) + 1)
    if not alerting:
        if verdict == "insufficient_data":
            return {"action": None, "episode": current, "open": True}
        current.update(closed_day=day, closed_at=stamp, severity=severity,
                       last_action="resolved", last_action_day=day)
        return {"action": "resolved", "episode": current, "open": False}
    action = _continue_episode(current, severity=severity, day=day, now=now, cfg=cfg,
                               retrain=retrain, blocked_by=blocked_by)
    return {"action": action, "episode": current, "open": True}


def _opened_episode(*, severity: str, day: str | None, now: datetime, retrain: bool,
                    blocked_by: list[str] | None) -> dict[str, Any]:
    """Step: a new alert episode, opened (and alerted) by this check."""
    stamp = now.isoformat()
    return {"episode_id": f"episode-{day or f'{now:%Y%m%dT%H%M%S}'}", "opened_day": day,
            "opened_at": stamp, "severity": severity, "max_severity": severity,
            "last_alert_at": stamp, "last_seen_day": day, "days": 1, "alerts": 1,
            "retrains": int(retrain), "blocked_by": list(blocked_by or []),
            "last_action": "open", "last_action_day": day}


def _continue_episode(current: dict[str, Any], *, severity: str, day: str | None,
                      now: datetime, cfg: PolicyConfig, retrain: bool,
                      blocked_by: list[str] | None) -> str | None:
    """Step: an alerting check of an open episode: updates ``current`` and returns the action
    (``escalated``, ``reminder`` or None: quiet)."""
    current["severity"] = severity
    current["retrains"] = int(current.get("retrains", 0)) + int(retrain)
    if blocked_by:
        current["blocked_by"] = sorted(set(current.get("blocked_by") or []) | set(blocked_by))
    action = None
    last = _parse_time(current.get("last_alert_at"))
    if severity_rank(severity) > severity_rank(current.get("max_severity", "none")):
        action = "escalated"
        current["max_severity"] = severity
    elif last is None or now - last >= timedelta(days=cfg.alert_reminder_days):
        action = "reminder"
    if action:
        current.update(last_alert_at=now.isoformat(), alerts=int(current.get("alerts", 0)) + 1,
                       last_action=action, last_action_day=day)
    return action


def record_decision(
    state: dict[str, Any] | None,
    decision: dict[str, Any],
    *,
    day: str | None,
    now: datetime,
    champion: int | None = None,
) -> dict[str, Any]:
    """The policy state after a decision (pure; the caller saves it).

    A new trigger becomes the pending one and enters the history; a pending trigger that no
    longer blocks (resolved or expired) is moved to ``finished``; the decision's alert episode
    becomes the open ``episode`` (a resolved one moves to ``episodes``).
    """
    new = empty_state()
    if state:
        new.update({k: state.get(k, new[k]) for k in new})
    new["triggers"] = list(new["triggers"])
    new["finished"] = list(new["finished"])[-200:]
    if new["pending"] and decision.get("pending") is None and not decision.get("rerun"):
        new["finished"].append({**new["pending"], "finished_at": now.isoformat(),
                                "outcome": "; ".join(decision.get("notes", [])) or "cleared"})
        new["pending"] = None
    alert = decision.get("alert")
    if isinstance(alert, dict) and "open" in alert:
        closing = not alert["open"] and alert.get("episode") and new.get("episode")
        new["episode"] = alert.get("episode") if alert["open"] else None
        if closing:
            new["episodes"] = [*list(new.get("episodes") or []), alert["episode"]][-100:]
    if decision.get("retrain") and not decision.get("rerun"):
        trigger = {"trigger_id": decision["trigger_id"], "day": day, "at": now.isoformat(),
                   "severity": decision["severity"], "reasons": decision["reasons"],
                   "champion": champion}
        new["pending"] = trigger
        new["triggers"].append(trigger)
    cutoff = now - timedelta(days=HISTORY_DAYS)
    new["triggers"] = [t for t in new["triggers"]
                       if (_parse_time(t.get("at")) or now) >= cutoff]
    return new


def state_path(root: str | Path) -> Any:
    """``<registry.root>/monitoring/policy_state.json``."""
    from ..storage import as_path

    return as_path(root) / "monitoring" / STATE_FILE


def load_policy_state(root: str | Path) -> dict[str, Any]:
    """Read the policy state (a fresh one when none is stored yet)."""
    from ..storage import is_file

    path = state_path(root)
    if not is_file(path):
        return empty_state()
    state = read_json(path)
    return state if isinstance(state, dict) else empty_state()


def save_policy_state(root: str | Path, state: dict[str, Any]) -> Any:
    """Write the policy state atomically (no concurrency control: see
    :func:`policy_transaction` for read-decide-write)."""
    return atomic_write_json(state_path(root), state)


class StateConflict(Exception):
    """Another writer changed the policy state between this attempt's read and its write."""


class _Attempt:
    """One read-decide-write attempt on the policy state (see :func:`policy_transaction`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = root
        self.conflict = False
        self.done = False
        self._etag: str | None = None
        self._lock: Any = None

    def __enter__(self) -> _Attempt:
        self._lock = monitoring_lock(self.root)
        self._lock.__enter__()
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        self._lock.__exit__(kind, exc, tb)
        if kind is None:
            self.done = True
            return False
        if isinstance(exc, StateConflict):
            self.conflict = True
            return True  # swallowed: the transaction runs the body again
        return False

    def load(self) -> dict[str, Any]:
        """The current state (remembering its version for :meth:`save`)."""
        import json

        from ..storage import read_versioned

        data, self._etag = read_versioned(state_path(self.root))
        if data is None:
            return empty_state()
        state = json.loads(data.decode("utf-8"))
        return state if isinstance(state, dict) else empty_state()

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` only if nobody wrote since :meth:`load` (:class:`StateConflict`
        otherwise, and the transaction retries; under the local lock that cannot happen)."""
        from ..io import dumps_json
        from ..storage import write_if_unchanged

        data = (dumps_json(state) + "\n").encode("utf-8")
        if not write_if_unchanged(state_path(self.root), data, self._etag):
            raise StateConflict(str(state_path(self.root)))


def policy_transaction(root: str | Path, attempts: int = 50) -> Iterator[_Attempt]:
    """Read-decide-write on the policy state, safe against concurrent writers::

        for attempt in policy_transaction(root):
            with attempt:
                state = attempt.load()
                ...  # decide
                attempt.save(new_state)

    On a local path or shared volume each attempt holds ``<root>/monitoring/.lock`` (flock), so
    the first attempt always succeeds. On an object store there is no lock: ``save`` is a
    conditional PUT on the ETag ``load`` saw (``If-Match``, or ``If-None-Match: *`` for a new
    state), and when another worker wrote in between the body runs again on the new state.

    Raises:
        StorageError: still conflicting after ``attempts`` tries.
    """
    import random
    import time

    from ..errors import StorageError

    for number in range(attempts):
        attempt = _Attempt(root)
        yield attempt
        if attempt.done or not attempt.conflict:
            return
        time.sleep(random.uniform(0.02, 0.2) * min(number + 1, 5))
    raise StorageError(f"{state_path(root)}: still changed by other writers after {attempts} "
                       "attempts; expected concurrent drift checks to settle")


def monitoring_lock(root: str | Path) -> Any:
    """Exclusive lock on the monitoring store (``flock`` on ``<root>/monitoring/.lock``).

    On an object store nothing is held (there are no locks): :func:`policy_transaction` then
    relies on conditional writes, which is why every read-decide-write goes through it.
    """
    from ..storage import exclusive, join

    return exclusive(join(root, "monitoring", ".lock"))


def mark_retrain_finished(
    root: str | Path,
    *,
    outcome: str,
    version: int | None = None,
    now: datetime | None = None,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """Clear the pending trigger when the retrain run ends (called by the retrain DAG).

    Args:
        root: the registry root.
        outcome: e.g. ``promoted``, ``rejected``, ``failed``.
        version: the version the retrain registered, if any.
        now: the finishing time (default: now, UTC).
        trigger_id: the trigger this retrain answered (``drift-<day>``). Given, only that
            trigger is cleared: a re-run of an old retrain's last task never releases a newer
            pending trigger. None clears whatever is pending.

    Returns:
        The new state (saved).
    """
    now = now or datetime.now(UTC)
    for attempt in policy_transaction(root):
        with attempt:
            state = attempt.load()
            pending = state.get("pending")
            if pending and (trigger_id is None or pending.get("trigger_id") == trigger_id):
                state.setdefault("finished", []).append(
                    {**state["pending"], "finished_at": now.isoformat(), "outcome": outcome,
                     "version": version})
                state["pending"] = None
                attempt.save(state)
    return state
