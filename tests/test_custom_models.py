"""Custom models (``model.family: custom``): any scikit-learn-API estimator by import path.

A ``RandomForestClassifier`` and a team's own ``Pipeline`` (its own preprocessing) train,
pass the gate, are registered, score a batch and get drift-checked with delayed labels; an
estimator that takes an ``eval_set`` early-stops on exactly the validation split; tuning
chooses on validation. Wrong settings are refused before any data is read, naming the setting,
with the registry untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import make_config_dict, make_table
from ml_lifecycle.config import Config, config_from_dict
from ml_lifecycle.drift.check import run_drift_check
from ml_lifecycle.errors import ConfigError, ModelFormatError
from ml_lifecycle.lifecycle import score_file
from ml_lifecycle.registry import Registry
from ml_lifecycle.train import run_training

pytestmark = pytest.mark.integration

NOW = datetime(2026, 7, 2, tzinfo=UTC)
FEATURES = ["x1", "x2", "cat", "merchant"]


def custom_cfg(tmp_path: Path, estimator: str, **overrides: Any) -> Config:
    data = tmp_path / "train.csv"
    if not data.exists():
        make_table(n=2000).to_csv(data, index=False)
    raw = make_config_dict(str(data), str(tmp_path / "registry"), model__family="custom",
                           model__estimator=estimator, **overrides)
    return config_from_dict(raw)


def score_and_check(cfg: Config, tmp_path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score a fresh batch with the champion, then drift-check a batch with those rows'
    delayed labels (the scoring DAG, then the drift-check DAG)."""
    past = make_table(n=1500, seed=11)
    past["ts"] = "2026-06-30 12:00:00"
    past.drop(columns="label").to_csv(tmp_path / "past.csv", index=False)
    scored = score_file(cfg, tmp_path / "past.csv", tmp_path / "preds.csv")
    assert scored["rows"] == 1500
    preds = pd.read_csv(tmp_path / "preds.csv").merge(past[["row_id", "ts"]], on="row_id")
    preds.to_csv(tmp_path / "preds.csv", index=False)
    past[["row_id", "label"]].to_csv(tmp_path / "labels.csv", index=False)
    batch = make_table(n=1200, seed=12)
    batch["x1"] = batch["x1"] + 1.5  # the inputs move: data drift to find
    batch.drop(columns="label").to_csv(tmp_path / "batch.csv", index=False)
    result = run_drift_check(cfg, batch_path=str(tmp_path / "batch.csv"), day="2026-07-01",
                             now=NOW, labels=[(str(tmp_path / "labels.csv"),
                                               str(tmp_path / "preds.csv"))])
    return preds, result


def test_a_random_forest_by_import_path_trains_registers_scores_and_is_checked(
        tmp_path: Path) -> None:
    cfg = custom_cfg(tmp_path, "sklearn.ensemble.RandomForestClassifier",
                     model__params={"n_estimators": 60, "min_samples_leaf": 5})
    out = run_training(cfg)
    assert out["version"] == 1 and out["promoted"] and out["gate"]["passed"]
    assert out["metrics"]["roc_auc"]["value"] > 0.75  # the signal is learnable
    registry = Registry(cfg.registry.root)
    card = registry.get_card(1)
    model = card["model"]
    assert model["family"] == "custom"
    assert model["estimator_class"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert model["early_stopping"]["used"] is False
    assert "takes no validation set" in model["early_stopping"]["why"]
    assert card["model_format"] == "skops"  # a forest loads without running code
    forest = registry.load_model(1).named_steps["model"]
    # model.seed and model.class_weight fill what model.params leaves unset
    assert forest.random_state == cfg.model.seed and forest.class_weight == "balanced"
    assert (forest.n_estimators, forest.min_samples_leaf) == (60, 5)
    assert card["library_versions"]["scikit-learn"] != "not installed"

    preds, result = score_and_check(cfg, tmp_path)
    assert preds["score"].between(0, 1).all() and set(preds["prediction"]) <= {0, 1}
    assert (preds["model_version"] == 1).all()
    assert result["model"]["version"] == 1
    assert "x1" in result["data_drift"]["drifted_features"]
    assert result["concept_drift"]["n_labelled"] == 1500
    assert result["concept_drift"]["status"] == "no_drift"  # the same relationship
    assert result["estimated_performance"]["status"] in ("ok", "no_drift", "drift")
    # the drifted input's share of the model's mean |SHAP| (from the card), in the report too
    x1 = next(f for f in result["data_drift"]["features"] if f["feature"] == "x1")
    mean_abs = card["shap"]["mean_abs"]
    assert x1["shap_share"] == pytest.approx(mean_abs["x1"] / sum(mean_abs.values()))
    assert result["data_drift"]["drifted_shap_share"] >= x1["shap_share"] > 0.3
    html = Path(result["report_paths"]["store_html"]).read_text()
    assert "<th>SHAP share</th>" in html


def test_a_pipeline_factory_with_its_own_preprocessing_is_fitted_on_training_rows_only(
        tmp_path: Path) -> None:
    cfg = custom_cfg(tmp_path, "custom_estimators:churn_pipeline", model__params={"C": 0.5},
                     model__preprocessing="own")
    out = run_training(cfg)
    assert out["promoted"], out["gate"]
    registry = Registry(cfg.registry.root)
    pipeline = registry.load_model(1)
    own = pipeline.named_steps["model"]
    assert own.named_steps["clf"].C == 0.5
    # its imputer learned the mean of the *training* split only (leakage-safe as built-ins)
    frame = pd.read_csv(cfg.data.path)
    assignment = pd.read_parquet(registry.version_dir(1) / "split_assignment.parquet")
    train_ids = set(assignment.loc[assignment["split"] == "train", "row_id"].astype(str))
    train_x2 = frame.loc[frame["row_id"].astype(str).isin(train_ids), "x2"]
    imputer = own.named_steps["prep"].named_transformers_["num"].named_steps["impute"]
    assert imputer.statistics_[1] == pytest.approx(train_x2.mean(), rel=1e-12)
    assert imputer.statistics_[1] != pytest.approx(frame["x2"].mean(), rel=1e-9)
    # the pipeline received the raw feature columns, nothing else (no id, time or target)
    assert list(own.feature_names_in_) == FEATURES
    card = registry.get_card(1)
    assert card["model"]["preprocessing"] == "own"
    assert card["model"]["estimator"] == "custom_estimators:churn_pipeline"

    preds, result = score_and_check(cfg, tmp_path)
    assert len(preds) == 1500 and result["model"]["version"] == 1
    assert "x1" in result["data_drift"]["drifted_features"]
    assert result["concept_drift"]["n_labelled"] == 1500


def test_an_eval_set_estimator_early_stops_on_exactly_the_validation_split(
        tmp_path: Path) -> None:
    # a class of the team's own: not in skops' trusted list, so stored as a pickle (opt-in)
    cfg = custom_cfg(tmp_path, "custom_estimators.EvalSetClassifier",
                     registry={"root": str(tmp_path / "registry"), "model_format": "joblib"})
    out = run_training(cfg)
    registry = Registry(cfg.registry.root)
    card = registry.get_card(out["version"])
    est = registry.load_model(out["version"], allow_pickle=True).named_steps["model"]
    assert est.eval_rows_ == out["rows_per_split"]["validation"]
    assignment = pd.read_parquet(registry.version_dir(1) / "split_assignment.parquet")
    frame = pd.read_csv(cfg.data.path).set_index("row_id")
    val_ids = assignment.loc[assignment["split"] == "validation", "row_id"]
    assert est.eval_labels_.tolist() == frame.loc[val_ids, "label"].tolist()
    assert est.early_stopping_rounds == cfg.model.patience  # from model.patience
    assert est.got_sample_weight_  # class_weight balanced, through fit's sample_weight
    assert card["model"]["early_stopping"] == {"used": True, "validation_argument": "eval_set"}
    assert card["model"]["stopping_iteration"] == est.best_iteration + 1
    assert est.best_iteration + 1 < est.model_.n_iter_ + 1


def test_a_custom_class_outside_the_safe_format_is_refused_and_nothing_is_registered(
        tmp_path: Path) -> None:
    cfg = custom_cfg(tmp_path, "custom_estimators.EvalSetClassifier")
    with pytest.raises(ModelFormatError, match=r"registry\.model_format: joblib"):
        run_training(cfg)
    registry = Registry(cfg.registry.root)
    assert registry.list_versions() == [] and registry.champion() is None


def test_tuning_a_custom_model_chooses_on_validation(tmp_path: Path) -> None:
    cfg = custom_cfg(tmp_path, "sklearn.ensemble.RandomForestClassifier",
                     model__params={"n_estimators": 40},
                     model__search={"method": "grid",
                                    "space": {"min_samples_leaf": [1, 50], "max_depth": [2, 8]}})
    out = run_training(cfg)
    card = Registry(cfg.registry.root).get_card(out["version"])
    trials = card["model"]["search_trials"]
    assert len(trials) == 4
    key = f"validation_{cfg.primary_metric}"
    best = max(trials, key=lambda t: t[key])
    assert card["model"]["params"] == best["params"]
    assert card["model"]["validation_score"] == pytest.approx(best[key])
    assert len({round(t[key], 9) for t in trials}) > 1  # the candidates really differ


@pytest.mark.parametrize(("estimator", "message"), [
    ("no_such_package.Model", "cannot import module 'no_such_package'"),
    ("sklearn.ensemble.NoSuchForest", "has no 'NoSuchForest'"),
    ("sklearn", "expected an import path"),
    ("custom_estimators.NotAnEstimator", "not a scikit-learn-API estimator"),
    ("sklearn.svm.LinearSVC", "has no predict_proba"),
    ("math.pi", "not an estimator class or a function"),
])
def test_a_wrong_estimator_is_refused_before_data_is_read(
        tmp_path: Path, estimator: str, message: str) -> None:
    raw = make_config_dict(str(tmp_path / "absent.csv"), str(tmp_path / "registry"),
                           model__family="custom", model__estimator=estimator)
    with pytest.raises(ConfigError, match=r"model\.estimator") as info:
        run_training(config_from_dict(raw))
    assert message in str(info.value)
    assert not (tmp_path / "registry").exists() or \
        Registry(str(tmp_path / "registry")).list_versions() == []


def test_params_the_estimator_refuses_name_both_settings(tmp_path: Path) -> None:
    cfg = custom_cfg(tmp_path, "sklearn.ensemble.RandomForestClassifier",
                     model__params={"n_trees": 10})
    with pytest.raises(ConfigError, match=r"model.params \{'n_trees': 10\} rejected by "
                                          r"model.estimator 'sklearn.ensemble"):
        run_training(cfg)


@pytest.mark.parametrize(("model", "message"), [
    ({"family": "custom"}, "model.family 'custom' needs model.estimator"),
    ({"estimator": "sklearn.ensemble.RandomForestClassifier"},
     "model.estimator is set but model.family is 'hist_gradient_boosting'"),
    ({"preprocessing": "own"}, "model.preprocessing 'own' needs model.family 'custom'"),
])
def test_inconsistent_model_settings_are_config_errors(tmp_path: Path, model: dict[str, Any],
                                                       message: str) -> None:
    raw = make_config_dict("train.csv", "registry")
    raw["model"].update(model)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_run_input_cannot_choose_the_code_a_worker_imports(tmp_path: Path) -> None:
    import yaml

    from ml_lifecycle_airflow.settings import load_lifecycle_config

    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(make_config_dict("train.csv", "registry")))
    with pytest.raises(ConfigError, match=r"model\.estimator cannot be changed from run input"):
        load_lifecycle_config(path, ["model.estimator=subprocess.Popen"])


def test_the_custom_estimator_sees_the_same_rows_as_a_built_in_one(tmp_path: Path) -> None:
    """Same split, same preprocessing: a custom HistGradientBoostingClassifier given the
    built-in family's settings scores the validation split like the built-in family."""
    built_in = config_from_dict(make_config_dict(
        str(tmp_path / "train.csv"), str(tmp_path / "a"), model__max_iter=100))
    make_table(n=2000).to_csv(tmp_path / "train.csv", index=False)
    custom = custom_cfg(tmp_path, "sklearn.ensemble.HistGradientBoostingClassifier",
                        registry={"root": str(tmp_path / "b")},
                        model__params={"max_iter": 100, "n_iter_no_change": 5,
                                       "scoring": "loss"})
    a, b = run_training(built_in), run_training(custom)
    assert a["rows_per_split"] == b["rows_per_split"]
    card = Registry(str(tmp_path / "b")).get_card(1)
    assert card["model"]["early_stopping"] == {"used": True, "validation_argument": "X_val"}
    # the built-in family keeps the best iteration; the custom one the estimator's own rule
    assert a["stopping_iteration"] <= b["stopping_iteration"]
    assert np.isfinite(b["metrics"]["roc_auc"]["value"])
