"""Exceptions of the core package, each mapped to a documented CLI exit code.

Every error message names the file, column or setting involved, what was found and what was
expected; the CLI prints the message (never a bare traceback) and exits with ``exit_code``.
"""

from __future__ import annotations

# CLI exit codes (cli.EXIT_CODES; docs/reference/cli.md is generated from it).
EXIT_OK = 0  # trained (promoted or champion kept) / drift check: no action
EXIT_GATE_REJECTED = 3  # train: the candidate failed the gate; champion unchanged
EXIT_RETRAIN_RECOMMENDED = 4  # check-drift: the retrain policy says retrain
EXIT_INVALID_INPUT = 2  # invalid config, data, arguments, or a failed quality gate
EXIT_INTEGRITY = 5  # a stored artifact failed its integrity check (sha256 mismatch, ...)


class MLLifecycleError(Exception):
    """Base class: an expected, explainable failure with a clear message."""

    exit_code = EXIT_INVALID_INPUT


class ConfigError(MLLifecycleError):
    """The configuration file or an override is invalid."""


class DataError(MLLifecycleError):
    """A data file is missing, unreadable, empty, or violates the declared schema."""


class QualityGateError(MLLifecycleError):
    """The data quality gate found a hard failure; training does not start."""

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


class RegistryError(MLLifecycleError):
    """A registry operation is impossible (unknown version, nothing to roll back to, ...)."""


class IntegrityError(RegistryError):
    """A stored artifact does not match its recorded sha256; it is never loaded."""

    exit_code = EXIT_INTEGRITY


class ModelFormatError(RegistryError):
    """A model cannot be stored or loaded in the configured format (a pickle without the
    opt-in, a type the safe format does not trust)."""


class StorageError(MLLifecycleError):
    """An artifact store (S3-compatible URL) cannot be reached, or refuses access."""


class PathNotAllowedError(MLLifecycleError):
    """A path from a trigger form or DAG conf resolves outside the configured data roots."""
