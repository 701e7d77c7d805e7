"""Multiclass classification end to end (``task: multiclass``).

A real data set (scikit-learn's wine recognition data, three cultivars) trains through config
alone with macro-F1, per-class metrics and the confusion matrix in the card. On a synthetic
four-class problem: the gate's paired comparison, scoring (the most probable class and one
probability column per class), the drift check with per-class prediction drift, label-free
performance estimation one-vs-rest, concept drift on delayed labels, a batch without one of the
classes, and the bad inputs (one class, a class too rare for every split).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from conftest import PROJECT_ROOT
from ml_lifecycle.config import Config, config_from_dict
from ml_lifecycle.drift.check import run_drift_check
from ml_lifecycle.errors import DataError, QualityGateError
from ml_lifecycle.lifecycle import score_file
from ml_lifecycle.metrics import compute_metric
from ml_lifecycle.registry import Registry
from ml_lifecycle.train import run_training

NOW = datetime(2026, 7, 2, tzinfo=UTC)
CLASSES = ["bike", "car", "transit", "walk"]


def commute_table(n: int, seed: int, *, shift: float = 0.0,
                  concept: bool = False) -> pd.DataFrame:
    """Four travel modes from distance, income, weather and region (softmax of linear logits).

    ``shift`` moves the distances (the relation stays: a covariate shift); ``concept`` swaps
    the roles of bike and walk (the relation changes)."""
    rng = np.random.default_rng(seed)
    distance = rng.gamma(2.0, 3.0, n) + shift
    income = rng.normal(0, 1, n)
    rain = rng.random(n) < 0.3
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1])
    logits = np.column_stack([
        1.5 - 0.25 * distance - 1.2 * rain,              # bike
        -1.0 + 0.15 * distance + 0.8 * income,           # car
        0.2 + 0.05 * distance + (region == "north") * 1.0,  # transit
        2.5 - 0.9 * distance,                             # walk
    ])
    if concept:
        logits = logits[:, [3, 1, 2, 0]]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    mode = np.array([rng.choice(4, p=p) for p in probs])
    return pd.DataFrame({
        "trip_id": [f"t{seed}_{i}" for i in range(n)],
        "distance_km": distance, "income": income, "rain": rain.astype(int),
        "region": region, "ts": "2026-06-30 08:00:00",
        "mode": np.array(CLASSES, dtype=object)[mode],
    })


def commute_cfg(tmp_path: Path, **model: Any) -> Config:
    data = tmp_path / "trips.csv"
    if not data.exists():
        commute_table(4000, 0).to_csv(data, index=False)
    return config_from_dict({
        "task": "multiclass", "name": "commute",
        "data": {"path": str(data), "target": "mode", "id_column": "trip_id",
                 "time_column": "ts",
                 "features": {"numeric": ["distance_km", "income", "rain"],
                              "categorical": ["region"]}},
        "split": {"strategy": "stratified", "seed": 7},
        "model": {"family": "hist_gradient_boosting", "max_iter": 150, "patience": 10,
                  **model},
        "evaluation": {"bootstrap": 100, "importance_repeats": 2},
        "gate": {"floors": {"macro_f1": 0.3}, "bootstrap": 200, "champion_tolerance": 0.05},
        "registry": {"root": str(tmp_path / "registry")},
    })


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("multiclass")
    out = run_training(commute_cfg(base))
    assert out["promoted"], out["gate"]
    return base


def test_the_wine_example_trains_through_config_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """``examples/wine.yaml`` on scikit-learn's wine data (three cultivars), as its header
    says: ``sample-data wine`` then ``train``; the paths land under a temporary folder."""
    from ml_lifecycle.cli import main
    from ml_lifecycle.config import load_config

    monkeypatch.setenv("ML_LIFECYCLE_BASE_DIR", str(tmp_path / "examples"))
    example = PROJECT_ROOT / "examples" / "wine.yaml"
    cfg = load_config(example)
    assert main(["sample-data", "wine", "--out", cfg.data.path]) == 0
    assert main(["train", "--config", str(example)]) == 0
    assert "macro_f1" in capsys.readouterr().out
    card = Registry(cfg.registry.root).get_card(1)
    assert cfg.registry.root.startswith(str(tmp_path))
    assert card["data"]["target"]["classes"] == ["class_0", "class_1", "class_2"]
    assert card["metrics"]["macro_f1"]["value"] > 0.85  # wine is easy for a linear model
    assert card["metrics"]["macro_f1"]["low"] <= card["metrics"]["macro_f1"]["value"]
    assert set(card["metrics"]) == {"macro_f1", "weighted_f1", "accuracy",
                                    "balanced_accuracy", "roc_auc_ovr", "log_loss"}
    assert set(card["per_class"]) == {"class_0", "class_1", "class_2"}
    matrix = np.array(card["confusion_matrix"]["matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == card["data"]["rows_per_split"]["test"]
    assert [card["per_class"][c]["support"] for c in card["confusion_matrix"]["labels"]] \
        == matrix.sum(axis=1).tolist()
    assert card["baseline_metrics"]["roc_auc_ovr"] == pytest.approx(0.5)
    assert card["performance_estimation"]["method"] == "cbpe_ovr"
    assert len(card["coefficients"]["per_class_per_column"]) == 3  # one row per cultivar


def test_metrics_equal_scikit_learns() -> None:
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(4), 600)
    y = np.array([rng.choice(4, p=q) for q in p])
    pred = p.argmax(axis=1)
    expected = {
        "macro_f1": skm.f1_score(y, pred, average="macro"),
        "weighted_f1": skm.f1_score(y, pred, average="weighted"),
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "roc_auc_ovr": skm.roc_auc_score(y, p, multi_class="ovr", average="macro"),
        "log_loss": skm.log_loss(y, p, labels=range(4)),
    }
    for name, value in expected.items():
        assert compute_metric("multiclass", name, y, p) == pytest.approx(value, abs=1e-12), name
    # a class absent from the labels and the predictions does not count as an F1 of 0
    keep = (y != 3) & (pred != 3)
    assert compute_metric("multiclass", "macro_f1", y[keep], p[keep]) == pytest.approx(
        skm.f1_score(y[keep], pred[keep], average="macro"))


def fresh(trained: Path, tmp_path: Path, **model: Any) -> Config:
    """A copy of the trained registry (its policy state too) and the training data."""
    import shutil

    shutil.copytree(trained / "registry", tmp_path / "registry")
    shutil.copy(trained / "trips.csv", tmp_path / "trips.csv")
    return commute_cfg(tmp_path, **model)


def test_the_paired_gate_compares_a_retrain_with_the_champion(trained: Path,
                                                              tmp_path: Path) -> None:
    fresh(trained, tmp_path)
    # a weak candidate: a linear model regularised to near-constant probabilities
    cfg = commute_cfg(tmp_path, family="logistic_regression", params={"C": 1e-4})
    out = run_training(cfg)
    rule = next(r for r in out["gate"]["rules"] if r["name"] == "not_worse_than_champion")
    assert rule["metric"] == "macro_f1" and not rule["passed"], rule
    assert rule["value"] < 0 and rule["low"] < -0.05  # worse, and not within the tolerance
    assert not out["promoted"] and Registry(cfg.registry.root).champion() == 1


def test_scoring_writes_the_class_and_one_probability_per_class(trained: Path,
                                                                tmp_path: Path) -> None:
    cfg = commute_cfg(trained)
    batch = commute_table(500, 21)
    batch.drop(columns="mode").to_csv(tmp_path / "b.csv", index=False)
    summary = score_file(cfg, tmp_path / "b.csv", tmp_path / "p.csv")
    preds = pd.read_csv(tmp_path / "p.csv")
    probs = preds[[f"proba_{c}" for c in CLASSES]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert (preds["prediction"] == np.array(CLASSES)[probs.argmax(axis=1)]).all()
    assert np.allclose(preds["score"], probs.max(axis=1))
    assert set(summary["predicted_shares"]) <= set(CLASSES)
    assert sum(summary["predicted_shares"].values()) == pytest.approx(1.0)


def check(cfg: Config, tmp_path: Path, day: str, *, batch: pd.DataFrame,
          past: pd.DataFrame) -> dict[str, Any]:
    """Score ``past`` (the champion's predictions of the day before), label it, check
    ``batch``."""
    past = past.assign(ts=(pd.Timestamp(day) - pd.Timedelta(hours=16)).isoformat(sep=" "))
    past.drop(columns="mode").to_csv(tmp_path / f"past_{day}.csv", index=False)
    score_file(cfg, tmp_path / f"past_{day}.csv", tmp_path / f"preds_{day}.csv")
    preds = pd.read_csv(tmp_path / f"preds_{day}.csv").merge(past[["trip_id", "ts"]],
                                                             on="trip_id")
    preds.to_csv(tmp_path / f"preds_{day}.csv", index=False)
    past[["trip_id", "mode"]].to_csv(tmp_path / f"labels_{day}.csv", index=False)
    batch.drop(columns="mode").to_csv(tmp_path / f"batch_{day}.csv", index=False)
    return run_drift_check(cfg, batch_path=str(tmp_path / f"batch_{day}.csv"), day=day,
                           now=NOW, labels=[(str(tmp_path / f"labels_{day}.csv"),
                                             str(tmp_path / f"preds_{day}.csv"))])


def test_a_stable_day_then_moved_inputs_then_a_changed_relation(trained: Path,
                                                                tmp_path: Path) -> None:
    cfg = fresh(trained, tmp_path)
    stable = check(cfg, tmp_path, "2026-06-29", batch=commute_table(1500, 31),
                   past=commute_table(1500, 32))
    assert stable["prediction_drift"]["status"] == "no_drift"
    assert set(stable["prediction_drift"]["per_class"]) == set(CLASSES)
    assert stable["concept_drift"]["metric"] == "roc_auc_ovr"
    assert stable["concept_drift"]["status"] == "no_drift"
    est = stable["estimated_performance"]
    assert est["metric"] == "roc_auc_ovr" and est["status"] == "no_drift"
    assert not stable["retrain"]

    moved = check(cfg, tmp_path, "2026-06-30", batch=commute_table(1500, 33, shift=4.0),
                  past=commute_table(1500, 34))
    assert "distance_km" in moved["data_drift"]["drifted_features"]
    pred = moved["prediction_drift"]
    assert pred["status"] == "drift" and pred["drifted"]
    drifted = [c for c, r in pred["per_class"].items() if r["drifted"]]
    assert pred["class"] in drifted
    # longer trips: fewer predicted walks than on validation
    shares = pred["predicted_shares"]
    assert shares["current"]["walk"] < shares["reference"]["walk"]
    html = Path(moved["report_paths"]["store_html"]).read_text()
    table = html.split("<h3>Per class</h3>", 1)[1].split("</table>", 1)[0]
    assert all(f"<td>{c}</td>" in table for c in CLASSES)

    # (a new registry copy: the moved day's recommendation would hold the next one back)
    cfg = fresh(trained, tmp_path / "again")
    changed = check(cfg, tmp_path, "2026-07-01", batch=commute_table(1500, 35),
                    past=commute_table(2000, 36, concept=True))
    concept = changed["concept_drift"]
    assert concept["status"] == "drift" and concept["flagged"]
    assert concept["value"] < concept["reference_value"] - concept["tolerance"]
    assert changed["retrain"] and changed["severity"] in ("high", "critical")
    per_class = {CLASSES[c["class_index"]]: c for c in concept["per_class_roc_auc"]}
    # the swapped classes lost most: bike and walk trade places
    for name in ("bike", "walk"):
        assert per_class[name]["value"] < per_class[name]["reference_value"] - 0.1, per_class


def test_a_batch_and_labels_without_one_class_are_checked(trained: Path,
                                                          tmp_path: Path) -> None:
    cfg = fresh(trained, tmp_path)
    past = commute_table(3000, 41)
    past = past[past["mode"] != "transit"]  # no transit trip was labelled in the window
    batch = commute_table(1500, 42)
    result = check(cfg, tmp_path, "2026-06-29", batch=batch, past=past)
    concept = result["concept_drift"]
    assert concept["status"] in ("no_drift", "drift") and concept["value"] is not None
    assert concept["classes_present"] == 3
    assert np.isfinite(concept["value"]) and result["prediction_drift"]["status"] != \
        "unavailable"


def test_an_unknown_class_in_the_labels_is_left_out(trained: Path, tmp_path: Path) -> None:
    cfg = fresh(trained, tmp_path)
    past = commute_table(1500, 51)
    past.loc[past.index[:100], "mode"] = "scooter"  # a class the champion never saw
    result = check(cfg, tmp_path, "2026-06-29", batch=commute_table(800, 52), past=past)
    assert result["concept_drift"]["n_labelled"] == 1400


def test_one_class_and_a_class_too_rare_for_every_split_are_clear_errors(
        tmp_path: Path) -> None:
    frame = commute_table(600, 61)
    frame["mode"] = "car"
    frame.to_csv(tmp_path / "trips.csv", index=False)
    with pytest.raises(QualityGateError, match="at least 2 classes"):
        run_training(commute_cfg(tmp_path))
    assert not (tmp_path / "registry" / "versions").exists() or \
        Registry(str(tmp_path / "registry")).list_versions() == []

    frame = commute_table(600, 62)
    frame.loc[frame.index[:2], "mode"] = "ferry"  # two rows: cannot be in all three splits
    frame.to_csv(tmp_path / "trips.csv", index=False)
    with pytest.raises(QualityGateError, match=r"minority class 'ferry' has rate 0\.333%"):
        run_training(commute_cfg(tmp_path))  # the quality gate's class-rate floor first
    raw = commute_cfg(tmp_path).model_dump(mode="json")
    raw["quality"]["min_class_rate"] = 0.001  # past that floor, the split refuses it
    with pytest.raises(DataError, match=r"class 'ferry' of target 'mode' has 2 row\(s\); "
                                        "each of the three splits needs at least one"):
        run_training(config_from_dict(raw))
    raw["split"]["strategy"] = "random"  # unstratified: the class misses a split
    with pytest.raises(DataError, match=r"class 'ferry' .* is not in the (validation|test) "
                                        "split; every class must be in every split"):
        run_training(config_from_dict(raw))
    assert Registry(str(tmp_path / "registry")).list_versions() == []


def test_binary_task_with_three_classes_points_to_multiclass(tmp_path: Path) -> None:
    commute_table(600, 71).to_csv(tmp_path / "trips.csv", index=False)
    raw = commute_cfg(tmp_path).model_dump(mode="json")
    raw["task"] = "classification"
    raw["gate"]["floors"] = {}
    with pytest.raises(QualityGateError, match="set task: multiclass"):
        run_training(config_from_dict(raw))


def test_the_ui_shows_the_confusion_matrix_and_per_class_metrics(trained: Path) -> None:
    import re
    import sys

    if str(PROJECT_ROOT / "plugins") not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT / "plugins"))
    from ml_monitoring import pages

    card = {**Registry(str(trained / "registry")).get_card(1), "version": 1}
    view = {"card": card, "summary": {"version": 1, "status": "champion"},
            "quality_report": None, "promotions": []}
    html = pages.version_page(view)
    svg = re.search(r'<svg[^>]*data-plot="confusion-matrix".*?</svg>', html, re.S)
    assert svg and svg.group(0).count("data-cell=") == len(CLASSES) ** 2
    matrix = card["confusion_matrix"]["matrix"]
    assert 'data-cell="0,0"' in svg.group(0) and f">{matrix[0][0]:,}</text>" in svg.group(0)
    for name in CLASSES:
        recall = card["per_class"][name]["recall"]
        assert f"<td>{name}</td>" in html and f"{recall:.3f}" in html


@pytest.mark.slow
def test_a_multiclass_backtest_replays_days_and_retrains_after_the_change(
        tmp_path: Path) -> None:
    """Eight dated batches whose labels arrive a day later; the relation changes on day 5. The
    policy strategy recommends a retrain after it; never-retrain keeps the weak champion."""
    import yaml

    from ml_lifecycle.backtest import run_backtest

    (tmp_path / "batches").mkdir()
    (tmp_path / "labels").mkdir()
    days = [f"2026-06-{d:02d}" for d in range(1, 9)]
    for i, day in enumerate(days):
        frame = commute_table(1200, 100 + i, concept=i >= 4).assign(ts=f"{day} 08:00:00")
        frame.drop(columns="mode").to_csv(tmp_path / "batches" / f"{day}.csv", index=False)
        frame[["trip_id", "mode"]].to_csv(tmp_path / "labels" / f"{day}.csv", index=False)
    raw = commute_cfg(tmp_path).model_dump(mode="json")
    raw["lifecycle"].update(batches=str(tmp_path / "batches"), labels=str(tmp_path / "labels"),
                            label_delay_days=1)
    raw["policy"]["cooldown_days"] = 0
    path = tmp_path / "commute.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = run_backtest(str(path), strategies=["never", "performance"],
                          report_dir=str(tmp_path / "report"))
    assert result["metric"] == "macro_f1" and result["batches"] == 8
    never, policy = result["strategies"]
    assert never["retrains"] == 0 and never["days_with_labels"] == 7
    before = [d["live_metric"] for d in result["days"]["never"][:4]]
    after = [d["live_metric"] for d in result["days"]["never"][4:7]]
    assert min(before) > max(after) + 0.05  # the change hurts the never-retrained champion
    first = next(d["day"] for d in result["days"][policy["strategy"]] if d["retrain"])
    assert first > days[4]  # no retrain before the change ...
    assert policy["retrains"] >= 1 and policy["promotions"] >= 1  # ... one after it
    assert "macro_f1" in Path(result["report_paths"]["html"]).read_text()
