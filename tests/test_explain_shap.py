"""SHAP explanations: additivity for every family, one-hot columns summed to their input, the
card's global mean |SHAP|, and ``score --explain K``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import make_config_dict, make_table
from ml_lifecycle.config import Config, config_from_dict
from ml_lifecycle.registry import Registry
from ml_lifecycle.shap_explain import BACKGROUND_FILE, ShapExplainer
from ml_lifecycle.train import run_training

pytestmark = pytest.mark.integration

FEATURES = ["x1", "x2", "cat", "merchant"]


def regression_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    frame = make_table(n, seed)
    rng = np.random.default_rng(seed)
    frame["label"] = (3 * frame["x1"] + np.nan_to_num(frame["x2"]) + (frame["cat"] == "d") * 2
                      + rng.normal(0, 0.5, n))
    return frame


def trained(tmp_path: Path, task: str, family: str, **extra: Any) -> tuple[Config, Any]:
    data = tmp_path / "train.csv"
    (regression_table() if task == "regression" else make_table(n=1500)).to_csv(data,
                                                                                index=False)
    raw = make_config_dict(str(data), str(tmp_path / "registry"), task=task,
                           model__family=family, **extra)
    if task == "regression":
        raw["split"]["strategy"] = "random"
        raw["gate"]["floors"] = {}
        raw["data"].pop("positive_label")
    cfg = config_from_dict(raw)
    out = run_training(cfg, promote=False)
    registry = Registry(cfg.registry.root)
    return cfg, (registry, out["version"])


CASES = [
    ("classification", "hist_gradient_boosting", {}, "tree", "log-odds"),
    ("classification", "logistic_regression", {}, "linear", "log-odds"),
    ("classification", "sgd", {}, "linear", "log-odds"),
    ("regression", "hist_gradient_boosting", {}, "tree", "prediction"),
    ("regression", "ridge", {}, "linear", "prediction"),
    ("regression", "lasso", {"model__params": {"alpha": 0.01}}, "linear", "prediction"),
    ("classification", "custom",
     {"model__estimator": "sklearn.ensemble.RandomForestClassifier",
      "model__params": {"n_estimators": 30, "min_samples_leaf": 5}}, "tree", "probability"),
    ("classification", "custom",
     {"model__estimator": "custom_estimators:churn_pipeline", "model__preprocessing": "own"},
     "permutation", "probability"),
]


@pytest.mark.parametrize(("task", "family", "extra", "explainer", "output"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in CASES])
def test_contributions_add_up_to_the_model_output(tmp_path: Path, task: str, family: str,
                                                  extra: dict[str, Any], explainer: str,
                                                  output: str) -> None:
    cfg, (registry, version) = trained(tmp_path, task, family, **extra)
    card = registry.get_card(version)
    summary = card["shap"]
    assert summary["status"] == "ok", summary
    assert (summary["explainer"], summary["output"]) == (explainer, output)
    assert set(summary["mean_abs"]) == set(FEATURES)  # input features, not model columns
    assert max(summary["mean_abs"], key=summary["mean_abs"].get) == "x1"  # the strong signal
    pipeline = registry.load_model(version)
    background = pd.read_parquet(registry.version_dir(version) / BACKGROUND_FILE)
    assert list(background.columns) == FEATURES and len(background) == 200
    rows = make_table(n=40, seed=9)
    explainer_ = ShapExplainer(cfg, pipeline, background).fit()
    explanation = explainer_.explain(rows)
    assert explanation.values.shape == (40, len(FEATURES))
    total = explanation.values.sum(axis=1) + explanation.base_values
    np.testing.assert_allclose(total, explainer_.model_output(rows, explanation), atol=1e-6)


def test_one_hot_columns_are_summed_to_their_source_feature(tmp_path: Path) -> None:
    cfg, (registry, version) = trained(tmp_path, "classification", "logistic_regression")
    pipeline = registry.load_model(version)
    background = pd.read_parquet(registry.version_dir(version) / BACKGROUND_FILE)
    rows = make_table(n=30, seed=4)
    explanation = ShapExplainer(cfg, pipeline, background).fit().explain(rows)
    # by hand: linear SHAP of each output column, coef * (z - mean of the background's z)
    prep, model = pipeline.named_steps["prep"], pipeline.named_steps["model"]
    z, zb = prep.transform(rows[FEATURES]), prep.transform(background)
    per_column = (z - zb.mean(axis=0)) * model.coef_[0]
    names = list(prep.get_feature_names_out())
    cat_columns = [j for j, n in enumerate(names) if n.startswith("categorical__cat_")]
    assert len(cat_columns) >= 3  # one column per category: they are summed to 'cat'
    np.testing.assert_allclose(explanation.values[:, FEATURES.index("cat")],
                               per_column[:, cat_columns].sum(axis=1), atol=1e-9)
    x2_columns = [j for j, n in enumerate(names) if "x2" in n]  # value + missing indicator
    assert len(x2_columns) == 2
    np.testing.assert_allclose(explanation.values[:, FEATURES.index("x2")],
                               per_column[:, x2_columns].sum(axis=1), atol=1e-9)


def test_a_multiclass_model_is_explained_for_the_class_it_predicts(tmp_path: Path) -> None:
    from test_multiclass import commute_cfg

    cfg = commute_cfg(tmp_path)
    out = run_training(cfg)
    registry = Registry(cfg.registry.root)
    card = registry.get_card(out["version"])
    assert card["shap"]["explainer"] == "tree"
    assert card["shap"]["output"] == "raw score (softmax input)"
    pipeline = registry.load_model(out["version"])
    background = pd.read_parquet(registry.version_dir(out["version"]) / BACKGROUND_FILE)
    rows = pd.read_csv(cfg.data.path).head(50)
    explainer = ShapExplainer(cfg, pipeline, background).fit()
    explanation = explainer.explain(rows)
    assert (explanation.classes == pipeline.predict_proba(rows[cfg.data.features.all]).argmax(
        axis=1)).all()
    np.testing.assert_allclose(explanation.values.sum(axis=1) + explanation.base_values,
                               explainer.model_output(rows, explanation), atol=1e-6)


def test_score_explain_writes_the_top_contributions(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    import yaml

    from ml_lifecycle.cli import main

    make_table(n=1500).to_csv(tmp_path / "train.csv", index=False)
    raw = make_config_dict(str(tmp_path / "train.csv"), str(tmp_path / "registry"))
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(tmp_path / "m.yaml")]) == 0
    batch = make_table(n=300, seed=5).drop(columns="label")
    batch.to_csv(tmp_path / "b.csv", index=False)
    assert main(["score", "--config", str(tmp_path / "m.yaml"), "--batch",
                 str(tmp_path / "b.csv"), "--out", str(tmp_path / "p.csv"),
                 "--explain", "3"]) == 0
    preds = pd.read_csv(tmp_path / "p.csv")
    for r in (1, 2, 3):
        assert {f"explain_{r}_feature", f"explain_{r}_value",
                f"explain_{r}_contribution"} <= set(preds.columns)
    assert set(preds["explain_1_feature"]) <= set(FEATURES)
    # ranked by |contribution|, and the three features of a row are different ones
    c = preds[[f"explain_{r}_contribution" for r in (1, 2, 3)]].abs().to_numpy()
    assert (c[:, 0] >= c[:, 1]).all() and (c[:, 1] >= c[:, 2]).all()
    assert (preds[[f"explain_{r}_feature" for r in (1, 2, 3)]].nunique(axis=1) == 3).all()
    first = preds.iloc[0]
    assert str(first["explain_1_value"]) == str(batch.set_index("row_id").loc[
        first["row_id"], first["explain_1_feature"]])
    capsys.readouterr()
    # more than the model has: a clear error, nothing written
    code = main(["score", "--config", str(tmp_path / "m.yaml"), "--batch",
                 str(tmp_path / "b.csv"), "--out", str(tmp_path / "q.csv"), "--explain", "9"])
    assert code == 2 and not (tmp_path / "q.csv").exists()
    assert "--explain 9: the model has 4 input features" in capsys.readouterr().err


def test_the_ui_shows_the_global_shap_bars(tmp_path: Path) -> None:
    import re
    import sys

    from conftest import PROJECT_ROOT

    if str(PROJECT_ROOT / "plugins") not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT / "plugins"))
    from ml_monitoring import pages

    _, (registry, version) = trained(tmp_path, "classification", "hist_gradient_boosting")
    card = registry.get_card(version)
    view = {"card": card, "summary": {"version": version, "status": "not promoted"},
            "quality_report": None, "promotions": []}
    html = pages.version_page(view)
    bars = re.search(r'<svg[^>]*data-plot="shap".*?</svg>', html, re.S)
    assert bars and all(f in bars.group(0) for f in FEATURES)
    assert "tree explainer, in log-odds" in html
    old = pages.version_page({**view, "card": {**card, "shap": None}})
    assert "No SHAP summary" in old and 'data-plot="shap"' not in old


def test_the_scoring_dag_setting_adds_the_columns(tmp_path: Path) -> None:
    """``lifecycle.explain_top_k``: what the scoring DAG's ``score_batch`` writes."""
    from ml_lifecycle.lifecycle import score_batch

    make_table(n=1500).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "batches").mkdir()
    make_table(n=200, seed=6).drop(columns="label").to_csv(
        tmp_path / "batches" / "2026-03-01.csv", index=False)
    raw = make_config_dict(str(tmp_path / "train.csv"), str(tmp_path / "registry"))
    raw["lifecycle"] = {"batches": str(tmp_path / "batches"),
                        "predictions": str(tmp_path / "predictions"), "explain_top_k": 2}
    cfg = config_from_dict(raw)
    run_training(cfg)
    out = score_batch(cfg, "2026-03-01")
    preds = pd.read_csv(out["path"])
    assert {"explain_1_feature", "explain_2_contribution"} <= set(preds.columns)
    assert "explain_3_feature" not in preds.columns and len(preds) == 200
