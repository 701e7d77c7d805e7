"""Tests of the seeded demo data simulator (ml_lifecycle.simulate)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from ml_lifecycle.config import load_config
from ml_lifecycle.drift.decision import DRIFT, data_drift, prepare_batch
from ml_lifecycle.drift.profile import build_profile
from ml_lifecycle.drift.settings import DriftConfig
from ml_lifecycle.errors import ConfigError, DataError
from ml_lifecycle.simulate import (
    CATEGORICAL_FEATURES,
    FEATURES,
    HARMLESS_FEATURES,
    HARMLESS_HOUR_MAP,
    HARMLESS_TEMPERATURE_PIVOT,
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


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Fit and score the small models on one OpenMP thread: several threads on a busy machine
    make HistGradientBoosting ~10 times slower here."""
    with threadpool_limits(limits=1):
        yield


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
    cfg = load_config(REPO / "configs" / "demo.yaml")
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
    cfg = load_config(REPO / "configs" / "demo.yaml")
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
        ({"harmless_day": -1}, "harmless_day must be >= 0, found -1"),
        ({"harmless_day": 2.0}, "harmless_day must be an integer, found 2.0"),
        ({"harmless_day": True}, "harmless_day must be an integer, found True"),
        # default shift_day 10: the harmless period would be empty (it ends at the shift)
        (
            {"harmless_day": 10},
            r"harmless_day must be < shift_day \(the harmless period ends where the covariate "
            r"shift starts\), found harmless_day=10 and shift_day=10",
        ),
        (
            {"harmless_day": 12, "shift_day": 15, "concept_day": 12},
            r"harmless_day must be < concept_day \(the harmless period ends where the concept "
            r"change starts\), found harmless_day=12 and concept_day=12",
        ),
        # refused even when the shift lies after the simulated window (swapped arguments)
        ({"days": 3, "harmless_day": 30, "shift_day": 20}, "harmless_day must be < shift_day"),
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



# --------------------------------------------------------------------------- harmless shift

HARMLESS = dict(initial_rows=8000, rows_per_day=2000, days=5, shift_day=4, concept_day=5)
HARMLESS_DAY = 1  # days 1-3 carry the harmless shift; day 0 is clean, day 4 the covariate shift
HARMLESS_DAYS = slice(HARMLESS_DAY, HARMLESS["shift_day"])


@pytest.fixture(scope="module")
def harmless_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """The same simulation without and with the harmless shift (and the latter's summary)."""
    base = tmp_path_factory.mktemp("harmless")
    simulate(base / "clean", seed=7, **HARMLESS)
    summary = simulate(base / "moved", seed=7, harmless_day=HARMLESS_DAY, **HARMLESS)
    return base / "clean", base / "moved", summary


def _without_sentinels(frame: pd.DataFrame) -> pd.DataFrame:
    """Feature columns as the pipeline reads them (prep_time_min 0 -> missing)."""
    x = frame[FEATURES].copy()
    x["prep_time_min"] = x["prep_time_min"].replace(0, np.nan)
    return x


def test_no_harmless_day_writes_the_default_files(small: Path, tmp_path: Path) -> None:
    summary = simulate(tmp_path / "none", seed=7, harmless_day=None, **SMALL)
    assert _files(tmp_path / "none") == _files(small)
    truth = json.loads((small / "ground_truth.json").read_text())
    assert not any(key.startswith("harmless") for key in truth)
    assert {r["regime"] for r in truth["positive_rate_per_day"]} == {
        "reference", "covariate_shift", "concept_change"}
    assert summary["harmless_shift_day"] is None and summary["harmless_shift_end_day"] is None
    assert summary["harmless_in_window"] is False and summary["harmless_days"] == 0


def test_a_harmless_day_is_the_clean_day_with_moved_features(
    harmless_pair: tuple[Path, Path, dict],
) -> None:
    clean_root, moved_root, _ = harmless_pair
    clean_files, moved_files = _files(clean_root), _files(moved_root)
    assert sorted(clean_files) == sorted(moved_files)
    # the training table, the schedule and the days outside the harmless period: same bytes
    for name in ("train.csv", "manifest.json", "batches/2026-01-01.csv", "labels/2026-01-01.csv",
                 "batches/2026-01-05.csv", "labels/2026-01-05.csv"):
        assert clean_files[name] == moved_files[name], name
    kept = [c for c in ["order_id", "order_date", *FEATURES] if c not in HARMLESS_FEATURES]
    train = pd.read_csv(clean_root / "train.csv")
    for clean, moved in zip(_day_frames(clean_root)[HARMLESS_DAYS],
                            _day_frames(moved_root)[HARMLESS_DAYS], strict=True):
        pd.testing.assert_frame_equal(clean[kept], moved[kept])
        # re-zoning: only 'center' orders move, to 'harbor', about 60 % of them
        rezoned = clean["region"] != moved["region"]
        assert (clean.loc[rezoned, "region"] == "center").all()
        assert (moved.loc[rezoned, "region"] == "harbor").all()
        assert 0.5 <= rezoned.sum() / (clean["region"] == "center").sum() <= 0.7
        # afternoon dispatch: exactly the mapped hours move, to their mapped hour
        mapped = clean["hour_of_day"].isin(list(HARMLESS_HOUR_MAP))
        assert mapped.mean() > 0.05
        assert (moved["hour_of_day"] == clean["hour_of_day"].replace(HARMLESS_HOUR_MAP)).all()
        # cool dry spell: warm temperatures mirrored below the pivot (unless the mirror would
        # leave the training range), (t - 14)^2 unchanged, nothing else touched
        pivot, temp = HARMLESS_TEMPERATURE_PIVOT, clean["temperature_c"]
        mirrored = (temp > pivot) & (2 * pivot - temp >= train["temperature_c"].min())
        assert mirrored.mean() > 0.3
        assert ((temp != moved["temperature_c"]) == mirrored).all()
        np.testing.assert_allclose((moved["temperature_c"] - pivot) ** 2, (temp - pivot) ** 2,
                                   atol=1e-9)
        # labels come from the same draws: only a few re-zoned orders (0.05 logit) can differ
        flipped = clean["late"] != moved["late"]
        assert flipped.sum() <= 0.005 * len(clean) and not (flipped & ~rezoned).any()


def test_harmless_values_stay_inside_the_training_support(
    harmless_pair: tuple[Path, Path, dict],
) -> None:
    clean_root, moved_root, _ = harmless_pair
    train = pd.read_csv(clean_root / "train.csv")
    clean = pd.concat(_day_frames(clean_root)[HARMLESS_DAYS], ignore_index=True)
    moved = pd.concat(_day_frames(moved_root)[HARMLESS_DAYS], ignore_index=True)
    for col in HARMLESS_FEATURES:
        values = moved.loc[moved[col] != clean[col], col]  # the moved values
        assert len(values) > 0.05 * len(moved), col
        if col in NUMERIC_FEATURES:
            assert train[col].min() <= values.min() and values.max() <= train[col].max(), col
            if col == "hour_of_day":  # hours train.csv has, not just its range
                assert set(values) <= set(train[col]), col
        else:
            assert set(values) <= set(train[col].dropna()), col
    assert pd.api.types.is_integer_dtype(moved["hour_of_day"])


def test_the_ground_truth_records_the_harmless_shift(
    harmless_pair: tuple[Path, Path, dict],
) -> None:
    _, moved_root, summary = harmless_pair
    truth = json.loads((moved_root / "ground_truth.json").read_text())
    assert truth["harmless_shift_day"] == summary["harmless_shift_day"] == "2026-01-02"
    assert truth["harmless_shift_end_day"] == summary["harmless_shift_end_day"] == "2026-01-05"
    assert truth["harmless_shift_offset"] == 1 and truth["harmless_shift_end_offset"] == 4
    assert truth["harmless_in_window"] is True and summary["harmless_in_window"] is True
    assert summary["harmless_days"] == 3
    assert truth["harmless_shift_features"] == HARMLESS_FEATURES
    assert set(HARMLESS_FEATURES) <= set(FEATURES)
    assert "harmless" in truth["harmless_shift_description"].lower()
    regimes = [r["regime"] for r in truth["positive_rate_per_day"]]
    assert regimes == ["reference", "harmless_shift", "harmless_shift", "harmless_shift",
                       "covariate_shift"]
    for frame, rate in zip(_day_frames(moved_root), truth["positive_rate_per_day"], strict=True):
        assert rate["positive_rate"] == pytest.approx(frame["late"].mean(), abs=1e-6)
    # the schedule the monitoring reads does not tell (like the other change points)
    assert "harmless" not in (moved_root / "manifest.json").read_text()


def test_a_harmless_day_after_the_window_changes_nothing(tmp_path: Path) -> None:
    args = dict(seed=3, days=2, initial_rows=200, rows_per_day=50, shift_day=5, concept_day=9)
    simulate(tmp_path / "plain", **args)
    summary = simulate(tmp_path / "late", harmless_day=3, **args)
    assert summary["harmless_in_window"] is False and summary["harmless_days"] == 0
    assert summary["harmless_shift_day"] == "2026-01-04"
    plain, late = _files(tmp_path / "plain"), _files(tmp_path / "late")
    assert {k: v for k, v in late.items() if k != "ground_truth.json"} == {
        k: v for k, v in plain.items() if k != "ground_truth.json"}
    truth = json.loads(late["ground_truth.json"])
    assert truth["harmless_in_window"] is False
    assert [r["regime"] for r in truth["positive_rate_per_day"]] == ["reference"] * 2


def test_the_harmless_shift_does_not_hurt_a_model_but_the_drift_check_sees_it(
    harmless_pair: tuple[Path, Path, dict],
) -> None:
    """A model trained on train.csv scores the harmless days as well as the same days without
    the shift, while the data-drift check flags exactly the moved features."""
    clean_root, moved_root, _ = harmless_pair
    train = pd.read_csv(clean_root / "train.csv")
    model, cats = _fit(train)
    clean_days, moved_days = _day_frames(clean_root), _day_frames(moved_root)
    clean = pd.concat(clean_days[HARMLESS_DAYS], ignore_index=True)
    moved = pd.concat(moved_days[HARMLESS_DAYS], ignore_index=True)
    scores_clean = model.predict_proba(_model_input(clean, cats))[:, 1]
    scores_moved = model.predict_proba(_model_input(moved, cats))[:, 1]
    # measured (seed 7): ROC-AUC 0.849 on both, per day within 0.002
    assert abs(roc_auc_score(moved["late"], scores_moved)
               - roc_auc_score(clean["late"], scores_clean)) <= 0.02
    rows = HARMLESS["rows_per_day"]
    for k in range(len(clean) // rows):
        day = slice(k * rows, (k + 1) * rows)
        assert abs(roc_auc_score(moved["late"][day], scores_moved[day])
                   - roc_auc_score(clean["late"][day], scores_clean[day])) <= 0.02, k
    # the late rate is the clean one; the model's mean score moves a little (measured +0.008:
    # its temperature curve is not exactly symmetric around 14 C)
    assert abs(moved["late"].mean() - clean["late"].mean()) <= 0.005
    assert abs(scores_moved.mean() - scores_clean.mean()) <= 0.015

    cfg = DriftConfig()
    profile = build_profile(_without_sentinels(train), numeric=NUMERIC_FEATURES,
                            categorical=CATEGORICAL_FEATURES, settings=cfg)

    def drifted(frame: pd.DataFrame) -> list[str]:
        batch = _without_sentinels(frame)
        return data_drift(profile, prepare_batch(profile, batch, cfg), cfg,
                          n_rows=len(batch))["drifted_features"]

    expected = [f for f in FEATURES if f in HARMLESS_FEATURES]  # profile order
    for k in range(HARMLESS["shift_day"]):
        assert drifted(clean_days[k]) == [], k
        assert drifted(moved_days[k]) == (expected if k >= HARMLESS_DAY else []), k
    # and each moved feature on its own: significant and past its effect threshold
    batch = _without_sentinels(moved_days[HARMLESS_DAY])
    result = data_drift(profile, prepare_batch(profile, batch, cfg), cfg, n_rows=len(batch))
    for f in result["features"]:
        if f["feature"] in HARMLESS_FEATURES:
            assert f["status"] == DRIFT and f["p_value_adjusted"] < 1e-6, f["reason"]


def test_cli_harmless_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    common = ["--out", str(out), "--days", "3", "--initial-rows", "300", "--rows-per-day", "100",
              "--shift-day", "2", "--start-date", "2026-03-01"]
    assert cli_main([*common, "--harmless-day", "1"]) == 0
    text = capsys.readouterr().out
    assert "harmless shift on 2026-03-02 until 2026-03-03 (exclusive), 1 day(s)" in text
    truth = json.loads((out / "ground_truth.json").read_text())
    assert [r["regime"] for r in truth["positive_rate_per_day"]] == [
        "reference", "harmless_shift", "covariate_shift"]
    with pytest.raises(ConfigError, match="harmless_day must be < shift_day"):
        cli_main([*common, "--harmless-day", "2"])
    assert cli_main(common) == 0
    assert "harmless shift" not in capsys.readouterr().out
