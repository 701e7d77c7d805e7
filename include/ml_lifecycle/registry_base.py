"""What the folder registry (:mod:`.registry`) and the object-store registry
(:mod:`.object_registry`) share: the layout names, argument checks, the history replay and
:class:`_VersionReads` (reading, verifying and loading stored versions). Both registries import
this module; neither imports the other (:func:`.registry.open_registry` picks one at call time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from .errors import IntegrityError, RegistryError
from .model_format import format_of
from .model_format import loads as load_model_bytes
from .signing import verify as verify_signature

log = logging.getLogger("ml_lifecycle.registry")

CARD_FILE = "card.json"
CHAMPION_FILE = "champion.json"
VERSIONS_DIR = "versions"
_VERSION_DIR_RE = re.compile(r"^v(\d{4,})$")


class _Unset:
    """Type of the ``expected_champion`` sentinel (``promote`` does not compare-and-swap)."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _version_name(version: int) -> str:
    return f"v{version:04d}"


def _check_version_arg(version: Any) -> int:
    try:
        number = operator.index(version)
    except TypeError:
        number = 0
    if isinstance(version, bool) or number < 1:
        raise RegistryError(f"version must be a positive integer, got {version!r}")
    return number


def _safe_relative_name(name: Any) -> bool:
    """True when ``name`` is a plain relative POSIX path staying inside its folder."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    pure = PurePosixPath(name)
    return not pure.is_absolute() and all(part not in ("", ".", "..") for part in pure.parts)


def _champion_stack(events: list[dict]) -> list[int]:
    """Replay history into the stack of champions (promote pushes, rollback pops back)."""
    stack: list[int] = []
    for event in events:
        version = event.get("version")
        if not isinstance(version, int):
            continue
        if event.get("event") == "rollback" and version in stack:
            last = len(stack) - 1 - stack[::-1].index(version)
            del stack[last + 1 :]
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


class _VersionReads:
    """What both registries do the same way once a version is stored: cards, listings,
    artifact paths, sha256 checks, model loading, the champion's card and the rollback target.

    A subclass provides ``root``, ``history()``, ``champion()`` and five primitives:
    ``_version_numbers()``, ``_version_bytes(v, name)``, ``_version_sha(v, name)`` (both raise
    ``FileNotFoundError``), ``_version_path(v, name=None)`` (a ``Path`` or an fsspec path) and
    ``_noun`` ("file" or "object", for messages).
    """

    root: Any
    _noun = "file"
    _warn_skipped = True  # a folder without a valid card.json is worth a warning

    def _read_card_or_none(self, version: int) -> dict | None:
        try:
            card = json.loads(self._version_bytes(version, CARD_FILE))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(card, dict)
            or card.get("version") != version
            or not isinstance(card.get("artifacts"), dict)
        ):
            return None
        return card

    def list_versions(self) -> list[dict]:
        """Cards of all complete versions, sorted by version, each with ``is_champion``.

        A version without a valid ``card.json`` (half-copied, foreign, an upload in progress)
        is skipped.
        """
        champion = self.champion()
        cards = []
        for number in self._version_numbers():
            card = self._read_card_or_none(number)
            if card is None:
                if self._warn_skipped:
                    log.warning("registry %s: skipping %s (no valid card.json)", self.root,
                                _version_name(number))
                continue
            card["is_champion"] = number == champion
            cards.append(card)
        return cards

    def get_card(self, version: int) -> dict:
        """The card of ``version``; ``RegistryError`` if it is not a complete version."""
        version = _check_version_arg(version)
        card = self._read_card_or_none(version)
        if card is None:
            known = [c["version"] for c in self.list_versions()]
            raise RegistryError(
                f"registry {self.root}: unknown version {version} (no valid "
                f"{VERSIONS_DIR}/{_version_name(version)}/{CARD_FILE}); known versions: "
                f"{known or 'none'}"
            )
        return card

    def version_dir(self, version: int) -> Any:
        """Folder (or URL) of a complete version."""
        self.get_card(version)
        return self._version_path(version)

    def artifact_path(self, version: int, name: str) -> Any:
        """Path (or URL) of the artifact ``name`` of ``version`` (must be listed in its card)."""
        return self._checked_artifact(self.get_card(version), version, name)

    def _checked_artifact(self, card: dict, version: int, name: str) -> Any:
        if name != CARD_FILE and name not in card["artifacts"]:
            raise RegistryError(
                f"registry {self.root}: version {version} has no artifact {name!r}; expected one "
                f"of {sorted(card['artifacts'])}"
            )
        if not _safe_relative_name(name):
            raise IntegrityError(
                f"registry {self.root}: version {version} card lists unsafe artifact name {name!r}"
            )
        return self._version_path(version, name)

    def read_artifact(self, version: int, name: str) -> bytes:
        """The bytes of an artifact, checked against the sha256 its card records."""
        card = self.get_card(version)
        path = self._checked_artifact(card, version, name)
        data = self._version_bytes(version, name)
        expected = card["artifacts"].get(name)
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise IntegrityError(
                f"registry {self.root}: {path} failed its integrity check: expected sha256 "
                f"{expected}, found {hashlib.sha256(data).hexdigest()}"
            )
        return data

    def verify(self, version: int) -> None:
        """Recompute every artifact's sha256; ``IntegrityError`` naming each mismatch."""
        card = self.get_card(version)
        problems = []
        verify_signature(card, f"registry {self.root}: version {version}")
        expected_card = self._recorded_card_sha(version)
        if expected_card is not None:
            found = self._version_sha(version, CARD_FILE)
            if found != expected_card:
                problems.append(
                    f"{CARD_FILE}: expected sha256 {expected_card} (recorded at promotion), "
                    f"found {found}"
                )
        for name, expected in sorted(card["artifacts"].items()):
            if not _safe_relative_name(name):
                problems.append(f"{name!r}: unsafe artifact name in card")
                continue
            try:
                found = self._version_sha(version, name)
            except FileNotFoundError:
                problems.append(
                    f"{name}: expected sha256 {expected}, found: {self._noun} missing")
                continue
            if found != expected:
                problems.append(f"{name}: expected sha256 {expected}, found {found}")
        if problems:
            raise IntegrityError(
                f"registry {self.root}: version {version} ({self._version_path(version)}) failed "
                "its integrity check: " + "; ".join(problems)
            )

    def _recorded_card_sha(self, version: int) -> str | None:
        for event in reversed(self.history()):
            if event.get("version") == version and isinstance(event.get("card_sha256"), str):
                return event["card_sha256"]
        return None

    def load_model(self, version: int | None = None, *, allow_pickle: bool = False) -> Any:
        """Load a version's model (``None`` = the champion) after checking its sha256.

        The bytes are read once, hashed and only then rebuilt from memory, so the file that is
        loaded is exactly the file that was verified. A ``skops`` version is rebuilt from its
        allowlisted types only; a ``joblib`` version (a pickle: loading it can run code) only
        with ``allow_pickle`` (the config's ``registry.model_format: joblib`` opt-in); see
        :mod:`ml_lifecycle.model_format`.
        """
        if version is None:
            version = self.champion()
            if version is None:
                raise RegistryError(
                    f"registry {self.root}: no champion yet; promote a version first"
                )
        card = self.get_card(version)
        model_file = str(card.get("model_file", "model.joblib"))
        expected = card["artifacts"].get(model_file)
        path = self._version_path(version, model_file)
        if not isinstance(expected, str) or not _safe_relative_name(model_file):
            raise IntegrityError(
                f"registry {self.root}: version {version} card records no sha256 for its model "
                f"file {model_file!r}; refusing to load {path}"
            )
        verify_signature(card, f"registry {self.root}: version {version}")
        expected_card = self._recorded_card_sha(version)
        if expected_card is not None:
            found_card = self._version_sha(version, CARD_FILE)
            if found_card != expected_card:
                raise IntegrityError(
                    f"registry {self.root}: version {version} {CARD_FILE} was modified: expected "
                    f"sha256 {expected_card} (recorded at promotion), found {found_card}; "
                    "refusing to load the model"
                )
        try:
            data = self._version_bytes(version, model_file)
        except FileNotFoundError:
            raise IntegrityError(
                f"registry {self.root}: version {version} model {self._noun} {path} is missing "
                f"(expected sha256 {expected})"
            ) from None
        found = hashlib.sha256(data).hexdigest()
        if found != expected:
            raise IntegrityError(
                f"registry {self.root}: version {version} model {self._noun} {path} failed its "
                f"integrity check: expected sha256 {expected}, found {found}; it will not be "
                "loaded"
            )
        return load_model_bytes(data, str(card.get("model_format")
                                            or format_of(model_file)),
                                  allow_pickle=allow_pickle,
                                  where=f"registry {self.root}: version {version} {model_file}")

    def champion_card(self) -> dict | None:
        """The champion's card, or ``None`` when there is no champion."""
        version = self.champion()
        return None if version is None else self.get_card(version)

    def _rollback_target(self, events: list[dict], current: int | None,
                         to_version: int | None) -> int:
        """The version a rollback goes to (verified); ``RegistryError`` when there is none.

        ``to_version=None`` means the champion before the current one: history is replayed as
        a stack (promote pushes, rollback pops back to its target).
        """
        if current is None:
            raise RegistryError(
                f"registry {self.root}: nothing to roll back: there is no champion yet"
            )
        if to_version is None:
            stack = _champion_stack(events)
            if len(stack) < 2:
                raise RegistryError(
                    f"registry {self.root}: nothing to roll back to: version {current} is the "
                    "first champion in the promotion history"
                )
            to_version = stack[-2]
        to_version = _check_version_arg(to_version)
        if to_version == current:
            raise RegistryError(
                f"registry {self.root}: cannot roll back to version {to_version}: it is "
                "already the champion"
            )
        self.verify(to_version)
        return to_version
