"""The reference profile: what drift checks compare a batch with, stored with each model version.

Built once at training time from the training split (:func:`build_reference_profile`) and saved
in the version folder as two files:

``reference_profile.npz``
    numeric arrays, per numeric feature (and for the validation scores) ``<key>__values`` /
    ``__counts`` (the sorted sample as unique values + counts), ``__psi_cuts`` / ``__psi_counts``,
    ``__hist_cuts`` / ``__hist_counts`` and ``__quantiles``. Keys are ``n0``, ``n1``, ... (the
    JSON maps them to feature names, which may hold any character) and ``scores``.
``reference_profile.json``
    everything else: feature lists and dtypes, scalar facts per feature (range, spread, missing
    rate, most frequent value), categorical value counts, test metrics, permutation importances,
    the settings used, and the sha256 of the ``.npz`` (checked on load).

Both are written atomically (the ``.npz`` first, the JSON that vouches for it last).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DataError, IntegrityError, RegistryError
from ..io import atomic_write_bytes, atomic_write_json, read_json, sha256_file
from .reference import (
    CategoricalReference,
    NumericReference,
    build_categorical_reference,
    build_numeric_reference,
)
from .settings import DriftConfig

if TYPE_CHECKING:
    from ..config import Config

PROFILE_JSON = "reference_profile.json"
PROFILE_NPZ = "reference_profile.npz"
SCHEMA_VERSION = 1
_ARRAYS = ("values", "counts", "psi_cuts", "psi_counts", "hist_cuts", "hist_counts", "quantiles")
_NUMERIC_SCALARS = ("n_rows", "n_missing", "n_nonfinite", "mean", "std", "spread", "min", "max",
                    "top_value", "top_share")


@dataclass
class ReferenceProfile:
    """Reference summaries of every feature plus what the model needs to be judged by."""

    task: str
    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    scores: NumericReference | None = None
    #: multiclass: the validation probability of each class (by class name), and the share of
    #: validation rows predicted as each class
    class_scores: dict[str, NumericReference] = field(default_factory=dict)
    class_shares: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    importances: dict[str, float] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    n_rows: int = 0
    id_column: str | None = None
    time_column: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @property
    def features(self) -> list[str]:
        """Numeric then categorical feature names."""
        return [*self.numeric, *self.categorical]

    def reference(self, name: str) -> NumericReference | CategoricalReference:
        """The reference summary of one feature."""
        if name in self.numeric:
            return self.numeric[name]
        return self.categorical[name]

    # ------------------------------------------------------------------ storage

    def save(self, directory: str | Path) -> list[Path]:
        """Write the profile into ``directory`` (atomically, ``.npz`` first).

        Args:
            directory: a model version (or staging) folder.

        Returns:
            The paths written: ``[reference_profile.npz, reference_profile.json]``.
        """
        directory = Path(directory)
        arrays: dict[str, np.ndarray] = {}
        numeric_meta: dict[str, Any] = {}
        for i, (name, ref) in enumerate(self.numeric.items()):
            key = f"n{i}"
            numeric_meta[name] = {"key": key, **_numeric_scalars(ref)}
            arrays.update(_numeric_arrays(key, ref))
        scores_meta = None
        if self.scores is not None:
            scores_meta = {"key": "scores", **_numeric_scalars(self.scores)}
            arrays.update(_numeric_arrays("scores", self.scores))
        class_meta = []
        for k, (name, ref) in enumerate(self.class_scores.items()):
            class_meta.append({"class": name, "key": f"c{k}", **_numeric_scalars(ref)})
            arrays.update(_numeric_arrays(f"c{k}", ref))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        npz_path = atomic_write_bytes(directory / PROFILE_NPZ, buffer.getvalue())
        meta = {
            "schema_version": SCHEMA_VERSION,
            "created_at": self.created_at,
            "task": self.task,
            "n_rows": self.n_rows,
            "id_column": self.id_column,
            "time_column": self.time_column,
            "features": {"numeric": list(self.numeric), "categorical": list(self.categorical)},
            "dtypes": self.dtypes,
            "settings": self.settings,
            "numeric": numeric_meta,
            "categorical": {
                name: {"categories": ref.categories, "counts": ref.counts.tolist(),
                       "n_rows": ref.n_rows, "n_missing": ref.n_missing, "n_other": ref.n_other}
                for name, ref in self.categorical.items()
            },
            "scores": scores_meta,
            "class_scores": class_meta,
            "class_shares": self.class_shares,
            "test_metrics": self.test_metrics,
            "importances": self.importances,
            "arrays_file": PROFILE_NPZ,
            "arrays_sha256": sha256_file(npz_path),
        }
        json_path = atomic_write_json(directory / PROFILE_JSON, meta)
        return [npz_path, json_path]


def _numeric_scalars(ref: NumericReference) -> dict[str, Any]:
    return {k: getattr(ref, k) for k in _NUMERIC_SCALARS}


def _numeric_arrays(key: str, ref: NumericReference) -> dict[str, np.ndarray]:
    return {f"{key}__{a}": np.asarray(getattr(ref, a)) for a in _ARRAYS}


def _numeric_from_store(name: str, meta: dict[str, Any], arrays: Any) -> NumericReference:
    key = meta["key"]
    scalars = {k: meta.get(k) for k in _NUMERIC_SCALARS}
    for k in ("mean", "std", "min", "max"):
        scalars[k] = float("nan") if scalars[k] is None else float(scalars[k])
    scalars["spread"] = float(scalars["spread"] or 1.0)
    scalars["top_share"] = float(scalars["top_share"] or 0.0)
    return NumericReference(name=name, **{a: arrays[f"{key}__{a}"] for a in _ARRAYS}, **scalars)


def load_profile(directory: str | Path) -> ReferenceProfile:
    """Load and verify the reference profile stored in ``directory``.

    Args:
        directory: a model version folder.

    Returns:
        The :class:`ReferenceProfile`.

    Raises:
        RegistryError: the folder has no profile (a model trained before drift monitoring).
        IntegrityError: the arrays file does not match the sha256 recorded in the JSON.
    """
    directory = Path(directory)
    json_path, npz_path = directory / PROFILE_JSON, directory / PROFILE_NPZ
    if not json_path.is_file() or not npz_path.is_file():
        raise RegistryError(
            f"'{directory}' holds no reference profile ({PROFILE_JSON} + {PROFILE_NPZ}); "
            "retrain the model to create one"
        )
    meta = read_json(json_path)
    recorded = meta.get("arrays_sha256")
    actual = sha256_file(npz_path)
    if recorded != actual:
        raise IntegrityError(
            f"reference profile '{npz_path}' has sha256 {actual}, but {PROFILE_JSON} records "
            f"{recorded}; refusing to use a modified profile"
        )
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    # the JSON is written with sorted keys: the feature order comes from the feature lists
    numeric = {name: _numeric_from_store(name, meta["numeric"][name], arrays)
               for name in meta["features"]["numeric"]}
    categorical = {}
    for name in meta["features"]["categorical"]:
        m = meta["categorical"][name]
        categorical[name] = CategoricalReference(
            name=name, categories=[str(c) for c in m["categories"]],
            counts=np.asarray(m["counts"], dtype=np.int64), n_rows=int(m["n_rows"]),
            n_missing=int(m["n_missing"]), n_other=int(m.get("n_other", 0)),
        )
    scores = None
    if meta.get("scores"):
        scores = _numeric_from_store("__score__", meta["scores"], arrays)
    class_scores = {str(m["class"]): _numeric_from_store(f"__score_{m['class']}__", m, arrays)
                    for m in meta.get("class_scores") or []}
    return ReferenceProfile(
        task=meta["task"], numeric=numeric, categorical=categorical, scores=scores,
        class_scores=class_scores, class_shares=meta.get("class_shares") or {},
        test_metrics=meta.get("test_metrics") or {}, importances=meta.get("importances") or {},
        dtypes=meta.get("dtypes") or {}, n_rows=int(meta.get("n_rows", 0)),
        id_column=meta.get("id_column"), time_column=meta.get("time_column"),
        settings=meta.get("settings") or {}, created_at=meta.get("created_at", ""),
    )


def build_profile(
    frame: pd.DataFrame,
    *,
    numeric: list[str],
    categorical: list[str],
    settings: DriftConfig | None = None,
    task: str = "classification",
    validation_scores: np.ndarray | None = None,
    test_metrics: dict[str, Any] | None = None,
    importances: dict[str, float] | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    classes: list[Any] | None = None,
) -> ReferenceProfile:
    """Build a profile from a frame and explicit feature lists (no full config needed).

    Args:
        frame: the reference rows (the training split), feature columns at least.
        numeric: numeric feature names.
        categorical: categorical feature names.
        settings: the ``drift`` config section (sample size, bins, seed ...).
        task: ``classification`` or ``regression``.
        validation_scores: the model's scores on the validation split (prediction drift);
            multiclass: the (n, K) class probabilities.
        test_metrics: the model's test metrics (concept drift compares with them).
        importances: permutation importance per feature (importance-weighted verdict).
        id_column: id column name (informational).
        time_column: time column name (informational).
        classes: multiclass: the class names, in the order of the probability columns.

    Returns:
        The :class:`ReferenceProfile`.

    Raises:
        DataError: a feature column is missing or the frame is empty.
    """
    s = settings or DriftConfig()
    missing = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if missing:
        raise DataError(f"reference profile: training frame lacks feature column(s) {missing}")
    if frame.empty:
        raise DataError("reference profile: the training frame has no rows")
    options = {"sample_size": s.reference_sample_size, "psi_bins": s.psi_bins,
               "hist_bins": s.hist_bins, "quantile_grid": s.wasserstein_quantiles, "seed": s.seed}
    num_refs = {c: build_numeric_reference(frame[c], c, **options) for c in numeric}
    cat_refs = {
        c: build_categorical_reference(frame[c], c, max_categories=s.max_profile_categories)
        for c in categorical
    }
    scores, class_scores, class_shares = _score_references(validation_scores, classes, options)
    return ReferenceProfile(
        task=task,
        numeric=num_refs,
        categorical=cat_refs,
        scores=scores,
        class_scores=class_scores,
        class_shares=class_shares,
        test_metrics=dict(test_metrics or {}),
        importances={str(k): float(v) for k, v in (importances or {}).items()},
        dtypes={c: str(frame[c].dtype) for c in [*numeric, *categorical]},
        n_rows=len(frame),
        id_column=id_column,
        time_column=time_column,
        settings={k: getattr(s, k) for k in ("reference_sample_size", "psi_bins", "hist_bins",
                                             "wasserstein_quantiles", "max_profile_categories",
                                             "seed")},
        created_at=datetime.now(UTC).isoformat(),
    )


def _score_references(
    validation_scores: np.ndarray | None, classes: list[Any] | None, options: dict[str, Any]
) -> tuple[NumericReference | None, dict[str, NumericReference], dict[str, float]]:
    """Step: the prediction-drift references (the score's, or per class and predicted shares)."""
    scores = None
    class_scores: dict[str, NumericReference] = {}
    class_shares: dict[str, float] = {}
    if validation_scores is not None and len(validation_scores):
        values = np.asarray(validation_scores, dtype=float)
        if values.ndim == 2:  # multiclass: one reference per class probability
            names = [str(c) for c in (classes or range(values.shape[1]))]
            class_scores = {name: build_numeric_reference(values[:, k], f"__score_{name}__",
                                                          **options)
                            for k, name in enumerate(names)}
            predicted = np.bincount(values.argmax(axis=1), minlength=values.shape[1])
            class_shares = {name: float(predicted[k] / len(values))
                            for k, name in enumerate(names)}
        else:
            scores = build_numeric_reference(values, "__score__", **options)
    return scores, class_scores, class_shares


def build_reference_profile(
    train_features: pd.DataFrame,
    cfg: Config,
    *,
    validation_scores: np.ndarray | None,
    test_metrics: dict[str, Any],
    importances: dict[str, float],
    classes: list[Any] | None = None,
) -> ReferenceProfile:
    """Build the reference profile of a model at training time.

    Args:
        train_features: the training split's feature columns (after ``data.load_table``).
        cfg: the full config (feature lists, ``drift`` settings, task).
        validation_scores: the model's scores on the validation split.
        test_metrics: the model card's test metrics.
        importances: the model card's permutation importances.

    Returns:
        The :class:`ReferenceProfile` (call ``.save(version_dir)``).
    """
    return build_profile(
        train_features,
        numeric=list(cfg.data.features.numeric),
        categorical=list(cfg.data.features.categorical),
        settings=cfg.drift,
        task=cfg.task,
        validation_scores=validation_scores,
        test_metrics=test_metrics,
        importances=importances,
        id_column=cfg.data.id_column,
        time_column=cfg.data.time_column,
        classes=classes,
    )
