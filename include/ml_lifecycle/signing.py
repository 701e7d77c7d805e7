"""Signed versions: an HMAC over a version's artifact hashes, checked before a model loads.

The sha256 values in ``card.json`` prove that a file is the one the card names, but the card
lives in the same writable registry: whoever can replace a model can rewrite its card and the
history too. With a signing key configured, every version registered carries
``card["signature"]``, an HMAC-SHA256 (key id + MAC) over the card's ``artifacts``, ``model_file``
and ``model_format``; loading verifies it, so a model swapped together with a consistently
rewritten card and history is refused by anyone without the key.

Keys come from the environment of the process that trains or loads; in Airflow, tasks export
them from the Connection ``ml_lifecycle_signing`` (login = key id, password = secret,
``extra.old_keys``; ``ML_LIFECYCLE_SIGNING_CONN_ID`` names another one), kept in the metadata
database or a secrets backend (``ml_lifecycle_airflow.settings.export_signing_keys``):

* ``ML_LIFECYCLE_SIGNING_KEY`` -- ``<key id>:<secret>``, the key new versions are signed with
  (the secret at least 32 characters);
* ``ML_LIFECYCLE_SIGNING_OLD_KEYS`` -- comma-separated ``<key id>:<secret>`` that still verify.

Rotation: sign with a new current key and list the old one under ``..._OLD_KEYS`` until every
version you still load was signed with the new key (re-register or retire the old versions);
then drop it. With any key configured, an unsigned version (or one signed with a key no longer
listed) is refused. Without keys nothing is signed or checked (the sha256 checks remain).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from typing import Any

from .errors import ConfigError, IntegrityError

KEY_ENV = "ML_LIFECYCLE_SIGNING_KEY"
OLD_KEYS_ENV = "ML_LIFECYCLE_SIGNING_OLD_KEYS"
SIGNED_FIELDS = ("artifacts", "model_file", "model_format")
MIN_SECRET = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _parse(item: str, variable: str) -> tuple[str, bytes]:
    key_id, sep, secret = item.strip().partition(":")
    if not sep or not _KEY_ID.match(key_id) or len(secret) < MIN_SECRET:
        raise ConfigError(
            f"{variable}: expected '<key id>:<secret>' with a key id of letters, digits, '_', "
            f"'-' or '.' and a secret of at least {MIN_SECRET} characters (the value is not "
            "shown)")
    return key_id, secret.encode()


def keys() -> tuple[tuple[str, bytes] | None, dict[str, bytes]]:
    """``(current key or None, {key id: secret} of every key that verifies)``.

    Raises:
        ConfigError: a malformed variable (named; the secret is never echoed).
    """
    current = None
    valid: dict[str, bytes] = {}
    raw = os.environ.get(KEY_ENV, "").strip()
    if raw:
        current = _parse(raw, KEY_ENV)
        valid[current[0]] = current[1]
    for item in filter(None, (p.strip() for p in os.environ.get(OLD_KEYS_ENV, "").split(","))):
        key_id, secret = _parse(item, OLD_KEYS_ENV)
        valid.setdefault(key_id, secret)
    return current, valid


def _mac(card: dict[str, Any], secret: bytes) -> str:
    payload = json.dumps({k: card.get(k) for k in SIGNED_FIELDS}, sort_keys=True,
                         separators=(",", ":")).encode()
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def sign(card: dict[str, Any]) -> dict[str, Any]:
    """``card`` with ``signature`` set when a current key is configured (else unchanged)."""
    current, _ = keys()
    if current is None:
        return card
    key_id, secret = current
    return {**card, "signature": {"key_id": key_id, "hmac": _mac(card, secret),
                                  "fields": list(SIGNED_FIELDS)}}


def verify(card: dict[str, Any], where: str) -> None:
    """Check a card's signature when keys are configured.

    Raises:
        IntegrityError: unsigned, signed with a key no longer valid, or a MAC mismatch.
    """
    _, valid = keys()
    if not valid:
        return
    signature = card.get("signature")
    if not isinstance(signature, dict):
        raise IntegrityError(f"{where} is not signed, but signing keys are configured; "
                             "refusing to load it (re-register it with the current key)")
    key_id = str(signature.get("key_id"))
    if key_id not in valid:
        raise IntegrityError(
            f"{where} was signed with key '{key_id}', which is not a valid key (neither "
            f"{KEY_ENV} nor {OLD_KEYS_ENV}: rotated out?); refusing to load it")
    if not hmac.compare_digest(str(signature.get("hmac")), _mac(card, valid[key_id])):
        raise IntegrityError(f"{where}: the signature does not match the card's artifacts "
                             "(the model or its card was changed after signing); refusing to "
                             "load it")
