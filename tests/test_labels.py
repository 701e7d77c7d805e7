"""The one label/category rule (``ml_lifecycle.labels``) and its users agreeing on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_lifecycle.labels import (
    apply_label_map,
    binary_labels,
    label_keys,
    positive_class,
    text_key,
    text_keys,
)


@pytest.mark.parametrize(("value", "key"), [
    (3.0, "3"), (np.float32(3.0), "3"), (3, "3"), ("3", "3"), (2.5, "2.5"), (True, "True"),
    ("yes", "yes"), (np.int64(1), "1"), ("3.0", "3.0"),
])
def test_text_key_makes_one_key_of_the_forms_a_file_gives(value, key) -> None:
    assert text_key(value) == key


def test_binary_labels_map_configure_and_keep_missing() -> None:
    raw = pd.Series(["yes", "no", None, "yes", 1.0])
    y = binary_labels(raw, 1, label_map={"yes": 1, "no": 0})
    assert np.isnan(y[2]) and y[[0, 1, 3, 4]].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert apply_label_map(raw, None) is raw
    floats = pd.Series([1.0, 0.0, 1.0])
    assert binary_labels(floats, "1").tolist() == [1.0, 0.0, 1.0]


def test_positive_class_is_configured_or_the_minority() -> None:
    keys = label_keys(pd.Series(["a", "b", "b", None, "b"]))
    assert positive_class(keys) == "a"
    assert positive_class(keys, "b") == "b" and positive_class(keys, 1.0) == "1"
    with pytest.raises(ValueError, match="no labels"):
        positive_class(pd.Series([None, None]))


def test_training_drift_and_backtest_encode_labels_alike(tmp_path) -> None:
    """The same labels give the same 0/1 in training, the concept-drift check and the
    backtest's live metric, whatever form the file gave them in."""
    from conftest import make_config_dict
    from ml_lifecycle.backtest import _encode
    from ml_lifecycle.config import config_from_dict
    from ml_lifecycle.drift.concept import encode_labels
    from ml_lifecycle.train import encode_target

    raw = make_config_dict(str(tmp_path / "x.csv"), str(tmp_path / "reg"))
    raw["data"]["positive_label"] = 1
    cfg = config_from_dict(raw)
    values = pd.Series([1.0, 0.0, 0.0, 1.0, 0.0])
    trained, info = encode_target(pd.DataFrame({cfg.data.target: values}), cfg)
    assert info["positive_label"] == "1"
    assert encode_labels(values.astype(str).str.replace(".0", ""), cfg).tolist() == \
        trained.astype(float).tolist()
    assert _encode(cfg, values.astype(int)).tolist() == trained.astype(float).tolist()


@pytest.mark.parametrize("values", [
    pd.Series(["yes", "no", "yes"]),
    pd.Series(["a", None, "b"]),  # object with a missing value: keyed row by row
    pd.Series([1.0, 2.0, np.nan, 3.5]),
    pd.Series([1, 0, 1], dtype="int64"),
    pd.Series([True, False, True]),
    pd.Series([1, True, "x", 2.0, None, np.nan], dtype=object),  # 1 and True hash alike
    pd.Series(["x", "y", None], dtype="category"),
    pd.Series(["x", pd.NA], dtype="string"),
    pd.Series([], dtype=object),
])
def test_text_keys_equal_text_key_row_by_row(values: pd.Series) -> None:
    assert text_keys(values).tolist() == values.map(text_key).tolist()


def test_positive_class_is_the_minority_and_the_first_name_on_a_tie() -> None:
    assert positive_class(pd.Series(["no", "yes", "no", None])) == "yes"
    assert positive_class(["b", "a", "a", "b"]) == "a"
    assert positive_class(["x"], configured=1.0) == "1"
