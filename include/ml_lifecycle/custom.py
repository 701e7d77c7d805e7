"""Custom models (``model.family: custom``): any estimator that follows the scikit-learn API.

``model.estimator`` is an import path (``package.module.Name`` or ``package.module:Name``) of an
estimator class, or of a function that returns an estimator or a ``Pipeline``; it is called with
``model.params``. The estimator gets the same treatment as a built-in family: fitted on the
training split only (behind the built-in preprocessing, or with ``model.preprocessing: own`` on
the raw feature columns), the validation split for early stopping and tuning, the test split
once, then the gate, the registry and monitoring.

Early stopping on the validation split is used when the estimator's ``fit`` accepts one:

* ``X_val`` / ``y_val`` (scikit-learn's ``HistGradientBoosting*`` >= 1.8; also set
  ``early_stopping: true`` in ``model.params``);
* ``eval_set`` (XGBoost, LightGBM, CatBoost): the validation split is passed as
  ``eval_set=[(X_val, y_val)]``; the stopping rule is the estimator's own parameter
  (``early_stopping_rounds`` for XGBoost and CatBoost, ``early_stopping_round`` for LightGBM),
  set from ``model.patience`` when ``model.params`` leaves it unset and the estimator has it.

Otherwise the model is fitted once with its parameters, and the model card says so
(``model.early_stopping.used: false`` and why). Tuning (``model.search``) compares the
candidates on the validation split, as for the built-in families.

Pitfalls avoided: an import path that does not exist, names something that is not an
estimator, or (classification) a model without ``predict_proba`` is refused *before* any data
is read, naming ``model.estimator``; a ``random_state`` the params leave unset is set from
``model.seed`` (every nested one of a Pipeline too) so a rerun gives the same model.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config

#: ``fit`` keyword arguments that take a validation set, in the order they are tried.
VALIDATION_ARGUMENTS = ("X_val", "eval_set")
#: Constructor parameters that hold an ``eval_set`` estimator's stopping patience.
PATIENCE_PARAMETERS = ("early_stopping_rounds", "early_stopping_round")


def resolve(path: str) -> Any:
    """The object an import path names (``a.b.Name`` or ``a.b:Name``).

    Raises:
        ConfigError: naming ``model.estimator`` and what could not be found.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"model.estimator '{path}': expected an import path such as "
                          "'sklearn.ensemble.RandomForestClassifier' or 'my_pkg.models:build'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model.estimator '{path}': cannot import module '{module_name}' "
                          f"({exc}); is its package installed where the model trains?") from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"model.estimator '{path}': module '{module_name}' has no "
                              f"'{attr}'") from None
    if not callable(target):
        raise ConfigError(f"model.estimator '{path}' is a {type(target).__name__}, not an "
                          "estimator class or a function returning an estimator")
    return target


def build(cfg: Config, params: dict[str, Any]) -> Any:
    """A new, unfitted estimator from ``model.estimator`` called with ``params``.

    Raises:
        ConfigError: the params are refused, the result is not an estimator (``fit`` and
            ``predict``), or a classifier lacks ``predict_proba``.
    """
    path = str(cfg.model.estimator)
    factory = resolve(path)
    try:
        est = factory(**params)
    except TypeError as exc:
        raise ConfigError(f"model.params {params} rejected by model.estimator '{path}' "
                          f"({exc})") from None
    if inspect.isclass(est) or not all(callable(getattr(est, m, None))
                                        for m in ("fit", "predict")):
        raise ConfigError(f"model.estimator '{path}' gave a {type(est).__name__}, which is not "
                          "a scikit-learn-API estimator (it needs fit and predict)")
    if cfg.is_classifier and not hasattr(est, "predict_proba"):
        raise ConfigError(f"model.estimator '{path}' has no predict_proba: classification "
                          "needs probabilities (the ranking metrics, the threshold chosen on "
                          "validation, calibration and label-free performance estimation); "
                          "use a probabilistic classifier or wrap it in "
                          "sklearn.calibration.CalibratedClassifierCV")
    _set_defaults(est, cfg, params)
    return est


def _set_defaults(est: Any, cfg: Config, params: dict[str, Any]) -> None:
    """``random_state`` from ``model.seed`` and ``class_weight`` from ``model.class_weight``
    where the estimator has them and ``model.params`` leaves them unset (nested ones too)."""
    if not hasattr(est, "get_params") or not hasattr(est, "set_params"):
        return
    try:
        current = est.get_params(deep=True)
    except Exception:
        return
    updates: dict[str, Any] = {}
    for key, value in current.items():
        leaf = key.rsplit("__", 1)[-1]
        if key in params or value is not None:
            continue
        if leaf == "random_state":
            updates[key] = cfg.model.seed
        elif leaf == "class_weight" and cfg.is_classifier:
            updates[key] = cfg.model.class_weight
    if "X_val" in _fit_parameters(est) and current.get("early_stopping") in ("auto", False) \
            and "early_stopping" not in params:
        updates["early_stopping"] = True  # HistGradientBoosting: stop on the given X_val
    if updates:
        est.set_params(**updates)
    for key in PATIENCE_PARAMETERS:
        if key in current and key not in params and current[key] is None \
                and "eval_set" in _fit_parameters(est):
            est.set_params(**{key: cfg.model.patience})


def _fit_parameters(est: Any) -> set[str]:
    try:
        return set(inspect.signature(est.fit).parameters)
    except (TypeError, ValueError):
        return set()


def fit(cfg: Config, params: dict[str, Any], xt: Any, yt: np.ndarray, xv: Any,
        yv: np.ndarray) -> tuple[Any, dict[str, Any], int | None]:
    """Fit a custom estimator on the training split, the validation split for early stopping
    when its ``fit`` takes one. Returns (estimator, validation curve, iterations kept); the
    curve's ``early_stopping`` entry says whether and how the validation split was used."""
    est = build(cfg, params)
    accepted = _fit_parameters(est)
    kwargs: dict[str, Any] = {}
    how = next((a for a in VALIDATION_ARGUMENTS if a in accepted), None)
    if how == "X_val":
        kwargs = {"X_val": xv, "y_val": yv}
    elif how == "eval_set":
        kwargs = {"eval_set": [(xv, yv)]}
    if cfg.is_classifier and cfg.model.class_weight == "balanced" \
            and "sample_weight" in accepted \
            and "class_weight" not in getattr(est, "get_params", dict)():
        from sklearn.utils.class_weight import compute_sample_weight

        kwargs["sample_weight"] = compute_sample_weight("balanced", yt)
    try:
        est.fit(xt, yt, **kwargs)
    except TypeError as exc:
        if not kwargs:
            raise
        raise ConfigError(f"model.estimator '{cfg.model.estimator}': fit rejected "
                          f"{sorted(kwargs)} ({exc})") from None
    n_iter = _iterations(est)
    info: dict[str, Any] = {"used": how is not None}
    if how is None:
        info["why"] = (f"{type(est).__name__}.fit takes no validation set (X_val or eval_set): "
                       "fitted once with model.params; the validation split chose among "
                       "model.search candidates and the threshold only")
    else:
        info["validation_argument"] = how
    return est, {"early_stopping": info}, n_iter


def _iterations(est: Any) -> int | None:
    """The iterations a fitted model keeps (best iteration when it early-stopped)."""
    # LightGBM's best_iteration_ counts from 1, XGBoost's best_iteration from 0
    for attr, offset in (("best_iteration_", 0), ("best_iteration", 1), ("n_iter_", 0)):
        try:
            value = getattr(est, attr, None)
            if value is not None and int(np.max(value)) + offset > 0:
                return int(np.max(value)) + offset
        except (AttributeError, TypeError, ValueError):
            continue
    return None
