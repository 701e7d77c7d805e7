"""Interpretability: permutation importance, linear coefficients, per-prediction contributions.

Permutation importance is computed on held-out rows (the validation split), on the raw input
features, with the primary metric: how much the metric drops when one input column is shuffled.
For linear models the coefficients are mapped back from the one-hot/indicator columns to the input
features, and :func:`linear_contributions` breaks each prediction into per-feature terms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .config import Config


def _input_feature_of(output_name: str, features: list[str]) -> str:
    """Map a ColumnTransformer output name (``categorical__region_north``) to its input column."""
    name = output_name.split("__", 1)[1] if "__" in output_name else output_name
    if name.startswith("missingindicator_"):
        name = name[len("missingindicator_"):]
    for feature in sorted(features, key=len, reverse=True):
        if name == feature or name.startswith(feature + "_"):
            return feature
    return name


def permutation_importances(cfg: Config, pipeline: Any, x_val: pd.DataFrame,
                            y_val: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean and std of the primary-metric drop per input feature (validation rows)."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import make_scorer

    from .evaluate import compute_metric, higher_is_better

    metric = cfg.primary_metric
    task = cfg.task

    def _score(y: np.ndarray, s: np.ndarray) -> float:
        return compute_metric(task, metric, y, s)

    response = "predict_proba" if task == "classification" else "predict"
    scorer = make_scorer(_score, greater_is_better=higher_is_better(metric),
                         response_method=response)
    n = len(x_val)
    max_rows = cfg.evaluation.importance_max_rows
    if n > max_rows:
        idx = np.random.default_rng(cfg.evaluation.seed).choice(n, max_rows, replace=False)
        x_val, y_val = x_val.iloc[idx], y_val[idx]
    features = cfg.data.features.all
    result = permutation_importance(
        pipeline, x_val[features], y_val, scoring=scorer,
        n_repeats=cfg.evaluation.importance_repeats, random_state=cfg.evaluation.seed,
    )
    out = {f: {"mean": float(m), "std": float(s)}
           for f, m, s in zip(features, result.importances_mean, result.importances_std,
                              strict=True)}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["mean"]))


def linear_coefficients(cfg: Config, pipeline: Any) -> dict[str, Any] | None:
    """Coefficients of a linear model, per transformed column and summed |coef| per input."""
    model = pipeline.named_steps["model"]
    if not hasattr(model, "coef_"):
        return None
    names = list(pipeline.named_steps["prep"].get_feature_names_out())
    coef = np.ravel(model.coef_)
    per_column = {n: float(c) for n, c in zip(names, coef, strict=True)}
    per_feature: dict[str, float] = {}
    for n, c in per_column.items():
        key = _input_feature_of(n, cfg.data.features.all)
        per_feature[key] = per_feature.get(key, 0.0) + abs(c)
    return {
        "intercept": float(np.ravel(getattr(model, "intercept_", [0.0]))[0]),
        "per_column": per_column,
        "abs_per_feature": dict(sorted(per_feature.items(), key=lambda kv: -kv[1])),
        "scale": "standardised inputs" if cfg.preprocess.scale else "raw inputs",
    }


def linear_contributions(cfg: Config, pipeline: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Per-prediction breakdown for linear models: one column per input feature + intercept.

    Each row sums to the model's raw output (log-odds for logistic regression, the prediction for
    ridge/lasso/SGD regression).
    """
    model = pipeline.named_steps["model"]
    if not hasattr(model, "coef_"):
        raise ValueError(
            f"per-prediction contributions need a linear model; model.family is "
            f"'{cfg.model.family}'"
        )
    prep = pipeline.named_steps["prep"]
    x = prep.transform(frame[cfg.data.features.all])
    names = list(prep.get_feature_names_out())
    terms = x * np.ravel(model.coef_)[None, :]
    out = pd.DataFrame(index=frame.index)
    for j, n in enumerate(names):
        key = _input_feature_of(n, cfg.data.features.all)
        out[key] = out[key] + terms[:, j] if key in out else terms[:, j]
    out["intercept"] = float(np.ravel(model.intercept_)[0])
    return out
