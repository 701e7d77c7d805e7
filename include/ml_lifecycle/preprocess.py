"""Preprocessing as one scikit-learn ColumnTransformer, fitted on the training split only.

The transformer is returned unfitted; :mod:`ml_lifecycle.models` fits it on the training rows and
then only *transforms* validation and test rows. The leakage guarantee comes from this structure:
no code path calls ``fit`` on anything but the training split (tests check every fitted statistic
against the training split alone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

    from .config import Config

MISSING_CATEGORY = "__missing__"


def build_preprocessor(cfg: Config) -> ColumnTransformer:
    """Imputation (+ missing indicators), scaling, one-hot with infrequent-category grouping.

    Args:
        cfg: the config (``data.features`` and ``preprocess`` sections).

    Returns:
        An unfitted ``ColumnTransformer`` with steps ``numeric`` and ``categorical``.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if cfg.model.preprocessing == "own":
        # A custom Pipeline brings its own preprocessing: it gets the declared feature columns
        # (and nothing else: no id, time or target column) as a DataFrame.
        return ColumnTransformer(
            [("features", "passthrough", list(cfg.data.features.all))], remainder="drop",
            verbose_feature_names_out=False).set_output(transform="pandas")
    pre = cfg.preprocess
    transformers = []
    if cfg.data.features.numeric:
        steps = [
            (
                "impute",
                SimpleImputer(
                    strategy=pre.numeric_imputer,
                    add_indicator=pre.add_missing_indicator,
                    keep_empty_features=True,
                ),
            )
        ]
        if pre.scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), list(cfg.data.features.numeric)))
    if cfg.data.features.categorical:
        imputer = (
            SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)
            if pre.categorical_imputer == "constant"
            else SimpleImputer(strategy="most_frequent")
        )
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=pre.min_frequency,
            max_categories=pre.max_categories,
            sparse_output=False,
        )
        transformers.append(
            (
                "categorical",
                Pipeline([("impute", imputer), ("onehot", encoder)]),
                list(cfg.data.features.categorical),
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
