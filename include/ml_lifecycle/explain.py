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


def input_feature_of(output_name: str, features: list[str]) -> str:
    """Map a ColumnTransformer output name (``categorical__region_north``) to its input column."""
    name = output_name.split("__", 1)[1] if "__" in output_name else output_name
    if name.startswith("missingindicator_"):
        name = name[len("missingindicator_"):]
    for feature in sorted(features, key=len, reverse=True):
        if name == feature or name.startswith(feature + "_"):
            return feature
    return name


def _transformer_columns(prep: Any) -> dict[str, list[str]]:
    """Input columns of each named transformer of the preprocessing's ColumnTransformer (empty
    when there is none): an output ``<transformer>__<rest>`` can only come from those."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in prep.steps] if isinstance(prep, Pipeline) else [prep]
    ct = next((s for s in reversed(steps) if isinstance(s, ColumnTransformer)), None)
    out: dict[str, list[str]] = {}
    for name, _, columns in getattr(ct, "transformers_", None) or []:
        if isinstance(columns, list | tuple | np.ndarray | pd.Index) and all(
                isinstance(c, str) for c in columns):
            out[str(name)] = [str(c) for c in columns]
    return out


def _unambiguous_owner(output_name: str, features: list[str],
                       columns: dict[str, list[str]]) -> str | None:
    """The one input feature an output column's name can come from, or None when two can (a
    categorical ``a`` with category ``b_c`` and a categorical ``a_b`` with category ``c`` in the
    same transformer) or none does. The transformer prefix narrows the candidates, so a numeric
    ``education_num`` and the category ``num`` of ``education`` are told apart."""
    prefix, name = output_name.split("__", 1) if "__" in output_name else ("", output_name)
    if name.startswith("missingindicator_"):
        name = name[len("missingindicator_"):]
    candidates = [f for f in columns[prefix] if f in features] if prefix in columns else features
    hits = [f for f in candidates if name == f or name.startswith(f + "_")]
    return hits[0] if len(hits) == 1 else None


def _transformed_groups(pipeline: Any, x: pd.DataFrame, features: list[str],
                        seed: int) -> tuple[Any, np.ndarray, dict[str, Any]] | None:
    """(final estimator, transformed rows, output columns per input feature) when shuffling an
    input column is the same as shuffling its output columns, else None.

    True for the package's preprocessing (every output column comes from one input column:
    imputation, scaling, one-hot, missing indicators), checked here on a sample rather than
    assumed, so a pipeline that mixes columns (a custom one, say) falls back to shuffling inputs.
    """
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        return None
    prep, model = pipeline[:-1], pipeline[-1]
    try:
        z = prep.transform(x)
        names = [str(n) for n in prep.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        return None
    if not isinstance(z, np.ndarray) or z.ndim != 2 or z.shape[1] != len(names):
        return None
    columns = _transformer_columns(prep)
    found = [_unambiguous_owner(n, features, columns) for n in names]
    if any(o is None for o in found):
        return None
    owners = np.array(found)
    groups = {f: np.flatnonzero(owners == f) for f in features}
    rng = np.random.default_rng([seed, 3])  # its own stream: the shuffles measured stay the same
    m = min(len(x), 300)
    sample = x.iloc[:m].copy()
    expected = np.asarray(z[:m], dtype=float).copy()
    for f in features:
        perm = rng.permutation(m)
        sample[f] = sample[f].to_numpy()[perm]
        expected[:, groups[f]] = expected[perm][:, groups[f]]
    try:
        got = np.asarray(prep.transform(sample), dtype=float)
    except (ValueError, TypeError):
        return None
    if got.shape != expected.shape or not np.allclose(got, expected, equal_nan=True):
        return None
    return model, z, groups


def permutation_importances(cfg: Config, pipeline: Any, x_val: pd.DataFrame,
                            y_val: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean and std of the primary-metric drop per input feature (validation rows).

    The quantity of :func:`sklearn.inspection.permutation_importance`: each input column is
    shuffled ``evaluation.importance_repeats`` times on at most ``evaluation.importance_max_rows``
    validation rows, importance = metric without shuffling - metric with it (sign-adjusted for
    error metrics). When shuffling an input column is the same as shuffling the preprocessing's
    output columns that come from it (checked on a sample, :func:`_transformed_groups`), the
    rows are preprocessed **once** and the shuffles are applied to the preprocessed matrix: the
    preprocessing then costs one call instead of one per feature and repeat (on UCI Adult it
    was about 40 % of the importance's time). Otherwise each shuffled copy goes through the
    whole pipeline, as scikit-learn does.
    """
    from .metrics import compute_metric, higher_is_better
    from .scoring import predict_scores

    metric, task = cfg.primary_metric, cfg.task
    rng = np.random.default_rng(cfg.evaluation.seed)
    features = cfg.data.features.all
    n = len(x_val)
    max_rows = cfg.evaluation.importance_max_rows
    if n > max_rows:
        idx = rng.choice(n, max_rows, replace=False)
        x_val, y_val = x_val.iloc[idx], y_val[idx]
        n = max_rows
    x = x_val[features].reset_index(drop=True)
    y = np.asarray(y_val, dtype=float)
    sign = 1.0 if higher_is_better(metric) else -1.0
    fast = _transformed_groups(pipeline, x, features, cfg.evaluation.seed)
    if fast is not None:
        model, z, groups = fast
        base_scores = predict_scores(model, z, task)
    else:
        base_scores = predict_scores(pipeline, x, task)
    base = compute_metric(task, metric, y, base_scores)
    out: dict[str, dict[str, float]] = {}
    for name in features:
        drops = []
        for _ in range(cfg.evaluation.importance_repeats):
            perm = rng.permutation(n)
            if fast is not None:
                shuffled = z.copy()
                shuffled[:, groups[name]] = z[perm][:, groups[name]]
                changed = _changed_rows(z[:, groups[name]], shuffled[:, groups[name]])
                scores = _rescore(model, shuffled, changed, base_scores, task)
            else:
                values = x[name].to_numpy()
                shuffled_x = x.assign(**{name: values[perm]})
                changed = _changed_rows(values[:, None], values[perm][:, None])
                scores = _rescore(pipeline, shuffled_x, changed, base_scores, task)
            drops.append(sign * (base - compute_metric(task, metric, y, scores)))
        out[name] = {"mean": float(np.mean(drops)), "std": float(np.std(drops))}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["mean"]))


def _changed_rows(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Rows whose values a shuffle changed (missing stays missing: not a change)."""
    same = before == after
    if before.dtype.kind == "f" or before.dtype == object:
        same |= pd.isna(before) & pd.isna(after)
    return ~np.all(same, axis=1)


def _rescore(model: Any, shuffled: Any, changed: np.ndarray, base_scores: np.ndarray,
             task: str) -> np.ndarray:
    """Scores of the shuffled rows: a row the shuffle left as it was keeps its score, so only
    the changed rows are predicted. A shuffle moves a row's value to another row, and on a
    column with few distinct values (a flag, a dominant category, a mostly-zero amount) most
    rows receive the value they had: on UCI Adult about 40 % of the predictions were of
    unchanged rows. The result is the same as predicting every row (each row's prediction
    depends on that row only)."""
    from .scoring import predict_scores

    scores = base_scores.copy()
    if changed.any():
        rows = (shuffled[changed] if isinstance(shuffled, np.ndarray)
                else shuffled.iloc[np.flatnonzero(changed)])
        scores[changed] = predict_scores(model, rows, task)
    return scores


def linear_coefficients(cfg: Config, pipeline: Any) -> dict[str, Any] | None:
    """Coefficients of a linear model, per transformed column and summed |coef| per input."""
    model = pipeline.named_steps["model"]
    if not hasattr(model, "coef_"):
        return None
    names = list(pipeline.named_steps["prep"].get_feature_names_out())
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=float))
    if coef.shape[1] != len(names):
        return None  # a custom model whose coefficients are not per input column
    per_feature: dict[str, float] = {}
    for j, n in enumerate(names):  # summed over the classes of a multiclass model
        key = input_feature_of(n, cfg.data.features.all)
        per_feature[key] = per_feature.get(key, 0.0) + float(np.abs(coef[:, j]).sum())
    intercept = np.ravel(getattr(model, "intercept_", [0.0]))
    if coef.shape[0] > 1:  # multiclass: one row of coefficients per class (the card's order)
        return {
            "intercept": [float(v) for v in intercept],
            "per_class_per_column": [{n: float(c) for n, c in zip(names, row, strict=True)}
                                     for row in coef],
            "abs_per_feature": dict(sorted(per_feature.items(), key=lambda kv: -kv[1])),
            "scale": "standardised inputs" if cfg.preprocess.scale else "raw inputs",
        }
    per_column = {n: float(c) for n, c in zip(names, coef[0], strict=True)}
    return {
        "intercept": float(intercept[0]),
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
    if not hasattr(model, "coef_") or np.atleast_2d(model.coef_).shape[0] > 1:
        raise ValueError(
            f"per-prediction contributions need a linear model with one output; model.family "
            f"is '{cfg.model.family}' (task {cfg.task})"
        )
    prep = pipeline.named_steps["prep"]
    x = prep.transform(frame[cfg.data.features.all])
    names = list(prep.get_feature_names_out())
    terms = x * np.ravel(model.coef_)[None, :]
    out = pd.DataFrame(index=frame.index)
    for j, n in enumerate(names):
        key = input_feature_of(n, cfg.data.features.all)
        out[key] = out[key] + terms[:, j] if key in out else terms[:, j]
    out["intercept"] = float(np.ravel(model.intercept_)[0])
    return out
