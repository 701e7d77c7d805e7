"""SHAP explanations: why the model gave *this* row its score, and which inputs matter overall.

Every model gets the explainer that is exact for it, through the ``shap`` library:

* **tree ensembles** (the built-in ``hist_gradient_boosting``; scikit-learn's random forests,
  extra trees and gradient boosting, XGBoost, LightGBM as custom models): TreeSHAP
  (``shap.TreeExplainer``, path-dependent), exact;
* **linear models** (``logistic_regression``, ``sgd``, ``ridge``, ``lasso``, or a custom
  scikit-learn linear model): linear SHAP (``shap.LinearExplainer``) with an independent masker
  over :data:`BACKGROUND_ROWS` training rows: ``coef_j * (z_j - mean_j)``, exact for the model;
* **anything else** (a custom Pipeline, a model that brings its own preprocessing): the
  model-agnostic ``shap.PermutationExplainer`` on the *input* columns, with an independent
  masker over :data:`BACKGROUND_ROWS` training rows and a budget of :data:`PERMUTATION_EVALS`
  ``x`` (2 ``x`` features + 1) model calls per explained row. Its values add up exactly to the
  model output minus the expected value; each is an estimate.

Values are on the model's **input features**: the contributions of the columns the built-in
preprocessing makes from one input (its one-hot columns, its missing indicator) are summed back
to that input. They are in the model's output space, stated as ``output`` (and in the card):
``log-odds`` (boosted trees, logistic and SGD classifiers), ``probability`` (random forests and
the model-agnostic explainer on a classifier) or ``prediction`` (regression). A multiclass
model is explained for the class it predicts for the row (``raw score`` of that class for the
boosted trees and linear models, its probability otherwise).

Additivity (checked in ``tests/test_explain_shap.py``): for every row, the contributions plus
``base_value`` equal the model's output in that space, within 1e-6.

The background rows come from the training split only (the same rows every fitted statistic
comes from) and are stored with the model version (``shap_background.parquet``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config

BACKGROUND_FILE = "shap_background.parquet"
BACKGROUND_ROWS = 200  # training rows: the linear and model-agnostic explainers' expectation
PERMUTATION_EVALS = 4  # model-agnostic budget: this many x (2 x features + 1) calls per row
TREE_MODELS = (
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
    "GradientBoostingClassifier", "GradientBoostingRegressor",
    "RandomForestClassifier", "RandomForestRegressor",
    "ExtraTreesClassifier", "ExtraTreesRegressor",
    "DecisionTreeClassifier", "DecisionTreeRegressor",
    "XGBClassifier", "XGBRegressor", "LGBMClassifier", "LGBMRegressor",
)
#: Tree models whose raw output is the averaged class probability, not a margin.
PROBABILITY_TREES = ("RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier")


@dataclass
class Explanation:
    """Contributions of each input feature for each row (``values``: rows x features)."""

    values: np.ndarray
    base_values: np.ndarray  # per row (a multiclass row's predicted class has its own)
    features: list[str]
    output: str
    explainer: str
    classes: np.ndarray | None = None  # multiclass: the class index explained per row

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(feature indices, contributions) of the ``k`` largest |contributions| per row."""
        order = np.argsort(-np.abs(self.values), axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(self.values, order, axis=1)


def _model_kind(model: Any) -> str:
    name = type(model).__name__
    if name in TREE_MODELS:
        return "tree"
    module = type(model).__module__
    if module.startswith("sklearn.linear_model") and hasattr(model, "coef_"):
        return "linear"
    return "permutation"


def _output_space(cfg: Config, model: Any, kind: str) -> str:
    if cfg.task == "regression":
        return "prediction"
    if kind == "permutation" or type(model).__name__ in PROBABILITY_TREES:
        return "probability"
    return "log-odds" if cfg.task == "classification" else "raw score (softmax input)"


def _owners(prep: Any, features: list[str]) -> np.ndarray | None:
    """The input feature behind each column the preprocessing outputs (None: not knowable)."""
    from .explain import input_feature_of

    try:
        names = [str(n) for n in prep.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        return None
    owners = np.array([input_feature_of(n, features) for n in names])
    return owners if set(owners) <= set(features) else None


def _pick(values: np.ndarray, base: np.ndarray, cfg: Config, which: np.ndarray | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """Reduce shap's output to one output per row: P/log-odds of the positive class (binary),
    the predicted class (multiclass)."""
    base = np.atleast_1d(np.asarray(base, dtype=float))
    if values.ndim == 2:
        return values, np.full(len(values), float(base[-1]))
    rows = np.arange(len(values))
    if cfg.task == "multiclass" and which is not None:
        return values[rows, :, which], base[which]
    return values[..., -1], np.full(len(values), float(base[-1]))  # binary: class 1


class ShapExplainer:
    """Explain a fitted pipeline's predictions (scikit-learn conventions).

    Args:
        cfg: the model's config (task, features, preprocessing).
        pipeline: the fitted ``Pipeline(prep, model)``.
        background: training rows (input feature columns) for the linear and model-agnostic
            explainers; tree models do not need it.
    """

    def __init__(self, cfg: Config, pipeline: Any, background: pd.DataFrame | None) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.background = background

    def fit(self) -> ShapExplainer:
        """Build the explainer for the model kind (``kind_``, ``output_``)."""
        import shap

        cfg, pipeline = self.cfg, self.pipeline
        self.features_ = list(cfg.data.features.all)
        prep, model = pipeline.named_steps["prep"], pipeline.named_steps["model"]
        kind = _model_kind(model)
        owners = _owners(prep, self.features_) if kind != "permutation" else None
        if kind != "permutation" and (owners is None or cfg.model.preprocessing == "own"):
            kind = "permutation"  # columns that do not map back to one input each
        if kind != "tree" and self.background is None:
            raise ValueError(f"the {kind} SHAP explainer needs background rows "
                             f"({BACKGROUND_FILE}); retrain the model to store them")
        self.kind_, self.owners_ = kind, owners
        self.output_ = _output_space(cfg, model, kind)
        if kind == "tree":
            self.explainer_ = shap.TreeExplainer(model)
        elif kind == "linear":
            z = np.asarray(prep.transform(self.background[self.features_]), dtype=float)
            self.explainer_ = shap.LinearExplainer(model, shap.maskers.Independent(
                z, max_samples=len(z)))
        else:
            self._encode_setup()
            codes = self._encode(self.background[self.features_])
            self.explainer_ = shap.PermutationExplainer(
                self._predict_codes, shap.maskers.Independent(codes, max_samples=len(codes)))
        return self

    # ------------------------------------------------------------------ model-agnostic

    def _encode_setup(self) -> None:
        """Categorical inputs as integer codes (the masker swaps numbers), decoded per call."""
        self.categories_: dict[str, list[Any]] = {}
        for name in self.cfg.data.features.categorical:
            values = self.background[name].dropna().astype(str).unique().tolist()
            self.categories_[name] = sorted(values)

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        import pandas as pd

        out = np.empty((len(frame), len(self.features_)), dtype=float)
        for j, name in enumerate(self.features_):
            column = frame[name]
            if name in self.categories_:
                known = self.categories_[name]
                index = {v: i for i, v in enumerate(known)}
                text = column.astype(object).where(column.notna(), None)
                out[:, j] = [np.nan if v is None else index.setdefault(str(v), len(index))
                             for v in text]
                self.categories_[name] = list(index)  # a new category is kept, not lost
            else:
                out[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        return out

    def _decode(self, codes: np.ndarray) -> pd.DataFrame:
        import pandas as pd

        data: dict[str, Any] = {}
        for j, name in enumerate(self.features_):
            if name in self.categories_:
                known = np.asarray(self.categories_[name] + [None], dtype=object)
                idx = np.where(np.isfinite(codes[:, j]), codes[:, j], len(known) - 1)
                data[name] = known[idx.astype(int)]
            else:
                data[name] = codes[:, j]
        return pd.DataFrame(data)

    def _predict_codes(self, codes: np.ndarray) -> np.ndarray:
        frame = self._decode(np.asarray(codes, dtype=float))
        if self.cfg.task == "regression":
            return np.asarray(self.pipeline.predict(frame), dtype=float)
        proba = np.asarray(self.pipeline.predict_proba(frame), dtype=float)
        return proba if self.cfg.task == "multiclass" else proba[:, 1]

    # ------------------------------------------------------------------ explaining

    def explain(self, frame: pd.DataFrame) -> Explanation:
        """Contributions of each input feature for each row of ``frame``."""
        x = frame[self.features_]
        which = None
        if self.cfg.task == "multiclass":
            which = np.asarray(self.pipeline.predict_proba(x)).argmax(axis=1)
        if self.kind_ == "permutation":
            codes = self._encode(x)
            p = len(self.features_)
            result = self.explainer_(codes, max_evals=PERMUTATION_EVALS * (2 * p + 1),
                                     silent=True)
            values, base = _pick(np.asarray(result.values, dtype=float),
                                 np.asarray(result.base_values, dtype=float).reshape(
                                     len(codes), -1)[0], self.cfg, which)
            return Explanation(values, base, self.features_, self.output_, "permutation", which)
        z = np.asarray(self.pipeline.named_steps["prep"].transform(x), dtype=float)
        raw = self.explainer_.shap_values(z)
        raw = np.stack(raw, axis=-1) if isinstance(raw, list) else np.asarray(raw, dtype=float)
        columns, base = _pick(raw, self.explainer_.expected_value, self.cfg, which)
        values = np.zeros((len(z), len(self.features_)))
        for j, owner in enumerate(self.owners_):
            values[:, self.features_.index(owner)] += columns[:, j]
        return Explanation(values, base, self.features_, self.output_, self.kind_, which)

    def model_output(self, frame: pd.DataFrame, explanation: Explanation) -> np.ndarray:
        """The model's output per row in the explained space (what the values add up to)."""
        x = frame[self.features_]
        model = self.pipeline.named_steps["model"]
        if self.output_ == "prediction":
            return np.asarray(self.pipeline.predict(x), dtype=float)
        if self.output_ == "probability":
            proba = np.asarray(self.pipeline.predict_proba(x), dtype=float)
            if explanation.classes is not None:
                return proba[np.arange(len(proba)), explanation.classes]
            return proba[:, 1]
        z = np.asarray(self.pipeline.named_steps["prep"].transform(x), dtype=float)
        margin = np.asarray(model._raw_predict(z) if hasattr(model, "_raw_predict")
                            else model.decision_function(z), dtype=float)
        if margin.ndim == 2 and margin.shape[1] > 1:
            return margin[np.arange(len(margin)), explanation.classes]
        return margin.ravel()


def global_importance(cfg: Config, pipeline: Any, background: pd.DataFrame,
                      rows: pd.DataFrame) -> dict[str, Any]:
    """Mean |SHAP| per input feature on (at most ``evaluation.shap_rows`` of) ``rows`` (the
    validation split), for the card; ``{"status": "unavailable", "reason"}`` when the model
    cannot be explained."""
    try:
        explainer = ShapExplainer(cfg, pipeline, background).fit()
        limit = cfg.evaluation.shap_rows
        sample = rows.sample(n=limit, random_state=cfg.evaluation.seed) \
            if len(rows) > limit else rows
        explanation = explainer.explain(sample)
    except Exception as exc:  # an explanation must never fail a training
        return {"status": "unavailable", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    mean_abs = np.abs(explanation.values).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return {
        "status": "ok", "explainer": explanation.explainer, "output": explanation.output,
        "rows": len(sample), "background_rows": None if background is None else len(background),
        "base_value": float(np.mean(explanation.base_values)),
        "mean_abs": {explanation.features[i]: float(mean_abs[i]) for i in order},
    }


def background_rows(cfg: Config, x_train: pd.DataFrame) -> pd.DataFrame:
    """The training rows the explainers take their expectation over (seeded sample)."""
    n = min(BACKGROUND_ROWS, len(x_train))
    return x_train[list(cfg.data.features.all)].sample(
        n=n, random_state=cfg.evaluation.seed).reset_index(drop=True)


def explain_columns(explanation: Explanation, frame: pd.DataFrame, k: int) -> dict[str, Any]:
    """The ``--explain K`` columns: for rank 1..k, the feature, its value in the row and its
    contribution (``explain_<r>_feature``, ``explain_<r>_value``, ``explain_<r>_contribution``)."""
    order, contributions = explanation.top(k)
    names = np.asarray(explanation.features, dtype=object)
    values = frame[explanation.features].to_numpy(dtype=object)
    rows = np.arange(len(frame))
    out: dict[str, Any] = {}
    for r in range(order.shape[1]):
        out[f"explain_{r + 1}_feature"] = names[order[:, r]]
        out[f"explain_{r + 1}_value"] = values[rows, order[:, r]]
        out[f"explain_{r + 1}_contribution"] = np.round(contributions[:, r], 6)
    return out
