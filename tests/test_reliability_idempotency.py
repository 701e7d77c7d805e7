"""Idempotency: re-running a step for the same day or DAG run gives the same outputs and never a
duplicate version, batch file, report, alert or retrain trigger.

The DAG tasks are thin calls of ``ml_lifecycle_airflow.steps``; an Airflow retry or a cleared task
calls the same step again with the same ``dag_id``/``run_id``/params. These tests call the steps
the way a task does (a task context with the run's identity), twice, and also kill a step in the
middle and run it again, as a retry after a dead worker would.

What is *not* idempotent, on purpose: ``python -m ml_lifecycle train`` run twice registers two
candidates (a training is not tied to a day; the DAG's ``train_candidate`` is, by its run id).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import yaml

from conftest import project_config_raw
from ml_lifecycle.config import apply_overrides, load_config
from ml_lifecycle.drift.policy import load_policy_state, mark_retrain_finished
from ml_lifecycle.drift.store import day_json_path, day_report_path, drift_history
from ml_lifecycle.registry import Registry
from ml_lifecycle.simulate import simulate

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FORK = mp.get_context("fork")
START = "2026-03-01"
DRIFTED_DAY = "2026-03-05"  # the simulated shift starts on day 4 (0-based) = 2026-03-05
FAST = ["model.max_iter=30", "model.patience=5", "evaluation.bootstrap=10",
        "evaluation.importance_repeats=1", "gate.bootstrap=50", "quality.min_rows=100",
        "policy.cooldown_days=0",
        # retries of a day that triggers: the drift-led rule makes the shifted day trigger
        "policy.trigger=drift"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Simulated demo data (6 days, shift from day 4), a config file and a champion."""
    from ml_lifecycle.train import run_training

    base = tmp_path_factory.mktemp("idempotency")
    simulate(base / "var/demo/data", days=6, seed=3, start_date=START, initial_rows=1500,
             rows_per_day=300, label_delay_days=3, shift_day=4, concept_day=99)
    raw = apply_overrides(project_config_raw(),
                          [*FAST, f"data.data_roots=[{base / 'var/demo'}]"])
    (base / "lifecycle.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(base / "lifecycle.yaml", base=base)
    assert run_training(cfg, reason="fixture", trigger={"as_of": "2026-02-28"})["promoted"]
    shutil.copytree(base / "var", base / "pristine-var")
    return {"base": base}


@pytest.fixture
def lifecycle(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    """The world's var/ restored to its initial state; the config the steps load."""
    base = world["base"]
    shutil.rmtree(base / "var")
    shutil.copytree(base / "pristine-var", base / "var")
    monkeypatch.setenv("ML_LIFECYCLE_CONFIG", str(base / "lifecycle.yaml"))
    monkeypatch.setenv("ML_LIFECYCLE_BASE_DIR", str(base))
    return load_config(base / "lifecycle.yaml", base=base)


def config_file() -> str:
    """The config the steps are given (the ``lifecycle`` fixture names it)."""
    return os.environ["ML_LIFECYCLE_CONFIG"]


def task_context(dag_id: str, run_id: str, params: dict[str, Any], task_id: str,
                 try_number: int = 1) -> dict[str, Any]:
    """What a task of DAG run ``run_id`` receives (the parts the steps read)."""
    run = SimpleNamespace(dag_id=dag_id, run_id=run_id,
                          run_after=dt.datetime(2026, 3, 7, tzinfo=dt.UTC))
    ti = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number,
                         log_url=None, xcom_pull=lambda **kwargs: None)
    return {"params": params, "dag_run": run, "logical_date": None, "ti": ti,
            "task_instance": ti}


def training_params(**changes: Any) -> dict[str, Any]:
    params = {"reason": "drift retrain", "force": True, "window_days": None,
              "include_original": None, "as_of_day": DRIFTED_DAY, "config_overrides": [],
              "labels_wait_minutes": 1, "drift_report": None, "triggered_by": None}
    return {**params, **changes}


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _without_timings(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k != "timings_seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------- drift check


def test_checking_a_day_twice_stores_one_result_and_one_trigger(lifecycle) -> None:
    from ml_lifecycle.drift.check import run_drift_check
    from ml_lifecycle.lifecycle import batch_path, day_end

    cfg = lifecycle
    root = Path(cfg.registry.root)
    kwargs = {"batch_path": str(batch_path(cfg, DRIFTED_DAY)), "day": DRIFTED_DAY,
              "now": day_end(DRIFTED_DAY), "report_dir": cfg.lifecycle.reports}
    first = run_drift_check(cfg, **kwargs)
    stored_first = json.loads(day_json_path(root, DRIFTED_DAY).read_text())
    again = run_drift_check(cfg, **kwargs)
    stored_again = json.loads(day_json_path(root, DRIFTED_DAY).read_text())

    assert first["retrain"] and again["retrain"] and again["decision"]["rerun"]
    assert first["decision"]["trigger_id"] == again["decision"]["trigger_id"]
    for key in ("verdict", "severity", "data_drift", "prediction_drift", "concept_drift",
                "quality", "model", "batch", "report_paths", "checked_at"):
        assert _without_timings(first[key]) == _without_timings(again[key]), key
    # the re-run says so in its reasons, and otherwise stores the same result in the same place
    assert again["reasons"] == [*first["reasons"], again["reasons"][-1]]
    assert "re-run of the check" in again["reasons"][-1]
    assert stored_again["report_paths"] == stored_first["report_paths"]
    assert [h["day"] for h in drift_history(root)] == [DRIFTED_DAY]
    assert sorted(p.name for p in Path(cfg.lifecycle.reports).iterdir()) == [
        f"drift_{DRIFTED_DAY}.html", f"drift_{DRIFTED_DAY}.json"]
    assert day_report_path(root, DRIFTED_DAY).is_file()
    state = load_policy_state(root)
    assert [t["trigger_id"] for t in state["triggers"]] == [f"drift-{DRIFTED_DAY}"]


def test_the_drift_task_rerun_gives_the_same_decision_and_run_id(lifecycle) -> None:
    from ml_lifecycle_airflow import steps

    cfg = lifecycle
    context = task_context("ml_drift_check", "scheduled__2026-03-05", {"day": DRIFTED_DAY},
                           "check_drift")
    first = steps.check_drift(config_file(), context)
    retry = steps.check_drift(config_file(),
                              task_context("ml_drift_check", "scheduled__2026-03-05",
                                           {"day": DRIFTED_DAY}, "check_drift", try_number=2))
    assert first["retrain"] and retry["retrain"]
    # the TriggerDagRunOperator uses retrain_run_id with skip_when_already_exists: one training
    assert retry["retrain_run_id"] == first["retrain_run_id"] == f"drift_retrain__{DRIFTED_DAY}"
    assert retry["retrain_conf"] == first["retrain_conf"]
    for key in ("verdict", "severity", "drifted_features", "report_json", "report_html",
                "champion"):
        assert retry[key] == first[key], key
    alerts = sorted(p.name for p in Path(cfg.lifecycle.alerts).iterdir())
    assert alerts == ["drift_breach__ml_drift_check__scheduled__2026-03-05__check_drift.json"]
    assert len(load_policy_state(cfg.registry.root)["triggers"]) == 1


# ---------------------------------------------------------------------------- scoring


def test_scoring_a_day_twice_rewrites_the_same_file(lifecycle) -> None:
    from ml_lifecycle.lifecycle import predictions_path, score_batch
    from ml_lifecycle_airflow import steps

    cfg = lifecycle
    first = score_batch(cfg, DRIFTED_DAY)
    content = predictions_path(cfg, DRIFTED_DAY).read_bytes()
    context = task_context("ml_batch_scoring", "scheduled__2026-03-05", {"day": DRIFTED_DAY},
                           "score_batch")
    again = steps.score_day(config_file(), context)
    assert again == first
    assert predictions_path(cfg, DRIFTED_DAY).read_bytes() == content
    assert sorted(p.name for p in Path(cfg.lifecycle.predictions).iterdir()) == [
        f"{DRIFTED_DAY}.csv"]
    frame = pd.read_csv(predictions_path(cfg, DRIFTED_DAY))
    assert len(frame) == first["rows"] and frame["order_id"].is_unique


def _score_and_maybe_die(config: str, base: str, kill_at: int | None) -> None:
    """Child: score the day; SIGKILL before the ``kill_at``-th os.fsync/os.replace."""
    from ml_lifecycle.lifecycle import score_batch

    calls = {"n": 0}
    for name in ("fsync", "replace"):
        original = getattr(os, name)

        def wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if kill_at is not None and calls["n"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            calls["n"] += 1
            return _original(*args, **kwargs)

        setattr(os, name, wrapper)
    score_batch(load_config(config, base=Path(base)), DRIFTED_DAY)
    os._exit(0)


def test_scoring_killed_mid_write_never_leaves_a_partial_file(lifecycle, world) -> None:
    from ml_lifecycle.lifecycle import predictions_path, score_batch

    cfg = lifecycle
    target = predictions_path(cfg, DRIFTED_DAY)
    started = time.monotonic()
    score_batch(cfg, DRIFTED_DAY)
    duration = time.monotonic() - started
    reference = target.read_bytes()  # the same champion always writes these bytes
    target.unlink()
    args = (str(world["base"] / "lifecycle.yaml"), str(world["base"]))
    # deterministic: before each fsync/replace of the write, with no earlier file
    for kill_at in itertools.count():
        child = FORK.Process(target=_score_and_maybe_die, args=(*args, kill_at))
        child.start()
        child.join(timeout=120)
        assert not target.exists() or target.read_bytes() == reference
        if child.exitcode == 0:
            break
        assert child.exitcode == -signal.SIGKILL
    assert kill_at >= 2 and target.read_bytes() == reference
    # random moments, with a complete file from an earlier run in place
    rng = random.Random(3)
    for _ in range(8):
        child = FORK.Process(target=_score_and_maybe_die, args=(*args, None))
        child.start()
        time.sleep(rng.uniform(0.0, duration))
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=60)
        assert target.read_bytes() == reference  # old or new: identical, never partial
    names = [p.name for p in target.parent.iterdir() if not p.name.startswith(".")]
    assert names == [target.name]  # at most hidden temp files of killed writers remain


# ---------------------------------------------------------------------------- training


RUN_ID = f"drift_retrain__{DRIFTED_DAY}"


def _request(context: dict[str, Any]) -> dict[str, Any]:
    from ml_lifecycle_airflow import steps

    return steps.prepare_training_request(config_file(), context)


def test_the_training_task_rerun_reuses_its_version(lifecycle) -> None:
    from ml_lifecycle_airflow import steps

    cfg = lifecycle
    context = task_context("ml_training", RUN_ID, training_params(), "train_candidate")
    request = _request(context)
    first = steps.train_candidate(config_file(), request, context)
    retry = steps.train_candidate(config_file(), request,
                                  task_context("ml_training", RUN_ID, training_params(),
                                               "train_candidate", try_number=2))
    assert not first["reused"] and retry["reused"]
    assert retry["version"] == first["version"] == 2
    assert [c["version"] for c in Registry(cfg.registry.root).list_versions()] == [1, 2]

    promote_context = task_context("ml_training", RUN_ID, training_params(), "promote")
    steps.promote_candidate(config_file(), request, first, promote_context)
    steps.promote_candidate(config_file(), request, first, promote_context)  # cleared task
    history = Registry(cfg.registry.root).history()
    assert [(e["event"], e["version"]) for e in history] == [("promote", 1), ("promote", 2)]

    # another run (another run id) is another candidate
    other = task_context("ml_training", "manual__2", training_params(), "train_candidate")
    assert steps.train_candidate(config_file(), _request(other), other)["version"] == 3


def test_label_files_that_arrive_while_the_sensor_waits_are_trained_on(lifecycle) -> None:
    """The window is chosen after the labels sensor: a label file that is due by the as-of day
    but lands only while the sensor waits is counted by the sensor and used by the training."""
    from ml_lifecycle_airflow import steps
    from ml_lifecycle_airflow.sensors import NewLabelsSensor

    cfg = lifecycle
    late = Path(cfg.lifecycle.labels) / "2026-03-02.csv"  # due on 03-05 (labels 3 days late)
    held = late.with_suffix(".held")
    late.rename(held)  # not there yet when the run starts
    run_id = "manual__late_labels"
    context = task_context("ml_training", run_id, training_params(force=False), "prepare_request")
    request = _request(context)
    assert request["as_of"] == DRIFTED_DAY
    assert request["labelled_days_at_request"] == ["2026-03-01"]

    sensor = NewLabelsSensor(task_id="wait_for_new_labels", config_file=config_file(),
                             as_of=request["as_of"], force=False, min_new_labels=1)
    before = sensor.poke(task_context("ml_training", run_id, training_params(),
                                      "wait_for_new_labels"))
    held.rename(late)  # the label file arrives while the sensor waits
    sensed = sensor.poke(task_context("ml_training", run_id, training_params(),
                                      "wait_for_new_labels"))
    assert sensed.xcom_value["rows"] > before.xcom_value["rows"]
    assert sensed.xcom_value["as_of"] == before.xcom_value["as_of"] == DRIFTED_DAY

    train_context = task_context("ml_training", run_id, training_params(), "train_candidate")
    result = steps.train_candidate(config_file(), request, train_context, sensed.xcom_value)
    card = Registry(cfg.registry.root).get_card(result["version"])
    used = [Path(labels).name for _, labels in card["data"]["window"]["pairs"]]
    assert used == ["2026-03-01.csv", "2026-03-02.csv"]
    assert [labels for _, labels in card["data"]["window"]["pairs"]][-1] == str(late)
    assert card["trigger"]["window_batch_days"] == ["2026-03-01", "2026-03-02"]


def _train_task_and_die(context: dict[str, Any], request: dict[str, Any], when: str) -> None:
    """Child: the train_candidate task, SIGKILLed right after registering or mid-training."""
    from ml_lifecycle_airflow import steps

    if when == "after_register":
        original = Registry.register

        def register(self: Registry, *args: Any, **kwargs: Any) -> int:
            original(self, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)  # the XCom result is never returned
            raise AssertionError("unreachable")

        Registry.register = register  # type: ignore[method-assign]
    else:
        original_stage = Registry.stage

        def stage(self: Registry) -> Path:  # trained, about to write: the worker dies
            os.kill(os.getpid(), signal.SIGKILL)
            return original_stage(self)

        Registry.stage = stage  # type: ignore[method-assign]
    steps.train_candidate(config_file(), request, context)
    os._exit(0)


@pytest.mark.parametrize("when", ["after_register", "before_register"])
def test_a_training_task_killed_then_retried_registers_one_version(lifecycle,
                                                                   when: str) -> None:
    from ml_lifecycle_airflow import steps

    cfg = lifecycle
    context = task_context("ml_training", RUN_ID, training_params(), "train_candidate")
    request = _request(context)
    child = FORK.Process(target=_train_task_and_die, args=(context, request, when))
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL
    retry = steps.train_candidate(config_file(), request,
                                  task_context("ml_training", RUN_ID, training_params(),
                                               "train_candidate", try_number=2))
    assert retry["reused"] is (when == "after_register")
    reg = Registry(cfg.registry.root)
    assert [c["version"] for c in reg.list_versions()] == [1, 2]
    assert reg.get_card(2)["trigger"]["run_id"] == RUN_ID
    assert list((Path(cfg.registry.root) / ".staging").iterdir()) == []


def _train_task(context: dict[str, Any], request: dict[str, Any], barrier: Any) -> None:
    from ml_lifecycle_airflow import steps

    barrier.wait(timeout=120)
    steps.train_candidate(config_file(), request, context)


def test_two_attempts_of_one_training_task_at_once_register_one_version(lifecycle) -> None:
    """A zombie try still alive when the retry starts: the run's training lock (steps.run_lock)
    makes the second wait, then reuse the first one's version."""
    cfg = lifecycle
    context = task_context("ml_training", RUN_ID, training_params(), "train_candidate")
    request = _request(context)
    barrier = FORK.Barrier(2)
    attempts = [FORK.Process(target=_train_task, args=(context, request, barrier))
                for _ in range(2)]
    for attempt in attempts:
        attempt.start()
    for attempt in attempts:
        attempt.join(timeout=300)
    assert [a.exitcode for a in attempts] == [0, 0]
    assert [c["version"] for c in Registry(cfg.registry.root).list_versions()] == [1, 2]
    assert list((Path(cfg.registry.root) / ".staging").iterdir()) == []


# ---------------------------------------------------------------------------- retrain policy


def test_finishing_an_old_retrain_again_keeps_a_newer_pending_trigger(lifecycle) -> None:
    """A cleared ``notify`` task of an old retrain must not release a newer trigger."""
    from ml_lifecycle.drift.check import run_drift_check
    from ml_lifecycle.lifecycle import batch_path, day_end

    cfg = lifecycle
    root = cfg.registry.root
    day = DRIFTED_DAY
    run_drift_check(cfg, batch_path=str(batch_path(cfg, day)), day=day, now=day_end(day))
    mark_retrain_finished(root, outcome="rejected", trigger_id=f"drift-{day}")
    assert load_policy_state(root)["pending"] is None
    later = "2026-03-06"
    run_drift_check(cfg, batch_path=str(batch_path(cfg, later)), day=later, now=day_end(later))
    assert load_policy_state(root)["pending"]["trigger_id"] == f"drift-{later}"
    # the old run's notify task is cleared and runs again: core, then the DAG's own callback
    mark_retrain_finished(root, outcome="rejected", trigger_id=f"drift-{day}")
    from ml_lifecycle_airflow import steps

    old_run = task_context("ml_training", f"drift_retrain__{day}", training_params(
        triggered_by="ml_drift_check/scheduled__x", trigger_id=f"drift-{day}"), "notify")
    steps.mark_finished(config_file(), old_run, "rejected", 2)
    state = load_policy_state(root)
    assert state["pending"]["trigger_id"] == f"drift-{later}"
    assert [f["trigger_id"] for f in state["finished"]] == [f"drift-{day}"]
    # the newer retrain's own end releases it
    new_run = task_context("ml_training", f"drift_retrain__{later}", training_params(
        triggered_by="ml_drift_check/scheduled__y", trigger_id=f"drift-{later}"), "notify")
    steps.mark_finished(config_file(), new_run, "promoted", 3)
    assert load_policy_state(root)["pending"] is None
