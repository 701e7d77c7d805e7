"""Tests of the folder model registry: versions, integrity, champion, history, lock, crashes."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ml_lifecycle.errors import IntegrityError, RegistryError
from ml_lifecycle.registry import Registry

FORK = mp.get_context("fork")


# ---------------------------------------------------------------------------- helpers


def _tiny_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(20, 3))
    target = (features[:, 0] + 0.5 * rng.normal(size=20) > 0).astype(int)
    target[:2] = [0, 1]  # both classes present whatever the seed
    return features, target


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    features, target = _tiny_data()
    return LogisticRegression().fit(features, target)


def _register(reg: Registry, model: Any, **card: Any) -> int:
    """Stage a model plus two side files the way the trainer does, and register it."""
    staging = reg.stage()
    reg.save_model(staging, model)
    (staging / "quality_report.json").write_text('{"passed": true}\n')
    (staging / "reference_profile").mkdir()
    (staging / "reference_profile" / "numeric.json").write_text('{"x0": [0, 1]}\n')
    return reg.register(staging, {"task": "classification", **card})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    position = len(data) // 2 if offset is None else offset
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def _assert_consistent(root: Path) -> list[int]:
    """Invariants that must hold after any crash; returns the listed versions."""
    reg = Registry(root)
    cards = reg.list_versions()
    listed = [card["version"] for card in cards]
    assert listed == sorted(set(listed))
    for version in listed:
        reg.verify(version)  # complete and intact
    versions_dir = root / "versions"
    on_disk = sorted(p.name for p in versions_dir.iterdir()) if versions_dir.exists() else []
    # rename is atomic: there is never a version folder that is not a complete version
    assert on_disk == [f"v{version:04d}" for version in listed]

    events = reg.history()
    champion = reg.champion()
    if events:
        assert champion == events[-1]["version"]
        assert champion in listed
        assert events[0]["previous"] is None
        for before, after in itertools.pairwise(events):
            assert after["previous"] == before["version"]
        features, _ = _tiny_data()
        assert reg.load_model().predict_proba(features).shape == (20, 2)
        alias_path = root / "champion.json"
        # history is written before champion.json: the alias may lag by one event only
        allowed = {champion} | ({events[-2]["version"]} if len(events) > 1 else set())
        if alias_path.exists():
            assert json.loads(alias_path.read_text())["version"] in allowed
        else:
            assert len(events) == 1
    else:
        assert champion is None

    reg.cleanup_staging(older_than_seconds=0)  # the dead writer's leftovers go away
    staging = root / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]
    if events:
        assert json.loads((root / "champion.json").read_text())["version"] == champion
    return listed


# ---------------------------------------------------------------------------- basics


def test_constructor_touches_nothing_and_empty_registry_reads(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    reg = Registry(root)
    assert not root.exists()
    assert reg.list_versions() == []
    assert reg.champion() is None
    assert reg.champion_card() is None
    assert reg.history() == []
    assert reg.cleanup_staging() == []
    assert not root.exists()
    with pytest.raises(RegistryError, match="no champion yet"):
        reg.load_model()
    with pytest.raises(RegistryError, match="unknown version 1"):
        reg.get_card(1)


def test_register_list_get_verify_and_load(tmp_path: Path, model: LogisticRegression) -> None:
    reg = Registry(tmp_path / "registry")
    staging = reg.stage()
    assert staging.parent == tmp_path / "registry" / ".staging" and list(staging.iterdir()) == []
    model_sha = reg.save_model(staging, model)
    assert model_sha == _sha(staging / "model.skops")
    (staging / "quality_report.json").write_text('{"passed": true}\n')
    before = datetime.now().astimezone()

    version = reg.register(staging, {"task": "classification", "version": 99, "threshold": 0.4})

    assert version == 1  # a caller's "version" is ignored
    assert not staging.exists()
    assert list((tmp_path / "registry" / ".staging").iterdir()) == []
    card = reg.get_card(1)
    assert (
        card["version"] == 1 and card["threshold"] == 0.4 and card["model_file"] == "model.skops"
    )
    created = datetime.fromisoformat(card["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= created <= datetime.now().astimezone()
    vdir = reg.version_dir(1)
    assert vdir == tmp_path / "registry" / "versions" / "v0001"
    assert card["artifacts"] == {
        "model.skops": model_sha,
        "quality_report.json": _sha(vdir / "quality_report.json"),
    }
    assert json.loads((vdir / "card.json").read_text()) == card
    assert reg.artifact_path(1, "quality_report.json") == vdir / "quality_report.json"
    with pytest.raises(RegistryError, match=r"no artifact 'nope\.txt'"):
        reg.artifact_path(1, "nope.txt")
    with pytest.raises(RegistryError, match="unknown version 2"):
        reg.version_dir(2)
    reg.verify(1)

    assert [c["version"] for c in reg.list_versions()] == [1]
    assert reg.list_versions()[0]["is_champion"] is False
    features, _ = _tiny_data()
    loaded = reg.load_model(1)
    np.testing.assert_allclose(loaded.predict_proba(features), model.predict_proba(features))


def test_register_records_nested_files_and_refuses_bad_staging(
    tmp_path: Path, model: LogisticRegression
) -> None:
    reg = Registry(tmp_path / "registry")
    version = _register(reg, model)
    assert set(reg.get_card(version)["artifacts"]) == {
        "model.skops",
        "quality_report.json",
        "reference_profile/numeric.json",
    }

    staging = reg.stage()
    (staging / "quality_report.json").write_text("{}")
    with pytest.raises(RegistryError, match=r"model file 'model\.skops' not found"):
        reg.register(staging, {})
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    (foreign / "model.skops").write_bytes(b"x")
    with pytest.raises(RegistryError, match="not a staging dir of this registry"):
        reg.register(foreign, {})
    assert [c["version"] for c in reg.list_versions()] == [1]


def test_version_numbers_increase_and_are_never_reused(
    tmp_path: Path, model: LogisticRegression
) -> None:
    root = tmp_path / "registry"
    reg = Registry(root)
    assert [_register(reg, model) for _ in range(3)] == [1, 2, 3]
    shutil.rmtree(root / "versions" / "v0003")  # the newest version is deleted by hand
    assert _register(reg, model) == 4
    (root / "versions" / "v0009").mkdir()  # half-copied folder, no card
    assert _register(reg, model) == 10
    assert [c["version"] for c in reg.list_versions()] == [1, 2, 4, 10]


def test_incomplete_folders_are_never_listed(tmp_path: Path, model: LogisticRegression) -> None:
    root = tmp_path / "registry"
    reg = Registry(root)
    _register(reg, model)
    # a staging dir that already has its card (crash just before the rename)
    staging = reg.stage()
    reg.save_model(staging, model)
    (staging / "card.json").write_text(json.dumps({"version": 2, "artifacts": {}}))
    # a half-renamed / half-copied version: files but no card
    half = root / "versions" / "v0005"
    half.mkdir()
    shutil.copy(root / "versions" / "v0001" / "model.skops", half)
    # a truncated card, and a card naming another version
    bad_json = root / "versions" / "v0006"
    bad_json.mkdir()
    (bad_json / "card.json").write_text('{"version": 6, "artif')
    wrong = root / "versions" / "v0007"
    shutil.copytree(root / "versions" / "v0001", wrong)
    (root / "versions" / "notes").mkdir()

    assert [c["version"] for c in reg.list_versions()] == [1]
    for version in (2, 5, 6, 7):
        with pytest.raises(RegistryError, match=f"unknown version {version}"):
            reg.get_card(version)
        with pytest.raises(RegistryError):
            reg.promote(version)
    assert _register(reg, model) == 8


# ---------------------------------------------------------------------------- integrity


def test_tampered_model_is_never_unpickled(
    tmp_path: Path, model: LogisticRegression, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = Registry(tmp_path / "registry")
    _register(reg, model)
    reg.promote(1)
    path = reg.artifact_path(1, "model.skops")
    expected = reg.get_card(1)["artifacts"]["model.skops"]
    _flip_byte(path)
    found = _sha(path)

    def _must_not_load(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("a tampered model file was deserialized")

    import skops.io

    monkeypatch.setattr(joblib, "load", _must_not_load)
    monkeypatch.setattr(skops.io, "loads", _must_not_load)
    monkeypatch.setattr(skops.io, "get_untrusted_types", _must_not_load)
    for version in (1, None):
        with pytest.raises(IntegrityError) as info:
            reg.load_model(version)
        message = str(info.value)
        assert "model.skops" in message and expected in message and found in message
        assert info.value.exit_code == 5
    with pytest.raises(IntegrityError, match=rf"model\.skops: expected sha256 {expected}"):
        reg.verify(1)
    with pytest.raises(IntegrityError):
        reg.promote(1)
    assert len(reg.history()) == 1


def test_missing_artifact_and_rewritten_card_are_detected(
    tmp_path: Path, model: LogisticRegression
) -> None:
    reg = Registry(tmp_path / "registry")
    _register(reg, model)
    _register(reg, model)
    reg.promote(2)

    (reg.version_dir(1) / "quality_report.json").unlink()
    with pytest.raises(
        IntegrityError, match=r"quality_report\.json: expected sha256 \w+, found: file missing"
    ):
        reg.verify(1)

    # tampering model AND card together: caught by the card hash recorded at promotion
    vdir = reg.version_dir(2)
    _flip_byte(vdir / "model.skops")
    card = json.loads((vdir / "card.json").read_text())
    card["artifacts"]["model.skops"] = _sha(vdir / "model.skops")
    (vdir / "card.json").write_text(json.dumps(card))
    with pytest.raises(IntegrityError, match=r"card\.json was modified"):
        reg.load_model()
    with pytest.raises(IntegrityError, match=r"card\.json: expected sha256"):
        reg.verify(2)


# ---------------------------------------------------------------------------- champion


def test_promote_rollback_and_history_are_consistent(
    tmp_path: Path, model: LogisticRegression
) -> None:
    root = tmp_path / "registry"
    reg = Registry(root)
    for _ in range(3):
        _register(reg, model)
    for version in (1, 2, 3):
        event = reg.promote(version, reason=f"retrain {version}", actor="test")
        assert event["event"] == "promote" and event["version"] == version
        assert event["previous"] == (version - 1 or None)
    assert reg.champion() == 3 and reg.champion_card()["version"] == 3
    alias = json.loads((root / "champion.json").read_text())
    assert alias["version"] == 3 and alias["reason"] == "retrain 3" and alias["actor"] == "test"
    datetime.fromisoformat(alias["promoted_at"])
    assert [c["is_champion"] for c in reg.list_versions()] == [False, False, True]

    first = reg.rollback(reason="bad 3")
    assert (first["event"], first["version"], first["previous"]) == ("rollback", 2, 3)
    second = reg.rollback()
    assert (second["version"], second["previous"]) == (1, 2)  # walks further back
    assert reg.champion() == 1
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        reg.rollback()
    explicit = reg.rollback(to_version=3, reason="3 was fine after all")
    assert (explicit["version"], explicit["previous"]) == (3, 1)
    with pytest.raises(RegistryError, match="already the champion"):
        reg.rollback(to_version=3)

    history = reg.history()
    assert [(e["event"], e["version"], e["previous"]) for e in history] == [
        ("promote", 1, None),
        ("promote", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
        ("rollback", 1, 2),
        ("rollback", 3, 1),
    ]
    assert history[3]["reason"] == "bad 3" and history[0]["actor"] == "test"
    lines = (root / "history.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == history
    assert json.loads((root / "champion.json").read_text())["version"] == history[-1]["version"]


def test_rollback_with_nothing_to_roll_back_leaves_champion_unchanged(
    tmp_path: Path, model: LogisticRegression
) -> None:
    root = tmp_path / "registry"
    reg = Registry(root)
    _register(reg, model)
    with pytest.raises(RegistryError, match="no champion yet"):
        reg.rollback()
    assert not (root / "champion.json").exists() and reg.history() == []

    reg.promote(1)
    alias_before = (root / "champion.json").read_bytes()
    with pytest.raises(RegistryError, match="nothing to roll back to: version 1 is the first"):
        reg.rollback()
    with pytest.raises(RegistryError, match="unknown version 7"):
        reg.rollback(to_version=7)
    assert reg.champion() == 1
    assert (root / "champion.json").read_bytes() == alias_before
    assert len(reg.history()) == 1


def test_compare_and_swap_promote_refuses_a_stale_expectation(
    tmp_path: Path, model: LogisticRegression
) -> None:
    reg = Registry(tmp_path / "registry")
    for _ in range(3):
        _register(reg, model)
    reg.promote(1, expected_champion=None)
    with pytest.raises(RegistryError, match="expected the champion to be None, found 1"):
        reg.promote(2, expected_champion=None)
    assert reg.champion() == 1 and len(reg.history()) == 1
    reg.promote(2, expected_champion=1)
    with pytest.raises(RegistryError, match="expected the champion to be 1, found 2"):
        reg.promote(3, expected_champion=1)
    assert reg.champion() == 2 and len(reg.history()) == 2


# ---------------------------------------------------------------------------- lock and staging


def test_lock_times_out_naming_the_holder_and_is_reentrant(
    tmp_path: Path, model: LogisticRegression
) -> None:
    root = tmp_path / "registry"
    holder = Registry(root)
    _register(holder, model)
    waiter = Registry(root, lock_timeout=0.2)
    with holder.lock():
        holder.promote(1)  # re-entrant for the holder
        started = time.monotonic()
        with pytest.raises(RegistryError, match="held by another process") as info:
            waiter.promote(1)
        assert 0.15 < time.monotonic() - started < 5
        assert str(root / ".lock") in str(info.value) and f"pid={os.getpid()}" in str(info.value)
    waiter.promote(1)
    assert len(waiter.history()) == 2


def test_cleanup_staging_removes_only_abandoned_dirs(
    tmp_path: Path, model: LogisticRegression
) -> None:
    root = tmp_path / "registry"
    reg = Registry(root)
    mine = reg.stage()
    other = Registry(root).stage()  # still held by a live owner
    abandoned = root / ".staging" / ("a" * 32)
    abandoned.mkdir()
    (abandoned / "model.skops").write_bytes(b"partial")
    old = time.time() - 7200
    for path in (abandoned / "model.skops", abandoned):
        os.utime(path, (old, old))
    recent = root / ".staging" / ("b" * 32)
    recent.mkdir()
    (root / ".staging" / "README").write_text("not ours")

    assert reg.cleanup_staging(older_than_seconds=3600) == [str(abandoned)]
    assert mine.exists() and other.exists() and recent.exists()
    assert reg.cleanup_staging(older_than_seconds=0) == [str(recent)]
    assert mine.exists() and other.exists() and (root / ".staging" / "README").exists()
    reg.save_model(mine, model)
    assert reg.register(mine, {}) == 1


# ---------------------------------------------------------------------------- concurrency


def _register_and_promote(root: str, model: Any, barrier: Any, queue: Any, cas: bool) -> None:
    reg = Registry(root)
    barrier.wait(timeout=30)
    version = _register(reg, model, worker=os.getpid())
    if not cas:
        reg.promote(version, reason=f"worker {os.getpid()}")
    else:
        while True:  # the retry loop a retrain does around a compare-and-swap promote
            try:
                reg.promote(version, expected_champion=reg.champion())
                break
            except RegistryError:
                time.sleep(random.random() * 0.01)
    queue.put(version)


@pytest.mark.parametrize("cas", [False, True], ids=["plain", "compare-and-swap"])
def test_concurrent_register_and_promote(
    tmp_path: Path, model: LogisticRegression, cas: bool
) -> None:
    root = tmp_path / "registry"
    workers = 6
    barrier = FORK.Barrier(workers)
    queue = FORK.Queue()
    processes = [
        FORK.Process(target=_register_and_promote, args=(str(root), model, barrier, queue, cas))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:  # results are tiny: joining before reading cannot deadlock
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * workers
    versions = [queue.get(timeout=5) for _ in range(workers)]

    assert sorted(versions) == list(range(1, workers + 1))
    reg = Registry(root)
    assert [c["version"] for c in reg.list_versions()] == sorted(versions)
    history = reg.history()
    assert len(history) == workers and all(e["event"] == "promote" for e in history)
    assert sorted(e["version"] for e in history) == sorted(versions)
    alias = json.loads((root / "champion.json").read_text())
    assert alias["version"] == history[-1]["version"] == reg.champion()
    _assert_consistent(root)  # includes the previous-chain check: promotions were serialised


# ---------------------------------------------------------------------------- crash safety

_PRIMITIVES = (
    "_make_dir",
    "_read_bytes",
    "_write_json",
    "_write_text",
    "_hash_file",
    "_sync_file",
    "_sync_dir",
    "_rename_dir",
    "_remove_file",
    "_remove_tree",
    "_open_lock_fd",
    "_is_file",
    "_write_model",
)


class _InstrumentedRegistry(Registry):
    """A registry whose filesystem primitives call ``_before_io`` first."""

    def _before_io(self) -> None:
        """Hook run before every filesystem primitive."""


def _instrument(name: str) -> None:
    def wrapper(self: _InstrumentedRegistry, *args: Any, **kwargs: Any) -> Any:
        self._before_io()
        return getattr(Registry, name)(self, *args, **kwargs)

    setattr(_InstrumentedRegistry, name, wrapper)


for _name in _PRIMITIVES:
    _instrument(_name)


class _KillAtRegistry(_InstrumentedRegistry):
    """SIGKILLs its own process just before its ``kill_at``-th filesystem primitive."""

    def __init__(self, root: str, kill_at: int) -> None:
        super().__init__(root)
        self.kill_at = kill_at
        self.calls = 0

    def _before_io(self) -> None:
        if self.calls == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self.calls += 1


class _SlowRegistry(_InstrumentedRegistry):
    """Sleeps a little before every primitive so a random kill lands anywhere."""

    def _before_io(self) -> None:
        time.sleep(random.random() * 0.003)


def _one_lifecycle_step(reg: Registry, model: Any) -> None:
    reg.cleanup_staging(older_than_seconds=3600)
    version = _register(reg, model)
    reg.promote(version, reason="crash test")
    if version % 3 == 0:
        reg.rollback(reason="crash test")


def _crash_child(root: str, model: Any, kill_at: int) -> None:
    _one_lifecycle_step(_KillAtRegistry(root, kill_at), model)


def _endless_child(root: str, model: Any, seed: int) -> None:
    random.seed(seed)
    reg = _SlowRegistry(root)
    while True:
        _one_lifecycle_step(reg, model)


def test_crash_at_every_filesystem_step_leaves_a_consistent_registry(
    tmp_path: Path, model: LogisticRegression
) -> None:
    root = tmp_path / "registry"
    _one_lifecycle_step(Registry(root), model)  # start from a registry with a champion
    for kill_at in range(500):
        child = FORK.Process(target=_crash_child, args=(str(root), model, kill_at))
        child.start()
        child.join(timeout=30)
        _assert_consistent(root)
        if child.exitcode == 0:
            break  # kill_at is past the last primitive: every crash point was exercised
        assert child.exitcode == -signal.SIGKILL
    else:
        pytest.fail("the child never completed a lifecycle step")
    assert kill_at > 20  # the step really goes through many filesystem calls


def test_random_sigkill_during_register_and_promote(
    tmp_path: Path, model: LogisticRegression
) -> None:
    root = tmp_path / "registry"
    rng = random.Random(20240611)
    for iteration in range(12):
        child = FORK.Process(target=_endless_child, args=(str(root), model, iteration))
        child.start()
        time.sleep(rng.uniform(0.02, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGKILL
        _assert_consistent(root)
    assert Registry(root).list_versions()  # the children did get work done between kills
