"""Split first, then fit on train only: the leakage guarantees, proved on fitted statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_config_dict, make_table
from ml_lifecycle.config import config_from_dict
from ml_lifecycle.data import load_table
from ml_lifecycle.errors import ConfigError, DataError
from ml_lifecycle.models import train_model
from ml_lifecycle.preprocess import MISSING_CATEGORY
from ml_lifecycle.split import SPLITS, _hex_ids, leakage_audit, split_frame
from ml_lifecycle.train import encode_target


def _setup(tmp_path: Path, n: int = 1200, **kw):
    path = tmp_path / "t.csv"
    make_table(n).to_csv(path, index=False)
    cfg = config_from_dict(make_config_dict(str(path), str(tmp_path / "r"), **kw))
    frame = load_table(cfg.data)
    y, _ = encode_target(frame, cfg)
    return cfg, frame, y


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), strategy=st.sampled_from(["stratified", "random", "time",
                                                               "group"]))
def test_no_row_in_two_splits(tmp_path_factory, seed: int, strategy: str) -> None:
    tmp = tmp_path_factory.mktemp("split")
    cfg, frame, y = _setup(tmp, n=400, split__seed=seed, split__strategy=strategy,
                           split__group_column="cat" if strategy == "group" else None)
    if strategy == "group":
        frame["grp"] = frame["merchant"]
        cfg.split.group_column = "grp"
    s = split_frame(frame, y, cfg)
    parts = [set(s.train), set(s.validation), set(s.test)]
    assert sum(len(p) for p in parts) == len(frame)
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    audit = leakage_audit(frame, y, s, cfg)
    assert audit["rows_in_two_splits"] == 0
    if strategy == "time":
        assert audit["time_order_ok"] is True
    if strategy == "group":
        assert audit["groups_in_two_splits"] == 0


def test_stratified_keeps_class_balance(tmp_path: Path) -> None:
    cfg, frame, y = _setup(tmp_path)
    s = split_frame(frame, y, cfg)
    rates = [y[idx].mean() for idx in (s.train, s.validation, s.test)]
    assert max(rates) - min(rates) < 0.02
    assert abs(len(s.train) / len(frame) - 0.6) < 0.01


def test_time_split_never_splits_equal_timestamps(tmp_path: Path) -> None:
    cfg, frame, y = _setup(tmp_path, split__strategy="time")
    frame["ts"] = pd.to_datetime("2026-01-01") + pd.to_timedelta(np.arange(len(frame)) // 7,
                                                                 unit="D")
    s = split_frame(frame, y, cfg)
    t = frame["ts"]
    assert t.iloc[s.train].max() < t.iloc[s.validation].min()
    assert t.iloc[s.validation].max() < t.iloc[s.test].min()


def test_zero_fraction_and_tiny_table_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"split\.test"):
        _setup(tmp_path, split__test=0.0)
    cfg, frame, y = _setup(tmp_path, n=1200, split__strategy="random")
    with pytest.raises(DataError, match="too few"):
        split_frame(frame.iloc[:2], y[:2], cfg)


def test_leak_screen_flags_a_copied_target(tmp_path: Path) -> None:
    cfg, frame, y = _setup(tmp_path)
    frame["x2"] = frame["label"] * 10.0 + np.random.default_rng(0).normal(0, 0.01, len(frame))
    s = split_frame(frame, y, cfg)
    audit = leakage_audit(frame, y, s, cfg)
    assert audit["target_leak_screen"]["suspects"] == ["x2"]
    cfg.split.leak_screen.fail = True
    with pytest.raises(DataError, match="target-leak screen"):
        leakage_audit(frame, y, s, cfg)


def test_duplicate_feature_rows_across_splits_are_counted(tmp_path: Path) -> None:
    cfg, frame, y = _setup(tmp_path)
    frame = pd.concat([frame, frame.iloc[:100]], ignore_index=True)
    y = np.concatenate([y, y[:100]])
    s = split_frame(frame, y, cfg)
    dup = leakage_audit(frame, y, s, cfg)["duplicate_feature_rows_across_splits"]
    assert sum(dup.values()) > 0


def _shared_by_sets(values: np.ndarray, s) -> dict[str, int]:
    """The audit's pair counts the slow, obvious way: distinct values per split, intersected."""
    per = {name: {str(v) for v in values[s.indices(name)]} for name in SPLITS}
    return {f"{a}_{b}": len(per[a] & per[b])
            for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))}


def test_audit_counts_equal_the_set_intersections(tmp_path: Path) -> None:
    cfg, frame, y = _setup(tmp_path)
    rng = np.random.default_rng(4)
    frame = pd.concat([frame, frame.iloc[rng.choice(len(frame), 150)]], ignore_index=True)
    y = np.concatenate([y, y[-150:]])
    frame["account"] = rng.integers(0, 300, len(frame)).astype(str)
    cfg.data.id_column = "account"
    s = split_frame(frame, y, cfg)
    audit = leakage_audit(frame, y, s, cfg)
    hashes = pd.util.hash_pandas_object(frame[cfg.data.features.all], index=False).to_numpy()
    want = _shared_by_sets(hashes, s)
    assert audit["duplicate_feature_rows_across_splits"] == want and sum(want.values()) > 0
    assert audit["ids_in_two_splits"] == sum(_shared_by_sets(frame["account"].to_numpy(),
                                                             s).values()) > 0
    # a row in two splits is counted by position, and refused
    s.validation = np.concatenate([s.validation, s.train[:7]])
    with pytest.raises(DataError, match="7 rows are in two splits"):
        leakage_audit(frame, y, s, cfg)


def test_leak_screen_auc_from_key_counts_equals_the_auc_on_the_rows() -> None:
    from ml_lifecycle.metrics import compute_metric
    from ml_lifecycle.split import _auc_by_key

    rng = np.random.default_rng(2)
    for trial in range(30):
        k = int(rng.integers(2, 25))
        keys = rng.integers(0, k, int(rng.integers(20, 2000)))
        means = np.round(rng.random(k), 1)  # equal means of different keys: ties
        y = (rng.random(len(keys)) < means[keys]).astype(float)
        if trial == 0:
            y[:] = 1.0  # one class: undefined on both
        want = compute_metric("classification", "roc_auc", y, means[keys])
        got = _auc_by_key(keys, y, means)
        assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want, abs=1e-12)


def test_row_ids_are_the_hex_of_the_row_hash() -> None:
    hashes = np.array([0, 1, 255, 2**63, 2**64 - 1, 0xDEADBEEF12345678], dtype=np.uint64)
    hashes = np.concatenate([hashes, np.random.default_rng(0).integers(
        0, 2**63, 1000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)])
    got = _hex_ids(hashes)
    assert got.dtype == np.dtype("<U17")
    assert got.tolist() == [f"h{int(v):016x}" for v in hashes]


@pytest.mark.parametrize("family", ["hist_gradient_boosting", "logistic_regression", "sgd"])
def test_every_fitted_statistic_comes_from_the_training_split(tmp_path: Path, family: str) -> None:
    cfg, frame, y = _setup(tmp_path, model__family=family)
    # a category that exists only outside the training split must not be learned
    s = split_frame(frame, y, cfg)
    frame.loc[frame.index[s.test[:40]], "cat"] = "only_in_test"
    frame.loc[frame.index[s.validation[:5]], "x1"] = 1e6  # would move the scaler mean if used
    x = frame[cfg.data.features.all]
    fit = train_model(cfg, x.iloc[s.train], y[s.train], x.iloc[s.validation], y[s.validation])
    prep = fit.pipeline.named_steps["prep"]
    num = prep.named_transformers_["numeric"]
    train_num = x.iloc[s.train][["x1", "x2"]]
    np.testing.assert_allclose(num.named_steps["impute"].statistics_,
                               train_num.median().to_numpy())
    imputed = train_num.fillna(train_num.median())
    expected_mean = np.concatenate([imputed.mean().to_numpy(),
                                    train_num.isna().mean().to_numpy()[train_num.isna().any()]])
    np.testing.assert_allclose(num.named_steps["scale"].mean_, expected_mean, rtol=1e-9)
    enc = prep.named_transformers_["categorical"].named_steps["onehot"]
    train_cats = set(x.iloc[s.train]["cat"].dropna()) | (
        {MISSING_CATEGORY} if x.iloc[s.train]["cat"].isna().any() else set())
    assert set(enc.categories_[0]) == train_cats
    assert "only_in_test" not in set(enc.categories_[0])
    # infrequent grouping for the high-cardinality column
    assert enc.infrequent_categories_[1] is not None or len(enc.categories_[1]) <= 30
