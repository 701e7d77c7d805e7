"""The monitoring store: one drift result and one HTML report per checked day.

Layout under ``<registry.root>/monitoring/``::

    days/<YYYY-MM-DD>.json      the full JSON result of the check of that day
    reports/<YYYY-MM-DD>.html   its self-contained HTML report
    policy_state.json           retrain-policy state (see policy.py)

Checking the same day again overwrites that day's files (atomically): the history never holds a
day twice. :func:`drift_history` is what the UI plugin and the DAGs read.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import atomic_write_json, atomic_write_text, read_json

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MIN_YEAR, MAX_YEAR = 1900, 9000


def validate_day(day: str) -> str:
    """Return ``day`` if it is a real ``YYYY-MM-DD`` date.

    Raises:
        DataError: naming the value found.
    """
    if not isinstance(day, str) or not _DAY.match(day):
        raise DataError(f"day {day!r} is not a date in the form YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise DataError(f"day {day!r} is not a valid calendar date") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        # windows and cooldowns reach a century around the day: keep datetime arithmetic valid
        raise DataError(f"day {day!r} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return day


def monitoring_dir(root: str | Path) -> Any:
    """``<registry.root>/monitoring`` (a URL root gives an fsspec-backed path)."""
    from ..storage import as_path

    return as_path(root) / "monitoring"


def day_json_path(root: str | Path, day: str) -> Path:
    """Where the result of ``day`` is stored."""
    return monitoring_dir(root) / "days" / f"{validate_day(day)}.json"


def day_report_path(root: str | Path, day: str) -> Path:
    """Where the HTML report of ``day`` is stored."""
    return monitoring_dir(root) / "reports" / f"{validate_day(day)}.html"


def write_day(
    root: str | Path, day: str, result: dict[str, Any], html: str | None
) -> dict[str, str | None]:
    """Store (or overwrite) the result and report of one day.

    Args:
        root: the registry root.
        day: ``YYYY-MM-DD``.
        result: the JSON-able check result (its ``report_paths`` is filled in here).
        html: the report (None: no report).

    Returns:
        ``{"json": path, "html": path or None}``.
    """
    json_path = day_json_path(root, day)
    paths: dict[str, str | None] = {"json": str(json_path), "html": None}
    if html is not None:
        html_path = day_report_path(root, day)
        atomic_write_text(html_path, html)
        paths["html"] = str(html_path)
    result["report_paths"] = {**result.get("report_paths", {}), "store_json": paths["json"],
                              "store_html": paths["html"]}
    atomic_write_json(json_path, result)
    return paths


def read_day(root: str | Path, day: str) -> dict[str, Any] | None:
    """The stored result of ``day`` (None when that day was never checked)."""
    path = day_json_path(root, day)
    from ..storage import is_file

    return read_json(path) if is_file(path) else None


def _part(result: dict[str, Any], key: str) -> dict[str, Any]:
    """``result[key]`` when it is a dict, else ``{}`` (absent, None or older layouts)."""
    value = result.get(key)
    return value if isinstance(value, dict) else {}


def _first(*values: Any) -> Any:
    """The first value that is not None (None when all are)."""
    return next((v for v in values if v is not None), None)


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The one-line summary of a result that histories and the UI show.

    Besides the drift verdicts it carries the performance of the day, flat: the label-free
    estimate (``estimated_metric`` with ``estimated_low``/``estimated_high``, its reference level
    ``estimated_reference``, ``estimated_flagged``, ``estimated_status``, ``reliability``), the
    realized metric on arrived labels (``realized_metric`` vs ``realized_reference``), the
    ``tolerance`` in metric units, the ``watched_metric`` with ``higher_is_better``, and the
    ``alert`` action of the day. Each is None when the result does not have it (results stored
    before the estimate existed, models without an estimator, days without labels).
    """
    data = result.get("data_drift") or {}
    pred = result.get("prediction_drift") or {}
    perf = result.get("concept_drift") or {}
    estimated = _part(result, "estimated_performance")
    alert = _part(result, "alert")
    quality = result.get("quality") or {}
    decision = result.get("decision") or {}
    model = result.get("model") or {}
    batch = result.get("batch") or {}
    paths = result.get("report_paths") or {}
    return {
        "day": result.get("day"),
        "checked_at": result.get("checked_at"),
        "verdict": result.get("verdict"),
        "retrain": bool(result.get("retrain")),
        "severity": result.get("severity"),
        "reasons": result.get("reasons", []),
        "blocked_by": decision.get("blocked_by", []),
        "model_version": model.get("version"),
        "n_rows": batch.get("n_rows"),
        "data_verdict": data.get("verdict"),
        "n_tested": data.get("n_tested"),
        "n_drifted": data.get("n_drifted"),
        "drifted_share": data.get("drifted_share"),
        "weighted_drift": data.get("weighted_drift"),
        "drifted_features": data.get("drifted_features", []),
        "prediction_drift": pred.get("status"),
        "concept_drift": perf.get("status"),
        "performance_metric": perf.get("metric"),
        "performance_value": perf.get("value"),
        "performance_drop": perf.get("drop"),
        "quality": quality.get("severity"),
        "watched_metric": _first(estimated.get("metric"), perf.get("metric")),
        "higher_is_better": _first(estimated.get("higher_is_better"),
                                   perf.get("higher_is_better")),
        "estimated_metric": estimated.get("value"),
        "estimated_low": estimated.get("low"),
        "estimated_high": estimated.get("high"),
        "estimated_reference": estimated.get("reference_value"),
        "estimated_flagged": bool(estimated["flagged"]) if estimated.get("flagged") is not None
        else None,
        "estimated_status": estimated.get("status"),
        "estimated_method": estimated.get("method"),
        "reliability": estimated.get("reliability"),
        "realized_metric": perf.get("value"),
        "realized_reference": _first(perf.get("reference_value"),
                                     estimated.get("reference_realized")),
        "tolerance": _first(estimated.get("tolerance"), perf.get("tolerance")),
        "alert": alert.get("action"),
        "report_html": paths.get("store_html") or paths.get("html"),
        "report_json": paths.get("store_json") or paths.get("json"),
    }


def drift_history(root: str | Path, last: int | None = None) -> list[dict[str, Any]]:
    """Summaries of every stored day, oldest first (one entry per day).

    Args:
        root: the registry root.
        last: only the latest ``last`` days (None: all).

    Returns:
        A list of :func:`summarize` dicts; unreadable files are reported as such, not skipped.
    """
    from ..storage import is_dir

    folder = monitoring_dir(root) / "days"
    if not is_dir(folder):
        return []
    out = []
    paths = sorted((p for p in folder.glob("*.json") if _DAY.match(p.stem)),
                   key=lambda p: p.name)
    for path in paths[-last:] if last else paths:
        try:
            out.append(summarize(read_json(path)))
        except (OSError, ValueError) as exc:
            out.append({"day": path.stem, "verdict": "unreadable", "error": str(exc)})
    return out
