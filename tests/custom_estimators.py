"""Estimators that tests name by import path (``model.estimator: custom_estimators.<name>``).

``tests/`` is on ``sys.path`` while pytest runs, so these import like a team's own package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


def churn_pipeline(C: float = 1.0) -> Any:
    """A team's own Pipeline: its preprocessing and a logistic regression
    (``model.preprocessing: own``: it receives the raw feature columns)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
         ["x1", "x2"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["cat", "merchant"]),
    ])
    return Pipeline([("prep", prep), ("clf", LogisticRegression(C=C, max_iter=500))])


class EvalSetClassifier(ClassifierMixin, BaseEstimator):
    """A classifier with the XGBoost/LightGBM-style ``fit(X, y, eval_set=...)`` and an
    ``early_stopping_rounds`` parameter (scikit-learn's base classes, as XGBoost's and
    LightGBM's wrappers have); it records what it was given."""

    def __init__(self, max_iter: int = 200, early_stopping_rounds: int | None = None,
                 random_state: int | None = None) -> None:
        self.max_iter = max_iter
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state

    def fit(self, X: Any, y: Any, eval_set: list[tuple[Any, Any]] | None = None,
            sample_weight: Any = None) -> EvalSetClassifier:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.eval_rows_ = None if eval_set is None else len(eval_set[0][1])
        self.eval_labels_ = None if eval_set is None else np.asarray(eval_set[0][1]).copy()
        self.got_sample_weight_ = sample_weight is not None
        (x_val, y_val), = eval_set or [(None, None)]
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, early_stopping=eval_set is not None,
            n_iter_no_change=self.early_stopping_rounds or 10,
            random_state=self.random_state)
        self.model_.fit(X, y, X_val=x_val, y_val=y_val, sample_weight=sample_weight)
        loss = -np.asarray(self.model_.validation_score_)
        self.best_iteration = int(np.argmin(loss)) - 1  # XGBoost counts from 0
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(X)


class NotAnEstimator:
    """Has no fit/predict."""

    def __init__(self, **params: Any) -> None:
        self.params = params
