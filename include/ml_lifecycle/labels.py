"""One rule for turning category and label values into text, and labels into 0/1.

CSV, Parquet and JSON hand the same value over as ``1``, ``1.0``, ``"1"`` or ``True``; a
category or a class must mean the same thing whichever file it came from, at training, in a
drift check, in a labels file and in the backtest. So every module normalises through here:

* :func:`text_key`: ``3.0`` -> ``"3"`` (an integral float is the integer it stands for), any
  other value -> ``str(value)``; text stays as it is.
* :func:`apply_label_map`: ``data.label_map`` (``{"yes": 1, ...}``) applied to raw targets.
* :func:`positive_class`: the configured ``data.positive_label`` as a key, or else the minority
  class of the given labels (the documented fallback; a config should name it).
* :func:`binary_labels`: 0/1 floats against the positive class, NaN where the label is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def text_key(value: Any) -> str:
    """The text key of a category or label value (``3.0`` -> ``"3"``, ``"a"`` -> ``"a"``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def text_keys(values: pd.Series) -> np.ndarray:
    """:func:`text_key` of every value, as an object array; the same as
    ``values.map(text_key)``, without a Python call per row where that is safe: a column of
    strings is its own keys, and a numeric, boolean or categorical column is keyed once per
    distinct value. A mixed object column (``1`` and ``True`` hash alike) is keyed row by row."""
    if values.dtype == object:
        if pd.api.types.infer_dtype(values, skipna=False) == "string":
            return values.to_numpy(dtype=object)
        return values.map(text_key).to_numpy(dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    keys = np.array([text_key(u) for u in np.asarray(uniques, dtype=object)] + [None],
                    dtype=object)[codes]  # code -1 (missing) picks the None, replaced below
    missing = codes < 0
    if missing.any():
        keys[missing] = [text_key(v) for v in values.to_numpy(dtype=object)[missing]]
    return keys


def apply_label_map(values: pd.Series, label_map: Mapping[str, Any] | None) -> pd.Series:
    """Raw target values with ``data.label_map`` applied (keys are the values' text)."""
    if not label_map:
        return values
    return values.map(lambda v: label_map.get(str(v), v))


def label_keys(values: pd.Series) -> pd.Series:
    """:func:`text_key` of each value, missing values kept missing (None)."""
    return values.map(lambda v: None if pd.isna(v) else text_key(v))


def positive_class(keys: pd.Series | np.ndarray, configured: Any = None) -> str:
    """The positive class: ``configured`` (as a key) or else the minority class of ``keys``."""
    if configured is not None:
        return text_key(configured)
    present = pd.Series(keys).dropna()
    if not len(present):
        raise ValueError("no labels to choose a positive class from")
    counts = present.astype(str).value_counts().sort_index()  # ties: the first name wins
    return str(counts.index[int(np.argmin(counts.to_numpy()))])


def binary_labels(values: pd.Series, positive: Any, *,
                  label_map: Mapping[str, Any] | None = None) -> np.ndarray:
    """0/1 floats (1 = ``positive``), NaN where a label is missing."""
    keys = label_keys(apply_label_map(values, label_map))
    y = (keys == text_key(positive)).to_numpy(dtype="float64")
    return np.where(keys.isna().to_numpy(), np.nan, y)


__all__ = ["apply_label_map", "binary_labels", "label_keys", "positive_class", "text_key"]
