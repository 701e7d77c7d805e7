"""The training pipeline: quality -> split -> preprocess+train -> evaluate -> gate -> register.

``run_training`` is what the CLI ``train`` command and the training DAG run. The order is the
point: the quality gate runs before anything is fitted, the split happens on the raw table, all
fitting sees the training rows only, validation drives every choice, the test split is scored
once, and the registry is written only at the end (staged, then renamed into place) so a failure
anywhere leaves the registry and the champion exactly as they were.
"""

from __future__ import annotations

import io
import logging
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import EXIT_GATE_REJECTED, EXIT_OK, DataError, RegistryError
from .io import atomic_write_bytes, atomic_write_json
from .labels import apply_label_map, positive_class, text_keys
from .model_format import file_name as model_file_name
from .model_format import pickles_allowed
from .storage import as_path, is_file

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger(__name__)

LIBRARIES = ("scikit-learn", "pandas", "numpy", "scipy", "joblib", "pyarrow", "pydantic")


def library_versions(extra_module: str | None = None) -> dict[str, str]:
    """Python and the libraries a model depends on; ``extra_module``: the module a custom
    estimator comes from, whose distribution (e.g. ``xgboost``) is added."""
    libraries = list(LIBRARIES)
    if extra_module:
        top = extra_module.split(".")[0].split(":")[0]
        libraries += [d for d in metadata.packages_distributions().get(top, [])
                      if d not in libraries]
    versions = {"python": platform.python_version()}
    for lib in libraries:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    return versions


def git_commit() -> str | None:
    """The project's git commit when known (None outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def encode_target(frame: pd.DataFrame, cfg: Config,
                  positive_label: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Encode the target: 0/1 with the configured positive class (else ``positive_label``, the
    champion's, else the minority class of this table), or floats."""
    target = frame[cfg.data.target]
    if cfg.task == "regression":
        y = pd.to_numeric(target, errors="coerce").to_numpy(dtype="float64")
        if not np.isfinite(y).all():
            raise DataError(f"target '{cfg.data.target}' has non-numeric or non-finite values")
        return y, {"mean": float(y.mean()), "std": float(y.std())}
    labels = text_keys(target)
    classes = np.unique(pd.unique(labels))  # sorted: one sort of the distinct labels
    if cfg.task == "multiclass":
        if len(classes) < 2:
            raise DataError(f"target '{cfg.data.target}' has {len(classes)} class(es) "
                            f"{classes.tolist()[:10]}; a classifier needs at least 2")
        codes = pd.Categorical(labels, categories=classes).codes  # class i of the sorted names
        counts = np.bincount(codes, minlength=len(classes))
        return codes.astype(int), {
            "classes": classes.tolist(),
            "class_rates": {str(c): float(k / len(codes)) for c, k in zip(classes, counts,
                                                                           strict=True)}}
    if len(classes) != 2:
        raise DataError(
            f"target '{cfg.data.target}': binary classification needs 2 classes, found "
            f"{len(classes)}: {classes.tolist()[:10]}"
            + ("; for three or more classes set task: multiclass" if len(classes) > 2 else "")
        )
    configured = cfg.data.positive_label
    positive = positive_class(labels, configured if configured is not None else positive_label)
    if positive not in classes:
        what = (f"data.positive_label {configured!r}" if configured is not None else
                f"the champion's positive class {positive_label!r}")
        raise DataError(f"{what} is not a value of target '{cfg.data.target}' (found "
                        f"{classes.tolist()}); set data.positive_label")
    y = (labels == positive).astype(int)
    return y, {"classes": classes.tolist(), "positive_label": positive,
               "positive_rate": float(y.mean())}


def labelled_batches(cfg: Config, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Join each (batch file, labels file) pair by the id column into one labelled frame."""
    from .data import attach_labels, load_table, read_file

    if not cfg.data.id_column:
        raise DataError("training on labelled batches needs data.id_column to join labels")
    frames = []
    for batch_path, labels_path in pairs:
        batch = load_table(cfg.data, batch_path, require_target=False)
        labels = read_file(as_path(labels_path), cfg.data)
        joined = attach_labels(batch, labels, id_column=cfg.data.id_column,
                               target=cfg.data.target, source=f"labels file '{labels_path}'")
        joined[cfg.data.target] = apply_label_map(joined[cfg.data.target], cfg.data.label_map)
        frames.append(joined)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_training_data(cfg: Config, window: dict[str, Any] | None = None) -> pd.DataFrame:
    """The training table: the configured data, plus labelled batches from a training window.

    ``window`` = {"include_original": bool, "pairs": [[batch_path, labels_path], ...]}.
    """
    from .data import load_table, sum_counts

    frames = []
    files: list[str] = []
    window = window or {}
    if window.get("include_original", True):
        base = load_table(cfg.data)
        frames.append(base)
        files += base.attrs.get("files", [])
    pairs = [tuple(p) for p in window.get("pairs", [])]
    if pairs:
        extra = labelled_batches(cfg, pairs)  # type: ignore[arg-type]
        if not extra.empty:
            frames.append(extra)
        files += [p for pair in pairs for p in pair]
    if not frames:
        raise DataError("the training window selects no data (no original data, no batches)")
    attrs = [dict(f.attrs) for f in frames]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame.attrs["files"] = files
    frame.attrs["sentinel_counts"] = sum_counts(a.get("sentinel_counts", {}) for a in attrs)
    return frame


class _Stopwatch:
    """Seconds per stage of a run (``timings_seconds`` in the card and the summary)."""

    def __init__(self) -> None:
        self.started = self.mark = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self.mark, 4)
        self.mark = now

    def total(self) -> dict[str, float]:
        self.timings["total"] = round(time.perf_counter() - self.started, 4)
        return self.timings


@dataclass
class _Prepared:
    """The checked, split training table of one run."""

    frame: pd.DataFrame
    files: list[str]
    n_loaded: int
    y: np.ndarray
    target_info: dict[str, Any]
    split: Any
    audit: dict[str, Any]
    quality: dict[str, Any]


@dataclass
class _Tested:
    """What the one look at the test split produced."""

    scores: np.ndarray
    metrics: dict[str, Any]
    baseline: dict[str, float]
    slices: dict[str, Any]
    extra: dict[str, Any]


def run_training(
    cfg: Config,
    *,
    reason: str = "manual",
    trigger: dict[str, Any] | None = None,
    window: dict[str, Any] | None = None,
    promote: bool = True,
    actor: str = "cli",
    frame: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Train, evaluate, gate and register one candidate; promote it when the gate passes.

    The steps, each its own function: load and check the table, split it and audit leakage
    (:func:`_prepare`), fit on train with early stopping and tuning on validation
    (``models.train_model``), look at the test split once (:func:`_test_once`), gate against
    the floors, the baseline and the champion (:func:`_gate`), fit the performance estimator
    on validation, explain, write the card (:func:`_model_card`), register
    (:func:`_register`) and promote (:func:`_promote`).

    Args:
        cfg: validated config.
        reason: why this run happens (stored in the model card and the promotion history).
        trigger: extra context (DAG run id, drift report path, ...), stored in the card.
        window: training window (see :func:`load_training_data`).
        promote: False registers the candidate without promoting it even if it passes.
        actor: who promotes (``cli``, ``airflow:<dag_id>``...).
        frame: an already loaded training table (tests, backtest); skips loading.
        now: the run's time for ``created_at`` (default: the wall clock). A replay (backtest,
            demo) passes the simulated day so the retrain policy's cooldown sees that time.

    Returns:
        A JSON-able summary with ``version``, ``promoted``, ``gate``, ``metrics``, ``exit_code``.

    Raises:
        QualityGateError, DataError, ConfigError, IntegrityError: nothing is registered.
    """
    from .registry import open_registry

    clock = _Stopwatch()
    _check_custom_estimator(cfg)
    registry = open_registry(cfg.registry.root)
    registry.cleanup_staging()
    data = _prepare(cfg, frame, window, clock, positive_label=_champion_positive(registry))
    x = data.frame[cfg.data.features.all]
    fit, tested = _train_and_test(cfg, data, x, clock)
    tr, va, te = data.split.train, data.split.validation, data.split.test
    gate, champion = _gate(cfg, registry, fit, data, x.iloc[te], tested)
    clock.lap("gate")
    estimator = _fit_performance_estimator(cfg, fit, x.iloc[va], data.y[va], x.iloc[te],
                                           data.y[te], tested.scores)
    clock.lap("performance_estimator")
    importances, coefficients, background, shap_summary = _explain(cfg, fit, x.iloc[tr],
                                                                   x.iloc[va], data.y[va])
    clock.lap("explain")
    card = _model_card(cfg, data, fit, tested, gate, champion, estimator, importances,
                       coefficients, reason=reason, trigger=trigger, window=window, now=now,
                       timings=clock.timings)
    card["shap"] = shap_summary
    logged = _log_to_mlflow(cfg, card, fit.pipeline, x.iloc[va], data.quality)
    version = _register(cfg, registry, fit, data, x.iloc[tr], card, estimator, background)
    clock.lap("register")
    promoted, promotion_error = _promote(registry, version, gate["passed"] and promote,
                                         reason=reason, actor=actor, champion=champion)
    clock.lap("promote")
    tracking = _mlflow_after(cfg, registry, logged, version, promoted)
    clock.lap("tracking")
    return _summary(cfg, registry, data, fit, tested, gate, card, version=version,
                    promoted=promoted, promotion_error=promotion_error, champion=champion,
                    clock=clock, tracking=tracking)


def _train_and_test(cfg: Config, data: _Prepared, x: pd.DataFrame,
                    clock: _Stopwatch) -> tuple[Any, _Tested]:
    """Step: fit on train (tuned on validation), then the one look at the test split."""
    from .models import train_model

    tr, va = data.split.train, data.split.validation
    fit = train_model(cfg, x.iloc[tr], data.y[tr], x.iloc[va], data.y[va])
    clock.lap("train")
    tested = _test_once(cfg, fit, data, x)
    clock.lap("evaluate")
    return fit, tested


def _check_custom_estimator(cfg: Config) -> None:
    """Step: build a custom estimator once, so a wrong ``model.estimator`` fails early."""
    if cfg.model.family == "custom":  # a wrong model.estimator fails before any data is read
        from .custom import build
        from .models import candidate_params

        build(cfg, candidate_params(cfg)[0])


def _explain(cfg: Config, fit: Any, x_train: pd.DataFrame, x_val: pd.DataFrame,
             y_val: np.ndarray) -> tuple[dict[str, dict[str, float]], Any, Any, Any]:
    """Step: the explanations (importances, coefficients, SHAP background and summary)."""
    from .explain import linear_coefficients, permutation_importances
    from .shap_explain import background_rows, global_importance

    importances = permutation_importances(cfg, fit.pipeline, x_val, y_val)
    coefficients = linear_coefficients(cfg, fit.pipeline)
    background = background_rows(cfg, x_train)  # training rows only
    shap_summary = global_importance(cfg, fit.pipeline, background, x_val)
    return importances, coefficients, background, shap_summary


def _summary(cfg: Config, registry: Any, data: _Prepared, fit: Any, tested: _Tested,
             gate: dict[str, Any], card: dict[str, Any], *, version: int, promoted: bool,
             promotion_error: str | None, champion: int | None, clock: _Stopwatch,
             tracking: dict[str, Any] | None) -> dict[str, Any]:
    """Step: the run's JSON-able summary (closes the stopwatch)."""
    return {
        "version": version,
        "promoted": promoted,
        "promotion_error": promotion_error,
        "champion_before": champion,
        "champion_after": registry.champion(),
        "gate": gate,
        "primary_metric": cfg.primary_metric,
        "metrics": tested.metrics,
        "baseline_metrics": tested.baseline,
        "threshold": fit.threshold,
        "stopping_iteration": fit.stopping_iteration,
        "rows_per_split": data.split.sizes(),
        "importances": card["importances"],
        "leak_suspects": data.audit["target_leak_screen"]["suspects"],
        "quality_warnings": data.quality.get("n_warnings"),
        "version_dir": str(registry.version_dir(version)),
        "timings_seconds": clock.total(),
        "tracking": tracking,
        "exit_code": EXIT_OK if gate["passed"] else EXIT_GATE_REJECTED,
    }


def _log_to_mlflow(cfg: Config, card: dict[str, Any], pipeline: Any, example: pd.DataFrame,
                   quality: dict[str, Any]) -> dict[str, Any] | None:
    """The MLflow run of this training (``tracking.mlflow``), recorded in the card: its run id,
    or the failure as a warning. Never raises: MLflow down changes nothing else."""
    from .mlflow_export import enabled, log_training

    if not enabled(cfg):
        return None
    logged = log_training(cfg, card, pipeline, example, quality)
    card["tracking"] = {"mlflow": logged}
    if logged["status"] != "logged":
        log.warning("%s", logged["warning"])
    return logged


def _mlflow_after(cfg: Config, registry: Any, logged: dict[str, Any] | None, version: int,
                  promoted: bool) -> dict[str, Any] | None:
    """Register the version in MLflow and, after a promotion, move its champion alias; the
    summary's ``tracking.mlflow`` (``warnings`` lists what failed)."""
    from .mlflow_export import register_version, sync_champion

    if logged is None:
        return None
    out: dict[str, Any] = {"logged": logged, "registered": register_version(cfg, logged,
                                                                            version)}
    if promoted:
        out["alias"] = sync_champion(cfg, registry)
    out["warnings"] = [step["warning"] for step in out.values()
                       if isinstance(step, dict) and step.get("status") == "failed"]
    for warning in out["warnings"][1:] if logged["status"] == "failed" else out["warnings"]:
        log.warning("%s", warning)
    return {"mlflow": out}


def _champion_positive(registry: Any) -> Any:
    """The champion's positive class, if there is a champion.

    Pitfall avoided: without ``data.positive_label`` the positive class is the minority class
    of the table; if the balance flips between retrains, a candidate would score
    P(the other class) and the gate would compare it with the champion's P(positive). A
    retrain keeps the champion's encoding instead.
    """
    version = registry.champion()
    if version is None:
        return None
    return ((registry.get_card(version).get("data") or {}).get("target") or {}).get(
        "positive_label")


def _prepare(cfg: Config, frame: pd.DataFrame | None, window: dict[str, Any] | None,
             clock: _Stopwatch, *, positive_label: Any = None) -> _Prepared:
    """Load (unless given), check the columns, run the quality gate, drop rows without a
    target, encode it, split first and audit the split for leakage."""
    from .quality import enforce_quality
    from .split import leakage_audit, split_frame

    if frame is None:
        frame = load_training_data(cfg, window)
    files = list(frame.attrs.get("files", []))
    _check_declared_columns(frame, cfg)
    clock.lap("load")
    quality = enforce_quality(frame, cfg, sentinel_counts=frame.attrs.get("sentinel_counts"))
    clock.lap("quality")
    n_loaded = len(frame)
    frame = frame[frame[cfg.data.target].notna()].reset_index(drop=True)
    y, target_info = encode_target(frame, cfg, positive_label)
    split = split_frame(frame, y, cfg)
    audit = leakage_audit(frame, y, split, cfg)
    clock.lap("split")
    return _Prepared(frame, files, n_loaded, y, target_info, split, audit, quality)


def _test_once(cfg: Config, fit: Any, data: _Prepared, x: pd.DataFrame) -> _Tested:
    """The test split, used here once, after every choice has been made on validation:
    metrics with bootstrap intervals, the naive baseline, slices, the confusion matrix (or the
    residuals)."""
    from .evaluate import baseline_scores, bootstrap_metrics, confusion, slice_metrics
    from .metrics import compute_metrics
    from .scoring import predict_scores

    tr, te = data.split.train, data.split.test
    y_test = data.y[te]
    scores = predict_scores(fit.pipeline, x.iloc[te], cfg.task)
    ev = cfg.evaluation
    metrics = bootstrap_metrics(cfg.task, y_test, scores, fit.threshold, ev.bootstrap,
                                ev.confidence, ev.seed)
    baseline = compute_metrics(cfg.task, y_test,
                               baseline_scores(cfg.task, data.y[tr], len(te)), fit.threshold)
    slices = slice_metrics(cfg.task, data.frame.iloc[te], y_test, scores, fit.threshold,
                           [c for c in ev.slices if c in data.frame.columns])
    extra: dict[str, Any] = {}
    if cfg.task == "classification":
        extra["confusion_matrix"] = confusion(y_test, scores, fit.threshold)
    elif cfg.task == "multiclass":  # per-class precision/recall/F1 and the K x K matrix
        from .metrics import per_class_report

        extra.update(per_class_report(y_test, scores, data.target_info["classes"]))
    else:
        resid = y_test - scores
        counts, edges = np.histogram(resid, bins=30)
        extra["residuals"] = {
            "quantiles": {str(q): float(np.quantile(resid, q))
                          for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)},
            "histogram": counts.tolist(),
            "bin_edges": edges.tolist(),
        }
    return _Tested(scores, metrics, baseline, slices, extra)


def _gate(cfg: Config, registry: Any, fit: Any, data: _Prepared, x_test: pd.DataFrame,
          tested: _Tested) -> tuple[dict[str, Any], int | None]:
    """The gate decision (as a dict) and the champion it was taken against.

    The champion is compared on the test rows it was not trained or tuned on (its stored split
    assignment), with every one of its artifacts verified first; a champion that cannot score
    the rows fails the comparison rule by name.
    """
    from .gate import decide
    from .scoring import predict_scores
    from .split import row_ids

    te = data.split.test
    y_test = data.y[te]
    champion = registry.champion()
    champion_scores, champion_threshold, note = None, 0.5, None
    rows = np.ones(len(te), dtype=bool)
    rows_info: dict[str, Any] = {}
    if champion is not None:
        registry.verify(champion)
        champion_card = registry.get_card(champion)
        champion_model = registry.load_model(  # sha256-verified before loading
            champion, allow_pickle=pickles_allowed(cfg))
        champion_threshold = float(champion_card.get("threshold") or 0.5)
        rows, rows_info = _unseen_by_champion(registry, champion,
                                              row_ids(data.frame.iloc[te], cfg))
        try:
            champion_scores = predict_scores(champion_model, x_test, cfg.task)
        except (KeyError, ValueError) as exc:
            note = f"champion v{champion} cannot score these rows: {exc}"
        champion_classes = ((champion_card.get("data") or {}).get("target") or {}).get("classes")
        if cfg.task == "multiclass" and champion_classes != data.target_info["classes"]:
            champion_scores = None  # its probability columns are other classes
            note = (f"champion v{champion} predicts the classes {champion_classes}, the "
                    f"candidate {data.target_info['classes']}: a paired comparison needs the "
                    "same classes (promote by hand after review: models promote --force --reason)")
    gate = decide(
        cfg, y_test=y_test[rows], candidate_scores=tested.scores[rows],
        candidate_threshold=fit.threshold, candidate_metrics=tested.metrics,
        baseline_metrics=tested.baseline,
        champion_scores=None if champion_scores is None else champion_scores[rows],
        champion_threshold=champion_threshold, champion_version=champion,
    ).to_dict()
    gate["champion_comparison_rows"] = rows_info
    if note:
        gate["passed"] = False
        gate["rules"].append({"name": "not_worse_than_champion", "metric": cfg.primary_metric,
                              "value": None, "threshold": None, "passed": False,
                              "detail": note})
        gate["reasons"].append(note)
    return gate, champion


def _model_card(cfg: Config, data: _Prepared, fit: Any, tested: _Tested, gate: dict[str, Any],
                champion: int | None, estimator: Any, importances: dict[str, dict[str, float]],
                coefficients: Any, *, reason: str, trigger: dict[str, Any] | None,
                window: dict[str, Any] | None, now: datetime | None,
                timings: dict[str, float]) -> dict[str, Any]:
    """The model card: data (files with hashes, rows, time range, target), split, leakage
    audit, resolved config, model, threshold, test metrics, baseline, slices, gate,
    performance estimation, importances, quality summary, library versions, commit."""
    from .data import file_hashes

    frame, split = data.frame, data.split
    time_range = None
    if cfg.data.time_column and cfg.data.time_column in frame.columns:
        times = pd.to_datetime(frame[cfg.data.time_column])
        time_range = [times.min().isoformat(), times.max().isoformat()]
    return {
        "name": cfg.name,
        "task": cfg.task,
        "created_at": (now or datetime.now(UTC)).isoformat(),
        "trigger": {"reason": reason, **(trigger or {})},
        "data": {
            "files": file_hashes([f for f in data.files if is_file(f)]),
            "rows_loaded": data.n_loaded,
            "rows_used": len(frame),
            "rows_dropped_missing_target": data.n_loaded - len(frame),
            "rows_per_split": split.sizes(),
            "time_range": time_range,
            "time_max": time_range[1] if time_range else None,
            "target": {"name": cfg.data.target, **data.target_info},
            "features": {"numeric": cfg.data.features.numeric,
                         "categorical": cfg.data.features.categorical},
            "window": window,
        },
        "split": {"strategy": split.strategy, "seed": split.seed,
                  "fractions": {"train": cfg.split.train, "validation": cfg.split.validation,
                                "test": cfg.split.test}, "notes": split.notes},
        "leakage_audit": data.audit,
        "config": cfg.resolved(),
        "model": _model_section(cfg, fit),
        "threshold": fit.threshold,
        "threshold_info": fit.threshold_info,
        "primary_metric": cfg.primary_metric,
        "metrics": tested.metrics,
        "baseline_metrics": tested.baseline,
        "slices": tested.slices,
        **tested.extra,
        "gate": gate,
        "champion_at_training": champion,
        "performance_estimation": None if estimator is None else {
            k: v for k, v in estimator.to_dict().items()
            if k in ("method", "reference", "calibration", "loss_info", "n_validation",
                     "assumptions")},
        "importances": {f: v["mean"] for f, v in importances.items()},
        "importances_std": {f: v["std"] for f, v in importances.items()},
        "coefficients": coefficients,
        "quality_summary": {"passed": data.quality.get("passed"),
                            "n_warnings": data.quality.get("n_warnings")},
        "library_versions": library_versions(cfg.model.estimator),
        "git_commit": git_commit(),
        "timings_seconds": timings,
    }


def _model_section(cfg: Config, fit: Any) -> dict[str, Any]:
    """Step: the card's ``model`` section (family, estimator, params, early stopping, search)."""
    return {
        "family": cfg.model.family,
        "estimator": (cfg.model.estimator if cfg.model.family == "custom"
                      else type(fit.pipeline.named_steps["model"]).__name__),
        "estimator_class": _class_path(fit.pipeline.named_steps["model"]),
        "preprocessing": cfg.model.preprocessing,
        "params": fit.params,
        "early_stopping": fit.early_stopping,
        "stopping_iteration": fit.stopping_iteration,
        "validation_metric": fit.validation_metric,
        "validation_score": fit.validation_score,
        "validation_curve": fit.validation_curve,
        "search_trials": fit.trials,
    }


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _register(cfg: Config, registry: Any, fit: Any, data: _Prepared, x_train: pd.DataFrame,
              card: dict[str, Any], estimator: Any, background: pd.DataFrame | None = None
              ) -> int:
    """Stage every artifact (model, quality report, split assignment, reference profile,
    performance estimator) and register the version; a failure leaves nothing behind."""
    staging = registry.stage()
    try:
        fmt = cfg.registry.model_format
        registry.save_model(staging, fit.pipeline, fmt=fmt)  # skops refuses untrusted types
        atomic_write_json(staging / "quality_report.json", data.quality)
        if cfg.registry.keep_split_assignment:
            data.split.assignment(data.frame, cfg).to_parquet(
                staging / "split_assignment.parquet", index=False)
        _save_reference_profile(cfg, staging, x_train, fit.validation_scores, card["metrics"],
                                card["importances"], data.target_info.get("classes"))
        if estimator is not None:
            estimator.save(staging)
        if background is not None:  # the SHAP explainers' training rows (``score --explain``)
            from .shap_explain import BACKGROUND_FILE

            buffer = io.BytesIO()
            background.to_parquet(buffer, index=False)
            atomic_write_bytes(staging / BACKGROUND_FILE, buffer.getvalue())
        card["model_format"] = fmt
        return registry.register(staging, card, model_file=model_file_name(fmt))
    except BaseException:
        try:  # also releases the staging dir's liveness lock (its file and descriptor)
            registry.discard(staging)
        except Exception:  # e.g. register() failed after publishing it: nothing to discard
            shutil.rmtree(staging, ignore_errors=True)
        raise


def _promote(registry: Any, version: int, wanted: bool, *, reason: str, actor: str,
             champion: int | None) -> tuple[bool, str | None]:
    """Promote when the gate passed (and promotion was asked for), as a compare-and-swap on the
    champion the gate compared against: if another run promoted in between, theirs stays."""
    if not wanted:
        return False, None
    try:
        registry.promote(version, reason=reason, actor=actor, expected_champion=champion)
    except RegistryError as exc:
        return False, str(exc)
    return True, None


def _check_declared_columns(frame: pd.DataFrame, cfg: Config) -> None:
    """The id, time and group columns the config names must exist (split and card use them)."""
    declared = {"data.id_column": cfg.data.id_column, "data.time_column": cfg.data.time_column,
                "split.group_column": cfg.split.group_column}
    missing = {key: col for key, col in declared.items() if col and col not in frame.columns}
    if missing:
        shown = list(frame.columns)[:20]
        raise DataError(
            "the training table lacks the column(s) the config names: "
            + ", ".join(f"{key} '{col}'" for key, col in missing.items())
            + f"; it has {shown}" + (" ..." if len(frame.columns) > 20 else "")
        )


def _unseen_by_champion(registry: Any, version: int,
                        test_ids: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Test rows the champion was not trained or tuned on (its stored split assignment).

    Scoring the champion on rows it was fitted on would flatter it; the paired comparison uses
    only rows neither model has seen, unless too few remain (then all rows, and a note).
    """
    all_rows = np.ones(len(test_ids), dtype=bool)
    try:  # read through the registry: checked against the card's sha256, local or S3
        data = registry.read_artifact(version, "split_assignment.parquet")
    except RegistryError:
        return all_rows, {"rows": len(test_ids), "note": "champion has no split assignment"}
    assignment = pd.read_parquet(io.BytesIO(data))
    seen = assignment.loc[assignment["split"].isin(["train", "validation"]), "row_id"]
    # a hash lookup: np.isin sorts string arrays (6.7 s of a 12 s retrain on UCI Adult)
    unseen = ~pd.Series(test_ids, dtype=object).isin(set(seen.astype(str))).to_numpy()
    minimum = max(50, int(0.1 * len(test_ids)))
    if unseen.sum() < minimum:
        return all_rows, {"rows": len(test_ids), "seen_by_champion": int((~unseen).sum()),
                          "note": f"only {int(unseen.sum())} test rows are unseen by the "
                                  f"champion (< {minimum}): compared on all test rows"}
    return unseen, {"rows": int(unseen.sum()), "excluded_seen_by_champion": int((~unseen).sum())}


def _fit_performance_estimator(cfg: Config, fit: Any, x_val: pd.DataFrame, y_val: np.ndarray,
                               x_test: pd.DataFrame, y_test: np.ndarray,
                               test_scores: np.ndarray) -> Any:
    """The label-free performance estimator: fitted on validation, its reference on test.

    The calibration (classification) or the loss models (regression) learn from the validation
    split only; the test split only gives the reference level (estimated and realized), so the
    drift check compares a batch's estimate with the same estimator's output on test rows.
    """
    from .drift.estimate import PerformanceEstimator

    if not cfg.drift.estimate_performance or fit.validation_scores is None:
        return None
    estimator = PerformanceEstimator(
        cfg.task, threshold=float(fit.threshold), confidence=cfg.drift.performance_confidence,
        draws=cfg.drift.estimate_simulations, max_rows=cfg.drift.estimate_max_rows,
        seed=cfg.drift.seed)
    estimator.fit(y_val, fit.validation_scores, pipeline=fit.pipeline, x_val=x_val)
    return estimator.set_reference(y_test, test_scores, pipeline=fit.pipeline, x_test=x_test)


def _save_reference_profile(cfg: Config, staging: Path, x_train: pd.DataFrame,
                            validation_scores: np.ndarray | None, metrics: dict[str, Any],
                            importances: dict[str, float],
                            classes: list[Any] | None = None) -> None:
    """Store the drift reference profile (training split) with the version."""
    from .drift.profile import build_reference_profile

    profile = build_reference_profile(
        x_train, cfg, validation_scores=validation_scores, test_metrics=metrics,
        importances=importances, classes=classes if cfg.task == "multiclass" else None,
    )
    profile.save(staging)
