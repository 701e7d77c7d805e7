"""Shared fixtures: a small synthetic classification table and configs built from dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_lifecycle.config import Config, config_from_dict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"



def project_config_raw(name: str = "demo.yaml", *, rebase: bool = True) -> dict[str, Any]:
    """A shipped config (``configs/<name>``) as a dict whose relative paths are relative to the
    project root, as a test that re-roots it under a temporary base expects (the file itself
    writes them relative to its own folder, ``configs/``). ``rebase=False``: as in the file,
    for a copy written one folder below the project root (e.g. ``var/x.yaml``)."""
    from ml_lifecycle.config import LIFECYCLE_FOLDERS, load_raw

    raw = load_raw(PROJECT_ROOT / "configs" / name)
    if not rebase:
        return raw

    def rebase(value: Any) -> Any:
        return value[3:] if isinstance(value, str) and value.startswith("../") else value

    raw["data"]["path"] = rebase(raw["data"]["path"])
    raw["data"]["data_roots"] = [rebase(v) for v in raw["data"].get("data_roots") or []]
    raw["registry"]["root"] = rebase(raw["registry"]["root"])
    for key in LIFECYCLE_FOLDERS:
        if key in (raw.get("lifecycle") or {}):
            raw["lifecycle"][key] = rebase(raw["lifecycle"][key])
    return raw


def make_table(n: int = 1500, seed: int = 0, positive_rate_shift: float = 0.0) -> pd.DataFrame:
    """A small imbalanced classification table with numeric, categorical and missing values."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, n)
    x2 = rng.normal(5, 2, n)
    cat = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    rare = rng.choice([f"m{i}" for i in range(60)], n)
    logit = -2.0 + 1.5 * x1 + 0.3 * (x2 - 5) + (cat == "d") * 1.0 + positive_rate_shift
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x2[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "row_id": [f"r{seed}_{i}" for i in range(n)],
        "x1": x1, "x2": x2, "cat": cat, "merchant": rare,
        "ts": pd.date_range("2026-01-01", periods=n, freq="h").astype(str),
        "label": y,
    })


def make_config_dict(data_path: str, registry_root: str, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "task": "classification",
        "name": "synthetic",
        "data": {
            "path": data_path, "target": "label", "positive_label": 1, "id_column": "row_id",
            "time_column": "ts",
            "features": {"numeric": ["x1", "x2"], "categorical": ["cat", "merchant"]},
        },
        "split": {"strategy": "stratified", "seed": 42},
        "model": {"family": "hist_gradient_boosting", "max_iter": 100, "patience": 5},
        "evaluation": {"bootstrap": 50, "importance_repeats": 2},
        "gate": {"floors": {"roc_auc": 0.6}, "bootstrap": 100},
        "registry": {"root": registry_root},
    }
    for dotted, value in overrides.items():
        node = raw
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return raw


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    make_table().to_csv(path, index=False)
    return path


@pytest.fixture
def cfg(tmp_path: Path, table_csv: Path) -> Config:
    return config_from_dict(make_config_dict(str(table_csv), str(tmp_path / "registry")))
