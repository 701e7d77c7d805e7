"""Crash safety of a whole training run: SIGKILL at every write step and at random moments.

``tests/test_registry.py`` kills the registry's own register/promote/rollback sequence. Here the
process that dies is a whole training (``run_training`` / ``python -m ml_lifecycle train``), so
the kill points include the pipeline's own writes into the staging folder (model dump, quality
report, split assignment, reference profile), the registration and the compare-and-swap
promotion, down to each ``os.fsync``, ``os.replace`` and ``os.rename``.

After every kill the registry must hold (``assert_registry_sound``):

* every listed version verifies (sha256 of every artifact), and ``versions/`` holds nothing else:
  a partial version is never listed;
* the champion is the last history event, the history chain is unbroken, ``champion.json`` lags
  by at most that event, and the champion's model loads (sha256-verified) and scores;
* what the next run does first (``Registry.cleanup_staging()`` with its defaults, as
  ``run_training`` calls it) removes every leftover of the dead run: staging dirs, their locks,
  temp files, and repairs a lagging ``champion.json``.

Three harnesses, all with small data so one training takes about a second:

1. ``test_sigkill_at_every_write_step_of_a_training``: deterministic. A training is forked at
   every filesystem step; the registry is restored to the same starting state before each, so
   every step of register *and* promote is exercised.
2. ``test_random_sigkills_of_forked_cli_trainings``: ``cli.main(["train", ...])`` in a forked
   child, killed at a random moment (half anywhere in the run, half inside the write path);
   the registry is *not* reset, so the debris of one crash meets the next run.
3. ``test_random_sigkills_of_python_dash_m_train``: the real ``python -m ml_lifecycle train``
   process, killed at a random moment of its write path.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PROJECT_ROOT, make_config_dict, make_table
from ml_lifecycle.config import config_from_dict
from ml_lifecycle.registry import Registry

pytestmark = pytest.mark.slow

FORK = mp.get_context("fork")

#: Small and fast: one training takes ~1 s, its write path ~0.1 s.
FAST = {
    "quality__min_rows": 50, "model__max_iter": 15, "model__patience": 3,
    "evaluation__bootstrap": 10, "evaluation__importance_repeats": 1, "gate__bootstrap": 50,
}
REGISTRY_PRIMITIVES = (
    "_make_dir", "_read_bytes", "_write_json", "_write_text", "_hash_file", "_sync_file",
    "_sync_dir", "_rename_dir", "_remove_file", "_remove_tree", "_open_lock_fd", "_is_file",
    "_write_model",
)
OS_PRIMITIVES = ("replace", "rename", "fsync")


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small table, a config file and a pristine registry whose champion is v1."""
    base = tmp_path_factory.mktemp("crash")
    make_table(400, seed=5).to_csv(base / "train.csv", index=False)
    raw = make_config_dict(str(base / "train.csv"), str(base / "pristine"), **FAST)
    from ml_lifecycle.train import run_training

    assert run_training(config_from_dict(raw), reason="initial champion")["promoted"]
    probe = make_table(50, seed=9)[["x1", "x2", "cat", "merchant"]]
    return {"base": base, "raw": raw, "pristine": base / "pristine", "probe": probe}


def _fresh_registry(world: dict[str, Any], name: str) -> tuple[dict[str, Any], Path]:
    root = world["base"] / name
    shutil.copytree(world["pristine"], root)
    raw = json.loads(json.dumps(world["raw"]))
    raw["registry"]["root"] = str(root)
    return raw, root


def _write_config(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


# ---------------------------------------------------------------------------- invariants


def assert_registry_sound(root: Path, probe: pd.DataFrame) -> dict[str, Any]:
    """The invariants that must hold after any crash (see the module docstring)."""
    reg = Registry(root)
    listed = [card["version"] for card in reg.list_versions()]
    for version in listed:
        reg.verify(version)
    versions_dir = root / "versions"
    on_disk = sorted(p.name for p in versions_dir.iterdir()) if versions_dir.exists() else []
    assert on_disk == [f"v{v:04d}" for v in listed], f"unlisted version folders: {on_disk}"

    events = reg.history()
    champion = reg.champion()
    assert events, "the champion's history disappeared"
    assert champion == events[-1]["version"] and champion in listed
    assert events[0]["previous"] is None
    for before, after in itertools.pairwise(events):
        assert after["previous"] == before["version"], events
    scores = reg.load_model().predict_proba(probe)[:, 1]
    assert scores.shape == (len(probe),) and np.isfinite(scores).all()
    alias = json.loads((root / "champion.json").read_text())["version"]
    assert alias in {champion, *(e["version"] for e in events[-2:-1])}

    staging = root / ".staging"
    debris = sorted(p.name for p in staging.iterdir()) if staging.exists() else []
    debris += [p.name for p in root.iterdir() if p.name.endswith(".tmp")]
    Registry(root).cleanup_staging()  # with its defaults: exactly what the next run does first
    left = sorted(p.name for p in staging.iterdir()) if staging.exists() else []
    assert left == [], f"the next run's cleanup left {left}"
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]
    assert json.loads((root / "champion.json").read_text())["version"] == champion
    return {"versions": listed, "champion": champion, "events": len(events),
            "debris": debris}


# ---------------------------------------------------------------------------- kill machinery


class Ticker:
    """Counts filesystem steps; SIGKILLs its process before step ``kill_at``."""

    def __init__(self) -> None:
        self.count = 0
        self.kill_at: int | None = None
        self.max_delay = 0.0

    def tick(self) -> None:
        if self.kill_at is not None and self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self.count += 1
        if self.max_delay:
            time.sleep(random.random() * self.max_delay)


def install_ticker(ticker: Ticker) -> None:
    """Patch the registry's filesystem primitives and os.replace/rename/fsync (children only)."""
    for name in REGISTRY_PRIMITIVES:
        original = getattr(Registry, name)

        def wrapper(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            ticker.tick()
            return _original(self, *args, **kwargs)

        setattr(Registry, name, wrapper)
    for name in OS_PRIMITIVES:
        original = getattr(os, name)

        def os_wrapper(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            ticker.tick()
            return _original(*args, **kwargs)

        setattr(os, name, os_wrapper)


def _restore(root: Path, pristine: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(pristine, root)


def _child_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return "killed" if number == signal.SIGKILL else f"signal {number}"
    return f"exit {os.WEXITSTATUS(status)}"


def _run_before_stage(raw: dict[str, Any], kill_at: int) -> None:
    """Child: a full training killed at step ``kill_at``; exit 17 if it reaches stage() first."""
    from ml_lifecycle.train import run_training

    ticker = Ticker()
    install_ticker(ticker)
    ticker.kill_at = kill_at
    original_stage = Registry.stage

    def stage(self: Registry) -> Path:
        if ticker.count <= kill_at:
            os._exit(17)  # the read phase is over: the write phase is the other harness's
        return original_stage(self)

    Registry.stage = stage  # type: ignore[method-assign]
    run_training(config_from_dict(raw), reason="crash test")
    os._exit(0)


def _orchestrate(raw: dict[str, Any], probe: pd.DataFrame, report: str) -> None:
    """Child: train once; at stage() fork one killed writer per filesystem step.

    Each writer inherits the trained model and continues the real write path (stage, save,
    register, promote) from the same registry state; it is SIGKILLed before its k-th step. The
    orchestrator checks the registry after each death, restores it, and stops at the first k
    the writer survives (the whole write path done).
    """
    from ml_lifecycle.train import run_training

    ticker = Ticker()
    install_ticker(ticker)
    root = Path(raw["registry"]["root"])
    snapshot = root.parent / (root.name + "-before-stage")
    original_stage = Registry.stage
    me = os.getpid()

    def stage(self: Registry) -> Path:
        if os.getpid() != me:
            return original_stage(self)
        shutil.copytree(root, snapshot)
        results: list[dict[str, Any]] = []
        for kill_at in itertools.count():
            _restore(root, snapshot)
            pid = os.fork()
            if pid == 0:
                ticker.count, ticker.kill_at = 0, kill_at
                return original_stage(self)  # the writer continues run_training from here
            _, status = os.waitpid(pid, 0)
            outcome = _child_exit(status)
            entry: dict[str, Any] = {"kill_at": kill_at, "outcome": outcome}
            try:
                entry.update(assert_registry_sound(root, probe))
            except Exception as exc:  # reported to the test, which fails with it
                entry["failure"] = f"{type(exc).__name__}: {exc}"
            results.append(entry)
            if outcome != "killed" or kill_at > 500:
                break
        Path(report).write_text(json.dumps(results))
        os._exit(0)

    Registry.stage = stage  # type: ignore[method-assign]
    result = run_training(config_from_dict(raw), reason="crash test")
    # only a writer that survived every step gets here
    os._exit(0 if result["promoted"] else 3)


# ---------------------------------------------------------------------------- 1: deterministic


def test_sigkill_at_every_write_step_of_a_training(world: dict[str, Any]) -> None:
    raw, root = _fresh_registry(world, "every-step")
    pristine = world["base"] / "every-step-pristine"
    shutil.copytree(root, pristine)

    # Read phase (cleanup, champion, its sha256-verified model): killed before each step.
    read_points = 0
    for kill_at in itertools.count():
        _restore(root, pristine)
        child = FORK.Process(target=_run_before_stage, args=(raw, kill_at))
        child.start()
        child.join(timeout=120)
        if child.exitcode == 17:
            break
        assert child.exitcode == -signal.SIGKILL, child.exitcode
        read_points += 1
        state = assert_registry_sound(root, world["probe"])
        assert state["versions"] == [1] and state["champion"] == 1
    assert read_points >= 5

    # Write phase: staging, model dump, side files, register, compare-and-swap promote.
    _restore(root, pristine)
    report = world["base"] / "every-step.json"
    orchestrator = FORK.Process(target=_orchestrate, args=(raw, world["probe"], str(report)))
    orchestrator.start()
    orchestrator.join(timeout=600)
    assert orchestrator.exitcode == 0
    results = json.loads(report.read_text())
    failures = [r for r in results if "failure" in r]
    assert not failures, failures[:3]
    *killed, survivor = results
    assert all(r["outcome"] == "killed" for r in killed)
    assert survivor["outcome"] == "exit 0"  # the write path completed and promoted
    assert survivor["versions"] == [1, 2] and survivor["champion"] == 2

    # Each crash leaves either the old state or the complete new version, never in between.
    states = {(tuple(r["versions"]), r["champion"], r["events"]) for r in killed}
    assert states <= {((1,), 1, 1), ((1, 2), 1, 1), ((1, 2), 2, 2)}, states
    assert ((1, 2), 1, 1) in states and ((1, 2), 2, 2) in states  # kills after rename, promote
    cleaned = sum(1 for r in killed if r["debris"])
    total = read_points + len(killed)
    counts = {s: 0 for s in sorted(states)}
    for r in killed:
        counts[(tuple(r["versions"]), r["champion"], r["events"])] += 1
    print(f"\nkill points: {read_points} in the read phase + {len(killed)} in the write phase "
          f"= {total}; the next run's cleanup removed debris after {cleaned} of them; "
          f"(versions, champion, events) after the crash: {counts}")
    assert len(killed) >= 50 and total >= 60


# ---------------------------------------------------------------------------- 2: random, forked


def _cli_child(config: str, ready_fd: int, max_delay: float) -> None:
    """Child: ``cli.main(["train", ...])`` with tiny delays; writes 1 byte when stage() starts."""
    from ml_lifecycle.cli import main

    ticker = Ticker()
    ticker.max_delay = max_delay
    install_ticker(ticker)
    original_stage = Registry.stage

    def stage(self: Registry) -> Path:
        os.write(ready_fd, b"s")
        return original_stage(self)

    Registry.stage = stage  # type: ignore[method-assign]
    with open(os.devnull, "w") as sink:
        sys.stdout = sink
        code = main(["train", "--config", config, "--reason", "random kill"])
    os._exit(code)


def _start_cli_child(config: Path, max_delay: float) -> tuple[Any, int]:
    read_fd, write_fd = os.pipe()
    child = FORK.Process(target=_cli_child, args=(str(config), write_fd, max_delay))
    child.start()
    os.close(write_fd)
    return child, read_fd


def _wait_readable(fd: int, timeout: float) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


def test_random_sigkills_of_forked_cli_trainings(world: dict[str, Any]) -> None:
    raw, root = _fresh_registry(world, "random-forked")
    config = _write_config(raw, world["base"] / "random-forked.yaml")
    max_delay = 0.003  # per filesystem step: widens the write path to ~0.2 s

    # One uninterrupted run gives the run's and the write path's durations.
    started = time.monotonic()
    child, ready = _start_cli_child(config, max_delay)
    assert _wait_readable(ready, 120)
    write_started = time.monotonic()
    child.join(timeout=120)
    os.close(ready)
    assert child.exitcode == 0
    total, write_path = time.monotonic() - started, time.monotonic() - write_started
    versions_before = assert_registry_sound(root, world["probe"])["versions"]

    rng = random.Random(20260611)
    kills, completed, in_write_path = 0, 0, 0
    for iteration in range(24):
        child, ready = _start_cli_child(config, max_delay)
        if iteration % 2 == 0:  # anywhere in the run
            time.sleep(rng.uniform(0.0, 0.9 * total))
        else:  # inside the write path
            assert _wait_readable(ready, 120)
            time.sleep(rng.uniform(0.0, 0.8 * write_path))
            in_write_path += 1
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=60)
        os.close(ready)
        if child.exitcode == -signal.SIGKILL:
            kills += 1
        else:
            assert child.exitcode == 0
            completed += 1
        state = assert_registry_sound(root, world["probe"])
        assert state["versions"][: len(versions_before)] == versions_before  # nothing lost
        versions_before = state["versions"]

    # The next run after all that debris trains, registers the next number and promotes
    # (a run killed after reserving a number but before publishing its version skipped it).
    reserved = json.loads((root / ".version_counter").read_text())["last"]
    child, ready = _start_cli_child(config, 0.0)
    child.join(timeout=120)
    os.close(ready)
    assert child.exitcode == 0
    final = assert_registry_sound(root, world["probe"])
    assert final["versions"][-1] == reserved + 1 > max(versions_before)
    assert final["champion"] == reserved + 1
    print(f"\nrandom kills: {kills} killed ({in_write_path} aimed at the write path), "
          f"{completed} finished before the signal; run {total:.2f} s, write path "
          f"{write_path:.2f} s; versions now {final['versions']}")
    assert kills >= 12  # the rest finished first (a faster run than the measured one)


# ---------------------------------------------------------------------------- 3: python -m


SLOW_WRITE_PATH = f"""
import os, random, runpy, sys, time
from ml_lifecycle.registry import Registry
marker = os.environ["CRASH_TEST_MARKER"]
for name in {REGISTRY_PRIMITIVES!r}:
    original = getattr(Registry, name)
    def wrapper(self, *args, _original=original, **kwargs):
        time.sleep(random.random() * 0.01)
        return _original(self, *args, **kwargs)
    setattr(Registry, name, wrapper)
original_stage = Registry.stage
def stage(self):
    open(marker, "w").close()
    return original_stage(self)
Registry.stage = stage
sys.argv = ["python -m ml_lifecycle", *sys.argv[1:]]
runpy.run_module("ml_lifecycle", run_name="__main__", alter_sys=True)
"""


def test_random_sigkills_of_python_dash_m_train(world: dict[str, Any]) -> None:
    raw, root = _fresh_registry(world, "random-subprocess")
    config = _write_config(raw, world["base"] / "random-subprocess.yaml")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), "OMP_NUM_THREADS": "1"}
    rng = random.Random(7)
    kills = 0
    for iteration in range(4):
        marker = world["base"] / f"stage-{iteration}"
        env["CRASH_TEST_MARKER"] = str(marker)
        process = subprocess.Popen(
            [sys.executable, "-c", SLOW_WRITE_PATH, "train", "--config", str(config)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None:
            assert time.monotonic() < deadline, "the training never reached its write path"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))  # the write path now takes ~0.3-0.5 s
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
        assert "Traceback" not in stderr.decode()
        kills += process.returncode == -signal.SIGKILL
        assert_registry_sound(root, world["probe"])
    done = subprocess.run([sys.executable, "-m", "ml_lifecycle", "train", "--config",
                           str(config)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = assert_registry_sound(root, world["probe"])
    print(f"\npython -m ml_lifecycle train: {kills} of 4 killed in the write path; versions now "
          f"{final['versions']}, champion v{final['champion']}")
    assert kills >= 3
