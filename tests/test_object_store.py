"""Artifacts on S3-compatible storage: the object-store registry's protocol and the whole
lifecycle (train, score, drift check, retrain on labelled batches) with every folder an
``s3://`` URL, against a real S3 HTTP endpoint (moto's server, see ``s3server.py``).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from conftest import project_config_raw
from ml_lifecycle.config import apply_overrides, config_from_dict
from ml_lifecycle.errors import ConfigError, IntegrityError, RegistryError, StorageError
from ml_lifecycle.registry import Registry, open_registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3server import new_bucket, s3_server, s3fs_client

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    with s3_server() as env:
        yield env


@pytest.fixture
def bucket(s3: dict[str, str]) -> str:
    return new_bucket()


def _model(seed: int = 0) -> DummyClassifier:
    rng = np.random.default_rng(seed)
    return DummyClassifier(strategy="prior").fit(rng.normal(size=(8, 2)), [0, 1] * 4)


def _register(registry, name: str = "m", seed: int = 0) -> int:
    staging = registry.stage()
    registry.save_model(staging, _model(seed))
    (staging / "notes.json").write_text(json.dumps({"seed": seed}))
    return registry.register(staging, {"name": name})


def _objects(bucket: str) -> dict[str, str]:
    fs = s3fs_client()
    return {key: hashlib.sha256(fs.cat_file(key)).hexdigest() for key in fs.find(bucket)}


# --------------------------------------------------------------------------- the registry protocol


def test_register_list_load_and_verify_on_s3(bucket: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a URL mistaken for a relative path would land here
    registry = open_registry(f"s3://{bucket}/reg")
    assert type(registry).__name__ == "ObjectStoreRegistry"
    assert registry.list_versions() == [] and registry.champion() is None
    v1, v2 = _register(registry, seed=1), _register(registry, seed=2)
    assert (v1, v2) == (1, 2)
    cards = registry.list_versions()
    assert [c["version"] for c in cards] == [1, 2]
    fs = s3fs_client()
    for card in cards:  # the card records the sha256 of every uploaded object
        for name, digest in card["artifacts"].items():
            data = fs.cat_file(f"{bucket}/reg/versions/v{card['version']:04d}/{name}")
            assert hashlib.sha256(data).hexdigest() == digest
    assert json.loads(registry.read_artifact(2, "notes.json")) == {"seed": 2}
    registry.promote(1, expected_champion=None, reason="first")
    loaded = registry.load_model()
    assert isinstance(loaded, DummyClassifier)
    assert loaded.class_prior_.tolist() == [0.5, 0.5]
    only = registry.local_copy(2, cache_dir=tmp_path / "cache", names=("notes.json",))
    assert sorted(p.name for p in only.iterdir()) == ["card.json", "notes.json"]
    copy = registry.local_copy(2, cache_dir=tmp_path / "cache")
    assert copy == only and (copy / "model.skops").is_file()
    assert json.loads((copy / "notes.json").read_text()) == {"seed": 2}
    assert json.loads((copy / "card.json").read_text())["version"] == 2
    (copy / "notes.json").write_text("changed locally")  # a damaged cache is fetched again
    registry.local_copy(2, cache_dir=tmp_path / "cache")
    assert json.loads((copy / "notes.json").read_text()) == {"seed": 2}
    assert not (tmp_path / "s3:").exists()  # no local folder named after the URL


def test_the_download_cache_keeps_only_the_versions_still_listed(bucket: str,
                                                                  tmp_path: Path) -> None:
    registry = open_registry(f"s3://{bucket}/reg")
    v1, v2 = _register(registry, seed=1), _register(registry, seed=2)
    cache = tmp_path / "cache"
    first = registry.local_copy(v1, cache_dir=cache)
    registry.local_copy(v2, cache_dir=cache)
    assert first.is_dir()
    s3fs_client().rm(f"{bucket}/reg/versions/v0001", recursive=True)  # deleted from the store
    v3 = _register(registry, seed=3)
    third = registry.local_copy(v3, cache_dir=cache)
    kept = sorted(p.name.split("-")[1] for p in cache.iterdir())
    assert kept == ["v0002", "v0003"] and not first.exists() and third.is_dir()
    registry.local_copy(v3, cache_dir=cache)  # a cached version: no listing, nothing removed
    assert sorted(p.name.split("-")[1] for p in cache.iterdir()) == ["v0002", "v0003"]


def test_promote_is_a_compare_and_swap_and_rollback_walks_back(bucket: str) -> None:
    registry = open_registry(f"s3://{bucket}/reg")
    for seed in range(3):
        _register(registry, seed=seed)
    registry.promote(1, expected_champion=None)
    registry.promote(2, expected_champion=1)
    before = _objects(bucket)
    with pytest.raises(RegistryError, match="expected the champion to be 1, found 2"):
        registry.promote(3, expected_champion=1)
    assert _objects(bucket) == before  # a refused promotion writes nothing
    registry.promote(3, expected_champion=2)
    assert registry.rollback()["version"] == 2
    assert registry.rollback()["version"] == 1
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    events = registry.history()
    assert [(e["event"], e["version"]) for e in events] == [
        ("promote", 1), ("promote", 2), ("promote", 3), ("rollback", 2), ("rollback", 1)]
    alias = json.loads(s3fs_client().cat_file(f"{bucket}/reg/champion.json"))
    assert alias["version"] == 1 and alias["event"] == "rollback"
    # A second object on the same root sees the same state (no per-process caches of state).
    assert open_registry(f"s3://{bucket}/reg").champion() == 1


def test_tampered_objects_are_refused_and_nothing_else_changes(bucket: str) -> None:
    registry = open_registry(f"s3://{bucket}/reg")
    _register(registry, seed=1)
    _register(registry, seed=2)
    registry.promote(1)
    fs = s3fs_client()
    fs.pipe_file(f"{bucket}/reg/versions/v0002/model.skops", b"not a pickle")
    with pytest.raises(IntegrityError, match=r"model\.skops: expected sha256"):
        registry.verify(2)
    with pytest.raises(IntegrityError, match="failed its integrity check"):
        registry.load_model(2)
    with pytest.raises(IntegrityError):
        registry.promote(2)
    assert registry.champion() == 1
    # The champion's card is pinned by the sha256 recorded at promotion.
    card_key = f"{bucket}/reg/versions/v0001/card.json"
    card = json.loads(fs.cat_file(card_key))
    card["metrics"] = {"roc_auc": 0.99}
    fs.pipe_file(card_key, json.dumps(card).encode())
    with pytest.raises(IntegrityError, match=r"card\.json was modified"):
        registry.load_model()


def test_interrupted_upload_is_never_listed_and_is_cleaned_up(bucket: str) -> None:
    registry = open_registry(f"s3://{bucket}/reg")
    _register(registry, seed=1)
    # A writer killed after claiming v2 and uploading its model, before card.json:
    fs = s3fs_client()
    fs.pipe_file(f"{bucket}/reg/claims/v0002.json", b"{}")
    fs.pipe_file(f"{bucket}/reg/versions/v0002/model.skops", b"partial")
    assert [c["version"] for c in registry.list_versions()] == [1]
    with pytest.raises(RegistryError, match="unknown version 2"):
        registry.get_card(2)
    assert _register(registry, seed=3) == 3  # the claimed number is skipped, never reused
    assert registry.cleanup_staging(older_than_seconds=3600) == []  # maybe still uploading
    removed = registry.cleanup_staging(older_than_seconds=0)
    assert removed == [f"s3://{bucket}/reg/versions/v0002"]
    assert not fs.exists(f"{bucket}/reg/versions/v0002/model.skops")
    # A tombstone takes the card's place, so a writer that was only slow cannot commit v2 now.
    tomb = json.loads(fs.cat_file(f"{bucket}/reg/versions/v0002/card.json"))
    assert tomb["aborted"] is True
    assert [c["version"] for c in registry.list_versions()] == [1, 3]
    assert registry.cleanup_staging(older_than_seconds=0) == []  # nothing left to remove


def _race(args: tuple[str, int]) -> tuple[int, str]:
    """One process: register a version, then promote it if there is still no champion."""
    root, seed = args
    from ml_lifecycle.registry import open_registry

    registry = open_registry(root)
    version = _register(registry, seed=seed)
    try:
        registry.promote(version, expected_champion=None, actor=f"p{seed}")
        return version, "promoted"
    except RegistryError as exc:
        return version, str(exc)


def test_racing_processes_get_distinct_versions_and_exactly_one_promotion(bucket: str) -> None:
    root = f"s3://{bucket}/reg"
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter each: no shared clients
    with ctx.Pool(4) as pool:
        outcomes = pool.map(_race, [(root, seed) for seed in range(4)])
    versions = sorted(v for v, _ in outcomes)
    assert versions == [1, 2, 3, 4]
    winners = [v for v, what in outcomes if what == "promoted"]
    assert len(winners) == 1, outcomes
    assert all("changed concurrently" in what for _, what in outcomes if what != "promoted")
    registry = open_registry(root)
    assert registry.champion() == winners[0]
    assert len(registry.history()) == 1


def test_unwritable_root_gets_a_clear_error_and_writes_nothing(s3: dict[str, str],
                                                               tmp_path: Path,
                                                               monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    registry = open_registry("s3://no-such-bucket-here/reg")
    staging = registry.stage()
    registry.save_model(staging, _model())
    with pytest.raises(RegistryError) as info:
        registry.register(staging, {"name": "x"})
    message = str(info.value)
    assert "registry.root 's3://no-such-bucket-here/reg' is not writable" in message
    assert "AWS_ENDPOINT_URL_S3" in message
    assert list(tmp_path.iterdir()) == []  # no local folder named "s3:" appeared
    with pytest.raises(RegistryError, match="open_registry"):
        Registry("s3://bucket/reg")


@pytest.mark.parametrize("root, expected", [
    ("s3://", "names no bucket"),
    ("s3://bucket/../other", r"'\.\.' path segments"),
    ("gs://bucket/reg", "found scheme 'gs'"),
])
def test_registry_url_is_validated_in_the_config(root: str, expected: str) -> None:
    raw = {"task": "classification", "name": "x",
           "data": {"path": "x.csv", "target": "y", "features": {"numeric": ["a"]}},
           "registry": {"root": root}}
    with pytest.raises(ConfigError, match=expected):
        config_from_dict(raw)


# --------------------------------------------------------------------------- the whole lifecycle

START = "2026-03-01"
FAST = ["model.max_iter=60", "model.patience=5", "evaluation.bootstrap=20",
        "evaluation.importance_repeats=1", "gate.bootstrap=50", "quality.min_rows=100",
        # the shifted day must trigger (storage is under test, not the decision)
        "policy.trigger=drift"]


def test_lifecycle_with_every_folder_on_s3(s3: dict[str, str], tmp_path: Path,
                                           monkeypatch) -> None:
    from ml_lifecycle import lifecycle
    from ml_lifecycle.drift.check import run_drift_check
    from ml_lifecycle.drift.store import drift_history
    from ml_lifecycle.simulate import simulate
    from ml_lifecycle.train import run_training

    monkeypatch.chdir(tmp_path)  # a URL mistaken for a relative path would land here
    bucket = new_bucket()
    local = tmp_path / "sim"
    simulate(local, days=6, seed=3, start_date=START, initial_rows=1500, rows_per_day=300,
             label_delay_days=3, shift_day=4, concept_day=99)
    fs = s3fs_client()
    fs.put(str(local) + "/", f"{bucket}/data/", recursive=True)  # the team's data lives on S3
    base = f"s3://{bucket}"
    raw = apply_overrides(project_config_raw(), [
        *FAST, f"data.path={base}/data/train.csv", f"registry.root={base}/registry",
        f"lifecycle.batches={base}/data/batches", f"lifecycle.labels={base}/data/labels",
        f"lifecycle.predictions={base}/predictions", f"lifecycle.reports={base}/reports",
        f"data.data_roots=[{base}/data]"])
    cfg = config_from_dict(raw, source="demo.yaml", base=tmp_path)

    first = run_training(cfg, reason="initial", trigger={"as_of": "2026-02-28"})
    assert first["promoted"] and first["version"] == 1
    registry = open_registry(cfg.registry.root)
    card = registry.get_card(1)
    data_file = f"{base}/data/train.csv"
    assert card["data"]["files"] == {  # the model card hashes the S3 object it trained on
        data_file: hashlib.sha256((local / "train.csv").read_bytes()).hexdigest()}
    assert {"model.skops", "reference_profile.json", "split_assignment.parquet",
            "quality_report.json"} <= set(card["artifacts"])

    # Scoring every day writes <predictions>/<day>.csv objects.
    days = [f"2026-03-0{d}" for d in range(1, 7)]
    for day in days:
        scored = lifecycle.score_batch(cfg, day)
        assert scored["path"] == f"{base}/predictions/{day}.csv"
        assert scored["rows"] == 300 and scored["model_version"] == 1
    preds = pd.read_csv(f"{base}/predictions/2026-03-06.csv")
    assert list(preds.columns) == ["order_id", "score", "prediction", "model_version"]

    # The drift check of a shifted day reads the batch and the profile from S3 and stores its
    # result and report there (called as the drift-check DAG calls it: on the data clock).
    day = "2026-03-06"
    result = run_drift_check(cfg, batch_path=str(lifecycle.batch_path(cfg, day)), day=day,
                             labels=lifecycle.concept_pairs(cfg, day, champion=1) or None,
                             report_dir=cfg.lifecycle.reports,
                             registry=lifecycle.DataClockRegistry(registry),
                             now=lifecycle.day_end(day))
    assert result["data_drift"]["verdict"] == "drift"
    assert result["retrain"] is True
    for key in (f"{bucket}/registry/monitoring/days/{day}.json",
                f"{bucket}/registry/monitoring/reports/{day}.html",
                f"{bucket}/registry/monitoring/policy_state.json",
                f"{bucket}/reports/drift_{day}.html", f"{bucket}/reports/drift_{day}.json"):
        assert fs.exists(key), key
    stored = json.loads(fs.cat_file(f"{bucket}/registry/monitoring/days/{day}.json"))
    assert stored["verdict"] == result["verdict"] and stored["day"] == day
    assert [h["day"] for h in drift_history(cfg.registry.root)] == [day]

    # The UI plugin's data layer reads the same objects (models, a version's quality report, the
    # drift history and the stored HTML report of the day).
    sys.path.insert(0, str(PROJECT_ROOT / "plugins"))
    from ml_monitoring import source

    src = source.Source(cfg=cfg, registry=registry)
    assert [m["version"] for m in source.models_view(src)["versions"]] == [1]
    detail = source.version_view(src, 1)
    assert detail["quality_report"] and "error" not in detail["quality_report"]
    assert [d["day"] for d in source.drift_view(src)["days"]] == [day]
    assert "<html" in source.day_report(src, day).read_text().lower()

    # Retraining on the labelled batches listed from S3.
    window = lifecycle.training_window(cfg, day, window_days=5)
    assert window["pairs"] and all(b.startswith(f"{base}/data/batches/")
                                   for b, _ in window["pairs"])
    second = run_training(cfg, reason="drift", trigger={"as_of": day}, window=window)
    assert second["version"] == 2
    files = registry.get_card(2)["data"]["files"]
    assert set(files) >= {b for b, _ in window["pairs"]}
    assert registry.champion() == (2 if second["promoted"] else 1)
    assert not (tmp_path / "s3:").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim"]  # nothing else written here


def test_cli_reads_the_s3_settings_from_the_environment(s3: dict[str, str],
                                                        tmp_path: Path) -> None:
    import os

    from conftest import make_config_dict, make_table

    bucket = new_bucket()
    s3fs_client().pipe_file(f"{bucket}/train.csv", make_table().to_csv(index=False).encode())
    raw = make_config_dict(f"s3://{bucket}/train.csv", f"s3://{bucket}/registry")
    config = tmp_path / "cfg.json"  # JSON is YAML
    config.write_text(json.dumps(raw))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "ml_lifecycle", "train", "--config", str(config)],
                         env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    listing = subprocess.run(
        [sys.executable, "-m", "ml_lifecycle", "models", "list", "--registry",
         f"s3://{bucket}/registry"], env=env, capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0, listing.stderr[-3000:]
    assert "* v1 " in listing.stdout  # v1 is the champion
    # An unreachable endpoint: a clear message naming the URL and the settings, exit code 2.
    bad = {**env, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",  # nothing listens on port 9
           "AWS_MAX_ATTEMPTS": "1"}
    run = subprocess.run([sys.executable, "-m", "ml_lifecycle", "train", "--config", str(config)],
                         env=bad, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 2, run.stderr[-3000:]
    assert run.stderr.startswith("error: ")
    assert f"s3://{bucket}/registry" in run.stderr and "AWS_ENDPOINT_URL_S3" in run.stderr
    assert open_registry(f"s3://{bucket}/registry").champion() == 1  # nothing was lost


_WRITER = """
import os, signal, sys
import numpy as np
from sklearn.dummy import DummyClassifier
from ml_lifecycle.registry import open_registry

registry = open_registry(sys.argv[1])
kill_at, writes = int(sys.argv[2]), [0]
pipe_file = registry._fs.pipe_file

def dying_pipe_file(*args, **kwargs):  # every object write of the protocol is a kill point
    writes[0] += 1
    if writes[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return pipe_file(*args, **kwargs)

registry._fs.pipe_file = dying_pipe_file
for i in range(3):
    staging = registry.stage()
    registry.save_model(staging, DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1]))
    (staging / "blob.bin").write_bytes(np.random.default_rng(i).bytes(100_000))
    version = registry.register(staging, {"name": "kill"})
    registry.promote(version)
print("finished", writes[0], flush=True)
"""

# Writes of the protocol, in order: the write probe (2: a create, and a second create of the same
# key that the server must refuse; first register only), then per version: claim, model.skops,
# blob.bin, card.json, promotion log slot, champion.json alias (6).
KILL_POINTS = list(range(1, 15))


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_a_writer_killed_at_every_write_leaves_a_consistent_registry(s3: dict[str, str],
                                                                     kill_at: int) -> None:
    """SIGKILL a process that registers and promotes, at its k-th object write: afterwards every
    listed version verifies, the champion loads, every promotion names a listed version, an
    interrupted upload is never listed and is removed by cleanup, numbers are never reused."""
    import os

    bucket = new_bucket()
    root = f"s3://{bucket}/reg"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _WRITER, root, str(kill_at)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr[-2000:])
    registry = open_registry(root)
    listed = [c["version"] for c in registry.list_versions()]
    assert listed == list(range(1, len(listed) + 1)), listed
    for version in listed:
        registry.verify(version)
    if registry.champion() is not None:
        assert registry.champion() in listed
        registry.load_model()
    assert {e["version"] for e in registry.history()} <= set(listed)
    fs = s3fs_client()
    keys = fs.find(bucket)
    claimed = {k.rsplit("/", 1)[1].removesuffix(".json") for k in keys if "/claims/" in k}
    partial = sorted(claimed - {f"v{v:04d}" for v in listed})  # claimed, never committed
    removed = registry.cleanup_staging(older_than_seconds=0)
    assert sorted(url.rsplit("/", 1)[1] for url in removed) == partial
    assert not [k for k in fs.find(bucket) if any(f"/versions/{p}/" in k for p in partial)
                and not k.endswith("/card.json")]  # only the tombstones are left of them
    assert [c["version"] for c in registry.list_versions()] == listed
    new = _register(registry, seed=9)
    assert new > max(listed, default=0) and new not in listed
    print(f"kill at write {kill_at}: listed {listed}, champion {registry.champion()}, "
          f"partial uploads removed {partial}")


# --------------------------------------------------------------------------- failure modes


def _bump(args: tuple[str, str, int]) -> None:
    """One process: 5 read-decide-write updates of the policy state, each appending an entry."""
    root, name, count = args
    from ml_lifecycle.drift.policy import policy_transaction

    for i in range(count):
        for attempt in policy_transaction(root):
            with attempt:
                state = attempt.load()
                state.setdefault("finished", []).append({"by": name, "i": i})
                attempt.save(state)


def test_policy_state_updates_from_racing_processes_are_never_lost(bucket: str) -> None:
    """No lock on S3: each update is a conditional PUT on the ETag it read, retried on a
    conflict, so 4 processes x 5 updates leave exactly 20 entries."""
    from ml_lifecycle.drift.policy import load_policy_state

    root = f"s3://{bucket}/reg"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.map(_bump, [(root, f"p{n}", 5) for n in range(4)])
    entries = load_policy_state(root)["finished"]
    assert sorted((e["by"], e["i"]) for e in entries) == sorted(
        (f"p{n}", i) for n in range(4) for i in range(5))
    # Each process's own entries stay in its order (a retry re-reads, it never reorders).
    for n in range(4):
        assert [e["i"] for e in entries if e["by"] == f"p{n}"] == list(range(5))


def test_a_failed_read_is_an_error_not_an_empty_state(bucket: str, monkeypatch) -> None:
    """fsspec's is_file answers False on any error; a denied read must not look like "no
    policy state yet" (which a drift check would then save over the real one)."""
    from ml_lifecycle import storage
    from ml_lifecycle.drift.policy import load_policy_state, save_policy_state
    from ml_lifecycle.errors import StorageError

    root = f"s3://{bucket}/reg"
    save_policy_state(root, {"pending": {"trigger_id": "drift-2026-01-01"}})
    fs, _ = storage.filesystem(root)

    def denied(*args, **kwargs):
        raise PermissionError("AccessDenied")

    monkeypatch.setattr(fs, "info", denied)
    with pytest.raises(StorageError, match=r"AccessDenied.*AWS_ACCESS_KEY_ID"):
        load_policy_state(root)
    monkeypatch.undo()
    assert load_policy_state(root)["pending"]["trigger_id"] == "drift-2026-01-01"


def test_a_retried_put_that_had_succeeded_is_recognised(bucket: str, monkeypatch) -> None:
    """s3fs retries a PUT after a timeout; if the first try had landed, the retry gets 412.
    The registry reads the object back and recognises its own bytes."""
    registry = open_registry(f"s3://{bucket}/reg")
    _register(registry, seed=1)
    real = registry._fs.pipe_file

    def landed_then_412(path, data, *args, **kwargs):
        real(path, data, *args, **kwargs)
        if kwargs.get("mode") == "create":
            raise FileExistsError("At least one of the pre-conditions you specified did not hold")

    monkeypatch.setattr(registry._fs, "pipe_file", landed_then_412)
    assert _register(registry, seed=2) == 2
    registry.promote(2, expected_champion=None)
    monkeypatch.undo()
    assert registry.champion() == 2 and len(registry.history()) == 1


def test_a_server_that_ignores_conditional_writes_is_refused(s3: dict[str, str],
                                                             monkeypatch) -> None:
    bucket = new_bucket()
    registry = open_registry(f"s3://{bucket}/reg")
    real = registry._fs.pipe_file
    monkeypatch.setattr(registry._fs, "pipe_file",
                        lambda path, data, *a, mode="overwrite", **k: real(path, data, *a, **k))
    staging = registry.stage()
    registry.save_model(staging, _model())
    with pytest.raises(RegistryError, match="ignores If-None-Match"):
        registry.register(staging, {"name": "x"})
    monkeypatch.undo()
    assert [k for k in s3fs_client().find(bucket) if "/versions/" in k] == []


def test_cleanup_of_a_slow_upload_stops_its_writer_from_committing(bucket: str,
                                                                   monkeypatch) -> None:
    """A writer slower than cleanup's age limit: cleanup leaves a tombstone at card.json, so
    the writer's commit is refused instead of publishing a version whose files were removed."""
    root = f"s3://{bucket}/reg"
    writer, janitor = open_registry(root), open_registry(root)
    _register(writer, seed=1)
    real_put = writer._put
    calls = []

    def put_then_cleanup(key: str, data: bytes) -> None:
        real_put(key, data)
        if not calls:  # after the first uploaded file of v2, the janitor runs
            calls.append(janitor.cleanup_staging(older_than_seconds=0))

    monkeypatch.setattr(writer, "_put", put_then_cleanup)
    with pytest.raises(RegistryError, match="was written by someone else"):
        _register(writer, seed=2)
    assert calls == [[f"{root}/versions/v0002"]]
    assert [c["version"] for c in janitor.list_versions()] == [1]
    monkeypatch.undo()
    assert _register(writer, seed=3) == 3


def test_url_forms_are_normalised(s3: dict[str, str], tmp_path: Path) -> None:
    local = open_registry(f"file://{tmp_path}/reg")
    assert isinstance(local, Registry) and local.root == tmp_path / "reg"
    remote = open_registry("S3://Some-Bucket/reg")
    assert remote.root == "s3://Some-Bucket/reg"
    with pytest.raises(RegistryError, match="found scheme 'gs'"):
        open_registry("gs://bucket/reg")
    with pytest.raises(StorageError, match="does not exist"):
        open_registry("s3://no-such-bucket-here/reg").champion()


def test_backtest_refuses_urls_by_name(tmp_path: Path) -> None:
    from ml_lifecycle.backtest import run_backtest

    with pytest.raises(ConfigError, match=r"lifecycle\.batches = s3://bucket/batches"):
        run_backtest(str(PROJECT_ROOT / "configs" / "demo.yaml"),
                     overrides=["lifecycle.batches=s3://bucket/batches"],
                     work_dir=str(tmp_path / "work"))
    assert not (tmp_path / "work").exists()
