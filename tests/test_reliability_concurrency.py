"""Concurrency: trainings racing to promote, promotions and rollbacks at once, drift checks of the
same day at once. Exactly one outcome wins each race; nothing is lost or silently overwritten.

``tests/test_registry.py`` already races six processes through register + promote on a tiny model
(plain and compare-and-swap). Here the racers are whole trainings (``run_training`` and
``python -m ml_lifecycle train``), the ``models promote|rollback`` CLI, and the drift check with
its retrain policy.

The locks are ``fcntl.flock`` on ``<registry.root>/.lock`` (registry writers) and
``<registry.root>/monitoring/.lock`` (drift store and policy state): the kernel releases them when
their holder dies, so a SIGKILLed holder never leaves a stale lock (tested below). They hold on a
local disk and on NFS/EFS-style shared volumes whose clients emulate flock with byte-range locks;
they do not exist on S3-compatible object storage, which is why the registry refuses object-store
roots for now (``config.RegistryConfig``) - see docs/operations/reliability.md.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import PROJECT_ROOT, make_config_dict, make_table
from ml_lifecycle.config import config_from_dict
from ml_lifecycle.drift.policy import load_policy_state, monitoring_lock
from ml_lifecycle.drift.store import drift_history, read_day
from ml_lifecycle.errors import RegistryError
from ml_lifecycle.registry import Registry

pytestmark = pytest.mark.slow

FORK = mp.get_context("fork")
FAST = {
    "quality__min_rows": 50, "model__max_iter": 15, "model__patience": 3,
    "evaluation__bootstrap": 10, "evaluation__importance_repeats": 1, "gate__bootstrap": 50,
    "policy__cooldown_days": 0,
    # racing checks of shifted days that all want a retrain: the drift-led rule
    "policy__trigger": "drift",
}
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
CLI_ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A champion (v1, with its drift profile) and a fresh and a drifted batch."""
    from ml_lifecycle.train import run_training

    base = tmp_path_factory.mktemp("concurrency")
    make_table(800, seed=2).to_csv(base / "train.csv", index=False)
    raw = make_config_dict(str(base / "train.csv"), str(base / "pristine"), **FAST)
    assert run_training(config_from_dict(raw), reason="initial champion")["promoted"]
    batch = make_table(600, seed=3).drop(columns=["label"])
    batch.assign(x1=batch["x1"] + 1.0).to_csv(base / "shifted.csv", index=False)
    return {"base": base, "raw": raw}


def _copy(world: dict[str, Any], name: str) -> tuple[dict[str, Any], Path]:
    import shutil

    root = world["base"] / name
    shutil.copytree(world["base"] / "pristine", root)
    raw = json.loads(json.dumps(world["raw"]))
    raw["registry"]["root"] = str(root)
    return raw, root


def assert_history_consistent(root: Path) -> list[dict[str, Any]]:
    """Every version verifies; history is one unbroken chain; the alias is its last event."""
    reg = Registry(root)
    for card in reg.list_versions():
        reg.verify(card["version"])
    events = reg.history()
    assert events[0]["previous"] is None
    for before, after in itertools.pairwise(events):
        assert after["previous"] == before["version"], events
    assert reg.champion() == events[-1]["version"]
    assert json.loads((root / "champion.json").read_text())["version"] == events[-1]["version"]
    staging = root / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    return events


# ---------------------------------------------------------------------------- trainings


def _train_racing(raw: dict[str, Any], barrier: Any, queue: Any) -> None:
    """Child: a whole training whose promotion waits until every racer is ready to promote."""
    from ml_lifecycle.train import run_training

    original = Registry.promote

    def promote(self: Registry, *args: Any, **kwargs: Any) -> dict:
        barrier.wait(timeout=120)  # every racer has trained against the same champion
        return original(self, *args, **kwargs)

    Registry.promote = promote  # type: ignore[method-assign]
    result = run_training(config_from_dict(raw), reason=f"racer {os.getpid()}")
    queue.put({k: result[k] for k in ("version", "promoted", "promotion_error",
                                      "champion_before", "champion_after")})


def test_racing_trainings_promote_exactly_one_winner(world: dict[str, Any]) -> None:
    raw, root = _copy(world, "racing")
    racers = 4
    barrier, queue = FORK.Barrier(racers), FORK.Queue()
    processes = [FORK.Process(target=_train_racing, args=(raw, barrier, queue))
                 for _ in range(racers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [p.exitcode for p in processes] == [0] * racers
    results = [queue.get(timeout=10) for _ in range(racers)]

    assert sorted(r["version"] for r in results) == list(range(2, 2 + racers))  # none lost
    winners = [r for r in results if r["promoted"]]
    losers = [r for r in results if not r["promoted"]]
    assert len(winners) == 1, results
    assert all(r["champion_before"] == 1 for r in results)
    for loser in losers:
        assert "changed concurrently" in loser["promotion_error"]
    events = assert_history_consistent(root)
    assert [(e["event"], e["version"], e["previous"]) for e in events] == [
        ("promote", 1, None), ("promote", winners[0]["version"], 1)]
    cards = Registry(root).list_versions()
    assert [c["champion_at_training"] for c in cards[1:]] == [1] * racers


def test_trainings_started_together_from_the_cli(world: dict[str, Any]) -> None:
    raw, root = _copy(world, "cli-trainings")
    config = world["base"] / "cli-trainings.yaml"
    config.write_text(yaml.safe_dump(raw))
    processes = [subprocess.Popen([sys.executable, "-m", "ml_lifecycle", "train", "--config",
                                   str(config), "--json", "--reason", f"cli racer {i}"],
                                  env=CLI_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(3)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "Traceback" not in err
        results.append(json.loads(out))
    assert sorted(r["version"] for r in results) == [2, 3, 4]
    events = assert_history_consistent(root)
    promoted = [r for r in results if r["promoted"]]
    # one promotion per champion change: each winner replaced the champion it was gated against
    assert len(events) == 1 + len(promoted) >= 2
    assert len({r["champion_before"] for r in promoted}) == len(promoted)
    for result in promoted:
        event = next(e for e in events if e["version"] == result["version"])
        assert event["previous"] == result["champion_before"]
    for result in results:
        if not result["promoted"]:
            assert "changed concurrently" in result["promotion_error"]


# ---------------------------------------------------------------------------- promote/rollback


def _tiny_registry(root: Path, versions: int) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    reg = Registry(root)
    for _ in range(versions):
        staging = reg.stage()
        reg.save_model(staging, model)
        reg.register(staging, {"task": "classification"})
    reg.promote(1, reason="first")


def test_concurrent_promotions_and_rollbacks_from_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    _tiny_registry(root, 4)
    commands = [["promote", "2"], ["promote", "3"], ["rollback"], ["promote", "4"],
                ["rollback"], ["rollback", "2"], ["promote", "1"], ["rollback"],
                ["promote", "3"], ["rollback", "4"]]
    processes = [subprocess.Popen([sys.executable, "-m", "ml_lifecycle", "models", *cmd,
                                   "--registry", str(root), "--json", "--reason", " ".join(cmd)],
                                  env=CLI_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for cmd in commands]
    succeeded, refused = [], []
    for cmd, process in zip(commands, processes, strict=True):
        out, err = process.communicate(timeout=120)
        assert process.returncode in (0, 2), (cmd, process.returncode, err)
        if cmd[0] == "promote":  # a promotion of a sound version always succeeds
            assert process.returncode == 0, (cmd, err)
        assert "Traceback" not in err and "internal error" not in err
        if process.returncode == 0:
            succeeded.append(json.loads(out))
        else:  # e.g. "already the champion": refused, and nothing recorded
            assert err.startswith("error: registry") and "roll back" in err, err
            refused.append(cmd)
    events = assert_history_consistent(root)
    assert len(events) == 1 + len(succeeded)  # every success recorded once, nothing else
    recorded = [(e["event"], e["version"], e["previous"], e["at"]) for e in events[1:]]
    reported = [(e["event"], e["version"], e["previous"], e["at"]) for e in succeeded]
    assert sorted(recorded) == sorted(reported)
    assert len(succeeded) >= 5
    print(f"\n{len(commands)} concurrent models commands: {len(succeeded)} recorded, "
          f"{len(refused)} refused ({refused}); champion v{Registry(root).champion()}")


def _hold_lock_and_die(root: str, which: str, ready: Any) -> None:
    context = Registry(root).lock() if which == "registry" else monitoring_lock(root)
    with context:
        ready.set()
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("which", ["registry", "monitoring"])
def test_a_lock_holder_killed_mid_write_leaves_no_stale_lock(tmp_path: Path, which: str) -> None:
    root = tmp_path / "registry"
    _tiny_registry(root, 2)
    ready = FORK.Event()
    child = FORK.Process(target=_hold_lock_and_die, args=(str(root), which, ready))
    child.start()
    child.join(timeout=30)
    assert ready.is_set() and child.exitcode == -signal.SIGKILL
    started = time.monotonic()
    if which == "registry":
        Registry(root, lock_timeout=5).promote(2)
        assert Registry(root).champion() == 2
    else:
        with monitoring_lock(root):
            pass
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------------- drift checks


def _check_day(raw: dict[str, Any], batch: str, day: str, barrier: Any, queue: Any) -> None:
    from ml_lifecycle.drift.check import run_drift_check

    cfg = config_from_dict(raw)
    barrier.wait(timeout=120)
    result = run_drift_check(cfg, batch_path=batch, day=day, now=NOW)
    queue.put({"day": day, "retrain": result["retrain"], "verdict": result["verdict"],
               "trigger_id": result["decision"]["trigger_id"],
               "rerun": result["decision"]["rerun"],
               "blocked_by": result["decision"]["blocked_by"]})


def _race_checks(raw: dict[str, Any], batch: Path, days: list[str]) -> list[dict[str, Any]]:
    barrier, queue = FORK.Barrier(len(days)), FORK.Queue()
    processes = [FORK.Process(target=_check_day, args=(raw, str(batch), day, barrier, queue))
                 for day in days]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [p.exitcode for p in processes] == [0] * len(days)
    return [queue.get(timeout=10) for _ in days]


def test_concurrent_checks_of_the_same_day_make_one_trigger(world: dict[str, Any]) -> None:
    raw, root = _copy(world, "same-day")
    day = "2026-07-01"
    results = _race_checks(raw, world["base"] / "shifted.csv", [day] * 4)
    assert all(r["verdict"] == "drift" and r["retrain"] for r in results), results
    assert {r["trigger_id"] for r in results} == {f"drift-{day}"}
    assert sorted(r["rerun"] for r in results) == [False, True, True, True]
    state = load_policy_state(root)
    assert [t["trigger_id"] for t in state["triggers"]] == [f"drift-{day}"]
    assert state["pending"]["trigger_id"] == f"drift-{day}"
    assert [h["day"] for h in drift_history(root)] == [day]  # one stored result, complete
    assert read_day(root, day)["verdict"] == "drift"
    leftovers = [p for p in (root / "monitoring").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_concurrent_checks_of_two_drifted_days_make_one_trigger(world: dict[str, Any]) -> None:
    raw, root = _copy(world, "two-days")
    days = ["2026-07-01", "2026-07-01", "2026-07-02", "2026-07-02"]
    results = _race_checks(raw, world["base"] / "shifted.csv", days)
    state = load_policy_state(root)
    assert len(state["triggers"]) == 1  # never two triggers, whichever day came first
    winner = state["pending"]["day"]
    for result in results:
        if result["day"] == winner:
            assert result["retrain"] and result["trigger_id"] == f"drift-{winner}"
        else:
            assert not result["retrain"] and "pending" in result["blocked_by"]
    assert sorted(h["day"] for h in drift_history(root)) == ["2026-07-01", "2026-07-02"]


def test_a_concurrent_check_and_promotion_do_not_corrupt_each_other(
    world: dict[str, Any],
) -> None:
    """A drift check reading the champion while a rollback and a promotion change it."""
    raw, root = _copy(world, "check-vs-promote")
    from ml_lifecycle.train import run_training

    run_training(config_from_dict(raw), promote=False)  # v2, a candidate
    barrier, queue = FORK.Barrier(2), FORK.Queue()
    checker = FORK.Process(target=_check_day, args=(raw, str(world["base"] / "shifted.csv"),
                                                    "2026-07-03", barrier, queue))
    checker.start()
    barrier.wait(timeout=120)
    reg = Registry(root)
    for _ in range(3):
        reg.promote(2, reason="race")
        reg.rollback(reason="race")
    checker.join(timeout=300)
    assert checker.exitcode == 0
    result = queue.get(timeout=10)
    assert result["verdict"] == "drift"
    assert assert_history_consistent(root)[-1]["version"] == 1
    with pytest.raises(RegistryError, match="already the champion"):
        reg.rollback(to_version=1)
