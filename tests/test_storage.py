"""The storage layer: the same calls for a local path and a URL (the URL half runs against the
moto S3 server in ``test_object_store.py``; here the local half and the pure helpers)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ml_lifecycle import storage
from ml_lifecycle.errors import ConfigError, PathNotAllowedError


def test_a_write_replaces_the_file_whole_and_removes_dead_writers_temp_files(
        tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    storage.write_bytes(target, b"one")
    dead = target.parent / ".state.json.abc123.tmp"  # a writer killed mid-write, long ago
    dead.write_bytes(b"half")
    old = time.time() - storage.STALE_TEMP_SECONDS - 60
    os.utime(dead, (old, old))
    alive = target.parent / ".state.json.def456.tmp"  # a writer still at work
    alive.write_bytes(b"partial")
    other = target.parent / ".other.json.aaa.tmp"  # another file's writer: not ours to judge
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    storage.write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert not dead.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.startswith(".")) == \
        ["state.json"]


def test_local_conditional_writes_refuse_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert storage.read_versioned(path) == (None, None)
    assert storage.write_if_unchanged(path, b"a", None)
    assert not storage.write_if_unchanged(path, b"b", None)  # it exists now
    data, token = storage.read_versioned(path)
    assert data == b"a"
    storage.write_bytes(path, b"someone else")
    assert not storage.write_if_unchanged(path, b"c", token)
    assert path.read_bytes() == b"someone else"
    _, token = storage.read_versioned(path)
    with storage.exclusive(tmp_path / ".lock"):
        assert storage.write_if_unchanged(path, b"d", token)
    assert path.read_bytes() == b"d"


def test_listing_folders_and_globs(tmp_path: Path) -> None:
    assert storage.list_folder(tmp_path / "missing") == []
    (tmp_path / "b.csv").write_text("x")
    (tmp_path / "a.csv").write_text("x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in storage.list_folder(tmp_path)] == ["a.csv", "b.csv"]
    assert [p.name for p in storage.glob_files(tmp_path / "*.csv")] == ["a.csv", "b.csv"]
    assert storage.has_glob("x/*.csv") and not storage.has_glob("x/a.csv")
    assert storage.exists(tmp_path / "sub") and not storage.exists(tmp_path / "nope")


def test_lock_folders_refusals_and_confinement(tmp_path: Path) -> None:
    assert storage.lock_folder(tmp_path, ".run-locks") == tmp_path / ".run-locks"
    remote = storage.lock_folder("s3://bucket/reg", ".run-locks")
    assert remote != storage.lock_folder("s3://other/reg", ".run-locks")
    assert "ml-lifecycle-locks" in str(remote) and "s3:" not in str(remote)
    with pytest.raises(ConfigError, match=r"data\.path = s3://b/x"):
        storage.require_local({"data.path": "s3://b/x", "lifecycle.labels": str(tmp_path)},
                              "backtest")
    storage.require_local({"data.path": str(tmp_path)}, "backtest")
    inside = tmp_path / "root" / "a.csv"
    inside.parent.mkdir()
    inside.write_text("x")
    assert storage.confine(str(inside), [str(tmp_path / "root")]) == str(inside.resolve())
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(PathNotAllowedError, match="outside the allowed data roots"):
        storage.confine(str(tmp_path / "root" / "link" / "x.csv"), [str(tmp_path / "root")])
    assert storage.confine("s3://bucket/data/day.csv", ["s3://bucket/data"]) == \
        "s3://bucket/data/day.csv"
    with pytest.raises(PathNotAllowedError):
        storage.confine("s3://bucket/database/day.csv", ["s3://bucket/data"])
    with pytest.raises(PathNotAllowedError, match=r"'\.' or '\.\.'"):
        storage.confine("s3://bucket/data/../x.csv", ["s3://bucket/data"])
