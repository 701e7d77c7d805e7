"""Split first: train / validation / test before any preprocessing, plus a leakage audit.

Pitfall avoided: fitting an imputer, scaler or encoder on the whole table before splitting lets
statistics of the validation and test rows leak into training. Here the split happens on the raw
table; every transformer is fitted later, inside the pipeline, on the training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import DataError

if TYPE_CHECKING:
    from .config import Config

SPLITS = ("train", "validation", "test")


@dataclass
class SplitResult:
    """Positional row indices of each split (into the frame given to :func:`split_frame`)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    strategy: str
    seed: int
    notes: list[str] = field(default_factory=list)

    def indices(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def sizes(self) -> dict[str, int]:
        return {name: len(self.indices(name)) for name in SPLITS}

    def assignment(self, frame: pd.DataFrame, cfg: Config) -> pd.DataFrame:
        """Row id -> split name (stored with the model version)."""
        n = len(frame)
        labels = np.empty(n, dtype=object)
        for name in SPLITS:
            labels[self.indices(name)] = name
        return pd.DataFrame({"row_id": row_ids(frame, cfg), "position": np.arange(n),
                             "split": labels})


def row_ids(frame: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Stable row identities: the id column, or a hash of the features and target.

    Used to recognise, in a later training, the rows an earlier model was trained on.
    """
    if cfg.data.id_column and cfg.data.id_column in frame.columns:
        return frame[cfg.data.id_column].astype(str).to_numpy()
    cols = [c for c in [*cfg.data.features.all, cfg.data.target] if c in frame.columns]
    hashed = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
    return _hex_ids(hashed.astype(np.uint64))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex_ids(hashed: np.ndarray) -> np.ndarray:
    """``"h%016x"`` of each 64-bit hash (a ``<U17`` array), built from the hash's bytes at once:
    ``np.char.mod`` formats one value per Python call (2.4 s of a 1M-row training)."""
    digits = hashed.astype(">u8").view(np.uint8).reshape(-1, 8)  # most significant byte first
    text = np.empty((len(hashed), 17), dtype=np.uint8)
    text[:, 0] = ord("h")
    text[:, 1::2] = _HEX_DIGITS[digits >> 4]
    text[:, 2::2] = _HEX_DIGITS[digits & 15]
    return text.view("S17").ravel().astype("U17")


def _fraction_counts(n: int, cfg: Config) -> tuple[int, int]:
    n_val = round(n * cfg.split.validation)
    n_test = round(n * cfg.split.test)
    if min(n_val, n_test, n - n_val - n_test) < 1:
        raise DataError(
            f"split: {n} rows are too few for fractions train={cfg.split.train} "
            f"validation={cfg.split.validation} test={cfg.split.test} (a split would be empty)"
        )
    return n_val, n_test


def split_frame(frame: pd.DataFrame, y: np.ndarray, cfg: Config) -> SplitResult:
    """Split rows by ``cfg.split.strategy`` (stratified, time, group, random).

    Args:
        frame: the training table (rows with a valid target only).
        y: the encoded target (used for stratification).
        cfg: the config.

    Returns:
        A :class:`SplitResult` with disjoint, non-empty index arrays.
    """
    n = len(frame)
    strategy = cfg.split.strategy
    seed = cfg.split.seed
    n_val, n_test = _fraction_counts(n, cfg)
    notes: list[str] = []
    if strategy in ("stratified", "random"):
        train, val, test = _shuffled_split(frame, y, cfg, n_val=n_val, n_test=n_test)
    elif strategy == "time":
        train, val, test = _time_split(frame, cfg, n_val=n_val, n_test=n_test)
        notes.append("time split: rows with equal timestamps are kept in the same split")
    elif strategy == "group":
        train, val, test = _group_split(frame, cfg)
    else:  # pragma: no cover - guarded by the config schema
        raise DataError(f"unknown split.strategy '{strategy}'")
    if cfg.task == "multiclass":
        _every_class_in_every_split(frame, y, cfg, {"train": train, "validation": val,
                                                    "test": test})
    return SplitResult(
        train=np.sort(np.asarray(train)),
        validation=np.sort(np.asarray(val)),
        test=np.sort(np.asarray(test)),
        strategy=strategy,
        seed=seed,
        notes=notes,
    )


def _shuffled_split(frame: pd.DataFrame, y: np.ndarray, cfg: Config, *, n_val: int,
                    n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step: the ``stratified`` or ``random`` split (test first, then validation)."""
    from sklearn.model_selection import train_test_split

    strategy, seed = cfg.split.strategy, cfg.split.seed
    positions = np.arange(len(frame))
    stratify = y if strategy == "stratified" else None
    if stratify is not None:
        classes, counts = np.unique(stratify, return_counts=True)
        if counts.min() < 3:
            rare = classes[np.argmin(counts)]
            raise DataError(
                f"split.strategy 'stratified': class {_label_of(frame, y, rare, cfg)!r} of "
                f"target '{cfg.data.target}' has {counts.min()} row(s); each of the three "
                "splits needs at least one (more data, or merge rare classes with "
                "data.label_map)"
            )
    rest, test = train_test_split(
        positions, test_size=n_test, random_state=seed, stratify=stratify
    )
    train, val = train_test_split(
        rest,
        test_size=n_val,
        random_state=seed + 1,
        stratify=None if stratify is None else stratify[rest],
    )
    return train, val, test


def _time_split(frame: pd.DataFrame, cfg: Config, *, n_val: int,
                n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step: the ``time`` split (train < validation < test; equal times stay together)."""
    n = len(frame)
    time_col = cfg.data.time_column
    assert time_col is not None
    times = pd.to_datetime(frame[time_col]).to_numpy()
    if pd.isna(times).any():
        raise DataError(f"split.strategy 'time': column '{time_col}' has missing times")
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    cut1 = _next_distinct(sorted_times, n - n_val - n_test)
    cut2 = _next_distinct(sorted_times, max(cut1 + 1, n - n_test))
    train, val, test = order[:cut1], order[cut1:cut2], order[cut2:]
    if min(len(train), len(val), len(test)) == 0:
        raise DataError(
            f"split.strategy 'time': column '{time_col}' has too few distinct times "
            "for three non-empty splits"
        )
    return train, val, test


def _group_split(frame: pd.DataFrame,
                 cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step: the ``group`` split (no group in two splits)."""
    from sklearn.model_selection import GroupShuffleSplit

    seed = cfg.split.seed
    positions = np.arange(len(frame))
    group_col = cfg.split.group_column
    assert group_col is not None
    if group_col not in frame.columns:
        raise DataError(f"split.group_column '{group_col}' is not a column of the data")
    groups = frame[group_col].astype(str).to_numpy()
    if len(np.unique(groups)) < 3:
        raise DataError(f"split.strategy 'group': column '{group_col}' has < 3 groups")
    gss = GroupShuffleSplit(n_splits=1, test_size=cfg.split.test, random_state=seed)
    rest, test = next(gss.split(positions, groups=groups))
    val_share = cfg.split.validation / (cfg.split.train + cfg.split.validation)
    gss2 = GroupShuffleSplit(n_splits=1, test_size=val_share, random_state=seed + 1)
    tr, va = next(gss2.split(rest, groups=groups[rest]))
    train, val = rest[tr], rest[va]
    return train, val, test


def _label_of(frame: pd.DataFrame, y: np.ndarray, code: Any, cfg: Config) -> Any:
    """The raw target value of an encoded class (for messages)."""
    where = np.flatnonzero(y == code)
    return frame[cfg.data.target].iloc[where[0]] if where.size else code


def _every_class_in_every_split(frame: pd.DataFrame, y: np.ndarray, cfg: Config,
                                splits: dict[str, np.ndarray]) -> None:
    """Multiclass: a class absent from the training split cannot be predicted (the model would
    have fewer outputs than classes), one absent from validation or test cannot be judged.

    Raises:
        DataError: naming the class, its rows and the split it is missing from.
    """
    classes, counts = np.unique(y, return_counts=True)
    for name, rows in splits.items():
        missing = np.setdiff1d(classes, np.unique(y[np.asarray(rows, dtype=int)]))
        if missing.size:
            code = missing[0]
            n_rows = int(counts[np.searchsorted(classes, code)])
            raise DataError(
                f"split.strategy '{cfg.split.strategy}': class "
                f"{_label_of(frame, y, code, cfg)!r} of target '{cfg.data.target}' ({n_rows} "
                f"row(s)) is not in the {name} split; every class must be in every split "
                "(use split.strategy 'stratified', more data, or merge rare classes with "
                "data.label_map)")


def _next_distinct(sorted_times: np.ndarray, cut: int) -> int:
    """Move a cut forward so that equal timestamps never straddle two splits."""
    n = len(sorted_times)
    cut = min(max(cut, 1), n)
    while 0 < cut < n and sorted_times[cut] == sorted_times[cut - 1]:
        cut += 1
    return cut


# --------------------------------------------------------------------------- leakage audit


def _row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


def leakage_audit(
    frame: pd.DataFrame, y: np.ndarray, split: SplitResult, cfg: Config
) -> dict[str, Any]:
    """Check the split for leakage; returns the audit stored in the model card.

    Checks: no row in two splits (by position and, when configured, by id); exact-duplicate feature
    rows shared across splits (counted); time order (time splits); group disjointness (group
    splits); a single-feature target-leak screen fitted on train and scored on validation.
    """
    features = cfg.data.features.all
    pairs = (("train", "validation"), ("train", "test"), ("validation", "test"))

    def shared(codes: np.ndarray, distinct: int) -> dict[str, int]:
        """Distinct values (codes ``0..distinct-1``) found in both splits of each pair: one
        bit per split marks where each value occurs (a pass over the rows, no sorting)."""
        seen = np.zeros(distinct, dtype=np.uint8)
        for bit, name in enumerate(SPLITS):
            seen[codes[split.indices(name)]] |= np.uint8(1 << bit)
        bits = {name: 1 << i for i, name in enumerate(SPLITS)}
        return {f"{a}_{b}": int(np.count_nonzero((seen & (bits[a] | bits[b]))
                                                 == (bits[a] | bits[b]))) for a, b in pairs}

    def shared_values(values: Any) -> dict[str, int]:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        return shared(codes, len(uniques))

    overlap_positions = sum(shared(np.arange(len(frame)), len(frame)).values())
    audit: dict[str, Any] = {"rows_in_two_splits": overlap_positions, "checks": []}
    id_col = cfg.data.id_column
    if id_col:
        audit["ids_in_two_splits"] = sum(shared_values(frame[id_col].astype(str)).values())
    audit["duplicate_feature_rows_across_splits"] = shared_values(_row_hashes(frame, features))
    if split.strategy == "time" and cfg.data.time_column:
        times = pd.to_datetime(frame[cfg.data.time_column])
        t = {name: times.iloc[split.indices(name)] for name in SPLITS}
        ordered = bool(t["train"].max() < t["validation"].min()
                       and t["validation"].max() < t["test"].min())
        audit["time_order_ok"] = ordered
        audit["time_ranges"] = {
            name: [t[name].min().isoformat(), t[name].max().isoformat()] for name in SPLITS
        }
        if not ordered:
            raise DataError(
                "leakage audit: the time split is not ordered train < validation < test"
            )
    if split.strategy == "group" and cfg.split.group_column:
        g = frame[cfg.split.group_column].astype(str).to_numpy()
        gs = {name: set(g[split.indices(name)]) for name in SPLITS}
        shared = len(gs["train"] & gs["validation"]) + len(gs["train"] & gs["test"]) + len(
            gs["validation"] & gs["test"])
        audit["groups_in_two_splits"] = shared
    if overlap_positions:
        raise DataError(f"leakage audit: {overlap_positions} rows are in two splits")
    audit["target_leak_screen"] = target_leak_screen(frame, y, split, cfg)
    return audit


def _auc_by_key(keys: np.ndarray, y: np.ndarray, score_of_key: np.ndarray) -> float:
    """ROC-AUC of scores that take one value per key (a bin's or a category's training mean),
    from each key's positive and negative counts: the number ``roc_auc`` gives on the rows
    (equal scores count as half-ordered pairs there too), in one pass instead of a sort of
    every validation row per feature."""
    from .metrics import weighted_metric

    pos = np.bincount(keys, weights=y, minlength=len(score_of_key))
    neg = np.bincount(keys, minlength=len(score_of_key)) - pos
    present = np.flatnonzero(pos + neg > 0)
    labels = np.concatenate([np.ones(len(present)), np.zeros(len(present))])
    weights = np.concatenate([pos[present], neg[present]])[None, :]
    scores = np.concatenate([score_of_key[present], score_of_key[present]])
    return float(weighted_metric("roc_auc", labels, scores, weights)[0])


def target_leak_screen(
    frame: pd.DataFrame, y: np.ndarray, split: SplitResult, cfg: Config
) -> dict[str, Any]:
    """Score each feature alone: bin/category target means learned on train, scored on validation.

    A feature that alone predicts the target almost perfectly (validation ROC-AUC, or R^2 for
    regression, at or above ``split.leak_screen.threshold``) is usually a leak: an ID that encodes
    the outcome, a post-event timestamp, a copy of the target.
    """
    from .metrics import compute_metric

    tr, va = split.train, split.validation
    y_tr, y_va = y[tr].astype(float), y[va].astype(float)
    multiclass = cfg.task == "multiclass"
    # multiclass: the target mean of each class (one-vs-rest columns), judged by OvR ROC-AUC
    targets = (np.eye(int(y.max()) + 1)[y[tr].astype(int)] if multiclass else y_tr[:, None])
    prior = targets.mean(axis=0)
    scores: dict[str, float] = {}
    judged = cfg.task == "regression" or len(np.unique(y_va)) >= 2
    for column in cfg.data.features.all if judged else []:
        col = frame[column]
        if column in cfg.data.features.numeric:
            values = col.to_numpy(dtype="float64")
            finite = values[tr][~np.isnan(values[tr])]
            if finite.size == 0:
                continue
            edges = np.unique(np.quantile(finite, np.linspace(0, 1, 21)))
            keys = np.where(np.isnan(values), len(edges) + 1, np.searchsorted(edges, values))
        else:
            keys = pd.factorize(col, use_na_sentinel=False)[0]
        # target mean per key learned on train (bincount: one pass), applied to validation
        size = int(keys.max()) + 1
        counts = np.bincount(keys[tr], minlength=size)
        sums = np.stack([np.bincount(keys[tr], weights=t, minlength=size) for t in targets.T],
                        axis=1)
        means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], prior)
        pred = means[keys[va]] if multiclass else means[keys[va], 0]
        if multiclass:
            scores[column] = compute_metric("multiclass", "roc_auc_ovr", y_va, pred)
        elif cfg.task == "classification":
            auc = _auc_by_key(keys[va], y_va, means[:, 0])
            scores[column] = max(auc, 1.0 - auc)
        else:
            scores[column] = compute_metric("regression", "r2", y_va, pred)
    threshold = cfg.split.leak_screen.threshold
    suspects = sorted(c for c, s in scores.items() if s >= threshold)
    result = {
        "metric": {"classification": "roc_auc", "multiclass": "roc_auc_ovr"}.get(cfg.task, "r2"),
        "threshold": threshold,
        "scores": scores,
        "suspects": suspects,
    }
    if suspects and cfg.split.leak_screen.fail:
        raise DataError(
            f"target-leak screen: feature(s) {suspects} alone predict the target on validation "
            f"({result['metric']} >= {threshold}); remove them or set split.leak_screen.fail: false"
        )
    return result
