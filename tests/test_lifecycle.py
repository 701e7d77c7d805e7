"""The lifecycle helpers the DAGs use: daily paths, label arrival, windows, scoring (no Airflow)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from conftest import project_config_raw
from ml_lifecycle import lifecycle
from ml_lifecycle.config import Config, apply_overrides, config_from_dict
from ml_lifecycle.errors import DataError, RegistryError
from ml_lifecycle.registry import Registry
from ml_lifecycle.simulate import simulate

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START = "2026-03-01"
ROWS_PER_DAY = 300

# Small and fast: the demo config with fewer rows, iterations and bootstrap resamples.
FAST = ["model.max_iter=60", "model.patience=5", "evaluation.bootstrap=20",
        "evaluation.importance_repeats=1", "gate.bootstrap=50", "quality.min_rows=100"]


def demo_config(base: Path, *overrides: str) -> Config:
    raw = apply_overrides(project_config_raw(), [*FAST, *overrides])
    return config_from_dict(raw, source="demo.yaml", base=base)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Config]:
    """Simulated data (6 days, labels 3 days late) and a champion trained on train.csv."""
    from ml_lifecycle.train import run_training

    base = tmp_path_factory.mktemp("lifecycle")
    simulate(base / "var/demo/data", days=6, seed=3, start_date=START, initial_rows=1500,
             rows_per_day=ROWS_PER_DAY, label_delay_days=3, shift_day=4, concept_day=99)
    cfg = demo_config(base)
    result = run_training(cfg, reason="test", trigger={"as_of": "2026-02-28"})
    assert result["promoted"]
    return base, cfg


def test_as_day_normalises_dates_datetimes_and_strings() -> None:
    aware = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    assert lifecycle.as_day(aware) == "2026-03-02"  # 01:30 UTC the next day
    assert lifecycle.as_day(dt.date(2026, 3, 1)) == "2026-03-01"
    assert lifecycle.as_day("2026-03-01T00:00:00+00:00") == "2026-03-01"
    with pytest.raises(DataError, match="'yesterday' is not a date"):
        lifecycle.as_day("yesterday")


def test_labels_count_as_arrived_only_after_the_delay(world: tuple[Path, Config]) -> None:
    _, cfg = world
    assert list(lifecycle.arrived_labels(cfg, "2026-03-03")) == []
    assert list(lifecycle.arrived_labels(cfg, "2026-03-05")) == ["2026-03-01", "2026-03-02"]
    # The files of every day exist on disk from the start: arrival is decided by the calendar.
    assert len(lifecycle.dated_files(cfg.lifecycle.labels, ".csv")) == 6


def test_training_window_takes_labelled_batches_of_the_last_days(
        world: tuple[Path, Config]) -> None:
    _, cfg = world
    window = lifecycle.training_window(cfg, "2026-03-06", window_days=4)
    # Labels arrived by 03-06: days 01..03; the window starts at 03-02.
    assert window["days"] == ["2026-03-02", "2026-03-03"]
    assert window["include_original"] is True  # lifecycle.include_original in demo.yaml
    assert [Path(b).name for b, _ in window["pairs"]] == ["2026-03-02.csv", "2026-03-03.csv"]
    assert all("/labels/" in labels for _, labels in window["pairs"])
    assert lifecycle.training_window(cfg, "2026-03-06", window_days=0)["pairs"] == []
    assert lifecycle.training_window(cfg, "2026-03-06", include_original=False)[
        "include_original"] is False
    with pytest.raises(DataError, match="window_days must be >= 0"):
        lifecycle.training_window(cfg, "2026-03-06", window_days=-1)


def test_training_cutoff_reads_time_max_and_window_days() -> None:
    assert lifecycle.training_cutoff(None) is None
    assert lifecycle.training_cutoff({"data": {"time_max": "2026-02-28T00:00:00"}}) == "2026-02-28"
    card = {"data": {"time_max": None, "window": {"pairs": [["/b/2026-03-02.csv", "/l/x.csv"],
                                                             ["/b/2026-03-04.csv", "/l/y.csv"]]}}}
    assert lifecycle.training_cutoff(card) == "2026-03-04"


def test_new_labels_are_counted_after_the_champions_cutoff(world: tuple[Path, Config]) -> None:
    _, cfg = world
    # The champion was trained on train.csv, which ends the day before START.
    early = lifecycle.new_labels_for_champion(cfg, "2026-03-03")
    assert early["cutoff"] == "2026-02-28" and early["rows"] == 0 and early["champion"] == 1
    later = lifecycle.new_labels_for_champion(cfg, "2026-03-06")
    assert later["days"] == {d: ROWS_PER_DAY for d in ("2026-03-01", "2026-03-02", "2026-03-03")}
    assert later["rows"] == 3 * ROWS_PER_DAY
    assert lifecycle.new_labels_since(cfg, "2026-03-06", "2026-03-02")["rows"] == ROWS_PER_DAY


def test_labels_file_without_the_target_is_named(world: tuple[Path, Config],
                                                 tmp_path: Path) -> None:
    _, cfg = world
    bad = tmp_path / "2026-03-01.csv"
    bad.write_text("order_id,outcome\n1,0\n")
    with pytest.raises(DataError, match="lacks the target column 'late'"):
        lifecycle.count_labelled_rows(cfg, bad)


def test_score_batch_writes_predictions_with_the_model_version(
        world: tuple[Path, Config]) -> None:
    _, cfg = world
    result = lifecycle.score_batch(cfg, "2026-03-02")
    path = Path(result["path"])
    assert path == Path(cfg.lifecycle.predictions) / "2026-03-02.csv"
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["order_id", "score", "prediction", "model_version"]
    assert len(frame) == ROWS_PER_DAY == result["rows"]
    assert set(frame["model_version"]) == {1} and result["model_version"] == 1
    assert frame["score"].between(0, 1).all() and set(frame["prediction"]) <= {0, 1}
    first = path.read_bytes()
    lifecycle.score_batch(cfg, "2026-03-02")  # a re-run rewrites the same file
    assert path.read_bytes() == first
    assert not list(path.parent.glob(".*.tmp"))


def test_score_batch_refuses_a_missing_batch_and_a_missing_champion(
        world: tuple[Path, Config], tmp_path: Path) -> None:
    base, cfg = world
    with pytest.raises(DataError, match=r"batch file .*2026-04-01\.csv' for 2026-04-01 does not"):
        lifecycle.score_batch(cfg, "2026-04-01")
    empty = demo_config(base, f"registry.root={tmp_path / 'empty-registry'}")
    with pytest.raises(RegistryError, match="no champion to score 2026-03-01 with"):
        lifecycle.score_batch(empty, "2026-03-01")


def test_score_batch_names_a_missing_column(world: tuple[Path, Config], tmp_path: Path) -> None:
    base, cfg = world
    batches = tmp_path / "batches"
    batches.mkdir()
    frame = pd.read_csv(lifecycle.batch_path(cfg, "2026-03-01")).drop(columns=["distance_km"])
    frame.to_csv(batches / "2026-03-01.csv", index=False)
    broken = demo_config(base, f"lifecycle.batches={batches}")
    with pytest.raises(DataError, match=r"missing column\(s\) \['distance_km'\]"):
        lifecycle.score_batch(broken, "2026-03-01")


def test_concept_pairs_keep_labelled_days_the_champion_scored(
        world: tuple[Path, Config]) -> None:
    _, cfg = world
    for day in ("2026-03-01", "2026-03-02"):
        lifecycle.score_batch(cfg, day)
    pairs = lifecycle.concept_pairs(cfg, "2026-03-05", champion=1)
    # drift.performance_recent_days (1): the realized metric judges the latest labelled day
    assert [Path(p).name for _, p in pairs] == ["2026-03-02.csv"]
    pooled = cfg.model_copy(update={"drift": cfg.drift.model_copy(
        update={"performance_recent_days": None})})
    assert [Path(p).name for _, p in lifecycle.concept_pairs(pooled, "2026-03-05", champion=1)
            ] == ["2026-03-01.csv", "2026-03-02.csv"]
    assert lifecycle.concept_pairs(cfg, "2026-03-05", champion=2) == []  # scored by another model
    assert lifecycle.concept_pairs(cfg, "2026-03-04", champion=1)[-1][1].endswith(
        "2026-03-01.csv")  # 03-02's labels arrive on 03-05


def test_live_metric_appears_once_labels_arrived(world: tuple[Path, Config]) -> None:
    _, cfg = world
    lifecycle.score_batch(cfg, "2026-03-01")
    assert lifecycle.live_metric(cfg, "2026-03-01", as_of="2026-03-03") is None
    metric = lifecycle.live_metric(cfg, "2026-03-01", as_of="2026-03-04")
    assert metric["metric"] == "roc_auc" and metric["rows"] == ROWS_PER_DAY
    assert 0.6 < metric["value"] <= 1.0 and metric["model_version"] == 1
    assert lifecycle.live_metric(cfg, "2026-03-06") is None  # never scored


def test_data_clock_registry_reports_the_training_day(world: tuple[Path, Config]) -> None:
    _, cfg = world
    registry = Registry(cfg.registry.root)
    view = lifecycle.DataClockRegistry(registry)
    card = view.get_card(1)
    assert card["created_at"] == "2026-03-01T00:00:00+00:00"  # as_of 02-28 + 1 day
    assert card["registered_at"] == registry.get_card(1)["created_at"]
    assert view.champion() == 1 and view.list_versions()[0]["created_at"] == card["created_at"]
    assert lifecycle.day_end("2026-03-01") == dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def test_dated_files_ignore_other_names(tmp_path: Path) -> None:
    for name in ("2026-03-01.csv", "2026-03-02.parquet", "notes.csv", "2026-3-1.csv"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "2026-03-03.csv").mkdir()
    assert list(lifecycle.dated_files(tmp_path, ".csv")) == ["2026-03-01"]
    assert lifecycle.dated_files(tmp_path / "missing", ".csv") == {}


def test_the_score_command_writes_what_the_scoring_dag_writes(world: tuple[Path, Config],
                                                              tmp_path: Path) -> None:
    import yaml

    from ml_lifecycle.cli import main

    _, cfg = world
    dag = lifecycle.score_batch(cfg, "2026-03-03")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(cfg.resolved()), encoding="utf-8")
    out = tmp_path / "out" / "scored.csv"
    code = main(["score", "--config", str(config_file), "--batch",
                 str(lifecycle.batch_path(cfg, "2026-03-03")), "--out", str(out)])
    assert code == 0
    assert out.read_bytes() == Path(dag["path"]).read_bytes()
    # bad input: a missing batch names it and writes nothing
    missing = tmp_path / "nope.csv"
    assert main(["score", "--config", str(config_file), "--batch", str(missing), "--out",
                 str(tmp_path / "x.csv")]) != 0
    assert not (tmp_path / "x.csv").exists()
