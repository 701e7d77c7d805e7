"""The drift check: a batch against the champion's reference profile, end to end.

* :func:`evaluate_batch` - the core on in-memory objects (profile, batch frame, scores, labelled
  rows, performance estimator): schema and quality, data drift with the BH + effect-size rule and
  the dataset verdict, prediction drift, the label-free estimate of the model's metric
  (:mod:`.estimate`) and the realized metric on arrived labels (concept drift). No registry, no
  I/O.
* :func:`run_drift_check` - what the CLI and the monitoring DAG run: loads the champion, its
  profile and the batch, scores it, evaluates, applies the retrain policy, stores the day's JSON
  and HTML in the monitoring store and returns the JSON-able result.
* :func:`cli_main` - ``python -m ml_lifecycle check-drift``; exit codes: 0 no action
  (``EXIT_OK``), 4 retrain recommended (``EXIT_RETRAIN_RECOMMENDED``), 2 invalid input
  (``EXIT_INVALID_INPUT``), 5 integrity failure of a stored artifact (``EXIT_INTEGRITY``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import (
    EXIT_INVALID_INPUT,
    EXIT_OK,
    EXIT_RETRAIN_RECOMMENDED,
    DataError,
    IntegrityError,
    MLLifecycleError,
    RegistryError,
)
from ..io import atomic_write_text, sha256_file
from ..model_format import pickles_allowed
from ..storage import as_path, join
from .batch_quality import check_schema, feature_quality, summarize_quality
from .concept import DEFAULT_METRIC, concept_drift, load_labelled, trailing_window
from .decision import (
    DRIFT,
    INSUFFICIENT,
    NO_DRIFT,
    UNAVAILABLE,
    decide_dataset,
    evaluate_feature,
    importance_of,
    map_features,
    prediction_drift,
    prediction_drift_multiclass,
    prepare_feature,
)
from .estimate import (
    ESTIMATOR_JSON,
    ESTIMATOR_NPZ,
    LEGACY_LOSS_MODEL_FILE,
    LOSS_MODEL_FILE,
    PerformanceEstimator,
    estimated_drift,
    realized_calibration,
    reliability,
)
from .policy import decide_retrain, policy_transaction, record_decision
from .profile import PROFILE_JSON, PROFILE_NPZ, ReferenceProfile, load_profile
from .report import render_html, to_json
from .settings import DriftConfig
from .store import day_json_path, day_report_path, drift_history, validate_day, write_day

if TYPE_CHECKING:
    from ..config import Config

RESULT_SCHEMA_VERSION = 2
HISTORY_DAYS_SHOWN = 90  # days of the performance chart in a day's report
#: Top-level keys of every check result (stable; tests assert them).
RESULT_KEYS = (
    "schema_version", "day", "checked_at", "verdict", "retrain", "severity", "reasons",
    "decision", "alert", "model", "batch", "estimated_performance", "data_drift",
    "prediction_drift", "concept_drift", "quality", "settings", "report_paths",
    "timings_seconds",
)


def overall_verdict(data: dict[str, Any], pred: dict[str, Any], perf: dict[str, Any],
                    estimated: dict[str, Any] | None = None) -> str:
    """``drift`` if data, prediction or concept drift, an estimated drop or a realized
    miscalibration; ``insufficient_data``
    if nothing could be judged; else ``no_drift``."""
    est = estimated or {}
    if data.get("verdict") == DRIFT or pred.get("drifted") or perf.get("flagged") \
            or est.get("flagged") or (perf.get("calibration") or {}).get("flagged"):
        return DRIFT
    judged = [data.get("verdict"), pred.get("status"), perf.get("status"), est.get("status")]
    if all(v in (INSUFFICIENT, UNAVAILABLE, None) for v in judged):
        return INSUFFICIENT
    if data.get("verdict") == INSUFFICIENT:
        return INSUFFICIENT
    return NO_DRIFT


def _unavailable(reason: str) -> dict[str, Any]:
    return {"status": UNAVAILABLE, "flagged": False, "drifted": False, "reason": reason}


def evaluate_batch(
    profile: ReferenceProfile,
    batch: pd.DataFrame,
    cfg: DriftConfig | None = None,
    *,
    scorer: Callable[[pd.DataFrame], np.ndarray] | None = None,
    scores: np.ndarray | None = None,
    labelled: pd.DataFrame | None = None,
    threshold: float | None = None,
    metric: str | None = None,
    reference_metric: float | None = None,
    source: str = "batch",
    known_columns: list[str] | None = None,
    estimator: PerformanceEstimator | None = None,
    pipeline: Any = None,
    min_reliability: float = 0.9,
) -> dict[str, Any]:
    """Evaluate one batch against a reference profile (no registry, no files).

    Args:
        profile: the champion's reference profile.
        batch: the batch (feature columns at least; ids/times may be present).
        cfg: drift settings (default: :class:`DriftConfig` defaults).
        scorer: called with the checked batch (feature columns, inf -> NaN) to get the scores;
            used when ``scores`` is None.
        scores: the model's scores for the batch rows.
        labelled: past rows with labels, columns ``y`` and ``score`` (the trailing window).
        threshold: the model's decision threshold (classification).
        metric: metric watched for concept drift (default roc_auc / rmse).
        reference_metric: its value on the test split (default: from the profile).
        source: how to name the batch in messages.
        known_columns: expected non-feature columns (not reported as extra).
        estimator: the model's fitted :class:`~.estimate.PerformanceEstimator` (None: the
            estimate is ``unavailable``, e.g. a model trained before estimation existed); its
            test-split sample also makes the realized-metric check resample the reference.
        pipeline: the fitted model (regression estimation feeds its preprocessing to the loss
            models).
        min_reliability: ``policy.min_reliability`` (the estimate's reliability threshold).

    Returns:
        JSON-able dict with ``verdict``, ``estimated_performance``, ``data_drift``,
        ``prediction_drift``, ``concept_drift``, ``quality`` and ``timings_seconds``.

    Raises:
        DataError: the batch is unusable (empty, missing feature columns, text in a numeric
            feature).
    """
    cfg = cfg or DriftConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    batch, schema = check_schema(batch, profile, source=source, known_columns=known_columns)
    data, quality, with_inf = _features_and_quality(profile, batch, cfg, schema)
    t2 = time.perf_counter()
    timings["data_drift_and_quality"] = round(t2 - t0, 4)
    if scores is None and scorer is not None:
        scores = scorer(_model_input(batch, profile, with_inf))
    t3 = time.perf_counter()
    timings["scoring"] = round(t3 - t2, 4)
    pred, estimated, perf = _score_checks(
        profile, batch, scores, quality, cfg, timings, scored_at=t3, labelled=labelled,
        threshold=threshold, metric=metric, reference_metric=reference_metric,
        estimator=estimator, pipeline=pipeline, min_reliability=min_reliability,
        with_inf=with_inf)
    return {"verdict": overall_verdict(data, pred, perf, estimated),
            "batch": {"source": source, "n_rows": len(batch), "n_columns": int(batch.shape[1])},
            "estimated_performance": estimated, "data_drift": data, "prediction_drift": pred,
            "concept_drift": perf, "quality": quality, "timings_seconds": timings}


def _score_checks(
    profile: ReferenceProfile,
    batch: pd.DataFrame,
    scores: np.ndarray | None,
    quality: dict[str, Any],
    cfg: DriftConfig,
    timings: dict[str, float],
    *,
    scored_at: float,
    labelled: pd.DataFrame | None,
    threshold: float | None,
    metric: str | None,
    reference_metric: float | None,
    estimator: PerformanceEstimator | None,
    pipeline: Any,
    min_reliability: float,
    with_inf: list[str],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Step: what the scores tell (prediction drift, the label-free estimate, the realized
    metric), timed from ``scored_at`` into ``timings``: ``(pred, estimated, perf)``."""
    if profile.task == "multiclass":
        pred = prediction_drift_multiclass(profile.class_scores, scores, cfg,
                                           class_shares=profile.class_shares)
    else:
        pred = prediction_drift(profile.scores, scores, cfg, task=profile.task,
                                threshold=threshold)
    metric = metric or cfg.performance_metric or DEFAULT_METRIC.get(profile.task, "roc_auc")
    t4 = time.perf_counter()
    estimated = _estimate(profile, batch, scores, quality, cfg, estimator=estimator,
                          pipeline=pipeline, metric=metric, min_reliability=min_reliability,
                          with_inf=with_inf)
    t5 = time.perf_counter()
    timings["estimate"] = round(t5 - t4, 4)
    if reference_metric is None:
        ref_entry = profile.test_metrics.get(metric)
        reference_metric = ref_entry.get("value") if isinstance(ref_entry, dict) else ref_entry
    perf = _realized(profile, labelled, cfg, metric=metric, reference_metric=reference_metric,
                     threshold=threshold, estimator=estimator)
    timings["prediction_and_concept"] = round(time.perf_counter() - t5 + (t4 - scored_at), 4)
    return pred, estimated, perf


def _features_and_quality(profile: ReferenceProfile, batch: pd.DataFrame, cfg: DriftConfig,
                          schema: dict[str, Any]
                          ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Data drift and quality of every feature (one at a time, in parallel with
    ``drift.n_jobs``): (dataset decision, quality summary, features that held infinities)."""
    n_rows = len(batch)
    sentinel_counts = batch.attrs.get("sentinel_counts") or {}
    nonfinite_counts = batch.attrs.get("nonfinite_counts") or {}

    def analyse(name: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], int]:
        # one feature at a time: its sorted copy is freed before the next one is made
        ref = profile.reference(name)
        cur = prepare_feature(profile, batch, name, cfg)
        drift = evaluate_feature(ref, cur, cfg, importance=importance_of(profile, name))
        info, issues = feature_quality(
            ref, cur, cfg, n_rows=n_rows, sentinels=int(sentinel_counts.get(name, 0)),
            nonfinite_converted=int(nonfinite_counts.get(name, 0)))
        return drift, info, issues, int(getattr(cur, "n_nonfinite", 0))

    analysed = map_features(analyse, profile.features, cfg.n_jobs)
    data = decide_dataset(profile, [a[0] for a in analysed], cfg, n_rows=n_rows)
    quality = summarize_quality(
        {name: a[1] for name, a in zip(profile.features, analysed, strict=True)},
        [issue for a in analysed for issue in a[2]], cfg, n_rows=n_rows, schema=schema)
    with_inf = [name for name, a in zip(profile.features, analysed, strict=True) if a[3]]
    return data, quality, with_inf


def _model_input(batch: pd.DataFrame, profile: ReferenceProfile,
                 with_inf: list[str]) -> pd.DataFrame:
    """The feature columns as the model scores them (infinities as missing values)."""
    features = batch[profile.features]
    if with_inf:
        features = features.assign(**{c: features[c].replace([np.inf, -np.inf], np.nan)
                                      for c in with_inf})
    return features


def _realized(profile: ReferenceProfile, labelled: pd.DataFrame | None, cfg: DriftConfig, *,
              metric: str, reference_metric: float | None, threshold: float | None,
              estimator: PerformanceEstimator | None) -> dict[str, Any]:
    """The ``concept_drift`` part: the realized metric on the labelled chunk against the test
    value (resampling the stored test sample too), and the realized calibration."""
    if labelled is None:
        perf = _unavailable("no labelled past batches given")
        perf["metric"] = metric
        return perf
    y = labelled["y"].to_numpy(dtype=float)
    s = labelled["score"].to_numpy(dtype=float)
    if profile.task == "multiclass":  # the class probabilities, in the card's class order
        s = labelled[[f"score_{k}" for k in range(len(profile.class_scores))]].to_numpy(
            dtype=float)
    perf = concept_drift(
        y, s, task=profile.task, metric=metric,
        reference_value=None if reference_metric is None else float(reference_metric),
        tolerance=cfg.performance_tolerance, tolerance_mode=cfg.performance_tolerance_mode,
        min_labelled=cfg.performance_min_labelled, n_boot=cfg.performance_bootstrap,
        confidence=cfg.performance_confidence, seed=cfg.seed,
        threshold=0.5 if threshold is None else float(threshold),
        reference_y=getattr(estimator, "test_y_", None),
        reference_scores=getattr(estimator, "test_scores_", None),
    )
    if profile.task == "classification" and cfg.calibration_tolerance is not None:
        perf["calibration"] = realized_calibration(
            y, s, getattr(estimator, "calibration_", None),
            uncertainty=getattr(estimator, "calibration_uncertainty_", None),
            tolerance=cfg.calibration_tolerance, confidence=cfg.performance_confidence,
            min_labelled=cfg.performance_min_labelled, n_boot=cfg.performance_bootstrap,
            seed=cfg.seed)
    return perf


def _estimate(
    profile: ReferenceProfile,
    batch: pd.DataFrame,
    scores: np.ndarray | None,
    quality: dict[str, Any],
    cfg: DriftConfig,
    *,
    estimator: PerformanceEstimator | None,
    pipeline: Any,
    metric: str,
    min_reliability: float,
    with_inf: list[str],
) -> dict[str, Any]:
    """The ``estimated_performance`` part: the label-free estimate of the watched metric vs the
    same estimate on the test split, with its reliability (share of the batch inside the
    training support, weighted by importance)."""
    rel, outside = reliability(quality.get("columns") or {}, profile.importances or {})
    common = {"metric": metric, "tolerance": cfg.performance_tolerance,
              "tolerance_mode": cfg.performance_tolerance_mode,
              "confidence": cfg.performance_confidence, "reliability_value": rel,
              "outside": outside, "min_reliability": min_reliability, "n_rows": len(batch),
              "min_rows": cfg.min_rows}
    if not cfg.estimate_performance:
        out = estimated_drift(None, {}, method="off", **common)
        out["reason"] = "drift.estimate_performance is off"
        return out
    if estimator is None or scores is None:
        return estimated_drift(None, {}, method="none", **common)
    features = _model_input(batch, profile, with_inf) if estimator.task == "regression" \
        else None
    estimates = estimator.estimate(np.asarray(scores, dtype=float), pipeline=pipeline,
                                   features=features)
    return estimated_drift(estimates, estimator.reference_, method=estimator.method, **common)


# --------------------------------------------------------------------------- run with registry


def _verify_files(card: dict[str, Any], version_dir: Path, names: tuple[str, ...],
                  what: str) -> None:
    """Check stored files against the sha256 the model card recorded (when it did)."""
    artifacts = card.get("artifacts") or {}
    for name in names:
        expected = artifacts.get(name)
        path = version_dir / name
        if expected and not path.is_file():
            raise IntegrityError(
                f"{what} file '{path}' is missing (the model card records sha256 "
                f"{expected}); refusing to check drift without it"
            )
        if expected and sha256_file(path) != expected:
            raise IntegrityError(
                f"{what} file '{path}' does not match the sha256 recorded in the "
                f"model card ({expected}); refusing to use it"
            )


def _load_estimator(card: dict[str, Any], version_dir: Path, *,
                    allow_pickle: bool = False) -> PerformanceEstimator | None:
    """The version's performance estimator, hash-checked; None when the card records none
    (a model trained before estimation existed: the estimate is then ``unavailable``)."""
    import json

    artifacts = card.get("artifacts") or {}
    if ESTIMATOR_JSON not in artifacts:
        return None
    names = (ESTIMATOR_JSON, ESTIMATOR_NPZ, LOSS_MODEL_FILE, LEGACY_LOSS_MODEL_FILE)
    _verify_files(card, version_dir, names, "performance estimator")
    meta = json.loads((version_dir / ESTIMATOR_JSON).read_text(encoding="utf-8"))
    arrays = None
    if ESTIMATOR_NPZ in artifacts:
        with np.load(version_dir / ESTIMATOR_NPZ, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    loss_models = None
    for name, fmt in ((LOSS_MODEL_FILE, "skops"), (LEGACY_LOSS_MODEL_FILE, "joblib")):
        if name in artifacts:  # hash-checked above against the card verified at promotion
            from ..model_format import loads

            loss_models = loads((version_dir / name).read_bytes(), fmt,
                                allow_pickle=allow_pickle, where=str(version_dir / name))
    try:
        return PerformanceEstimator.from_stored(meta, arrays, loss_models)
    except (KeyError, ValueError, TypeError) as exc:
        raise IntegrityError(f"performance estimator in '{version_dir}' is unusable: "
                             f"{exc}") from None


def _metric_value(card: dict[str, Any], metric: str) -> float | None:
    entry = (card.get("metrics") or {}).get(metric)
    value = entry.get("value") if isinstance(entry, dict) else entry
    return None if value is None else float(value)


def _registry_state(registry: Any, champion: int, card: dict[str, Any]) -> dict[str, Any]:
    """Champion and newest version with their creation times, read through ``get_card`` (so a
    registry view that reports times on another clock is honoured)."""
    latest_at = card.get("created_at")
    latest = champion
    try:
        for listed in registry.list_versions():
            other = registry.get_card(listed["version"])
            at = other.get("created_at")
            if at and (latest_at is None or str(at) > str(latest_at)):
                latest_at, latest = at, listed["version"]
    except (MLLifecycleError, OSError, KeyError):  # best effort; the champion is known
        pass
    return {"champion": champion, "champion_created_at": card.get("created_at"),
            "latest_version": latest, "latest_created_at": latest_at}


def run_drift_check(
    cfg: Config,
    *,
    batch_path: str,
    day: str,
    labels: pd.DataFrame | list[tuple[str, str]] | None = None,
    report_dir: str | Path | None = None,
    registry: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check one batch against the champion, decide on retraining, store the day's reports.

    Args:
        cfg: the validated config.
        batch_path: the batch file, folder or glob (read with ``data.load_table``).
        day: the day checked, ``YYYY-MM-DD`` (the store keeps one result per day).
        labels: delayed labels of past batches: ``(labels_path, predictions_path)`` pairs joined
            by the id column, or a frame of scored and labelled rows (target + score columns).
        report_dir: also write ``drift_<day>.json`` / ``.html`` there.
        registry: a :class:`~ml_lifecycle.registry.Registry` (default: ``cfg.registry.root``).
        now: decision time (default: now, UTC).

    Returns:
        The JSON-able result (keys :data:`RESULT_KEYS`): ``verdict``, ``retrain``, ``severity``,
        ``reasons``, ``report_paths`` ...

    Raises:
        DataError: unusable batch or labels; RegistryError: no champion or no profile;
        IntegrityError: a stored artifact was modified.
    """
    from ..data import load_table

    validate_day(day)
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    champion = _load_champion(cfg, registry)
    t_load = time.perf_counter()
    batch = load_table(cfg.data, str(batch_path), require_target=False)
    card, version = champion["card"], champion["version"]
    task = card.get("task", cfg.task)
    threshold = card.get("threshold")
    metric = cfg.drift.performance_metric or DEFAULT_METRIC.get(task, "roc_auc")
    labelled = _labelled_window(cfg, labels, card, day)
    scorer = _champion_scorer(champion, task, batch_path)
    known = [c for c in (cfg.data.id_column, cfg.data.time_column, cfg.data.target) if c]
    evaluation = evaluate_batch(
        champion["profile"], batch, cfg.drift, scorer=scorer, labelled=labelled,
        threshold=None if threshold is None else float(threshold), metric=metric,
        reference_metric=_metric_value(card, metric), source=str(batch_path),
        known_columns=known, estimator=champion["estimator"], pipeline=champion["model"],
        min_reliability=cfg.policy.min_reliability,
    )
    evaluation["timings_seconds"]["load"] = round(t_load - started, 4)
    _add_shap_shares(evaluation["data_drift"], card)
    result = _undecided_result(cfg, evaluation, day=day, now=now, card=card, version=version,
                               task=task, threshold=threshold, batch_path=batch_path,
                               files=batch.attrs.get("files", []))
    _decide_and_store(cfg, champion, result, day=day, now=now, report_dir=report_dir,
                      started=started)
    return {k: result[k] for k in RESULT_KEYS}


def _labelled_window(cfg: Config, labels: pd.DataFrame | list[tuple[str, str]] | None,
                     card: dict[str, Any], day: str) -> pd.DataFrame | None:
    """Step: the scored and labelled rows of the trailing window before ``day`` (None without
    labels)."""
    target_info = (card.get("data") or {}).get("target") or {}
    positive = target_info.get("positive_label")
    labelled = None
    if labels is not None:
        labelled = trailing_window(
            load_labelled(cfg, labels, positive_label=positive,
                          classes=target_info.get("classes")), day=day,
            window_days=cfg.drift.performance_window_days, max_rows=cfg.drift.performance_max_rows)
    return labelled


def _champion_scorer(champion: dict[str, Any], task: str,
                     batch_path: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """Step: the champion's scorer (a batch it cannot score is a DataError)."""
    from ..scoring import predict_scores

    version = champion["version"]

    def scorer(frame: pd.DataFrame) -> np.ndarray:
        try:
            return predict_scores(champion["model"], frame, task)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"batch '{batch_path}': champion v{version} cannot score it: "
                            f"{exc}") from None

    return scorer


def _undecided_result(cfg: Config, evaluation: dict[str, Any], *, day: str, now: datetime,
                      card: dict[str, Any], version: int, task: str, threshold: Any,
                      batch_path: str, files: list[Any]) -> dict[str, Any]:
    """Step: the day's result before the retrain decision (model, batch, settings and the
    evaluation; :func:`_decide_and_store` adds the rest)."""
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "day": day,
        "checked_at": now.isoformat(),
        "verdict": evaluation["verdict"],
        "model": {"name": card.get("name", cfg.name), "version": version, "task": task,
                  "threshold": threshold, "created_at": card.get("created_at")},
        "batch": {**evaluation["batch"], "path": str(batch_path), "files": files},
        "settings": {"drift": cfg.drift.model_dump(mode="json"),
                     "policy": cfg.policy.model_dump(mode="json")},
        **{k: evaluation[k] for k in ("estimated_performance", "data_drift", "prediction_drift",
                                      "concept_drift", "quality", "timings_seconds")},
    }


def _add_shap_shares(data: dict[str, Any], card: dict[str, Any]) -> None:
    """Each feature's share of the champion's mean |SHAP| (its card): how much of the model's
    output a drifted feature moves, next to its permutation-importance share."""
    mean_abs = ((card.get("shap") or {}).get("mean_abs") or {})
    total = sum(v for v in mean_abs.values() if isinstance(v, int | float))
    shares = {k: v / total for k, v in mean_abs.items() if total > 0}
    drifted = 0.0
    for feature in data.get("features") or []:
        feature["shap_share"] = shares.get(feature.get("feature"))
        if feature.get("status") == DRIFT and feature["shap_share"] is not None:
            drifted += feature["shap_share"]
    data["drifted_shap_share"] = drifted if shares else None


def _load_champion(cfg: Config, registry: Any) -> dict[str, Any]:
    """The champion's card, model, reference profile and performance estimator, every file
    checked against the sha256 its card recorded (an object-store registry downloads a
    verified copy; a folder registry is read in place)."""
    if registry is None:
        from ..registry import open_registry

        registry = open_registry(cfg.registry.root)
    version = registry.champion()
    if version is None:
        raise RegistryError(f"registry {as_path(cfg.registry.root)}: no champion; train and "
                            "promote a model first")
    card = registry.get_card(version) if hasattr(registry, "get_card") else \
        registry.champion_card()
    stored = (PROFILE_JSON, PROFILE_NPZ, ESTIMATOR_JSON, ESTIMATOR_NPZ, LOSS_MODEL_FILE,
              LEGACY_LOSS_MODEL_FILE)
    vdir = Path(registry.local_copy(version, names=stored)
                if hasattr(registry, "local_copy") else registry.version_dir(version))
    # The model first: load_model checks the card itself against the sha256 recorded at
    # promotion, so the profile hashes below come from a card that was not rewritten.
    model = registry.load_model(version, allow_pickle=pickles_allowed(cfg))
    _verify_files(card, vdir, (PROFILE_JSON, PROFILE_NPZ), "reference profile")
    return {"registry": registry, "version": version, "card": card, "model": model,
            "profile": load_profile(vdir),
            "estimator": (_load_estimator(card, vdir, allow_pickle=pickles_allowed(cfg))
                          if cfg.drift.estimate_performance else None)}


def _decide_and_store(cfg: Config, champion: dict[str, Any], result: dict[str, Any], *,
                      day: str, now: datetime, report_dir: str | Path | None,
                      started: float) -> None:
    """Apply the retrain policy inside a policy transaction (safe against concurrent checks),
    then store the day's result and report (and copy them to ``report_dir``)."""
    root = as_path(cfg.registry.root)
    for attempt in policy_transaction(root):
        with attempt:
            state = attempt.load()
            decision = decide_retrain(
                data_drift=result["data_drift"], prediction_drift=result["prediction_drift"],
                performance=result["concept_drift"], quality=result["quality"], state=state,
                registry_state=_registry_state(champion["registry"], champion["version"],
                                               champion["card"]),
                now=now, cfg=cfg.policy, day=day, estimated=result["estimated_performance"],
                verdict=result["verdict"],
            )
            alert = decision["alert"]
            result.update(decision=decision, retrain=decision["retrain"],
                          severity=decision["severity"], reasons=decision["reasons"],
                          alert={"action": alert["action"], "episode": alert["episode"]})
            paths: dict[str, Any] = {"store_json": str(day_json_path(root, day)),
                                     "store_html": str(day_report_path(root, day)),
                                     "json": None, "html": None}
            if report_dir is not None:
                paths["json"] = join(report_dir, f"drift_{day}.json")
                paths["html"] = join(report_dir, f"drift_{day}.html")
            result["report_paths"] = paths
            result["timings_seconds"]["total"] = round(time.perf_counter() - started, 4)
            html = render_html(result, history=drift_history(root, last=HISTORY_DAYS_SHOWN))
            write_day(root, day, result, html)
            if report_dir is not None:
                atomic_write_text(paths["html"], html)
                atomic_write_text(paths["json"], to_json(result))
            attempt.save(record_decision(state, decision, day=day, now=now,
                                         champion=champion["version"]))


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``check-drift``."""
    parser = argparse.ArgumentParser(
        prog="python -m ml_lifecycle check-drift",
        description="Check a batch against the champion's reference profile, apply the retrain "
                    "policy and store the day's JSON + HTML report under "
                    "<registry.root>/monitoring/. Exit codes: 0 no action, 4 retrain "
                    "recommended, 2 invalid input (config, data, arguments), 5 a stored "
                    "artifact failed its integrity check.",
    )
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--batch", required=True, help="batch file, folder or glob")
    parser.add_argument("--labels", action="append", default=[],
                        help="delayed labels of a past batch (id + target); repeat. Without "
                             "--predictions the file must also hold the score column")
    parser.add_argument("--predictions", action="append", default=[],
                        help="predictions of that past batch (id + score), paired with --labels "
                             "in order")
    parser.add_argument("--day", default=None, help="day checked, YYYY-MM-DD (default: today UTC)")
    parser.add_argument("--json", action="store_true", help="print the JSON result on stdout")
    parser.add_argument("--report-dir", default=None, help="also write the reports here")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override, e.g. drift.fdr_q=0.01")
    return parser


def _labels_argument(args: argparse.Namespace) -> pd.DataFrame | list[tuple[str, str]] | None:
    if args.predictions and len(args.predictions) != len(args.labels):
        raise DataError(
            f"--labels given {len(args.labels)} time(s) but --predictions {len(args.predictions)}"
            " time(s); pass one --predictions per --labels (same order), or none"
        )
    if not args.labels:
        return None
    if args.predictions:
        return list(zip(args.labels, args.predictions, strict=True))
    from .concept import _read_table

    return pd.concat([_read_table(p) for p in args.labels], ignore_index=True)


def _print_summary(result: dict[str, Any]) -> None:
    data = result["data_drift"]
    print(f"day {result['day']}: verdict {result['verdict']}, severity {result['severity']}, "
          f"retrain {'RECOMMENDED' if result['retrain'] else 'not recommended'}")
    print(f"  model v{result['model']['version']}, batch {result['batch']['n_rows']} rows; "
          f"{data['n_drifted']} of {data['n_tested']} features drifted"
          + (f": {', '.join(data['drifted_features'])}" if data["drifted_features"] else ""))
    for reason in result["reasons"]:
        print(f"  - {reason}")
    for key in ("store_html", "html", "json"):
        if result["report_paths"].get(key):
            print(f"  report: {result['report_paths'][key]}")


def cli_main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ml_lifecycle check-drift``.

    Args:
        argv: arguments after ``check-drift``.

    Returns:
        ``EXIT_OK`` (no action), ``EXIT_RETRAIN_RECOMMENDED`` or the error's exit code
        (``EXIT_INVALID_INPUT`` for config/data/argument errors).
    """
    from ..config import load_config

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return EXIT_OK if exc.code == 0 else EXIT_INVALID_INPUT
    try:
        cfg = load_config(args.config, args.overrides)
        day = validate_day(args.day) if args.day else datetime.now(UTC).date().isoformat()
        result = run_drift_check(cfg, batch_path=args.batch, day=day,
                                 labels=_labels_argument(args), report_dir=args.report_dir)
    except MLLifecycleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        sys.stdout.write(to_json(result))
    else:
        _print_summary(result)
    return EXIT_RETRAIN_RECOMMENDED if result["retrain"] else EXIT_OK


__all__ = ["RESULT_KEYS", "cli_main", "evaluate_batch", "overall_verdict", "run_drift_check"]
