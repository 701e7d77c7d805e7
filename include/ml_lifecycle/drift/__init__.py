"""Drift monitoring core (no Airflow): reference profile, tests, decisions, policy, reports.

Modules (``config.py`` imports ``drift.settings``, so this package imports nothing heavy itself;
the names below load their module on first use):

* ``settings``      the ``drift`` and ``policy`` config sections
* ``reference``     per-feature reference summaries and prepared batch columns
* ``profile``       :func:`build_reference_profile`, :func:`load_profile` (stored per version)
* ``stattests``     KS, chi-squared, PSI, Wasserstein, Jensen-Shannon behind a registry
* ``decision``      BH + effect-size rule, dataset verdict, prediction drift
* ``concept``       concept drift from delayed labels
* ``batch_quality`` schema and data-quality findings of a batch
* ``policy``        the retrain policy and its persisted state
* ``report``        JSON and self-contained HTML reports
* ``store``         the per-day monitoring store and :func:`drift_history`
* ``check``         :func:`evaluate_batch`, :func:`run_drift_check`, :func:`cli_main`
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DriftConfig": "settings", "PolicyConfig": "settings",
    "ReferenceProfile": "profile", "build_reference_profile": "profile",
    "build_profile": "profile", "load_profile": "profile",
    "STAT_TESTS": "stattests", "register_test": "stattests", "run_test": "stattests",
    "TestResult": "stattests",
    "benjamini_hochberg": "decision", "data_drift": "decision", "prediction_drift": "decision",
    "prepare_batch": "decision",
    "concept_drift": "concept",
    "batch_quality": "batch_quality", "check_schema": "batch_quality",
    "decide_retrain": "policy", "record_decision": "policy", "load_policy_state": "policy",
    "mark_retrain_finished": "policy",
    "render_html": "report",
    "drift_history": "store", "read_day": "store",
    "evaluate_batch": "check", "run_drift_check": "check", "cli_main": "check",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_lifecycle.drift' has no attribute '{name}'")
    return getattr(importlib.import_module(f".{module}", __name__), name)
