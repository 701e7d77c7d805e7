"""The retrain policy: severity, cooldown, pending trigger, budget, critical override, state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ml_lifecycle.drift.policy import (
    assess_severity,
    decide_retrain,
    empty_state,
    load_policy_state,
    mark_retrain_finished,
    record_decision,
    save_policy_state,
)
from ml_lifecycle.drift.settings import PolicyConfig

NOW = datetime(2026, 6, 15, 6, 0, tzinfo=UTC)
# The retrain mechanics (cooldown, pending trigger, budget, re-runs, state) do not depend on what
# grades the severity: they are tested with the earlier drift-led rule (policy.trigger: drift),
# where data drift in important features alone asks for a retrain. The performance-led default
# is tested from test_performance_trigger_grades on.
CFG = PolicyConfig(trigger="drift", cooldown_days=3, budget_max_retrains=2, budget_period_days=30,
                   pending_timeout_hours=48)
OLD_CHAMPION = {"champion": 1, "champion_created_at": "2026-01-01T00:00:00+00:00",
                "latest_created_at": "2026-01-01T00:00:00+00:00"}

IMPORTANT_DRIFT = {"verdict": "drift", "drift_by_importance": True, "drift_by_share": False,
                   "weighted_drift": 0.3, "drifted_share": 0.1, "drifted_features": ["age"]}
IGNORED_DRIFT = {"verdict": "drift", "drift_by_importance": False, "drift_by_share": True,
                 "weighted_drift": 0.04, "drifted_share": 0.6, "drifted_features": ["a", "b"]}
NO_DRIFT = {"verdict": "no_drift", "drifted_features": []}
PRED_DRIFT = {"drifted": True, "status": "drift", "reason": "ks p=1e-9; effect 0.3"}
BIG_DROP = {"flagged": True, "status": "drift", "drop": 0.12, "tolerance": 0.045,
            "reason": "roc_auc dropped"}
SMALL_DROP = {"flagged": True, "status": "drift", "drop": 0.05, "tolerance": 0.045,
              "reason": "roc_auc dropped"}
OK_QUALITY = {"severity": "ok", "n_warnings": 0}


def _decide(data=NO_DRIFT, pred=None, perf=None, quality=OK_QUALITY, state=None,
            registry=OLD_CHAMPION, now=NOW, cfg=CFG, day="2026-06-15", estimated=None,
            verdict=None) -> dict:
    return decide_retrain(data_drift=data, prediction_drift=pred, performance=perf,
                          quality=quality, state=state, registry_state=registry, now=now,
                          cfg=cfg, day=day, estimated=estimated, verdict=verdict)


def _state_with_triggers(*ages_days: float, pending_age_hours: float | None = None) -> dict:
    state = empty_state()
    for age in ages_days:
        at = (NOW - timedelta(days=age)).isoformat()
        state["triggers"].append({"trigger_id": f"t{age}", "at": at, "day": None})
    if pending_age_hours is not None:
        at = NOW - timedelta(hours=pending_age_hours)
        state["pending"] = {"trigger_id": "drift-pending", "at": at.isoformat(),
                            "day": f"{at:%Y-%m-%d}"}
    return state


@pytest.mark.parametrize(
    ("data", "pred", "perf", "expected"),
    [
        (NO_DRIFT, None, None, "none"),
        (IGNORED_DRIFT, None, None, "low"),
        (IMPORTANT_DRIFT, None, None, "medium"),
        (NO_DRIFT, PRED_DRIFT, None, "medium"),
        (IMPORTANT_DRIFT, PRED_DRIFT, None, "high"),
        ({**IMPORTANT_DRIFT, "weighted_drift": 0.7}, None, None, "high"),
        (NO_DRIFT, None, SMALL_DROP, "high"),
        (NO_DRIFT, None, BIG_DROP, "critical"),
    ],
)
def test_severity_grades(data, pred, perf, expected) -> None:
    severity, reasons = assess_severity(data, pred, perf, OK_QUALITY, CFG)
    assert severity == expected
    assert (severity == "none") == (not any(r.startswith("[") for r in reasons))


def test_no_drift_means_no_action() -> None:
    decision = _decide()
    assert not decision["retrain"] and decision["severity"] == "none"
    assert decision["reasons"] == ["no drift, no performance drop: no action"]


def test_drift_in_ignored_features_does_not_retrain_on_its_own() -> None:
    decision = _decide(IGNORED_DRIFT)
    assert not decision["retrain"] and decision["severity"] == "low"
    assert any("below policy.min_severity" in r for r in decision["reasons"])


def test_important_drift_recommends_a_retrain_with_a_trigger_id() -> None:
    decision = _decide(IMPORTANT_DRIFT)
    assert decision["retrain"] and decision["trigger_id"] == "drift-2026-06-15"
    assert decision["blocked_by"] == []


def test_cooldown_blocks_unless_critical() -> None:
    recent = _state_with_triggers(1.0)
    blocked = _decide(IMPORTANT_DRIFT, perf=SMALL_DROP, state=recent)
    assert not blocked["retrain"] and blocked["blocked_by"] == ["cooldown"]
    critical = _decide(IMPORTANT_DRIFT, perf=BIG_DROP, state=recent)
    assert critical["retrain"] and critical["severity"] == "critical"
    assert "cooldown overridden: severity is critical" in critical["notes"]
    strict = PolicyConfig(trigger="drift", cooldown_days=3, critical_overrides_cooldown=False)
    assert not _decide(perf=BIG_DROP, state=recent, cfg=strict)["retrain"]
    assert _decide(IMPORTANT_DRIFT, state=_state_with_triggers(3.5))["retrain"]


def test_a_new_champion_starts_the_cooldown_too() -> None:
    fresh = {"champion": 2, "champion_created_at": (NOW - timedelta(hours=5)).isoformat()}
    decision = _decide(IMPORTANT_DRIFT, registry=fresh)
    assert decision["blocked_by"] == ["cooldown"]


def test_no_second_trigger_while_one_is_pending_even_if_critical() -> None:
    state = _state_with_triggers(4.0, pending_age_hours=10)
    decision = _decide(IMPORTANT_DRIFT, perf=BIG_DROP, state=state)
    assert not decision["retrain"] and "pending" in decision["blocked_by"]


def test_a_pending_trigger_is_released_by_a_newer_version_or_its_timeout() -> None:
    state = _state_with_triggers(pending_age_hours=10)
    newer = {"champion": 1, "champion_created_at": OLD_CHAMPION["champion_created_at"],
             "latest_created_at": (NOW - timedelta(hours=1)).isoformat()}
    released = _decide(IMPORTANT_DRIFT, state=state, registry=newer,
                       # a rejected candidate counts too
                       cfg=PolicyConfig(trigger="drift", cooldown_days=0))
    assert released["retrain"] and released["pending"] is None
    expired = _decide(IMPORTANT_DRIFT, state=_state_with_triggers(pending_age_hours=49))
    assert expired["retrain"] and any("expired" in n for n in expired["notes"])


def test_budget_per_period() -> None:
    spent = _state_with_triggers(5.0, 12.0)
    decision = _decide(IMPORTANT_DRIFT, state=spent)
    assert not decision["retrain"] and decision["blocked_by"] == ["budget"]
    assert decision["retrains_in_period"] == 2
    critical = _decide(perf=BIG_DROP, state=spent)
    assert not critical["retrain"] and critical["blocked_by"] == ["budget"]
    overriding = PolicyConfig(trigger="drift", budget_max_retrains=2,
                              critical_overrides_budget=True)
    assert _decide(perf=BIG_DROP, state=spent, cfg=overriding)["retrain"]
    assert _decide(IMPORTANT_DRIFT, state=_state_with_triggers(5.0, 31.0))["retrain"]


def test_critical_data_quality_blocks_a_retrain() -> None:
    decision = _decide(IMPORTANT_DRIFT, quality={"severity": "critical"})
    assert not decision["retrain"] and decision["blocked_by"] == ["quality"]
    assert decision["severity"] == "critical"


def test_recording_a_trigger_then_rerunning_the_same_day_does_not_double_it() -> None:
    first = _decide(IMPORTANT_DRIFT)
    state = record_decision(empty_state(), first, day="2026-06-15", now=NOW, champion=1)
    assert state["pending"]["trigger_id"] == "drift-2026-06-15" and len(state["triggers"]) == 1
    rerun = _decide(IMPORTANT_DRIFT, state=state, now=NOW + timedelta(minutes=5))
    assert rerun["retrain"] and rerun["rerun"] and rerun["trigger_id"] == "drift-2026-06-15"
    state = record_decision(state, rerun, day="2026-06-15", now=NOW + timedelta(minutes=5))
    assert len(state["triggers"]) == 1
    next_day = _decide(IMPORTANT_DRIFT, state=state, now=NOW + timedelta(days=1),
                       day="2026-06-16")
    assert not next_day["retrain"] and "pending" in next_day["blocked_by"]


def test_state_is_persisted_and_cleared_when_the_retrain_finishes(tmp_path: Path) -> None:
    assert load_policy_state(tmp_path) == empty_state()
    state = record_decision(None, _decide(IMPORTANT_DRIFT), day="2026-06-15", now=NOW)
    path = save_policy_state(tmp_path, state)
    assert path == tmp_path / "monitoring" / "policy_state.json"
    assert load_policy_state(tmp_path)["pending"]["trigger_id"] == "drift-2026-06-15"
    after = mark_retrain_finished(tmp_path, outcome="promoted", version=2,
                                  now=NOW + timedelta(hours=2))
    assert after["pending"] is None and after["finished"][-1]["outcome"] == "promoted"
    assert load_policy_state(tmp_path)["pending"] is None
    # the finished retrain still counts for the cooldown and the budget
    decision = _decide(IMPORTANT_DRIFT, state=load_policy_state(tmp_path),
                       now=NOW + timedelta(days=1), day="2026-06-16")
    assert decision["blocked_by"] == ["cooldown"] and decision["retrains_in_period"] == 1


def test_the_policy_is_pure() -> None:
    state = _state_with_triggers(1.0)
    snapshot = repr(state)
    assert _decide(IMPORTANT_DRIFT, state=state) == _decide(IMPORTANT_DRIFT, state=state)
    assert repr(state) == snapshot


def test_replaying_past_days_ignores_models_created_later() -> None:
    later = {"champion": 1, "champion_created_at": (NOW + timedelta(days=300)).isoformat()}
    decision = _decide(IMPORTANT_DRIFT, registry=later)
    assert decision["retrain"] and decision["last_retrain_at"] is None


# --------------------------------------------------------------------------- performance-led

PERF = PolicyConfig(cooldown_days=3, budget_max_retrains=2, budget_period_days=30)
EST_DROP = {"status": "drift", "flagged": True, "reliable": True, "reliability": 1.0,
            "method": "cbpe", "reason": "estimated roc_auc 0.71 vs 0.86"}
EST_OK = {"status": "no_drift", "flagged": False, "reliable": True, "reliability": 1.0,
          "method": "cbpe", "reason": "within tolerance"}
EST_OK_UNRELIABLE = {**EST_OK, "reliable": False, "reliability": 0.6}
CRITICAL_QUALITY = {"severity": "critical", "n_critical": 1, "n_warnings": 0, "issues": [
    {"severity": "critical", "message": "'age': 95.0% missing (reference 0.0%)"}]}


def test_performance_is_the_default_trigger() -> None:
    assert PolicyConfig().trigger == "performance"


@pytest.mark.parametrize(
    ("data", "pred", "perf", "est", "expected"),
    [
        (NO_DRIFT, None, None, EST_OK, "none"),
        # drift alone explains, it does not reach the retrain severity (medium)
        (IMPORTANT_DRIFT, None, None, EST_OK, "low"),
        ({**IMPORTANT_DRIFT, "weighted_drift": 0.9}, PRED_DRIFT, None, EST_OK, "low"),
        (NO_DRIFT, PRED_DRIFT, None, EST_OK, "low"),
        # the model's estimated or realized harm drives it
        (IMPORTANT_DRIFT, PRED_DRIFT, None, EST_DROP, "high"),
        (NO_DRIFT, None, None, EST_DROP, "high"),
        (NO_DRIFT, None, SMALL_DROP, EST_OK, "high"),
        (NO_DRIFT, None, BIG_DROP, None, "critical"),
        # an unreliable estimate does not escalate at the default settings
        (IMPORTANT_DRIFT, None, None, EST_OK_UNRELIABLE, "low"),
    ],
)
def test_performance_trigger_grades(data, pred, perf, est, expected) -> None:
    severity, reasons = assess_severity(data, pred, perf, OK_QUALITY, PERF, estimated=est)
    assert severity == expected, reasons


def test_harmless_drift_never_recommends_a_retrain_but_harm_does() -> None:
    harmless = _decide({**IMPORTANT_DRIFT, "weighted_drift": 0.94}, pred=PRED_DRIFT,
                       estimated=EST_OK, cfg=PERF)
    assert not harmless["retrain"] and harmless["severity"] == "low"
    assert harmless["alert"]["action"] is None
    hurt = _decide(NO_DRIFT, estimated=EST_DROP, cfg=PERF)
    assert hurt["retrain"] and hurt["severity"] == "high" and hurt["alert"]["action"] == "open"
    realized = _decide(NO_DRIFT, perf=SMALL_DROP, estimated=EST_OK, cfg=PERF)
    assert realized["retrain"], "a concept change is caught by the realized metric"


MISCALIBRATED = {"status": "no_drift", "flagged": False, "drop": 0.0, "tolerance": 0.04,
                 "reason": "ROC-AUC as at test", "calibration": {
                     "status": "drift", "flagged": True, "ratio": 1.25, "low": 1.12,
                     "high": 1.39, "reason": "O/E 1.25"}}


@pytest.mark.parametrize(("trigger", "expected"), [("performance", "high"), ("drift", "none")])
def test_realized_miscalibration_is_harm_under_the_performance_trigger(trigger, expected) -> None:
    severity, reasons = assess_severity(NO_DRIFT, None, MISCALIBRATED, OK_QUALITY,
                                        PolicyConfig(trigger=trigger), estimated=EST_OK)
    assert severity == expected, reasons
    if trigger == "performance":
        assert any("miscalibration" in r and "O/E 1.25" in r for r in reasons)
        decided = _decide(NO_DRIFT, perf=MISCALIBRATED, estimated=EST_OK, cfg=PERF)
        assert decided["retrain"]
    quiet = {**MISCALIBRATED, "calibration": {**MISCALIBRATED["calibration"],
                                              "flagged": False, "status": "no_drift"}}
    severity, _ = assess_severity(NO_DRIFT, None, quiet, OK_QUALITY,
                                  PolicyConfig(trigger=trigger), estimated=EST_OK)
    assert severity == "none"


def test_escalate_unreliable_is_a_setting() -> None:
    escalating = PolicyConfig(escalate_unreliable=True)
    severity, reasons = assess_severity(IMPORTANT_DRIFT, None, None, OK_QUALITY, escalating,
                                        estimated=EST_OK_UNRELIABLE)
    assert severity == "medium" and any("unreliable" in r for r in reasons)
    severity, _ = assess_severity(IMPORTANT_DRIFT, None, None, OK_QUALITY, escalating,
                                  estimated=EST_OK)
    assert severity == "low"  # a reliable estimate without a drop stays an explanation
    severity, _ = assess_severity(IGNORED_DRIFT, None, None, OK_QUALITY, escalating,
                                  estimated=EST_OK_UNRELIABLE)
    assert severity == "low"  # drift the model ignores does not escalate either


@pytest.mark.parametrize("trigger", ["performance", "drift"])
@pytest.mark.parametrize("block", [True, False])
def test_critical_quality_alerts_and_blocks_on_its_own(trigger: str, block: bool) -> None:
    # before: a feature 95 % missing gave severity 'none', no alert and no block
    cfg = PolicyConfig(trigger=trigger, block_on_critical_quality=block)
    decision = _decide(NO_DRIFT, quality=CRITICAL_QUALITY, estimated=EST_OK, cfg=cfg)
    assert decision["severity"] == "critical"
    assert not decision["retrain"] and decision["blocked_by"] == ["quality"]
    assert decision["alert"]["action"] == "open"
    assert any("95.0% missing" in r for r in decision["reasons"])
    # critical quality never overrides the cooldown as a critical performance drop does
    cooled = _decide(NO_DRIFT, quality=CRITICAL_QUALITY, state=_state_with_triggers(1.0),
                     cfg=cfg)
    assert not cooled["retrain"] and "cooldown overridden" not in " ".join(cooled["notes"])


def test_with_blocking_off_quality_does_not_stop_a_real_harm() -> None:
    cfg = PolicyConfig(block_on_critical_quality=False)
    decision = _decide(NO_DRIFT, perf=SMALL_DROP, quality=CRITICAL_QUALITY, cfg=cfg)
    assert decision["retrain"] and decision["severity"] == "critical"
    blocked = _decide(NO_DRIFT, perf=SMALL_DROP, quality=CRITICAL_QUALITY, cfg=PERF)
    assert not blocked["retrain"] and blocked["blocked_by"] == ["quality"]


# --------------------------------------------------------------------------- alert episodes


def _run_days(signals: list[dict], cfg: PolicyConfig = PERF) -> list[dict]:
    """Decide and record day after day (the check's transaction, without files)."""
    state = empty_state()
    out = []
    for offset, signal in enumerate(signals):
        now = NOW + timedelta(days=offset)
        day = f"{now:%Y-%m-%d}"
        decision = _decide(signal.get("data", NO_DRIFT), perf=signal.get("perf"),
                           estimated=signal.get("est", EST_OK), state=state, now=now, day=day,
                           cfg=cfg, verdict=signal.get("verdict"),
                           registry=signal.get("registry", OLD_CHAMPION))
        state = record_decision(state, decision, day=day, now=now, champion=1)
        out.append({"decision": decision, "state": state})
    return out


def test_one_alert_per_episode_a_reminder_and_a_resolution() -> None:
    cfg = PolicyConfig(alert_reminder_days=7, cooldown_days=3)
    harm = {"est": EST_DROP}
    days = _run_days([harm] * 9 + [{"est": EST_OK}], cfg)
    actions = [d["decision"]["alert"]["action"] for d in days]
    # day 0 opens; days 1-6 quiet (retrain pending/blocked); day 7 reminds; day 9 resolves
    assert actions == ["open", None, None, None, None, None, None, "reminder", None, "resolved"]
    assert days[0]["decision"]["retrain"] and not days[1]["decision"]["retrain"]
    assert days[-1]["state"]["episode"] is None
    closed = days[-1]["state"]["episodes"][-1]
    assert closed["opened_day"] == "2026-06-15" and closed["closed_day"] == "2026-06-24"
    # the pending trigger expired (no model registered), so the policy retriggered after the
    # cooldown: still no new alert inside the episode
    retrains = sum(d["decision"]["retrain"] for d in days)
    assert retrains >= 2 and closed["alerts"] == 2 and closed["retrains"] == retrains


def test_an_episode_escalates_and_survives_days_that_cannot_be_judged() -> None:
    days = _run_days([{"est": EST_DROP}, {"perf": BIG_DROP},
                      {"est": EST_OK, "verdict": "insufficient_data"}, {"est": EST_OK}])
    actions = [d["decision"]["alert"]["action"] for d in days]
    assert actions == ["open", "escalated", None, "resolved"]
    assert days[1]["state"]["episode"]["max_severity"] == "critical"


def test_rerunning_a_day_repeats_its_alert_action() -> None:
    first = _decide(estimated=EST_DROP, cfg=PERF)
    state = record_decision(empty_state(), first, day="2026-06-15", now=NOW, champion=1)
    again = _decide(estimated=EST_DROP, cfg=PERF, state=state, now=NOW + timedelta(minutes=3))
    assert again["alert"]["action"] == "open"
    closing_day = NOW + timedelta(days=1)
    resolved = _decide(estimated=EST_OK, cfg=PERF, state=state, now=closing_day,
                       day="2026-06-16")
    state = record_decision(state, resolved, day="2026-06-16", now=closing_day)
    rerun = _decide(estimated=EST_OK, cfg=PERF, state=state, now=closing_day,
                    day="2026-06-16")
    assert resolved["alert"]["action"] == rerun["alert"]["action"] == "resolved"
    assert len(record_decision(state, rerun, day="2026-06-16", now=closing_day)["episodes"]) == 1
