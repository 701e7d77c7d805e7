"""Small, safe file primitives: atomic writes and hashing.

Everything the package stores goes through these helpers so that a crash never leaves a
half-written file under its final name: we write to a temporary name in the same directory,
flush and fsync, then ``os.replace`` (atomic on POSIX file systems). A URL (``s3://...``, see
:mod:`ml_lifecycle.storage`) is written with one PUT of the whole object, which object stores
make visible all at once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file (or object), read in chunks."""
    digest = hashlib.sha256()
    with _open_read(path) as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _open_read(path: Any) -> Any:
    from .storage import open_read

    return open_read(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Any:
    """Write ``data`` to ``path`` all at once (:func:`ml_lifecycle.storage.write_bytes`: atomic
    rename on a local path, one PUT on an object store)."""
    from .storage import write_bytes

    return write_bytes(path, data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Any:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(value: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types (NaN/inf -> None)."""
    import math

    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return to_jsonable(value.tolist())
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return to_jsonable(value.item())
        except (ValueError, TypeError):
            pass
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def dumps_json(obj: Any) -> str:
    """Stable JSON text (sorted keys, indented, NaN-free)."""
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Any:
    """Atomically write ``obj`` as stable JSON."""
    return atomic_write_text(path, dumps_json(obj) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (or object)."""
    with _open_read(path) as handle:
        return json.loads(handle.read().decode("utf-8"))
