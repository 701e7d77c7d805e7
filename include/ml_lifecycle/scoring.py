"""Scoring with a stored model: the positive-class score or the regression prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def predict_scores(model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
    """Score ``frame`` with a fitted pipeline.

    Args:
        model: fitted scikit-learn Pipeline whose input is the feature columns.
        frame: rows to score (extra columns such as ids are ignored by the pipeline).
        task: ``classification`` (returns P(positive)) or ``regression`` (returns predictions).

    Returns:
        A float64 array with one score per row.
    """
    if task == "classification":
        return np.asarray(model.predict_proba(frame)[:, 1], dtype="float64")
    return np.asarray(model.predict(frame), dtype="float64")


def predict_labels(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Binary decisions from scores with the threshold chosen on validation."""
    return (np.asarray(scores) >= threshold).astype(int)
