"""Model registry on a plain folder: versions, model cards, champion alias, promotion history.

Layout (MLflow-registry-like, but only files)::

    <root>/
      versions/v0001/        a complete version: card.json + every staged file (model.joblib, ...)
      .staging/<id>/         versions being prepared (never listed; see ``cleanup_staging``)
      .staging/<id>.lock     liveness lock of a staging dir (flock held by the process staging it)
      champion.json          alias {"version", "promoted_at", "reason", "actor", "event", ...}
      history.jsonl          promotion history, one JSON event a line, rewritten atomically
      .version_counter       {"last": N}: highest version number ever allocated (never reused)
      .lock                  inter-process lock (fcntl.flock), holds the holder's pid/host

Guarantees:

* A version appears under ``versions/`` only by one atomic ``os.rename`` of a staging dir that
  already holds its ``card.json``; a crash therefore leaves either no version or a complete one.
  Folders without a valid ``card.json`` are never listed.
* ``card.json`` records the sha256 of every file of the version; ``load_model`` checks the model
  file's hash on the exact bytes it then unpickles (joblib is pickle: a tampered file is never
  loaded). Promotion events also record the card's own sha256, so a rewritten card of a version
  that was ever champion is detected too.
* Writers (register, promote, rollback, cleanup) serialise on ``fcntl.flock(<root>/.lock)``.
  ``history.jsonl`` is the source of truth of the champion: it is written (atomically) before
  ``champion.json``, and ``champion()`` follows the last history event, so a crash between the
  two writes cannot make them disagree for readers; the next locked write repairs the alias.

This class serves local paths and shared volumes (the lock relies on ``fcntl.flock``, which also
works on NFS mounts whose client emulates flock with byte-range locks). For an ``s3://`` root,
:func:`open_registry` returns an :class:`~ml_lifecycle.object_registry.ObjectStoreRegistry`
(same API, built on conditional writes instead of rename and locks).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ml_lifecycle.errors import RegistryError
from ml_lifecycle.io import atomic_write_json, atomic_write_text, sha256_file, to_jsonable
from ml_lifecycle.model_format import DEFAULT_FORMAT, format_of
from ml_lifecycle.model_format import dumps as dump_model
from ml_lifecycle.model_format import file_name as model_file_name
from ml_lifecycle.registry_base import (
    _UNSET,
    _VERSION_DIR_RE,
    CARD_FILE,
    CHAMPION_FILE,
    VERSIONS_DIR,
    _check_version_arg,
    _safe_relative_name,
    _utc_now,
    _version_name,
    _VersionReads,
)
from ml_lifecycle.signing import sign as sign_card
from ml_lifecycle.storage import atomic_file, fsync_dir

__all__ = ["DEFAULT_LOCK_TIMEOUT", "Registry", "open_registry"]

log = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 60.0
HISTORY_FILE = "history.jsonl"
COUNTER_FILE = ".version_counter"
LOCK_FILE = ".lock"
STAGING_DIR = ".staging"
_STAGING_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def open_registry(root: str | Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Any:
    """The registry at ``root``: a :class:`Registry` for a local path or shared volume, an
    :class:`~ml_lifecycle.object_registry.ObjectStoreRegistry` for an ``s3://`` URL."""
    from .storage import as_path, is_url

    if is_url(root):
        from .object_registry import ObjectStoreRegistry

        return ObjectStoreRegistry(str(root))
    return Registry(as_path(root), lock_timeout=lock_timeout)  # file:///x -> /x


class Registry(_VersionReads):
    """A model registry rooted at a local folder (see the module docstring for the layout).

    Constructing a ``Registry`` touches nothing on disk; folders are created on first write.
    """

    def __init__(self, root: str | Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        from .storage import is_url

        if is_url(root):
            raise RegistryError(
                f"Registry('{root}'): a URL root needs open_registry(), which returns the "
                "object-store registry; Registry() serves local paths only"
            )
        self.root = Path(root)
        self.lock_timeout = float(lock_timeout)
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._staging_fds: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # ------------------------------------------------------------------ filesystem primitives
    # All disk access goes through these methods (the seam for a future fsspec backend).

    def _path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _exists(self, path: Path) -> bool:
        return path.exists()

    def _is_dir(self, path: Path) -> bool:
        return path.is_dir() and not path.is_symlink()

    def _list_dir(self, path: Path) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []

    def _make_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)

    def _read_bytes(self, path: Path) -> bytes:
        return path.read_bytes()

    def _read_json(self, path: Path) -> Any:
        return json.loads(self._read_bytes(path).decode("utf-8"))

    def _write_json(self, path: Path, obj: Any) -> None:
        atomic_write_json(path, obj)

    def _write_text(self, path: Path, text: str) -> None:
        atomic_write_text(path, text)

    def _hash_file(self, path: Path) -> str:
        return sha256_file(path)

    def _sync_file(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _sync_dir(self, path: Path) -> None:
        fsync_dir(path)

    def _is_file(self, path: Path) -> bool:
        return path.is_file() and not path.is_symlink()

    def _write_model(self, target: Path, data: bytes) -> None:
        """Write to a temp name beside ``target``, fsync, then atomic rename."""
        with atomic_file(target, mode=0o644) as handle:  # readable, writable by the owner only
            handle.write(data)

    def _rename_dir(self, source: Path, target: Path) -> None:
        if target.exists():  # os.rename would silently replace an empty directory
            raise RegistryError(f"registry {self.root}: refusing to overwrite existing {target}")
        os.rename(source, target)

    def _remove_tree(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def _remove_file(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def _walk_files(self, directory: Path) -> list[tuple[str, Path]]:
        """All files below ``directory`` as (relative POSIX name, path), sorted by name."""
        found: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames.sort()
            for entry in [*dirnames, *filenames]:
                full = Path(dirpath, entry)
                if full.is_symlink():
                    raise RegistryError(
                        f"registry {self.root}: {full} is a symlink; staged artifacts must be "
                        "regular files"
                    )
            for filename in filenames:
                full = Path(dirpath, filename)
                found.append((full.relative_to(directory).as_posix(), full))
        return sorted(found)

    def _newest_mtime(self, path: Path) -> float:
        newest = path.stat().st_mtime
        for dirpath, dirnames, filenames in os.walk(path):
            for entry in [*dirnames, *filenames]:
                try:
                    newest = max(newest, Path(dirpath, entry).lstat().st_mtime)
                except FileNotFoundError:
                    continue
        return newest

    def _open_lock_fd(self, path: Path) -> int:
        self._make_dir(path.parent)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    # ------------------------------------------------------------------ locking

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the registry's inter-process lock (``fcntl.flock`` on ``<root>/.lock``).

        Re-entrant within one ``Registry`` object. Polls with ``LOCK_NB`` until ``timeout``
        seconds (default ``lock_timeout``), then raises ``RegistryError`` naming the holder.
        """
        wait = self.lock_timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + wait
        if not self._thread_lock.acquire(timeout=max(wait, 0.0)):
            raise RegistryError(
                f"registry lock at {self._path(LOCK_FILE)} held by another thread of this "
                f"process for more than {wait:g} s"
            )
        try:
            if self._lock_depth > 0:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            lock_path = self._path(LOCK_FILE)
            fd = self._open_lock_fd(lock_path)
            try:
                self._flock_with_deadline(fd, lock_path, deadline, wait)
                holder = f"pid={os.getpid()} host={socket.gethostname()} since={_utc_now()}\n"
                os.ftruncate(fd, 0)
                os.pwrite(fd, holder.encode("utf-8"), 0)
                self._lock_depth = 1
                try:
                    yield
                finally:
                    self._lock_depth = 0
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        finally:
            self._thread_lock.release()

    def _flock_with_deadline(self, fd: int, lock_path: Path, deadline: float, wait: float) -> None:
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    try:
                        holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
                    except OSError:
                        holder = ""
                    raise RegistryError(
                        f"registry lock at {lock_path} held by another process "
                        f"({holder or 'holder unknown'}) for more than {wait:g} s; expected it "
                        "to be released (is a training or promotion still running?)"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    # ------------------------------------------------------------------ staging and register

    def stage(self) -> Path:
        """Create and return a new empty staging dir under ``<root>/.staging``.

        The staging dir is on the same filesystem as ``versions/`` so ``register`` can publish it
        with one atomic rename. While this process lives, a flock on ``<id>.lock`` marks the dir
        as in use so ``cleanup_staging`` never removes it.
        """
        staging_root = self._path(STAGING_DIR)
        staging_id = uuid.uuid4().hex
        # Under the registry lock so cleanup_staging never sees the lock file before its flock.
        with self.lock():
            fd = self._open_lock_fd(staging_root / f"{staging_id}.lock")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new file: cannot be contended
            self._staging_fds[staging_id] = fd
            path = staging_root / staging_id
            self._make_dir(path)
        return path

    def save_model(self, staging: Path, model: Any, name: str | None = None,
                   fmt: str = DEFAULT_FORMAT) -> str:
        """Serialize ``model`` (:mod:`ml_lifecycle.model_format`, ``skops`` unless ``fmt`` is
        ``joblib``) into ``staging/name`` (default ``model.<fmt>``) atomically; return its
        sha256.

        Raises:
            ModelFormatError: the model does not fit the safe format (names the types).
        """
        staging = self._check_staging(staging)
        name = name or model_file_name(fmt)
        if not _safe_relative_name(name) or "/" in name or name == CARD_FILE:
            raise RegistryError(f"invalid model file name {name!r} (expected a plain file name)")
        target = staging / name
        self._write_model(target, dump_model(model, fmt))
        return self._hash_file(target)

    def discard(self, staging: Path) -> None:
        """Remove a staging dir that will not be registered (e.g. a failed training)."""
        staging = self._check_staging(staging)
        self._remove_tree(staging)
        self._release_staging(staging.name)

    def register(self, staging: Path, card: dict, *, model_file: str = "model.skops") -> int:
        """Publish ``staging`` as the next version; return its number.

        Hashes every staged file (``model_file`` must be one of them), then under the lock:
        allocates ``N`` (above every number ever used), writes ``card.json`` (with ``version``,
        ``created_at`` unless given, ``model_file`` and ``artifacts`` {name: sha256}) into the
        staging dir, and renames it to ``versions/vNNNN`` (atomic), fsyncing the parent.
        """
        staging = self._check_staging(staging)
        if not isinstance(card, dict):
            raise RegistryError(f"card must be a dict, got {type(card).__name__}")
        model_path = staging / model_file
        if not _safe_relative_name(model_file) or not self._is_file(model_path):
            raise RegistryError(
                f"registry {self.root}: model file {model_file!r} not found in staging dir "
                f"{staging}; expected save_model() to have written it"
            )
        artifacts: dict[str, str] = {}
        for name, path in self._walk_files(staging):
            if name == CARD_FILE:
                continue
            self._sync_file(path)
            artifacts[name] = self._hash_file(path)
        self._sync_dir(staging)

        with self.lock():
            if not self._is_dir(staging):
                raise RegistryError(
                    f"registry {self.root}: staging dir {staging} disappeared before registration"
                    " (removed by cleanup_staging or registered twice?)"
                )
            version = self._next_version()
            full_card = dict(card)
            full_card["version"] = version
            full_card.setdefault("created_at", _utc_now())
            full_card["model_file"] = model_file
            full_card.setdefault("model_format", format_of(model_file))
            full_card["artifacts"] = artifacts
            full_card = sign_card(full_card)  # HMAC over the hashes, when a key is set
            # Reserve the number first: a crash after this point only skips it.
            self._write_json(self._path(COUNTER_FILE), {"last": version})
            self._write_json(staging / CARD_FILE, full_card)
            self._sync_dir(staging)
            versions_dir = self._path(VERSIONS_DIR)
            self._make_dir(versions_dir)
            self._rename_dir(staging, versions_dir / _version_name(version))
            self._sync_dir(versions_dir)
            self._sync_dir(self._path(STAGING_DIR))
            self._release_staging(staging.name)
        log.info("registry %s: registered version %d", self.root, version)
        return version

    def _check_staging(self, staging: Path | str) -> Path:
        staging = Path(staging)
        staging_root = self._path(STAGING_DIR)
        try:
            inside = staging.resolve().parent == staging_root.resolve()
        except OSError:
            inside = False
        if not inside or not _STAGING_ID_RE.match(staging.name) or not self._is_dir(staging):
            raise RegistryError(
                f"registry {self.root}: {staging} is not a staging dir of this registry; "
                f"expected a folder returned by stage() under {staging_root}"
            )
        return staging_root / staging.name

    def _release_staging(self, staging_id: str) -> None:
        fd = self._staging_fds.pop(staging_id, None)
        self._remove_file(self._path(STAGING_DIR, f"{staging_id}.lock"))
        if fd is not None:
            os.close(fd)

    def _next_version(self) -> int:
        """Highest number ever used (any version folder, the counter, history) + 1."""
        used = [0]
        for entry in self._list_dir(self._path(VERSIONS_DIR)):
            match = _VERSION_DIR_RE.match(entry)
            if match:
                used.append(int(match.group(1)))
        counter_path = self._path(COUNTER_FILE)
        if self._exists(counter_path):
            try:
                last = self._read_json(counter_path).get("last")
            except (ValueError, AttributeError, OSError) as exc:
                raise RegistryError(
                    f"registry {self.root}: {counter_path} is unreadable ({exc}); expected "
                    '{"last": <int>}'
                ) from exc
            if isinstance(last, int):
                used.append(last)
        used.extend(e["version"] for e in self.history() if isinstance(e.get("version"), int))
        return max(used) + 1

    # ------------------------------------------------------------------ reading versions

    # Primitives of the shared version reads (_VersionReads).
    _noun = "file"

    def _version_numbers(self) -> list[int]:
        entries = self._list_dir(self._path(VERSIONS_DIR))
        return sorted(int(m.group(1)) for m in map(_VERSION_DIR_RE.match, entries) if m)

    def _version_bytes(self, version: int, name: str) -> bytes:
        return self._read_bytes(self._path(VERSIONS_DIR, _version_name(version), name))

    def _version_sha(self, version: int, name: str) -> str:
        return self._hash_file(self._path(VERSIONS_DIR, _version_name(version), name))

    def _version_path(self, version: int, name: str | None = None) -> Path:
        return self._path(VERSIONS_DIR, _version_name(version), *([name] if name else []))

    def local_copy(self, version: int, cache_dir: str | Path | None = None,
                   names: tuple[str, ...] | None = None) -> Path:
        """A local folder holding ``version``: here the version folder itself (callers check
        the hashes of the files they read, as the object-store registry's download does)."""
        return self.version_dir(version)

    # ------------------------------------------------------------------ champion and history

    def history(self) -> list[dict]:
        """All promotion events, oldest first."""
        path = self._path(HISTORY_FILE)
        try:
            text = self._read_bytes(path).decode("utf-8")
        except FileNotFoundError:
            return []
        events = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as exc:
                raise RegistryError(
                    f"registry {self.root}: {path} line {number} is not valid JSON ({exc}); "
                    "expected one event object per line"
                ) from exc
            if not isinstance(event, dict):
                raise RegistryError(
                    f"registry {self.root}: {path} line {number} is not a JSON object"
                )
            events.append(event)
        return events

    def champion(self) -> int | None:
        """The champion version, or ``None``.

        Follows the last history event (written before ``champion.json``); ``champion.json``
        alone is only used when there is no history (e.g. a hand-made registry).
        """
        events = self.history()
        if events and isinstance(events[-1].get("version"), int):
            return events[-1]["version"]
        path = self._path(CHAMPION_FILE)
        try:
            record = self._read_json(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RegistryError(f"registry {self.root}: {path} is not valid JSON ({exc})") from exc
        version = record.get("version") if isinstance(record, dict) else None
        if isinstance(version, int) and not isinstance(version, bool):
            return version
        return None

    def promote(
        self,
        version: int,
        *,
        reason: str = "",
        actor: str = "cli",
        expected_champion: int | object | None = _UNSET,
    ) -> dict:
        """Make ``version`` the champion; return the recorded event.

        Verifies the version first (a tampered version is refused). With ``expected_champion``
        given, it is a compare-and-swap: ``RegistryError`` if the champion is no longer that
        value (another retrain promoted in the meantime).
        """
        version = _check_version_arg(version)
        with self.lock():
            self.verify(version)
            current = self.champion()
            if expected_champion is not _UNSET and current != expected_champion:
                raise RegistryError(
                    f"registry {self.root}: refusing to promote version {version}: expected the "
                    f"champion to be {expected_champion}, found {current} (changed concurrently)"
                )
            return self._record_event("promote", version, current, reason, actor)

    def rollback(
        self,
        to_version: int | None = None,
        *,
        reason: str = "",
        actor: str = "cli",
        expected_champion: int | object | None = _UNSET,
    ) -> dict:
        """Make an earlier version the champion again; return the ``rollback`` event.

        ``to_version=None`` means the champion before the current one: history is replayed as
        a stack (promote pushes, rollback pops back to its target), so repeated rollbacks walk
        further back. ``RegistryError`` (champion unchanged) when there is nothing to roll back
        to.
        """
        with self.lock():
            events = self.history()
            current = self.champion()
            if expected_champion is not _UNSET and current != expected_champion:
                raise RegistryError(
                    f"registry {self.root}: refusing to roll back: expected the champion to be "
                    f"{expected_champion}, found {current} (changed concurrently)"
                )
            to_version = self._rollback_target(events, current, to_version)
            return self._record_event("rollback", to_version, current, reason, actor)

    def _record_event(
        self, kind: str, version: int, previous: int | None, reason: str, actor: str
    ) -> dict:
        """Append an event to history (atomic rewrite), then write ``champion.json``."""
        at = _utc_now()
        event = {
            "event": kind,
            "version": version,
            "previous": previous,
            "at": at,
            "reason": str(reason),
            "actor": str(actor),
            "card_sha256": self._version_sha(version, CARD_FILE),
        }
        events = [*self.history(), event]
        lines = [json.dumps(to_jsonable(e), sort_keys=True, allow_nan=False) for e in events]
        self._make_dir(self.root)
        self._write_text(self._path(HISTORY_FILE), "\n".join(lines) + "\n")
        self._write_alias(event)
        log.info("registry %s: %s version %s (previous %s)", self.root, kind, version, previous)
        return event

    def _write_alias(self, event: dict) -> None:
        self._write_json(
            self._path(CHAMPION_FILE),
            {
                "version": event["version"],
                "promoted_at": event["at"],
                "reason": event["reason"],
                "actor": event["actor"],
                "event": event["event"],
                "card_sha256": event.get("card_sha256"),
            },
        )

    def _repair_alias(self) -> None:
        """Under the lock: rewrite ``champion.json`` if it lags the last history event."""
        events = self.history()
        if not events:
            return
        try:
            record = self._read_json(self._path(CHAMPION_FILE))
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("version") != events[-1].get("version"):
            log.warning("registry %s: repairing %s from history", self.root, CHAMPION_FILE)
            self._write_alias(events[-1])

    # ------------------------------------------------------------------ housekeeping

    def cleanup_staging(self, older_than_seconds: float = 3600) -> list[str]:
        """Remove abandoned staging dirs; return the removed paths.

        A staging dir whose ``<id>.lock`` no live process holds is abandoned at once: ``stage()``
        creates and flocks that lock file under the registry lock, so a free one means its owner
        died (a crashed training is cleaned by the next run). A dir without a lock file (not made
        by ``stage()``) is abandoned when nothing in it changed for ``older_than_seconds``. Under
        the lock it also removes temp files left by an interrupted atomic write in the root and
        repairs a lagging ``champion.json``.
        """
        if not self._is_dir(self.root):
            return []
        staging_root = self._path(STAGING_DIR)
        removed: list[str] = []
        now = time.time()
        with self.lock():
            self._repair_alias()
            for entry in self._list_dir(self.root):
                # Every write in the root happens under the lock we hold: these are leftovers.
                if entry.startswith(".") and entry.endswith(".tmp"):
                    self._remove_file(self._path(entry))
            entries = self._list_dir(staging_root)
            for entry in entries:
                path = staging_root / entry
                staging_id = entry.removesuffix(".lock")
                if not _STAGING_ID_RE.match(staging_id) or staging_id in self._staging_fds:
                    continue  # foreign entry, or staged by this very object
                if entry.endswith(".lock"):
                    if staging_id not in entries and not self._in_use(path):
                        self._remove_file(path)  # left by a dead stage() or a published dir
                    continue
                lock_path = staging_root / f"{entry}.lock"
                if self._exists(lock_path):
                    if self._in_use(lock_path):
                        continue  # its owner is alive
                elif not self._abandoned(path, now, older_than_seconds):
                    continue
                self._remove_tree(path)
                self._remove_file(lock_path)
                removed.append(str(path))
            if removed:
                self._sync_dir(staging_root)
        if removed:
            log.info("registry %s: removed %d abandoned staging dirs", self.root, len(removed))
        return removed

    def _abandoned(self, path: Path, now: float, older_than_seconds: float) -> bool:
        if self._age(path, now) < older_than_seconds:
            return False
        return path.suffix != ".lock" or not self._in_use(path)

    def _age(self, path: Path, now: float) -> float:
        try:
            if self._is_dir(path):
                return now - self._newest_mtime(path)
            return now - path.lstat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _in_use(self, lock_path: Path) -> bool:
        """True when another process holds the staging liveness lock at ``lock_path``."""
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)
