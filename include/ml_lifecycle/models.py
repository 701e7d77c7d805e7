"""Model families, validation-set early stopping, search on validation, threshold choice.

Pitfall avoided: tuning or early-stopping on the test set. Every choice made during training
(the stopping iteration, hyper-parameters, the decision threshold) is made on the *validation*
split; the test split is not passed to anything in this module.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError, DataError
from .metrics import compute_metric, higher_is_better

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from .config import Config


@dataclass
class FitResult:
    """What training produced: the fitted pipeline and how it was chosen."""

    pipeline: Pipeline
    params: dict[str, Any]
    validation_metric: str
    validation_score: float
    validation_curve: dict[str, Any]
    stopping_iteration: int | None
    trials: list[dict[str, Any]] = field(default_factory=list)
    threshold: float = 0.5
    threshold_info: dict[str, Any] = field(default_factory=dict)
    validation_scores: np.ndarray | None = None
    early_stopping: dict[str, Any] = field(default_factory=dict)


def _scores(model: Any, x: Any, task: str) -> np.ndarray:
    from .scoring import predict_scores

    return predict_scores(model, x, task)


def _sample_weight(y: np.ndarray, class_weight: str | None) -> np.ndarray | None:
    if class_weight != "balanced":
        return None
    from sklearn.utils.class_weight import compute_sample_weight

    return compute_sample_weight("balanced", y)


def _validation_weight(y_train: np.ndarray, y_val: np.ndarray,
                       class_weight: str | None) -> np.ndarray | None:
    """Weights for the validation rows with the *training* split's class weights.

    Pitfall avoided: with ``class_weight="balanced"`` the model minimises a class-weighted loss,
    so early stopping must watch the same weighted loss on validation. Unweighted, the
    validation loss is dominated by the majority class and keeps improving long after the
    weighted objective has stopped (on UCI Adult: 262 trees instead of 123). The weights come
    from the training labels only (validation is never used to fit anything), like
    scikit-learn's own early stopping, which splits already-weighted rows.
    """
    if class_weight != "balanced":
        return None
    classes, counts = np.unique(y_train, return_counts=True)
    per_class = len(y_train) / (len(classes) * counts)
    index = np.clip(np.searchsorted(classes, y_val), 0, len(classes) - 1)
    known = classes[index] == y_val
    return np.where(known, per_class[index], 1.0)


def _fit_hgb(cfg: Config, params: dict[str, Any], xt: np.ndarray, yt: np.ndarray,
             xv: np.ndarray, yv: np.ndarray) -> tuple[Any, dict[str, Any], int]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    common = dict(
        max_iter=cfg.model.max_iter,
        early_stopping=True,
        n_iter_no_change=cfg.model.patience,
        scoring="loss",
        random_state=cfg.model.seed,
    )
    common.update(params)
    if cfg.is_classifier:
        est = HistGradientBoostingClassifier(class_weight=cfg.model.class_weight, **common)
    else:
        est = HistGradientBoostingRegressor(**common)
    # scikit-learn >= 1.8: early stopping on an explicit validation set (not a random slice of
    # the training rows), weighted like the training loss.
    weight_val = (_validation_weight(yt, yv, cfg.model.class_weight)
                  if cfg.is_classifier else None)
    est.fit(xt, yt, X_val=xv, y_val=yv, sample_weight_val=weight_val)
    val_loss = (-np.asarray(est.validation_score_)).tolist()  # scoring="loss" stores -loss
    best = int(np.argmin(val_loss))  # entry i: the loss after i iterations (0: the baseline)
    curve = {
        "x_label": "iteration",
        "metric": "validation loss",
        "x": list(range(len(val_loss))),
        "values": val_loss,
        "train_values": (-np.asarray(est.train_score_)).tolist(),
        "best_iteration": best,
        "stopped_iteration": int(est.n_iter_),
    }
    est = _keep_best_iterations(est, max(best, 1))
    return est, curve, int(est.n_iter_)  # the iterations the model keeps


def _keep_best_iterations(est: Any, keep: int) -> Any:
    """Drop the trees grown after the best validation loss.

    Pitfall avoided: scikit-learn's HistGradientBoosting early stopping stops *patience*
    iterations after the best one and keeps those trees (``n_iter_`` 44 with the best loss at
    24 and ``n_iter_no_change`` 20): the model used would be one the validation split already
    found worse. The fitted ensemble is cut back to its first ``keep`` iterations, exactly the
    model a fit with ``max_iter=keep`` grows (``tests/test_training.py`` checks it against
    that refit), without paying for a second fit.
    """
    if keep >= est.n_iter_:
        return est
    est._predictors = est._predictors[:keep]  # n_iter_ is len(_predictors)
    est.train_score_ = est.train_score_[: keep + 1]
    est.validation_score_ = est.validation_score_[: keep + 1]
    return est


def _fit_sgd(cfg: Config, params: dict[str, Any], xt: np.ndarray, yt: np.ndarray,
             xv: np.ndarray, yv: np.ndarray) -> tuple[Any, dict[str, Any], int]:
    from sklearn.linear_model import SGDClassifier, SGDRegressor
    from sklearn.metrics import log_loss

    seed = cfg.model.seed
    classify = cfg.is_classifier
    if classify:
        est: Any = SGDClassifier(loss="log_loss", random_state=seed,
                                 **{"alpha": 1e-4, **params})
    else:
        est = SGDRegressor(random_state=seed, **{"alpha": 1e-4, **params})
    weights = _sample_weight(yt, cfg.model.class_weight) if classify else None
    weight_val = _validation_weight(yt, yv, cfg.model.class_weight) if classify else None
    rng = np.random.default_rng(seed)
    classes = np.unique(yt)
    best_loss, best_est, best_epoch, bad = np.inf, None, 0, 0
    losses: list[float] = []
    for epoch in range(cfg.model.max_iter):
        order = rng.permutation(len(yt))
        kwargs: dict[str, Any] = {"sample_weight": None if weights is None else weights[order]}
        if classify:
            kwargs["classes"] = classes
        est.partial_fit(xt[order], yt[order], **kwargs)
        if classify:
            proba = np.clip(est.predict_proba(xv), 1e-12, 1 - 1e-12)
            loss = float(log_loss(yv, proba if proba.shape[1] > 2 else proba[:, 1],
                                  labels=classes, sample_weight=weight_val))
        else:
            loss = float(np.mean((est.predict(xv) - yv) ** 2))
        losses.append(loss)
        if loss < best_loss - 1e-6:
            best_loss, best_est, best_epoch, bad = loss, copy.deepcopy(est), epoch, 0
        else:
            bad += 1
            if bad >= cfg.model.patience:
                break
    curve = {
        "x_label": "epoch",
        "metric": "validation log loss" if classify else "validation MSE",
        "x": list(range(len(losses))),
        "values": losses,
        "best_iteration": best_epoch,
    }
    return best_est, curve, best_epoch + 1


def _fit_linear(cfg: Config, params: dict[str, Any], xt: np.ndarray, yt: np.ndarray,
                xv: np.ndarray, yv: np.ndarray) -> tuple[Any, dict[str, Any], int | None]:
    from sklearn.linear_model import Lasso, LogisticRegression, Ridge

    family = cfg.model.family
    if family == "logistic_regression":
        p = {"C": 1.0, "l1_ratio": 0.0, **params}
        solver = "lbfgs" if p["l1_ratio"] == 0 else "saga"
        est: Any = LogisticRegression(
            solver=solver, max_iter=cfg.model.max_iter, class_weight=cfg.model.class_weight,
            random_state=cfg.model.seed, **p,
        )
    elif family == "ridge":
        est = Ridge(random_state=cfg.model.seed, **{"alpha": 1.0, **params})
    else:
        est = Lasso(random_state=cfg.model.seed, max_iter=cfg.model.max_iter,
                    **{"alpha": 0.1, **params})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        est.fit(xt, yt)
    n_iter = getattr(est, "n_iter_", None)
    if n_iter is not None:
        n_iter = int(np.max(n_iter))
    return est, {}, n_iter


def _fit_custom(cfg: Config, params: dict[str, Any], xt: Any, yt: np.ndarray,
                xv: Any, yv: np.ndarray) -> tuple[Any, dict[str, Any], int | None]:
    from .custom import fit

    return fit(cfg, params, xt, yt, xv, yv)


#: How each built-in family uses the validation split to stop (the card's model.early_stopping).
_EARLY_STOPPING = {
    "hist_gradient_boosting": {"used": True, "validation_argument": "X_val",
                               "kept": "the iterations up to the best validation loss"},
    "sgd": {"used": True, "validation_argument": "epochs scored on validation",
            "kept": "the epoch with the best validation loss"},
    "logistic_regression": {"used": False, "why": "solved to convergence (no iterations to "
                                                  "stop); the validation split tunes and "
                                                  "chooses the threshold"},
    "ridge": {"used": False, "why": "closed-form solution"},
    "lasso": {"used": False, "why": "solved to convergence (coordinate descent)"},
}

_FITTERS = {
    "custom": _fit_custom,
    "hist_gradient_boosting": _fit_hgb,
    "sgd": _fit_sgd,
    "logistic_regression": _fit_linear,
    "ridge": _fit_linear,
    "lasso": _fit_linear,
}


def candidate_params(cfg: Config) -> list[dict[str, Any]]:
    """The hyper-parameter candidates: the base params, or a grid/random search over a space."""
    base = dict(cfg.model.params)
    search = cfg.model.search
    if search.method == "none" or not search.space:
        return [base]
    keys = sorted(search.space)
    grid = [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(search.space[k] for k in keys))]
    if search.method == "random" and len(grid) > search.n_iter:
        rng = np.random.default_rng(cfg.model.seed)
        grid = [grid[i] for i in sorted(rng.choice(len(grid), search.n_iter, replace=False))]
    return [{**base, **g} for g in grid]


def choose_threshold(y_val: np.ndarray, scores: np.ndarray, cfg: Config) -> tuple[float, dict]:
    """Pick the decision threshold on validation: max F1, minimum cost, or a fixed value."""
    tcfg = cfg.model.threshold
    if tcfg.strategy == "fixed":
        return float(tcfg.fixed), {"strategy": "fixed"}
    candidates = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, 401)))
    y = np.asarray(y_val) == 1
    best_t, best_v = 0.5, -np.inf
    for t in candidates:
        pred = scores >= t
        tp = np.sum(pred & y)
        fp = np.sum(pred & ~y)
        fn = np.sum(~pred & y)
        if tcfg.strategy == "max_f1":
            denom = 2 * tp + fp + fn
            value = 2 * tp / denom if denom else 0.0
        else:
            value = -(tcfg.cost_false_negative * fn + tcfg.cost_false_positive * fp)
        if value > best_v:
            best_t, best_v = float(t), float(value)
    name = "validation F1" if tcfg.strategy == "max_f1" else "validation cost (negated)"
    return best_t, {"strategy": tcfg.strategy, "objective": name, "value": best_v}


#: Larger magnitudes overflow float64 once squared (variances, scaling, gradients).
MAX_ABS_FEATURE_VALUE = 1e150


def check_magnitudes(cfg: Config, x_train: pd.DataFrame) -> None:
    """Refuse numeric training values whose squares overflow float64, naming the columns."""
    huge = {}
    for column in cfg.data.features.numeric:
        if column not in x_train.columns:
            continue
        values = np.abs(x_train[column].to_numpy(dtype="float64", na_value=np.nan))
        values = values[np.isfinite(values)]
        if values.size and values.max() > MAX_ABS_FEATURE_VALUE:
            huge[column] = float(values.max())
    if huge:
        found = ", ".join(f"'{c}' (up to {v:.3g})" for c, v in huge.items())
        raise DataError(
            f"numeric feature(s) {found} hold values beyond +/-{MAX_ABS_FEATURE_VALUE:.0e} in the "
            "training split; float64 arithmetic overflows on them (scaling, variances). Rescale "
            "the column (other units, a log) or declare such values missing in data.sentinels"
        )


def train_model(cfg: Config, x_train: pd.DataFrame, y_train: np.ndarray,
                x_val: pd.DataFrame, y_val: np.ndarray) -> FitResult:
    """Fit the preprocessor on train, then each candidate with validation early stopping.

    Args:
        cfg: the config.
        x_train, y_train: the training split (the only rows anything is fitted on).
        x_val, y_val: the validation split (early stopping, search and threshold only).

    Returns:
        A :class:`FitResult` with the best candidate as a fitted ``Pipeline(prep, model)``.
    """
    from sklearn.pipeline import Pipeline

    from .preprocess import build_preprocessor

    family = cfg.model.family
    if family not in _FITTERS:  # pragma: no cover - the schema guards it
        raise ConfigError(f"model.family: unknown family '{family}'")
    check_magnitudes(cfg, x_train)
    prep = build_preprocessor(cfg)
    xt = prep.fit_transform(x_train)  # fitted on the training split only (also "own": a
    # column selection whose own preprocessing is the custom Pipeline's, fitted on xt below)
    xv = prep.transform(x_val)
    metric = cfg.primary_metric
    sign = 1.0 if higher_is_better(metric) else -1.0
    trials: list[dict[str, Any]] = []
    best: tuple[float, Any, dict, dict, int | None, dict] | None = None
    for params in candidate_params(cfg):
        try:
            est, curve, n_iter = _FITTERS[family](cfg, params, xt, y_train, xv, y_val)
        except (TypeError, ValueError) as exc:
            what = (f"model.estimator '{cfg.model.estimator}'" if family == "custom"
                    else f"family '{family}'")
            if params:
                raise ConfigError(
                    f"model.params/search for {what}: {params} rejected ({exc})"
                ) from None
            raise ConfigError(
                f"model.{what.removeprefix('model.')} with default parameters could not be "
                f"fitted ({exc}); check the model.* settings"
            ) from None
        early_stopping = curve.pop("early_stopping", None) or _EARLY_STOPPING.get(family, {})
        scores = _scores(est, xv, cfg.task)
        value = compute_metric(cfg.task, metric, y_val, scores, 0.5)
        trials.append({"params": params, f"validation_{metric}": value, "iterations": n_iter})
        if best is None or sign * value > sign * best[0]:
            best = (value, est, params, curve, n_iter,
                    {"scores": scores, "early_stopping": early_stopping})
    assert best is not None
    value, est, params, curve, n_iter, extra = best
    if not curve and len(trials) > 1:
        curve = {
            "x_label": "candidate",
            "metric": f"validation {metric}",
            "x": list(range(len(trials))),
            "values": [t[f"validation_{metric}"] for t in trials],
            "best_iteration": trials.index(next(t for t in trials if t["params"] == params)),
        }
    pipeline = Pipeline([("prep", prep), ("model", est)])
    val_scores = extra["scores"]
    threshold, info = (0.5, {})
    if cfg.task == "classification":
        threshold, info = choose_threshold(y_val, val_scores, cfg)
    elif cfg.task == "multiclass":
        info = {"strategy": "most probable class (no threshold)"}
    return FitResult(
        pipeline=pipeline,
        params=params,
        validation_metric=metric,
        validation_score=float(value),
        validation_curve=curve,
        stopping_iteration=n_iter,
        trials=trials,
        threshold=threshold,
        threshold_info=info,
        validation_scores=val_scores,
        early_stopping=extra["early_stopping"],
    )
