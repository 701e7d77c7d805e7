"""Where artifacts live: a local (or shared-volume) path, or an fsspec URL such as ``s3://``.

Every stored file of the package (registry versions, predictions, drift reports, the monitoring
store) is reached through :func:`as_path`: a local path becomes a :class:`pathlib.Path`, a URL a
:class:`upath.UPath` backed by fsspec, so the same ``/``, ``is_file``, ``glob``, ``read_bytes``
code serves both. Writes go through :mod:`ml_lifecycle.io`, which replaces a local file
atomically (temp name + rename) and writes an object with one PUT (an object store shows the old
or the new object, never half of one).

Credentials and endpoints never live in the lifecycle config: they come from the environment the
S3 client already reads (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_S3`` for MinIO/Ceph/other S3-compatible servers, or an instance role), or
fsspec's own ``FSSPEC_S3_*`` variables.

Pitfall avoided here: s3fs caches directory listings per process by default, so a worker would
not see a version another worker registered a second ago. Filesystems are created with
``use_listings_cache=False``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import MLLifecycleError, RegistryError, StorageError

__all__ = [
    "REGISTRY_SCHEMES",
    "as_path",
    "check_url",
    "filesystem",
    "is_conflict",
    "is_dir",
    "is_file",
    "is_remote",
    "is_url",
    "join",
    "probe_writable",
    "read_with_token",
    "store_errors",
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


def write_if_unchanged(url: str, data: bytes, etag: str | None) -> bool:
    """PUT ``data`` only if the object still has ``etag`` (``None``: only if it is absent).

    Returns:
        False when another writer changed (or created) the object first.
    """
    fs, inner = filesystem(url)
    try:
        with store_errors("writing", url):
            if etag is None:
                fs.pipe_file(inner, data, mode="create")
            else:
                fs.pipe_file(inner, data, IfMatch=etag)
    except (FileExistsError, StorageError) as exc:
        if is_conflict(exc):
            return False
        raise
    return True


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
