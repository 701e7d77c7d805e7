"""Scoring with a stored model: the positive-class score or the regression prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: A multiclass model's predictions hold one ``proba_<class>`` column per class.
PROBA_PREFIX = "proba_"


def predict_scores(model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
    """Score ``frame`` with a fitted pipeline.

    Args:
        model: fitted scikit-learn Pipeline whose input is the feature columns.
        frame: rows to score (extra columns such as ids are ignored by the pipeline).
        task: ``classification`` (returns P(positive)), ``multiclass`` (returns the class
            probabilities, one column per class in the order of the card's classes) or
            ``regression`` (returns predictions).

    Returns:
        A float64 array with one score per row ((n, K) for multiclass).
    """
    if task == "classification":
        return np.asarray(model.predict_proba(frame)[:, 1], dtype="float64")
    if task == "multiclass":
        return np.asarray(model.predict_proba(frame), dtype="float64")
    return np.asarray(model.predict(frame), dtype="float64")


def predict_labels(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Binary decisions from scores with the threshold chosen on validation."""
    return (np.asarray(scores) >= threshold).astype(int)


def multiclass_predictions(card: dict[str, Any], probs: Any, id_name: str, ids: Any,
                      version: int) -> Any:
    """A multiclass model's predictions: ``prediction`` (the most probable class, by name),
    ``score`` (its probability) and one ``proba_<class>`` column per class."""
    classes = ((card.get("data") or {}).get("target") or {}).get("classes") or \
        list(range(probs.shape[1]))
    best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    table = pd.DataFrame({id_name: ids,
                          "score": probs.max(axis=1) if len(probs) else np.zeros(0),
                          "prediction": np.asarray(classes, dtype=object)[best]})
    for k, name in enumerate(classes):
        table[f"{PROBA_PREFIX}{name}"] = probs[:, k]
    table["model_version"] = version
    return table
