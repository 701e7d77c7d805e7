"""MLflow as an optional integration (``tracking.mlflow``; ``pip install ml-lifecycle[mlflow]``).

The package's registry stays the source of truth of the lifecycle; MLflow gets a copy that
teams browse and serve from:

* every training run becomes an MLflow run (experiment ``tracking.mlflow.experiment``, default
  ``ml-lifecycle/<name>``) with the model's parameters, each test metric with its bootstrap
  interval (``test_<metric>``, ``_low``, ``_high``) and baseline, the validation score, the gate
  result (``gate_passed`` and ``gate.json``), the quality report, the model card and the fitted
  pipeline (``mlflow.sklearn``, with its signature and an input example; its pyfunc predicts
  class probabilities, as the package scores; stored with skops and the package's allowlist of
  types, or as a cloudpickle where ``registry.model_format: joblib`` opted in);
* each registered version becomes a version of the MLflow registered model (tag
  ``ml_lifecycle.version``);
* a promotion or a rollback moves the MLflow alias (``champion``) to the champion's version
  (MLflow 3: aliases, not the deprecated stages).

**The lifecycle never depends on MLflow being up.** Every call here is bounded
(``request_timeout_seconds``, ``max_retries``) and returns a status instead of raising: a failure
is recorded in the model card (``tracking.mlflow``) and the run summary, the CLI prints a
warning and the training DAG sends a ``tracking_failed`` alert; training, the gate and the
promotion go on unchanged.

Credentials come from the environment MLflow reads (``MLFLOW_TRACKING_USERNAME`` /
``_PASSWORD`` / ``_TOKEN``), or in the DAGs from an Airflow Connection
(``ML_LIFECYCLE_MLFLOW_CONN_ID``, see ``ml_lifecycle_airflow.settings``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

VERSION_TAG = "ml_lifecycle.version"
ENV_URI = "MLFLOW_TRACKING_URI"


def enabled(cfg: Config) -> bool:
    """Whether this config exports to MLflow."""
    return cfg.tracking.mlflow is not None


def tracking_uri(cfg: Config) -> str:
    """The configured URI, else ``$MLFLOW_TRACKING_URI``, else a SQLite file beside the model's
    lifecycle folders (``var/<name>/mlflow.db``)."""
    settings = cfg.tracking.mlflow
    if settings is not None and settings.tracking_uri:
        return settings.tracking_uri
    if os.environ.get(ENV_URI, "").strip():
        return os.environ[ENV_URI].strip()
    reports = str(cfg.lifecycle.reports or "")
    if "://" in reports or not reports:
        raise ValueError("tracking.mlflow.tracking_uri is unset and the lifecycle folders are "
                         "not local: set tracking.mlflow.tracking_uri")
    return "sqlite:///" + str(Path(reports).parent / "mlflow.db")


def model_name(cfg: Config) -> str:
    settings = cfg.tracking.mlflow
    return (settings.registered_model if settings and settings.registered_model else cfg.name)


@contextlib.contextmanager
def _session(cfg: Config) -> Iterator[Any]:
    """``mlflow`` pointed at the configured store, with bounded requests."""
    settings = cfg.tracking.mlflow
    assert settings is not None
    bounds = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(max(1, settings.request_timeout_seconds))),
              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.max_retries),
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    with mock.patch.dict(os.environ, bounds):  # restored afterwards, whatever happens
        import mlflow

        mlflow.set_tracking_uri(tracking_uri(cfg))
        yield mlflow


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside the database for a SQLite store
    (MLflow's own default, ``./mlruns``, would land in whatever folder the worker runs in);
    the server's default for anything else."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlruns").as_uri()


def _use_experiment(mlflow: Any, name: str, uri: str) -> None:
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=artifact_location(uri))
    mlflow.set_experiment(name)


def _failed(exc: BaseException, step: str) -> dict[str, Any]:
    return {"status": "failed", "step": step, "error": f"{type(exc).__name__}: {exc}"[:2000],
            "warning": f"MLflow {step} failed; the lifecycle went on without it "
                       f"({type(exc).__name__})"}


def _flat_params(cfg: Config, card: dict[str, Any]) -> dict[str, str]:
    model = card.get("model") or {}
    params = {"task": cfg.task, "family": cfg.model.family,
              "estimator": str(model.get("estimator") or ""),
              "preprocessing": cfg.model.preprocessing,
              "primary_metric": cfg.primary_metric, "split_strategy": cfg.split.strategy,
              "split_seed": str(cfg.split.seed), "model_seed": str(cfg.model.seed),
              "threshold": str(card.get("threshold")),
              "stopping_iteration": str(model.get("stopping_iteration")),
              "rows_per_split": json.dumps(card.get("data", {}).get("rows_per_split"))}
    for key, value in (model.get("params") or {}).items():
        params[f"param_{key}"] = json.dumps(value, default=str)
    return {k: v[:500] for k, v in params.items()}


def _metrics(card: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, entry in (card.get("metrics") or {}).items():
        for suffix, key in (("", "value"), ("_low", "low"), ("_high", "high")):
            value = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(value, int | float) and value == value:
                out[f"test_{name}{suffix}"] = float(value)
    for name, value in (card.get("baseline_metrics") or {}).items():
        if isinstance(value, int | float) and value == value:
            out[f"baseline_{name}"] = float(value)
    validation = (card.get("model") or {}).get("validation_score")
    if isinstance(validation, int | float):
        out["validation_score"] = float(validation)
    out["gate_passed"] = 1.0 if (card.get("gate") or {}).get("passed") else 0.0
    return out


def log_training(cfg: Config, card: dict[str, Any], pipeline: Any, example: pd.DataFrame,
                 quality: dict[str, Any]) -> dict[str, Any]:
    """Log one training run (before the version is registered). Never raises.

    Returns:
        ``{"status": "logged", "run_id", "experiment", "tracking_uri"}`` or
        ``{"status": "failed", "step", "error", "warning"}``.
    """
    settings = cfg.tracking.mlflow
    assert settings is not None
    try:
        with _session(cfg) as mlflow:
            experiment = settings.experiment or f"ml-lifecycle/{cfg.name}"
            _use_experiment(mlflow, experiment, tracking_uri(cfg))
            reason = str((card.get("trigger") or {}).get("reason", ""))
            with mlflow.start_run(run_name=f"{cfg.name} {card.get('created_at', '')}") as run:
                mlflow.log_params(_flat_params(cfg, card))
                mlflow.log_metrics(_metrics(card))
                mlflow.set_tags({"ml_lifecycle.name": cfg.name, "ml_lifecycle.reason": reason,
                                 "ml_lifecycle.gate": "passed" if card["gate"]["passed"]
                                 else "rejected"})
                mlflow.log_dict(card, "model_card.json")
                mlflow.log_dict(card.get("gate") or {}, "gate.json")
                mlflow.log_dict(quality or {}, "quality_report.json")
                if settings.log_model:
                    _log_model(mlflow, cfg, pipeline, example)
            return {"status": "logged", "run_id": run.info.run_id, "experiment": experiment,
                    "tracking_uri": _shown_uri(cfg)}
    except Exception as exc:
        return _failed(exc, "logging")


def _log_model(mlflow: Any, cfg: Config, pipeline: Any, example: pd.DataFrame) -> None:
    from mlflow.models import infer_signature

    from .model_format import TRUSTED_TYPES

    x = example[list(cfg.data.features.all)].head(100)
    proba = cfg.task != "regression"
    output = pipeline.predict_proba(x) if proba else pipeline.predict(x)
    # the package's own storage policy: skops with the same allowlist (no code runs on load),
    # a pickle only where the registry opted in (registry.model_format: joblib)
    safe = cfg.registry.model_format == "skops"
    mlflow.sklearn.log_model(
        pipeline, name="model", signature=infer_signature(x, output), input_example=x.head(5),
        pyfunc_predict_fn="predict_proba" if proba else "predict",
        serialization_format="skops" if safe else "cloudpickle",
        **({"skops_trusted_types": list(TRUSTED_TYPES)} if safe else {}))


def _shown_uri(cfg: Config) -> str:
    """The URI without credentials (``user:password@`` removed)."""
    uri = tracking_uri(cfg)
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return uri


def register_version(cfg: Config, logged: dict[str, Any], version: int) -> dict[str, Any]:
    """Register the logged model as a version of the MLflow registered model, tagged with the
    package's version number. Never raises."""
    settings = cfg.tracking.mlflow
    if settings is None or logged.get("status") != "logged" or not settings.log_model:
        return {"status": "skipped"}
    try:
        with _session(cfg) as mlflow:
            name = model_name(cfg)
            mv = mlflow.register_model(f"runs:/{logged['run_id']}/model", name,
                                       tags={VERSION_TAG: str(version)})
            mlflow.MlflowClient().set_tag(logged["run_id"], VERSION_TAG, str(version))
            return {"status": "registered", "name": name, "version": int(mv.version)}
    except Exception as exc:
        return _failed(exc, "registration")


def sync_champion(cfg: Config, registry: Any) -> dict[str, Any] | None:
    """Point the MLflow alias at the champion's MLflow version (after a promotion or a
    rollback). None when MLflow is not configured; never raises."""
    settings = cfg.tracking.mlflow
    if settings is None or not settings.log_model:
        return None
    champion = registry.champion()
    if champion is None:
        return {"status": "skipped", "why": "no champion"}
    try:
        with _session(cfg) as mlflow:
            client = mlflow.MlflowClient()
            name = model_name(cfg)
            found = client.search_model_versions(
                f"name = '{name}' and tags.`{VERSION_TAG}` = '{champion}'")
            if not found:
                return {"status": "not_in_mlflow",
                        "why": f"v{champion} was never registered in MLflow"}
            mv = max(found, key=lambda m: int(m.version))
            client.set_registered_model_alias(name, settings.champion_alias, mv.version)
            return {"status": "aliased", "alias": settings.champion_alias, "name": name,
                    "mlflow_version": int(mv.version), "version": champion}
    except Exception as exc:
        return _failed(exc, "alias update")
