"""Tests of the seeded demo data simulator (ml_lifecycle.simulate)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from ml_lifecycle.config import load_config
from ml_lifecycle.errors import ConfigError, DataError
from ml_lifecycle.simulate import (
    CATEGORICAL_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    cli_main,
    simulate,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(initial_rows=3000, rows_per_day=800, days=12, shift_day=4, concept_day=8)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _day_frames(root: Path) -> list[pd.DataFrame]:
    """Each simulated day's batch joined with its labels, in manifest order."""
    manifest = json.loads((root / "manifest.json").read_text())
    frames = []
    for entry in manifest["files"]:
        batch = pd.read_csv(root / entry["batch"])
        labels = pd.read_csv(root / entry["labels"])
        frames.append(batch.merge(labels, on="order_id", how="inner", validate="one_to_one"))
    return frames


def _model_input(frame: pd.DataFrame, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Feature frame for a plain HistGradientBoostingClassifier (sentinel 0 -> NaN)."""
    x = frame[FEATURES].copy()
    x["prep_time_min"] = x["prep_time_min"].astype(float).replace(0.0, np.nan)
    for col in CATEGORICAL_FEATURES:
        known = frame[col].where(frame[col].isin(categories[col]))
        x[col] = pd.Categorical(known, categories=categories[col])
    # merchant_id has more than 255 values: use its code as an ordinal number (unseen -> NaN).
    codes = x["merchant_id"].cat.codes.astype(float)
    x["merchant_id"] = codes.where(codes >= 0)
    return x


def _fit(frame: pd.DataFrame) -> tuple[HistGradientBoostingClassifier, dict[str, list[str]]]:
    categories = {col: sorted(frame[col].dropna().unique()) for col in CATEGORICAL_FEATURES}
    model = HistGradientBoostingClassifier(random_state=0, categorical_features="from_dtype")
    model.fit(_model_input(frame, categories), frame["late"])
    return model, categories


def _auc(model: HistGradientBoostingClassifier, cats: dict, frame: pd.DataFrame) -> float:
    scores = model.predict_proba(_model_input(frame, cats))[:, 1]
    return float(roc_auc_score(frame["late"], scores))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sim") / "data"
    simulate(root, seed=7, **SMALL)
    return root


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(small: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    simulate(again, seed=7, **SMALL)
    first, second = _files(small), _files(again)
    assert sorted(first) == sorted(second)
    assert len(first) == 2 * SMALL["days"] + 3
    for name in first:
        assert first[name] == second[name], name


def test_different_seed_gives_different_data(small: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    simulate(other, seed=8, **SMALL)
    first, second = _files(small), _files(other)
    assert first["train.csv"] != second["train.csv"]
    for day in ("2026-01-01", "2026-01-12"):
        assert first[f"batches/{day}.csv"] != second[f"batches/{day}.csv"]
        assert first[f"labels/{day}.csv"] != second[f"labels/{day}.csv"]


def test_a_day_does_not_depend_on_the_number_of_days(small: Path, tmp_path: Path) -> None:
    shorter = tmp_path / "shorter"
    simulate(shorter, seed=7, **{**SMALL, "days": 5})
    assert (shorter / "train.csv").read_bytes() == (small / "train.csv").read_bytes()
    for day in ("2026-01-01", "2026-01-05"):
        for kind in ("batches", "labels"):
            path = f"{kind}/{day}.csv"
            assert (shorter / path).read_bytes() == (small / path).read_bytes()


# --------------------------------------------------------------------------- layout


def test_manifest_matches_layout(small: Path) -> None:
    manifest = json.loads((small / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["start_date"] == "2026-01-01"
    assert manifest["days"] == SMALL["days"]
    assert manifest["label_delay_days"] == 3
    assert manifest["target"] == "late"
    assert manifest["id_column"] == "order_id"
    assert manifest["time_column"] == "order_date"
    assert manifest["columns"]["numeric"] == NUMERIC_FEATURES
    assert manifest["columns"]["categorical"] == CATEGORICAL_FEATURES
    assert len(manifest["files"]) == SMALL["days"]
    start = dt.date(2026, 1, 1)
    for k, entry in enumerate(manifest["files"]):
        date = start + dt.timedelta(days=k)
        assert entry["date"] == date.isoformat()
        assert entry["batch"] == f"batches/{date.isoformat()}.csv"
        assert entry["labels"] == f"labels/{date.isoformat()}.csv"
        assert entry["labels_available_on"] == (date + dt.timedelta(days=3)).isoformat()
        assert (small / entry["batch"]).is_file()
        assert (small / entry["labels"]).is_file()
    # nothing else lies around (e.g. temp files of the atomic writes)
    listed = {e["batch"] for e in manifest["files"]} | {e["labels"] for e in manifest["files"]}
    extra = set(_files(small)) - listed - {"train.csv", "manifest.json", "ground_truth.json"}
    assert extra == set()


def test_ground_truth(small: Path) -> None:
    truth = json.loads((small / "ground_truth.json").read_text())
    assert truth["covariate_shift_day"] == "2026-01-05"
    assert truth["concept_change_day"] == "2026-01-09"
    assert "distance_km" in truth["shifted_features"]
    assert set(truth["shifted_features"]) <= set(FEATURES)
    assert truth["description"]
    rates = truth["positive_rate_per_day"]
    assert [r["date"] for r in rates] == [f"2026-01-{d:02d}" for d in range(1, 13)]
    for frame, rate in zip(_day_frames(small), rates, strict=True):
        assert rate["positive_rate"] == pytest.approx(frame["late"].mean(), abs=1e-6)
    regimes = [r["regime"] for r in rates]
    assert regimes == ["reference"] * 4 + ["covariate_shift"] * 4 + ["concept_change"] * 4


def test_columns_and_dates(small: Path) -> None:
    train = pd.read_csv(small / "train.csv")
    assert list(train.columns) == ["order_id", "order_date", *FEATURES, "late"]
    dates = pd.to_datetime(train["order_date"], format="%Y-%m-%d")
    assert dates.max() < pd.Timestamp("2026-01-01")
    assert dates.min() >= pd.Timestamp("2026-01-01") - pd.Timedelta(days=60)
    assert dates.dt.normalize().nunique() > 40  # spread over the history window
    for k, frame in enumerate(_day_frames(small)):
        assert len(frame) == SMALL["rows_per_day"]
        day = (dt.date(2026, 1, 1) + dt.timedelta(days=k)).isoformat()
        assert (frame["order_date"] == day).all()
    batch = pd.read_csv(small / "batches" / "2026-01-03.csv")
    assert "late" not in batch.columns
    assert list(batch.columns) == ["order_id", "order_date", *FEATURES]
    labels = pd.read_csv(small / "labels" / "2026-01-03.csv")
    assert list(labels.columns) == ["order_id", "late"]


def test_ids_unique_and_labels_match_batches(small: Path) -> None:
    manifest = json.loads((small / "manifest.json").read_text())
    ids = [pd.read_csv(small / "train.csv")["order_id"]]
    for entry in manifest["files"]:
        batch_ids = pd.read_csv(small / entry["batch"])["order_id"]
        label_ids = pd.read_csv(small / entry["labels"])["order_id"]
        assert batch_ids.tolist() == label_ids.tolist()
        ids.append(batch_ids)
    all_ids = pd.concat(ids, ignore_index=True)
    assert len(all_ids) == SMALL["initial_rows"] + SMALL["days"] * SMALL["rows_per_day"]
    assert all_ids.is_unique


# --------------------------------------------------------------------------- realism


def test_positive_rate_is_imbalanced_but_sane(small: Path) -> None:
    train = pd.read_csv(small / "train.csv")
    assert set(train["late"].unique()) == {0, 1}
    assert 0.09 <= train["late"].mean() <= 0.18
    for frame in _day_frames(small):
        assert 0.06 <= frame["late"].mean() <= 0.35


def test_sentinels_missing_values_and_cardinality(small: Path) -> None:
    train = pd.read_csv(small / "train.csv")
    assert 0.05 <= (train["prep_time_min"] == 0).mean() <= 0.11
    assert 0.015 <= train["courier_experience_months"].isna().mean() <= 0.05
    assert 0.008 <= train["weather"].isna().mean() <= 0.035
    others = [c for c in FEATURES if c not in ("courier_experience_months", "weather")]
    assert train[others].notna().all().all()
    assert train["region"].nunique() == 8
    assert set(train["vehicle"]) == {"bike", "scooter", "car", "van"}
    assert train["weather"].nunique() == 5
    counts = train["merchant_id"].value_counts()
    assert len(counts) >= 250  # high cardinality even in 3000 rows
    top_decile = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top_decile > 0.35  # Zipf-like: a few merchants hold a large share
    assert counts.iloc[0] / counts.sum() < 0.15


def test_reference_days_match_train_distribution(small: Path) -> None:
    train = pd.read_csv(small / "train.csv")
    reference = pd.concat(_day_frames(small)[:4])
    for col in ("distance_km", "package_weight_kg", "temperature_c", "prep_time_min"):
        assert ks_2samp(train[col], reference[col]).pvalue > 1e-3, col
    share = train["region"].value_counts(normalize=True)
    ref_share = reference["region"].value_counts(normalize=True)
    assert (share - ref_share).abs().max() < 0.04


def test_covariate_shift_is_visible(small: Path) -> None:
    days = _day_frames(small)
    pre_a, pre_b, post = days[0], days[1], days[5]
    assert ks_2samp(pre_a["distance_km"], post["distance_km"]).pvalue < 1e-6
    assert ks_2samp(pre_a["distance_km"], pre_b["distance_km"]).pvalue > 1e-3
    assert post["distance_km"].mean() > 1.2 * pre_a["distance_km"].mean()
    assert ks_2samp(pre_a["temperature_c"], post["temperature_c"]).pvalue < 1e-6
    assert (post["region"] == "suburbs").mean() > 3 * (pre_a["region"] == "suburbs").mean()
    assert (post["weather"] == "clear").mean() < 0.7 * (pre_a["weather"] == "clear").mean()
    train_merchants = set(pd.read_csv(small / "train.csv")["merchant_id"])
    assert (~post["merchant_id"].isin(train_merchants)).mean() > 0.15
    # before the shift, only the established merchants M0001..M0400 take orders
    assert pre_a["merchant_id"].str[1:].astype(int).le(400).all()


def test_concept_change_degrades_a_stale_model_and_retraining_recovers(small: Path) -> None:
    train = pd.read_csv(small / "train.csv")
    days = _day_frames(small)
    pre = pd.concat(days[: SMALL["shift_day"]])
    post = pd.concat(days[SMALL["concept_day"] :])
    model, cats = _fit(train)
    auc_pre, auc_post = _auc(model, cats, pre), _auc(model, cats, post)
    assert 0.75 <= auc_pre <= 0.92
    assert auc_pre - auc_post > 0.05
    # PR-AUC relative to prevalence (lift) drops as well
    scores_pre = model.predict_proba(_model_input(pre, cats))[:, 1]
    scores_post = model.predict_proba(_model_input(post, cats))[:, 1]
    lift_pre = average_precision_score(pre["late"], scores_pre) / pre["late"].mean()
    lift_post = average_precision_score(post["late"], scores_post) / post["late"].mean()
    assert lift_post < lift_pre - 0.5
    # a model retrained on post-change labels recovers
    fit_part, held_out = train_test_split(
        post, test_size=0.5, random_state=0, stratify=post["late"]
    )
    fresh, fresh_cats = _fit(fit_part)
    auc_fresh = _auc(fresh, fresh_cats, held_out)
    auc_stale = _auc(model, cats, held_out)
    assert auc_fresh - auc_stale > 0.05
    assert auc_fresh > 0.78


# --------------------------------------------------------------------------- demo config


def test_demo_config_loads_and_matches_the_data(small: Path) -> None:
    cfg = load_config(REPO / "configs" / "demo.yaml", base=REPO)
    assert cfg.task == "classification"
    assert cfg.name == "late_delivery"
    assert cfg.data.path == str(REPO / "var" / "demo" / "data" / "train.csv")
    assert cfg.registry.root == str(REPO / "var" / "demo" / "registry")
    assert cfg.data.target == "late" and cfg.data.positive_label == 1
    assert cfg.split.strategy == "stratified"
    assert cfg.model.family == "hist_gradient_boosting"
    train = pd.read_csv(small / "train.csv")
    named = [
        *cfg.data.features.all,
        cfg.data.target,
        cfg.data.id_column,
        cfg.data.time_column,
        *cfg.data.sentinels,
        *cfg.evaluation.slices,
    ]
    assert set(named) <= set(train.columns)
    assert sorted(cfg.data.features.numeric) == sorted(NUMERIC_FEATURES)
    assert sorted(cfg.data.features.categorical) == sorted(CATEGORICAL_FEATURES)
    assert cfg.data.sentinels == {"prep_time_min": [0]}


def test_demo_gate_floors_are_reachable(small: Path) -> None:
    cfg = load_config(REPO / "configs" / "demo.yaml", base=REPO)
    train = pd.read_csv(small / "train.csv")
    fit_part, test_part = train_test_split(
        train, test_size=cfg.split.test, random_state=cfg.split.seed, stratify=train["late"]
    )
    model, cats = _fit(fit_part)
    scores = model.predict_proba(_model_input(test_part, cats))[:, 1]
    metrics = {
        "roc_auc": roc_auc_score(test_part["late"], scores),
        "pr_auc": average_precision_score(test_part["late"], scores),
    }
    for name, floor in cfg.gate.floors.items():
        assert metrics[name] >= floor + 0.05, (name, metrics[name], floor)


# --------------------------------------------------------------------------- API and CLI


def test_rerun_with_fewer_days_removes_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "data"
    simulate(out, initial_rows=200, rows_per_day=50, days=6)
    (out / "batches" / "notes.txt").write_text("kept")
    simulate(out, initial_rows=200, rows_per_day=50, days=3)
    assert sorted(p.name for p in (out / "batches").iterdir()) == [
        "2026-01-01.csv",
        "2026-01-02.csv",
        "2026-01-03.csv",
        "notes.txt",
    ]
    assert len(list((out / "labels").iterdir())) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"days": 0}, "days"),
        ({"initial_rows": -5}, "initial_rows"),
        ({"rows_per_day": 0}, "rows_per_day"),
        ({"label_delay_days": -1}, "label_delay_days"),
        ({"shift_day": -1}, "shift_day"),
        ({"seed": -3}, "seed"),
        ({"start_date": "01/02/2026"}, "start_date"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_out_dir_must_be_a_folder(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        simulate(target, days=1, initial_rows=10, rows_per_day=10)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = [
        "--out",
        str(out),
        "--days",
        "3",
        "--seed",
        "11",
        "--initial-rows",
        "300",
        "--rows-per-day",
        "100",
        "--label-delay",
        "2",
        "--shift-day",
        "1",
        "--concept-day",
        "5",
        "--start-date",
        "2026-03-01",
    ]
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "2026-03-02" in text
    assert "does not occur" in text  # concept day 5 is after the last of 3 days
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 11 and manifest["days"] == 3
    assert manifest["files"][0]["labels_available_on"] == "2026-03-03"
    assert len(pd.read_csv(out / "train.csv")) == 300
    with pytest.raises(ConfigError, match="days"):
        cli_main(["--out", str(out), "--days", "0"])
    with pytest.raises(SystemExit):
        cli_main(["--days", "3"])  # --out is required


def test_default_arguments_are_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    summary = simulate(tmp_path / "default")
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0
    assert summary["rows"] == 12000 + 30 * 2000
    assert summary["covariate_shift_day"] == "2026-01-11"
    assert summary["concept_change_day"] == "2026-01-21"
