"""Where the pages get their data: every model's registry and monitoring store, read-only.

The models are the ones the DAGs serve: ``ml_lifecycle_airflow.settings.discover`` (the configs
folder ``ML_LIFECYCLE_CONFIGS``, else ``configs/`` of the project; ``ML_LIFECYCLE_CONFIG``
restricts it to one file), each config read as the DAGs read it. The folder is read on every
request, so a new model, a changed config or a new version shows without restarting the
api-server.

Everything here only reads (``Registry.list_versions/get_card/champion/history``,
``drift.store.drift_history/read_day``, the policy state) and reshapes what the core stored; it
computes no metric, no test and no decision of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY_METRICS = {
    "classification": ("pr_auc", "roc_auc", "f1", "brier", "accuracy"),
    "multiclass": ("macro_f1", "roc_auc_ovr", "log_loss", "balanced_accuracy", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
N_KEY_METRICS = 3


class UnknownModel(LookupError):
    """No config of the configs folder has this model name."""


def dag_ids(model: str) -> dict[str, str]:
    from ml_lifecycle_airflow.settings import dag_ids as ids

    return ids(model)


def empty_models(model: str) -> str:
    return (f"No model trained yet: trigger the training DAG ({dag_ids(model)['training']}) "
            "to train, gate and register the first version.")


def empty_drift(model: str) -> str:
    return (f"No drift history yet: the drift check DAG ({dag_ids(model)['drift']}) has not "
            "checked any day against a champion.")


@dataclass
class Source:
    """The config of this request and the registry it names."""

    cfg: Any
    registry: Any

    @property
    def name(self) -> str:
        return str(self.cfg.name)

    @property
    def root(self) -> Any:
        """The registry root: a local ``Path``, or an fsspec-backed path for ``s3://``."""
        from ml_lifecycle.storage import as_path

        return as_path(self.registry.root)


def discover(project_root: str | Path | None = None) -> tuple[list[Any], list[Any]]:
    """The models the DAGs serve and the configs that cannot be used (as the factory sees them).

    Raises:
        ConfigError: the configs folder is missing, unreadable or empty.
    """
    from ml_lifecycle_airflow.settings import discover as discover_models

    return discover_models(project_root or PROJECT_ROOT)


def load_source(model: str, project_root: str | Path | None = None) -> Source:
    """Load one model's config as its DAGs do (per request) and open its registry.

    Raises:
        UnknownModel: no usable config has this name.
        ConfigError: the configs folder or the config is unusable (the message names it).
    """
    from ml_lifecycle.registry import open_registry
    from ml_lifecycle_airflow.settings import load_lifecycle_config

    specs, _ = discover(project_root)
    spec = next((s for s in specs if s.name == model), None)
    if spec is None:
        raise UnknownModel(f"no model named '{model}'")
    cfg = load_lifecycle_config(spec.config_file)
    return Source(cfg=cfg, registry=open_registry(cfg.registry.root))


def model_row(source: Source) -> dict[str, Any]:
    """One line of the model list: champion, last check, last retrain, open alert."""
    from ml_lifecycle.drift.policy import load_policy_state
    from ml_lifecycle.drift.store import drift_history

    registry = source.registry
    cards = registry.list_versions()
    champion = registry.champion()
    history = registry.history()
    champion_card = next((c for c in cards if c.get("version") == champion), None)
    latest = cards[-1] if cards else None
    days = drift_history(source.root, last=1)
    episode = load_policy_state(source.root).get("episode")
    return {
        "name": source.name,
        "task": source.cfg.task,
        "dag_ids": dag_ids(source.name),
        "registry_root": str(source.root),
        "versions": len(cards),
        "champion": (version_summary(champion_card, champion, history)
                     if champion_card else None),
        "last_retrain": (version_summary(latest, champion, history) if latest else None),
        "last_check": days[-1] if days else None,
        "open_alert": episode if isinstance(episode, dict) else None,
        "error": None,
    }


def models_list_view(project_root: str | Path | None = None,
                     may_read: Callable[[Iterable[str]], bool] | None = None) -> dict[str, Any]:
    """The models ``may_read`` allows (all three DAGs readable): their rows (an unreadable
    registry is an ``error`` in its row, not a failed page), and the config files that cannot
    be used (each shown to users who may read its stand-in ``<stem>__config_error`` DAG)."""
    from ml_lifecycle.errors import MLLifecycleError
    from ml_lifecycle_airflow.settings import config_error_dag_id

    allowed = may_read or (lambda ids: True)
    specs, broken = discover(project_root)
    specs = [s for s in specs if allowed(dag_ids(s.name).values())]
    broken = [b for b in broken if allowed([config_error_dag_id(b.config_file)])]
    rows = []
    for spec in specs:
        try:
            rows.append(model_row(load_source(spec.name, project_root)))
        except (MLLifecycleError, OSError, ValueError) as exc:
            rows.append({"name": spec.name, "dag_ids": dag_ids(spec.name),
                         "error": f"{type(exc).__name__}: {exc}"})
    return {"models": rows,
            "broken_configs": [{"config_file": b.config_file, "error": b.error}
                               for b in broken]}


def jsonable(value: Any) -> Any:
    """Plain JSON data (NaN and infinities become None), as the core writes its files."""
    from ml_lifecycle.io import to_jsonable

    return to_jsonable(value)


# --------------------------------------------------------------------------- models


def _number(value: Any) -> float | None:
    from ml_lifecycle.charts import finite

    return finite(value)


def metric_entry(card: dict[str, Any], name: str) -> dict[str, float | None] | None:
    """``{"value", "low", "high"}`` of a test metric as the card stores it (None: absent)."""
    entry = (card.get("metrics") or {}).get(name)
    if isinstance(entry, dict):
        return {k: _number(entry.get(k)) for k in ("value", "low", "high")}
    if entry is not None:
        return {"value": _number(entry), "low": None, "high": None}
    return None


def key_metric_names(card: dict[str, Any]) -> list[str]:
    """The primary metric first, then the usual ones of the task that the card has."""
    metrics = card.get("metrics") or {}
    names = [card.get("primary_metric")] if card.get("primary_metric") in metrics else []
    for name in KEY_METRICS.get(str(card.get("task")), ()):
        if name in metrics and name not in names:
            names.append(name)
    return names[:N_KEY_METRICS]


def promoted_versions(history: list[dict[str, Any]]) -> set[int]:
    return {e["version"] for e in history if isinstance(e.get("version"), int)}


def status_of(card: dict[str, Any], champion: int | None, ever_promoted: set[int]) -> str:
    """``champion``, ``former champion``, ``rejected by the gate`` or ``not promoted``."""
    version = card.get("version")
    if version == champion:
        return "champion"
    if version in ever_promoted:
        return "former champion"
    gate = card.get("gate") or {}
    return "not promoted" if gate.get("passed") else "rejected by the gate"


def version_summary(card: dict[str, Any], champion: int | None,
                    history: list[dict[str, Any]]) -> dict[str, Any]:
    """The row of one version on the Models page (and in ``/api/versions``)."""
    trigger = card.get("trigger") or {}
    gate = card.get("gate") or {}
    model = card.get("model") or {}
    names = key_metric_names(card)
    return {
        "version": card.get("version"),
        "name": card.get("name"),
        "task": card.get("task"),
        "family": model.get("family"),
        "created_at": card.get("created_at"),
        "is_champion": card.get("version") == champion,
        "status": status_of(card, champion, promoted_versions(history)),
        "trigger_reason": trigger.get("reason"),
        "dag_id": trigger.get("dag_id"),
        "run_id": trigger.get("run_id"),
        "primary_metric": card.get("primary_metric"),
        "metrics": {name: metric_entry(card, name) for name in names},
        "gate_passed": gate.get("passed"),
        "gate_reasons": list(gate.get("reasons") or []),
        "champion_at_training": card.get("champion_at_training"),
        "stopping_iteration": model.get("stopping_iteration"),
        "rows_used": (card.get("data") or {}).get("rows_used"),
    }


def models_view(source: Source) -> dict[str, Any]:
    """Versions (newest first), the champion and the promotion history (oldest first)."""
    registry = source.registry
    history = registry.history()
    champion = registry.champion()
    cards = registry.list_versions()
    champion_event = next((e for e in reversed(history) if e.get("version") == champion), None)
    return {
        "model_name": source.cfg.name,
        "registry_root": str(source.root),
        "champion": champion,
        "champion_event": champion_event,
        "versions": [version_summary(c, champion, history) for c in reversed(cards)],
        "history": history,
        "dag_ids": dag_ids(source.name),
        "message": None if cards else empty_models(source.name),
    }


def version_view(source: Source, version: int) -> dict[str, Any]:
    """One version: its card, its quality report and its promotion events.

    Raises:
        RegistryError: not a complete version of this registry.
    """
    registry = source.registry
    card = registry.get_card(version)
    history = registry.history()
    champion = registry.champion()
    quality = None
    from ml_lifecycle.errors import MLLifecycleError

    if "quality_report.json" in (card.get("artifacts") or {}):
        try:
            quality = json.loads(registry.read_artifact(version, "quality_report.json")
                                 .decode("utf-8"))
        except (OSError, ValueError, MLLifecycleError) as exc:
            quality = {"error": f"quality_report.json could not be read: {exc}"}
    return {
        "summary": version_summary(card, champion, history),
        "card": card,
        "quality_report": quality,
        "promotions": [e for e in history if e.get("version") == version],
    }


def champion_view(source: Source) -> dict[str, Any]:
    """The champion's number, its promotion event and its card (all None without one)."""
    registry = source.registry
    champion = registry.champion()
    if champion is None:
        has_versions = bool(registry.list_versions())
        message = "no champion: no version has passed the gate and been promoted yet" \
            if has_versions else empty_models(source.name)
        return {"champion": None, "promoted": None, "summary": None, "card": None,
                "message": message}
    history = registry.history()
    card = registry.get_card(champion)
    return {
        "champion": champion,
        "promoted": next((e for e in reversed(history) if e.get("version") == champion), None),
        "summary": version_summary(card, champion, history),
        "card": card,
        "message": None,
    }


# --------------------------------------------------------------------------- drift


def drift_view(source: Source) -> dict[str, Any]:
    """The drift history, plus per-feature effect sizes and the performance, per checked day.

    ``days`` is ``drift_history`` (one summary per stored day, oldest first). ``features`` maps
    each feature to its stored effect size, threshold and status per day; ``prediction`` is the
    same for the model's scores; ``performance`` lists the days whose check had labels.
    """
    from ml_lifecycle.drift.store import day_report_path, drift_history, read_day
    from ml_lifecycle.errors import MLLifecycleError
    from ml_lifecycle.storage import is_file

    root = source.root
    days = drift_history(root)
    features: dict[str, dict[str, Any]] = {}
    prediction: list[dict[str, Any]] = []
    performance: list[dict[str, Any]] = []
    for summary in days:
        day = summary.get("day")
        summary["has_report"] = False
        if summary.get("verdict") == "unreadable":
            continue
        try:
            result = read_day(root, day) or {}
            summary["has_report"] = is_file(day_report_path(root, day))
        except (OSError, ValueError, MLLifecycleError) as exc:
            summary["error"] = str(exc)
            continue
        for feature in (result.get("data_drift") or {}).get("features") or []:
            name = str(feature.get("feature"))
            entry = features.setdefault(name, {"kind": feature.get("kind"),
                                               "effect_test": feature.get("effect_test"),
                                               "importance_share": None, "points": []})
            entry["importance_share"] = feature.get("importance_share")
            entry["points"].append({
                "day": day, "effect_size": feature.get("effect_size"),
                "threshold": feature.get("effect_threshold"), "status": feature.get("status"),
            })
        pred = result.get("prediction_drift") or {}
        prediction.append({"day": day, "effect_size": pred.get("effect_size"),
                           "threshold": pred.get("effect_threshold"),
                           "status": pred.get("status"), "effect_test": pred.get("effect_test")})
        perf = result.get("concept_drift") or {}
        if _number(perf.get("value")) is not None:
            performance.append({
                "day": day, "metric": perf.get("metric"), "value": perf.get("value"),
                "reference_value": perf.get("reference_value"),
                "tolerance": perf.get("tolerance"),
                "higher_is_better": perf.get("higher_is_better", True),
                "n_labelled": perf.get("n_labelled"), "status": perf.get("status"),
            })
    return {
        "registry_root": str(root),
        "days": days,
        "features": features,
        "prediction": prediction,
        "performance": performance,
        "model_name": source.name,
        "dag_ids": dag_ids(source.name),
        "message": None if days else empty_drift(source.name),
    }


def day_result(source: Source, day: str) -> dict[str, Any] | None:
    """The stored result of one checked day (None: never checked).

    Raises:
        DataError: ``day`` is not a ``YYYY-MM-DD`` date.
    """
    from ml_lifecycle.drift.store import read_day

    return read_day(source.root, day)


def day_report(source: Source, day: str) -> Any:
    """The stored HTML report of one day (None: none stored).

    Raises:
        DataError: ``day`` is not a ``YYYY-MM-DD`` date.
    """
    from ml_lifecycle.drift.store import day_report_path
    from ml_lifecycle.storage import is_file

    path = day_report_path(source.root, day)
    return path if is_file(path) else None
