"""Where artifacts live: a local (or shared-volume) path, or an fsspec URL such as ``s3://``.

This module is the one place that knows the difference. Every other module reads, lists,
writes and locks through it, with the same calls for both:

* :func:`as_path`: a local path becomes a :class:`pathlib.Path`, a URL a :class:`upath.UPath`
  backed by fsspec, so the same ``/``, ``name``, ``read_bytes`` code serves both;
* :func:`write_bytes`: a local file is replaced atomically (temp name in the same folder, fsync,
  rename; temp files a killed writer left behind are removed by the next write to that folder),
  an object is written with one PUT (an object store shows the old or the new object, never
  half of one); :func:`open_read`, :func:`is_file`, :func:`is_dir`, :func:`exists`;
* :func:`list_folder` and :func:`glob_files`: the files of a folder or prefix (one listing);
* read-decide-write without lost updates: :func:`exclusive` (a file lock on a local path, nothing
  on an object store), then :func:`read_versioned` and :func:`write_if_unchanged` (a conditional
  PUT on the object's ETag; locally a check of the content under the lock);
* :func:`lock_folder` (where a process keeps its file locks about a location),
  :func:`require_local` (a command that only works on local files names the URLs it refuses),
  :func:`confine` (is a path inside the allowed roots).

Credentials and endpoints never live in the lifecycle config: they come from the environment the
S3 client already reads (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_S3`` for MinIO/Ceph/other S3-compatible servers, or an instance role), or
fsspec's own ``FSSPEC_S3_*`` variables.

Pitfall avoided here: s3fs caches directory listings per process by default, so a worker would
not see a version another worker registered a second ago. Filesystems are created with
``use_listings_cache=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigError, MLLifecycleError, PathNotAllowedError, RegistryError, StorageError

__all__ = [
    "REGISTRY_SCHEMES",
    "as_path",
    "atomic_file",
    "check_url",
    "confine",
    "errors_named",
    "exclusive",
    "exists",
    "filesystem",
    "fsync_dir",
    "glob_files",
    "has_glob",
    "is_conflict",
    "is_dir",
    "is_file",
    "is_remote",
    "is_url",
    "join",
    "list_folder",
    "lock_folder",
    "open_read",
    "probe_writable",
    "read_versioned",
    "read_with_token",
    "require_local",
    "store_errors",
    "write_bytes",
    "write_if_unchanged",
]

#: Protocols the registry supports: its commit protocol needs "create only if absent" writes
#: (S3 ``If-None-Match: *``), which s3fs implements (AWS S3, MinIO, Ceph RGW, moto).
REGISTRY_SCHEMES = ("s3", "s3a")

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")
_FS_OPTIONS = {"use_listings_cache": False}


def is_url(value: str | os.PathLike[str] | Any) -> bool:
    """True for ``scheme://...`` values other than ``file://``."""
    if is_remote(value):
        return True
    text = str(value)
    match = _URL.match(text)
    return bool(match) and match.group("scheme").lower() not in ("file", "local")


def is_remote(value: Any) -> bool:
    """True for a :class:`upath.UPath` on a non-local filesystem."""
    protocol = getattr(value, "protocol", None)
    return isinstance(protocol, str) and protocol not in ("", "file", "local")


def check_url(url: str, setting: str, *, registry: bool = False) -> str:
    """Validate an artifact URL's shape; return it without a trailing slash.

    Raises:
        ValueError: naming ``setting``, the value and what was expected.
    """
    match = _URL.match(url)
    if not match:
        raise ValueError(f"{setting} '{url}': expected scheme://bucket/prefix")
    scheme, rest = match.group("scheme").lower(), match.group("rest").rstrip("/")
    if registry and scheme not in REGISTRY_SCHEMES:
        raise ValueError(
            f"{setting} '{url}': the registry supports local paths and "
            f"{', '.join(s + '://' for s in REGISTRY_SCHEMES)} URLs (its commit protocol needs "
            f"create-only-if-absent writes); found scheme '{scheme}'"
        )
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise ValueError(
            f"{setting} '{url}': the URL names no bucket; expected {scheme}://bucket/prefix"
        )
    parts = rest.split("/")
    if any(p in (".", "..") for p in parts) or any(p == "" for p in parts[1:]):
        raise ValueError(
            f"{setting} '{url}': empty, '.' or '..' path segments are not allowed in a URL"
        )
    return f"{scheme}://{rest}"


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """Join path parts onto a local path or URL (``s3://b/p`` + ``x`` -> ``s3://b/p/x``)."""
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


def as_path(value: str | os.PathLike[str] | Any) -> Any:
    """A local :class:`~pathlib.Path`, or an fsspec-backed :class:`upath.UPath` for URLs."""
    if is_remote(value):
        return value
    text = str(value)
    if text.lower().startswith("file://"):
        return Path(text[len("file://"):])
    if not is_url(text):
        return Path(text)
    from upath import UPath

    scheme, rest = text.split("://", 1)
    return UPath(f"{scheme.lower()}://{rest}", **_FS_OPTIONS)


def is_file(path: Any) -> bool:
    """``path.is_file()``, except that for a URL only "not found" means False.

    ``UPath.is_file`` answers False on *any* error (timeout, 503, AccessDenied): a missing
    permission would then look like a missing batch or an empty policy state. Here such errors
    raise :class:`StorageError` naming the URL.
    """
    if not is_url(path):
        return Path(path).is_file()
    url = str(path)
    fs, inner = filesystem(url)
    with store_errors("checking", url):
        try:
            return fs.info(inner).get("type") == "file"
        except FileNotFoundError:
            return False


def is_dir(path: Any) -> bool:
    """``path.is_dir()`` with the error handling of :func:`is_file` for URLs."""
    if not is_url(path):
        return Path(path).is_dir()
    url = str(path)
    fs, inner = filesystem(url)
    with store_errors("checking", url):
        try:
            return fs.isdir(inner) if fs.exists(inner) else False
        except FileNotFoundError:
            return False


def read_with_token(url: str) -> tuple[bytes | None, str | None]:
    """``(bytes, etag)`` of an object, ``(None, None)`` when it does not exist.

    The tag is read *before* the bytes, so it is never newer than them: a conditional write
    with it (:func:`write_if_unchanged`) fails whenever the object changed after that point.
    """
    fs, inner = filesystem(url)
    with store_errors("reading", url):
        try:
            etag = fs.info(inner).get("ETag")
            return fs.cat_file(inner), etag
        except FileNotFoundError:
            return None, None


def read_versioned(path: Any) -> tuple[bytes | None, str | None]:
    """``(bytes, token)`` of a file or object, ``(None, None)`` when it does not exist; the
    token is what :func:`write_if_unchanged` compares (an object's ETag, a local file's
    sha256)."""
    if is_url(path):
        return read_with_token(str(path))
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, None
    return data, hashlib.sha256(data).hexdigest()


def is_conflict(exc: BaseException | None) -> bool:
    """True for a lost conditional write (412 Precondition Failed, 409 ConditionalRequestConflict,
    or s3fs's FileExistsError for ``If-None-Match``)."""
    while exc is not None:
        if isinstance(exc, FileExistsError):
            return True
        text = str(exc).lower()
        if ("precondition" in text or "conditionalrequestconflict" in text
                or "conditional request conflict" in text):
            return True
        exc = exc.__cause__
    return False


def write_if_unchanged(path: Any, data: bytes, token: str | None) -> bool:
    """Write ``data`` only if the file or object still has ``token`` (:func:`read_versioned`;
    ``None``: only if it is absent).

    On an object store this is one conditional PUT (``If-Match`` / ``If-None-Match: *``). On a
    local path the content is compared, then replaced atomically: hold :func:`exclusive` around
    the read and the write, so no other writer slips in between.

    Returns:
        False when another writer changed (or created) it first.
    """
    if not is_url(path):
        current = read_versioned(path)[1]
        if current != token:
            return False
        write_bytes(path, data)
        return True
    url = str(path)
    fs, inner = filesystem(url)
    try:
        with store_errors("writing", url):
            if token is None:
                fs.pipe_file(inner, data, mode="create")
            else:
                fs.pipe_file(inner, data, IfMatch=token)
    except (FileExistsError, StorageError) as exc:
        if is_conflict(exc):
            return False
        raise
    return True


# --------------------------------------------------------------------------- reads and writes

STALE_TEMP_SECONDS = 3600.0  # a temp file this old belongs to a writer that died


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """fsync a folder (its new entries survive a crash); a no-op where it cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(folder: Path, name: str) -> None:
    """Remove the temp files of writers of ``name`` that died mid-write (older than
    :data:`STALE_TEMP_SECONDS`; a live writer's temp file is younger and stays)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for leftover in folder.glob(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def write_bytes(path: Any, data: bytes) -> Any:
    """Write ``data`` to ``path`` all at once: atomically on a local path (temp file in the same
    folder, fsync, rename), with one PUT on an object store (never a multi-part stream a crash
    could cut). Returns the path (:func:`as_path`)."""
    if is_url(path):
        fs, inner = filesystem(str(path))
        with store_errors("writing", str(path)):
            fs.pipe_file(inner, bytes(data))  # multi-part uploads, too, appear only when done
        return as_path(path)
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


@contextmanager
def atomic_file(path: Any, mode: int = 0o666) -> Iterator[Any]:
    """A binary handle whose content replaces the local file ``path`` all at once when the block
    ends (temp name in the same folder, fsync, rename, fsync of the folder); on an error the
    temp file is removed and ``path`` is untouched. Temp files a killed writer left behind
    (older than :data:`STALE_TEMP_SECONDS`) are removed first."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target.parent, target.name)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode & ~_umask())  # mkstemp creates 0600; readers (UI, workers) need more
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    fsync_dir(target.parent)


def open_read(path: Any) -> Any:
    """A binary read handle on a file or object (errors of a store name the URL)."""
    if is_url(path):
        with store_errors("opening", str(path)):
            return as_path(path).open("rb")
    return open(path, "rb")


def exists(path: Any) -> bool:
    """Whether a file, folder or object exists (store errors raise, naming the URL)."""
    return is_file(path) or is_dir(path)


def has_glob(path: Any) -> bool:
    """Whether ``path`` is a glob pattern (``*``, ``?`` or ``[``)."""
    return any(ch in str(path) for ch in "*?[")


def glob_files(pattern: Any) -> list[Any]:
    """The files (objects) matching a glob, sorted."""
    if not is_url(pattern):
        import glob as globlib

        return sorted(Path(f) for f in globlib.glob(str(pattern)) if Path(f).is_file())
    url = str(pattern)
    fs, inner = filesystem(url)
    protocol = url.split("://", 1)[0]
    with store_errors("listing", url):
        return [as_path(f"{protocol}://{f}") for f in sorted(fs.glob(inner)) if fs.isfile(f)]


def list_folder(folder: Any) -> list[Any]:
    """The files directly inside a folder (or under a prefix), sorted by name; a missing folder
    is empty. An object store answers with one listing, not a request per object."""
    if not is_url(folder):
        root = Path(folder)
        return sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []
    url = str(folder)
    fs, inner = filesystem(url)
    with store_errors("listing", url):
        try:
            entries = fs.ls(inner, detail=True)
        except FileNotFoundError:
            return []
    names = sorted(str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries
                   if e.get("type") == "file")
    return [as_path(join(url, name)) for name in names]


@contextmanager
def exclusive(lock_path: Any) -> Iterator[None]:
    """Hold an exclusive lock for a read-decide-write on a location.

    Local path or shared volume: ``flock`` on ``lock_path`` (created). Object store: no lock
    exists; nothing is held, and the write must be :func:`write_if_unchanged` (retried by the
    caller on a conflict).
    """
    if is_url(lock_path):
        yield
        return
    import fcntl

    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def lock_folder(root: Any, name: str) -> Path:
    """A local folder for this machine's file locks about ``root``: ``<root>/<name>`` on a
    local path or shared volume (every worker sees it), a folder in the temp dir keyed by the
    URL for an object store (which has no file locks: the lock is local to this machine)."""
    if not is_url(root):
        return Path(root) / name
    key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "ml-lifecycle-locks" / f"{name.strip('.')}-{key}"


def require_local(paths: Mapping[str, Any], what: str) -> None:
    """Refuse URLs where only local files work, naming each setting.

    Raises:
        ConfigError: naming the settings that hold URLs.
    """
    urls = {k: v for k, v in paths.items() if v and is_url(v)}
    if urls:
        raise ConfigError(
            f"{what}: reads and writes local files only; found URL(s) "
            + ", ".join(f"{k} = {v}" for k, v in urls.items())
            + "; copy the data to a local folder and point the config at it"
        )


def confine(path: str, roots: list[str]) -> str:
    """``path`` resolved (symlinks followed) if it lies inside one of ``roots``.

    A URL must lie under a URL root (compared by prefix after refusing ``.``/``..`` segments).

    Raises:
        PathNotAllowedError: naming the path and the roots.
    """
    if is_url(path):
        try:
            url = check_url(str(path), "path")
        except ValueError as exc:
            raise PathNotAllowedError(str(exc)) from None
        for root in roots:
            base = str(root).rstrip("/")
            if is_url(root) and (url == base or url.startswith(base + "/")):
                return url
        raise PathNotAllowedError(f"path '{path}' is outside the allowed data roots {roots}")
    resolved = os.path.realpath(path)
    for root in roots:
        if is_url(root):
            continue
        real_root = os.path.realpath(root)
        if resolved == real_root or resolved.startswith(real_root.rstrip(os.sep) + os.sep):
            return resolved
    raise PathNotAllowedError(
        f"path '{path}' resolves to '{resolved}', outside the allowed data roots {roots}"
    )


def filesystem(url: str) -> tuple[Any, str]:
    """``(fsspec filesystem, path inside it)`` for ``url`` (listing cache off)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **_FS_OPTIONS)
    except ImportError as exc:  # the protocol's package is not installed
        raise RegistryError(
            f"'{url}': no fsspec implementation for this URL is installed ({exc})"
        ) from None


ACCESS_HINT = ("expected a reachable endpoint, an existing bucket and credentials with access "
               "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3 for an "
               "S3-compatible server, AWS_DEFAULT_REGION)")


@contextmanager
def store_errors(action: str, url: str) -> Iterator[None]:
    """Turn a storage client's failure (network, credentials, permissions) into a
    :class:`StorageError` naming ``url``; "not found"/"exists" keep their meaning.

    Raises:
        StorageError: naming what was done, the URL, the client's error and the settings.
    """
    try:
        yield
    except (FileNotFoundError, FileExistsError, MLLifecycleError):
        raise
    except Exception as exc:  # botocore/aiohttp/s3fs errors vary by server and failure
        raise StorageError(
            f"{action} '{url}' failed ({type(exc).__name__}: {exc}); {ACCESS_HINT}"
        ) from exc


def errors_named(action: str, path: Any) -> Any:
    """:func:`store_errors` for a URL; for a local path nothing (its own errors stay as they
    are, e.g. a parser error of a CSV)."""
    return store_errors(action, str(path)) if is_url(path) else contextlib.nullcontext()


def probe_writable(url: str, setting: str, *, conditional: bool = False) -> None:
    """Write (and try to delete) a small probe object under ``url``; a clear error if it fails.

    With ``conditional``, the probe is created twice with "only if absent": the second create
    must be refused, or the server ignores ``If-None-Match`` and the registry's protocol (number
    claims, the promotion log) would silently lose writes on it.

    Raises:
        RegistryError: naming ``setting``, the URL, the underlying error and the environment
            variables that configure access.
    """
    import logging
    import uuid

    probe = join(url, f".write-probe-{uuid.uuid4().hex}")
    try:
        fs, path = filesystem(probe)
        fs.pipe_file(path, b"probe", mode="create" if conditional else "overwrite")
        if conditional:
            try:
                fs.pipe_file(path, b"again", mode="create")
            except Exception as exc:
                if not is_conflict(exc):
                    raise
            else:
                raise RegistryError(
                    f"{setting} '{url}': the server accepted a second create-only-if-absent "
                    "write of the same object (it ignores If-None-Match); the registry needs "
                    "conditional writes (AWS S3, MinIO, Ceph RGW support them)"
                )
        try:
            fs.rm_file(path)
        except Exception as exc:  # the registry itself never deletes: not a reason to stop
            logging.getLogger(__name__).warning("could not delete the probe %s (%s)", probe, exc)
    except RegistryError:
        raise
    except Exception as exc:  # botocore/aiohttp errors vary by server; report them all
        raise RegistryError(
            f"{setting} '{url}' is not writable from this process ({type(exc).__name__}: "
            f"{exc}); {ACCESS_HINT}"
        ) from exc
