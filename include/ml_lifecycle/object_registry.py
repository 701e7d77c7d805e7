"""The model registry on an S3-compatible object store (``registry.root: s3://bucket/prefix``).

Same public API and guarantees as the folder registry (:class:`ml_lifecycle.registry.Registry`),
built on the two things every S3-compatible store offers instead of rename and file locks:
an object appears all at once when its PUT completes, and a PUT can be made conditional on the
key being absent (``If-None-Match: *``; AWS S3 since 2024, MinIO, Ceph RGW, moto).

Layout::

    <root>/
      claims/v0001.json      who took number 1 (created only-if-absent: one writer per number)
      versions/v0001/...     the version's files, uploaded first
      versions/v0001/card.json   written LAST: the commit marker; a version without it is not listed
      log/00000001.json      promotion events, an append-only log; each created only-if-absent,
                             so two promotions racing for the same slot cannot both win (CAS)
      champion.json          alias of the last event, for humans and other tools (never trusted)

Differences from the folder registry, on purpose:

* Staging is a local temporary folder (``stage()``); ``register`` uploads it. Nothing under
  ``versions/`` is ever written before its number is claimed.
* There is no registry-wide lock: version numbers are allocated by exclusive claims, and
  promotion is a compare-and-swap on the next log slot. ``expected_champion`` therefore keeps
  its meaning across machines without any lock server.
* A writer killed mid-upload leaves a claim and some objects without ``card.json``: never listed;
  ``cleanup_staging(older_than_seconds)`` removes them once older than that age (a live upload
  of a large model could otherwise be cut).
* Log objects are immutable, so they are cached in memory by name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import IntegrityError, RegistryError, StorageError
from .io import atomic_write_bytes, dumps_json, sha256_file, to_jsonable
from .model_format import DEFAULT_FORMAT, format_of
from .model_format import dumps as dump_model
from .model_format import file_name as model_file_name
from .registry_base import (
    _UNSET,
    _VERSION_DIR_RE,
    CARD_FILE,
    CHAMPION_FILE,
    VERSIONS_DIR,
    _check_version_arg,
    _safe_relative_name,
    _utc_now,
    _VersionReads,
)
from .signing import sign as sign_card
from .storage import (
    as_path,
    check_url,
    filesystem,
    is_conflict,
    join,
    probe_writable,
    store_errors,
)

__all__ = ["ObjectStoreRegistry"]

log = logging.getLogger(__name__)

CLAIMS_DIR = "claims"
LOG_DIR = "log"
_CLAIM_RE = re.compile(r"^v(\d{4,})\.json$")
_LOG_RE = re.compile(r"^(\d{8,})\.json$")
_MAX_ATTEMPTS = 1000


class ObjectStoreRegistry(_VersionReads):
    """A model registry under an ``s3://bucket/prefix`` URL (see the module docstring).

    Constructing it touches nothing remote; ``register`` checks once that the root is writable.
    """

    def __init__(self, root: str, **_: Any) -> None:
        try:
            self.root = check_url(str(root), "registry.root", registry=True)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        self._fs, self._base = filesystem(self.root)
        self._events: dict[str, dict] = {}
        self._staging: set[str] = set()
        self._probed = False
        self._bucket_checked = False

    def __repr__(self) -> str:
        return f"ObjectStoreRegistry({self.root!r})"

    # ------------------------------------------------------------------ object primitives

    def _key(self, *parts: str) -> str:
        return "/".join([self._base.rstrip("/"), *parts])

    def _url(self, *parts: str) -> str:
        return join(self.root, *parts)

    def _names(self, *parts: str) -> list[str]:
        try:
            with store_errors(f"registry {self.root}: listing", self._url(*parts)):
                entries = self._fs.ls(self._key(*parts), detail=False)
        except FileNotFoundError:
            self._check_bucket()
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def _check_bucket(self) -> None:
        """An empty listing is "nothing yet" only if the bucket exists (once per object)."""
        if self._bucket_checked:
            return
        bucket = self._base.split("/", 1)[0]
        with store_errors(f"registry {self.root}: checking the bucket", f"s3://{bucket}"):
            exists = self._fs.exists(bucket)
        if not exists:
            raise StorageError(
                f"registry {self.root}: the bucket '{bucket}' does not exist (or is not "
                "visible with these credentials); expected the bucket of registry.root to exist"
            )
        self._bucket_checked = True

    def _read(self, *parts: str) -> bytes:
        with store_errors(f"registry {self.root}: reading", self._url(*parts)):
            return self._fs.cat_file(self._key(*parts))

    def _put(self, key: str, data: bytes) -> None:
        with store_errors(f"registry {self.root}: writing", key):
            self._fs.pipe_file(key, data)

    def _create(self, key: str, data: bytes) -> bool:
        """PUT only if absent; False when another writer holds the key.

        A lost conditional write (412, 409 ConditionalRequestConflict) is read back: the client
        may have retried a PUT whose first try did succeed, so an object holding exactly our
        bytes (every payload carries a nonce, a timestamp or a claimed number) is ours.
        """
        try:
            with store_errors(f"registry {self.root}: writing", key):
                self._fs.pipe_file(key, data, mode="create")
            return True
        except (FileExistsError, StorageError) as exc:
            if not is_conflict(exc):
                raise
        try:
            with store_errors(f"registry {self.root}: reading", key):
                return self._fs.cat_file(key) == data
        except FileNotFoundError:
            return False  # a 409 race with nobody's object yet: the caller tries again

    def _probe(self) -> None:
        if not self._probed:
            probe_writable(self.root, "registry.root", conditional=True)
            self._probed = True

    @contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """No-op: writers coordinate with conditional writes, not a lock (API compatibility)."""
        yield

    # ------------------------------------------------------------------ staging and registering

    def stage(self) -> Path:
        """A new local staging folder; ``register`` uploads it, ``discard`` removes it."""
        path = Path(tempfile.mkdtemp(prefix="ml-lifecycle-staging-"))
        self._staging.add(str(path))
        return path

    def _check_staging(self, staging: Path | str) -> Path:
        path = Path(staging)
        if str(path) not in self._staging or not path.is_dir():
            raise RegistryError(
                f"registry {self.root}: {staging} is not a staging dir of this registry "
                "object; expected a folder returned by stage()"
            )
        return path

    def save_model(self, staging: Path, model: Any, name: str | None = None,
                   fmt: str = DEFAULT_FORMAT) -> str:
        """Serialize ``model`` (``skops`` unless ``fmt`` is ``joblib``) into ``staging/name``
        (default ``model.<fmt>``); return its sha256."""
        staging = self._check_staging(staging)
        name = name or model_file_name(fmt)
        if not name or "/" in name or name in (CARD_FILE, ".", ".."):
            raise RegistryError(f"invalid model file name {name!r} (expected a plain file name)")
        data = dump_model(model, fmt)
        atomic_write_bytes(staging / name, data)
        return hashlib.sha256(data).hexdigest()

    def discard(self, staging: Path) -> None:
        """Remove a staging folder that will not be registered."""
        staging = self._check_staging(staging)
        shutil.rmtree(staging, ignore_errors=True)
        self._staging.discard(str(staging))

    def register(self, staging: Path, card: dict, *, model_file: str = "model.skops") -> int:
        """Upload ``staging`` as the next version; return its number.

        Claims the number (create-only-if-absent), uploads every file, then writes ``card.json``
        with the sha256 of each (the commit marker).
        """
        staging = self._check_staging(staging)
        if not isinstance(card, dict):
            raise RegistryError(f"card must be a dict, got {type(card).__name__}")
        links = [p for p in staging.rglob("*") if p.is_symlink()]
        if links:
            raise RegistryError(
                f"registry {self.root}: staging dir {staging} holds symbolic links "
                f"{[str(p.relative_to(staging)) for p in links][:5]}; expected plain files"
            )
        files = sorted(
            (p.relative_to(staging).as_posix(), p) for p in staging.rglob("*") if p.is_file()
        )
        names = dict(files)
        if model_file not in names:
            raise RegistryError(
                f"registry {self.root}: model file {model_file!r} not found in staging dir "
                f"{staging}; expected save_model() to have written it"
            )
        self._probe()
        artifacts = {
            name: hashlib.sha256(path.read_bytes()).hexdigest()
            for name, path in files
            if name != CARD_FILE
        }
        version = self._claim_next()
        vname = f"v{version:04d}"
        for name, path in files:
            if name != CARD_FILE:
                self._put(self._key(VERSIONS_DIR, vname, name), path.read_bytes())
        full_card = dict(card)
        full_card["version"] = version
        full_card.setdefault("created_at", _utc_now())
        full_card["model_file"] = model_file
        full_card.setdefault("model_format", format_of(model_file))
        full_card["artifacts"] = artifacts
        full_card = sign_card(full_card)  # HMAC over the hashes, when a key is set
        card_bytes = (dumps_json(full_card) + "\n").encode("utf-8")
        card_key = self._key(VERSIONS_DIR, vname, CARD_FILE)
        for _ in range(5):
            if self._create(card_key, card_bytes):
                break
            if self._exists(card_key):  # cleanup's tombstone, or a foreign writer
                raise RegistryError(
                    f"registry {self.root}: {VERSIONS_DIR}/{vname}/{CARD_FILE} was written by "
                    "someone else while this process held the claim on that number (cleanup "
                    "aborts uploads older than its age limit); the version is not registered"
                )
            time.sleep(0.2)
        else:
            raise RegistryError(f"registry {self.root}: could not write {card_key}")
        shutil.rmtree(staging, ignore_errors=True)
        self._staging.discard(str(staging))
        log.info("registry %s: registered version %d", self.root, version)
        return version

    def _used_numbers(self) -> list[int]:
        used = [0]
        used += [int(m.group(1)) for m in map(_CLAIM_RE.match, self._names(CLAIMS_DIR)) if m]
        used += [int(m.group(1))
                 for m in map(_VERSION_DIR_RE.match, self._names(VERSIONS_DIR)) if m]
        used += [e["version"] for e in self.history() if isinstance(e.get("version"), int)]
        return used

    def _claim_next(self) -> int:
        candidate = max(self._used_numbers()) + 1
        claim = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "at": _utc_now(), "nonce": uuid.uuid4().hex}).encode("utf-8")
        for _ in range(_MAX_ATTEMPTS):
            if self._create(self._key(CLAIMS_DIR, f"v{candidate:04d}.json"), claim):
                return candidate
            candidate += 1  # another writer took it: the next one
        raise RegistryError(f"registry {self.root}: could not claim a version number")

    # ------------------------------------------------------------------ reading versions

    # Primitives of the shared version reads (registry_base._VersionReads).
    _noun = "object"
    _warn_skipped = False  # a version without card.json may be an upload in progress

    def _version_numbers(self) -> list[int]:
        return sorted(
            int(m.group(1)) for m in map(_VERSION_DIR_RE.match, self._names(VERSIONS_DIR)) if m
        )

    def _version_bytes(self, version: int, name: str) -> bytes:
        return self._read(VERSIONS_DIR, f"v{version:04d}", name)

    def _version_sha(self, version: int, name: str) -> str:
        return hashlib.sha256(self._version_bytes(version, name)).hexdigest()

    def _version_path(self, version: int, name: str | None = None) -> Any:
        return as_path(self._url(VERSIONS_DIR, f"v{version:04d}", *([name] if name else [])))

    def local_copy(self, version: int, cache_dir: str | Path | None = None,
                   names: tuple[str, ...] | None = None) -> Path:
        """Download ``version``'s files (all, or only ``names``) to a local folder; return it.

        Each file is checked against the card's sha256 before it is written (atomically) into a
        cache folder keyed by the root, the version and the card's hash (versions are
        immutable), so a later call reuses what is there and fetches only what is missing.
        When a version is cached for the first time, the cache folders of this registry's
        versions that are no longer listed (deleted from the store) are removed: the cache
        holds at most the versions the registry holds.
        """
        vname = f"v{version:04d}"
        card = self.get_card(version)
        card_bytes = self._read(VERSIONS_DIR, vname, CARD_FILE)
        digest = hashlib.sha256(card_bytes).hexdigest()
        expected_card = self._recorded_card_sha(version)
        if expected_card is not None and digest != expected_card:
            raise IntegrityError(
                f"registry {self.root}: version {version} {CARD_FILE} was modified: expected "
                f"sha256 {expected_card} (recorded at promotion), found {digest}"
            )
        wanted = sorted(card["artifacts"]) if names is None else [
            n for n in names if n in card["artifacts"]]
        base = Path(cache_dir or Path(tempfile.gettempdir()) / "ml-lifecycle-cache")
        root_key = hashlib.sha256(self.root.encode()).hexdigest()[:12]
        fresh = not (base / f"{root_key}-{vname}-{digest[:16]}").is_dir()
        target = _mkdirs(base / f"{root_key}-{vname}-{digest[:16]}")
        if fresh:
            self._prune_cache(base, root_key)
        for name in wanted:
            if not _safe_relative_name(name):
                raise IntegrityError(
                    f"registry {self.root}: version {version} card lists unsafe artifact name "
                    f"{name!r}; refusing to write it to {target}"
                )
            expected = card["artifacts"][name]
            local = target / name
            if local.is_file() and sha256_file(local) == expected:
                continue
            data = self._read(VERSIONS_DIR, vname, name)
            found = hashlib.sha256(data).hexdigest()
            if found != expected:
                raise IntegrityError(
                    f"registry {self.root}: {self._url(VERSIONS_DIR, vname, name)} failed its "
                    f"integrity check: expected sha256 {expected}, found {found}"
                )
            atomic_write_bytes(local, data)
        if not (target / CARD_FILE).is_file():
            atomic_write_bytes(target / CARD_FILE, card_bytes)
        return target

    def _prune_cache(self, base: Path, root_key: str) -> None:
        """Remove cached copies of versions the store no longer lists."""
        listed = {f"v{v:04d}" for v in self._version_numbers()}
        for folder in base.glob(f"{root_key}-v*-*"):
            if folder.is_dir() and folder.name.split("-")[1] not in listed:
                log.info("removing the cached copy %s: the registry no longer lists it", folder)
                shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------ champion and history

    def _log_names(self) -> list[str]:
        return [n for n in self._names(LOG_DIR) if _LOG_RE.match(n)]

    def history(self) -> list[dict]:
        """All promotion events, oldest first (the log objects in slot order)."""
        return self._history(self._log_names())

    def _history(self, names: list[str]) -> list[dict]:
        events = []
        for name in names:
            if name not in self._events:
                try:
                    event = json.loads(self._read(LOG_DIR, name))
                except ValueError as exc:
                    raise RegistryError(
                        f"registry {self.root}: {LOG_DIR}/{name} is not valid JSON ({exc}); "
                        "expected one event object"
                    ) from exc
                if not isinstance(event, dict):
                    raise RegistryError(
                        f"registry {self.root}: {LOG_DIR}/{name} is not a JSON object"
                    )
                self._events[name] = event
            events.append(dict(self._events[name]))
        return events

    def champion(self) -> int | None:
        """The champion version (the last log event's), or ``None``."""
        events = self.history()
        if events and isinstance(events[-1].get("version"), int):
            return events[-1]["version"]
        return None

    def promote(
        self, version: int, *, reason: str = "", actor: str = "cli",
        expected_champion: Any = _UNSET,
    ) -> dict:
        """Make ``version`` the champion; return the recorded event.

        With ``expected_champion`` given (``None`` = "no champion yet"), a compare-and-swap:
        ``RegistryError`` if the champion is no longer that value.
        """
        version = _check_version_arg(version)
        self.verify(version)
        return self._append("promote", lambda events, current: version, expected_champion,
                            reason, actor)

    def rollback(
        self, to_version: int | None = None, *, reason: str = "", actor: str = "cli",
        expected_champion: Any = _UNSET,
    ) -> dict:
        """Make an earlier version the champion again; return the ``rollback`` event."""

        def target(events: list[dict], current: int | None) -> int:
            return self._rollback_target(events, current, to_version)

        return self._append("rollback", target, expected_champion, reason, actor)

    def _append(self, kind: str, choose: Any, expected: Any, reason: str, actor: str) -> dict:
        """Write the next log slot only-if-absent; re-read and retry when another writer won."""
        for _ in range(_MAX_ATTEMPTS):
            names = self._log_names()
            events = self._history(names)
            current = events[-1].get("version") if events else None
            if expected is not _UNSET and current != expected:
                raise RegistryError(
                    f"registry {self.root}: refusing to {kind}: expected the champion to be "
                    f"{expected}, found {current} (changed concurrently)"
                )
            version = choose(events, current)
            slot = 1 + max((int(_LOG_RE.match(n).group(1)) for n in names), default=0)
            event = {
                "event": kind, "version": version, "previous": current, "at": _utc_now(),
                "reason": str(reason), "actor": str(actor),
                "card_sha256": self._version_sha(version, CARD_FILE),
                "nonce": uuid.uuid4().hex,
            }
            payload = json.dumps(to_jsonable(event), sort_keys=True, allow_nan=False)
            if self._create(self._key(LOG_DIR, f"{slot:08d}.json"), payload.encode("utf-8")):
                self._sync_alias(event)
                log.info("registry %s: %s version %s (previous %s)", self.root, kind,
                         version, current)
                return event
            time.sleep(0.05)  # lost the slot to another writer: re-read the log
        raise RegistryError(f"registry {self.root}: could not append to the promotion log")

    def _sync_alias(self, event: dict) -> None:
        """Write the alias, then re-read the log: a slower concurrent writer may have put an
        older event there after a newer promotion; the last event always wins."""
        for _ in range(5):
            self._write_alias(event)
            events = self.history()
            if not events or events[-1] == event or events[-1].get("version") == event.get(
                    "version"):
                return
            event = events[-1]

    def _write_alias(self, event: dict) -> None:
        alias = {
            "version": event["version"], "promoted_at": event["at"], "reason": event["reason"],
            "actor": event["actor"], "event": event["event"],
            "card_sha256": event.get("card_sha256"),
        }
        try:
            self._put(self._key(CHAMPION_FILE), (dumps_json(alias) + "\n").encode())
        except (OSError, StorageError) as exc:  # the log is the truth; the next write repairs
            log.warning("registry %s: could not write %s (%s)", self.root, CHAMPION_FILE, exc)

    # ------------------------------------------------------------------ housekeeping

    def cleanup_staging(self, older_than_seconds: float = 3600) -> list[str]:
        """Remove abandoned uploads (a claim without ``card.json``) older than the given age.

        Also repairs a ``champion.json`` that lags the log. Returns the removed URLs.
        """
        removed: list[str] = []
        events = self.history()
        if events:
            try:
                alias = json.loads(self._read(CHAMPION_FILE))
            except (OSError, ValueError):
                alias = None
            if not isinstance(alias, dict) or alias.get("version") != events[-1].get("version"):
                self._sync_alias(events[-1])
        now = time.time()
        claims = self._names(CLAIMS_DIR)
        with store_errors(f"registry {self.root}: listing", self._url(VERSIONS_DIR)):
            try:
                objects = set(self._fs.find(self._key(VERSIONS_DIR)))
            except FileNotFoundError:
                objects = set()
        for name in claims:
            match = _CLAIM_RE.match(name)
            if not match:
                continue
            vname = f"v{int(match.group(1)):04d}"
            if self._key(VERSIONS_DIR, vname, CARD_FILE) in objects:
                continue
            try:
                with store_errors(f"registry {self.root}: reading", self._url(CLAIMS_DIR, name)):
                    info = self._fs.info(self._key(CLAIMS_DIR, name))
            except FileNotFoundError:
                continue
            modified = info.get("LastModified") or info.get("mtime")
            stamp = (modified.timestamp() if hasattr(modified, "timestamp")
                     else float(modified or now))
            if now - stamp < older_than_seconds:
                continue  # possibly still uploading
            # A tombstone at card.json first: a writer that is merely slow, not dead, then fails
            # to commit (its only-if-absent card write is refused) instead of committing a
            # version whose files were just removed. Tombstones are never listed.
            tomb = json.dumps({"aborted": True, "at": _utc_now(), "by": "cleanup_staging",
                               "nonce": uuid.uuid4().hex}).encode("utf-8")
            if not self._create(self._key(VERSIONS_DIR, vname, CARD_FILE), tomb):
                continue  # the writer committed after all
            with store_errors(f"registry {self.root}: removing", self._url(VERSIONS_DIR, vname)):
                for key in sorted(k for k in objects
                                  if k.startswith(self._key(VERSIONS_DIR, vname) + "/")):
                    self._fs.rm_file(key)
            removed.append(self._url(VERSIONS_DIR, vname))
        removed_local = _cleanup_local_staging(older_than_seconds, now)
        if removed or removed_local:
            log.info("registry %s: removed %d abandoned uploads and %d local staging dirs",
                     self.root, len(removed), removed_local)
        return removed

    def _exists(self, key: str) -> bool:
        with store_errors(f"registry {self.root}: checking", key):
            return bool(self._fs.exists(key))


def _cleanup_local_staging(older_than_seconds: float, now: float) -> int:
    """Remove this machine's ``ml-lifecycle-staging-*`` temp dirs untouched for that long
    (``stage()`` is called after fitting, so a live staging dir is minutes old at most)."""
    count = 0
    for path in Path(tempfile.gettempdir()).glob("ml-lifecycle-staging-*"):
        try:
            newest = max([path.stat().st_mtime, *(p.lstat().st_mtime for p in path.rglob("*"))])
        except OSError:
            continue
        if now - newest >= max(older_than_seconds, 3600.0):
            shutil.rmtree(path, ignore_errors=True)
            count += 1
    return count


def _mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
