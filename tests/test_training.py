"""The whole training pipeline: card contents, determinism, test-once, gating, bad input, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, make_config_dict, make_table
from ml_lifecycle.config import config_from_dict
from ml_lifecycle.data import load_table
from ml_lifecycle.errors import (
    EXIT_GATE_REJECTED,
    EXIT_INTEGRITY,
    EXIT_INVALID_INPUT,
    ConfigError,
    DataError,
    IntegrityError,
    QualityGateError,
)
from ml_lifecycle.explain import linear_contributions
from ml_lifecycle.registry import Registry
from ml_lifecycle.scoring import predict_scores
from ml_lifecycle.split import split_frame
from ml_lifecycle.train import encode_target, run_training


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under the registry root (what must stay untouched)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_first_training_is_promoted_with_a_complete_card(cfg) -> None:
    result = run_training(cfg, reason="unit test")
    assert result["version"] == 1 and result["promoted"] and result["exit_code"] == 0
    reg = Registry(cfg.registry.root)
    assert reg.champion() == 1
    card = reg.get_card(1)
    assert card["trigger"]["reason"] == "unit test"
    assert card["split"]["seed"] == 42 and card["split"]["strategy"] == "stratified"
    (path, digest), = card["data"]["files"].items()
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
    assert sum(card["data"]["rows_per_split"].values()) == card["data"]["rows_used"]
    for metric in ("roc_auc", "pr_auc", "f1", "precision", "recall", "balanced_accuracy",
                   "brier"):
        m = card["metrics"][metric]
        assert m["low"] <= m["value"] <= m["high"], metric
    assert set(card["confusion_matrix"]) == {"tn", "fp", "fn", "tp"}
    assert card["library_versions"]["scikit-learn"].startswith("1.9")
    assert card["config"]["split"]["seed"] == 42
    curve = card["model"]["validation_curve"]
    assert card["model"]["stopping_iteration"] == curve["best_iteration"]  # the trees kept
    assert curve["stopped_iteration"] == len(curve["values"]) - 1  # the trees grown
    assert 0 <= curve["best_iteration"] < len(curve["values"])
    assert set(card["importances"]) == {"x1", "x2", "cat", "merchant"}
    assert max(card["importances"], key=card["importances"].get) == "x1"
    assert [r["name"] for r in card["gate"]["rules"]] == ["floor", "beats_baseline"]
    vdir = reg.version_dir(1)
    assign = pd.read_parquet(vdir / "split_assignment.parquet")
    assert assign["split"].value_counts().to_dict() == card["data"]["rows_per_split"]
    assert (vdir / "quality_report.json").exists()
    reg.verify(1)


def test_second_training_is_compared_with_the_champion_on_the_same_rows(cfg) -> None:
    run_training(cfg)
    second = run_training(cfg)
    rules = {r["name"]: r for r in second["gate"]["rules"]}
    assert "not_worse_than_champion" in rules
    assert rules["not_worse_than_champion"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert second["champion_before"] == 1


def test_same_config_and_seed_give_identical_metrics_and_predictions(tmp_path: Path,
                                                                     table_csv: Path) -> None:
    results, preds = [], []
    for run in ("a", "b"):
        cfg = config_from_dict(make_config_dict(str(table_csv), str(tmp_path / run)))
        results.append(run_training(cfg))
        model = Registry(cfg.registry.root).load_model(1)
        preds.append(predict_scores(model, load_table(cfg.data), "classification"))
    assert results[0]["metrics"] == results[1]["metrics"]
    np.testing.assert_array_equal(preds[0], preds[1])


def test_test_split_does_not_influence_training(tmp_path: Path, table_csv: Path) -> None:
    cfg = config_from_dict(make_config_dict(str(table_csv), str(tmp_path / "a"),
                                            split__strategy="random"))
    frame = load_table(cfg.data)
    y, _ = encode_target(frame, cfg)
    test_rows = split_frame(frame, y, cfg).test
    flipped = frame.copy()
    flipped.loc[flipped.index[test_rows], "label"] = 1 - flipped.loc[flipped.index[test_rows],
                                                                     "label"]
    flipped.loc[flipped.index[test_rows], "x1"] += 5.0
    r1 = run_training(cfg, frame=frame)
    cfg.registry.root = str(tmp_path / "b")
    r2 = run_training(cfg, frame=flipped)
    c1 = Registry(tmp_path / "a").get_card(1)
    c2 = Registry(tmp_path / "b").get_card(1)
    assert c1["model"]["validation_curve"] == c2["model"]["validation_curve"]
    assert c1["threshold"] == c2["threshold"]
    assert r1["stopping_iteration"] == r2["stopping_iteration"]
    assert r1["metrics"]["roc_auc"]["value"] != r2["metrics"]["roc_auc"]["value"]


def test_gate_rejection_registers_but_keeps_the_champion(cfg) -> None:
    run_training(cfg)
    cfg.gate.floors = {"roc_auc": 0.999}
    result = run_training(cfg)
    assert result["exit_code"] == EXIT_GATE_REJECTED and not result["promoted"]
    assert result["version"] == 2
    reg = Registry(cfg.registry.root)
    assert reg.champion() == 1
    assert any("floor 0.999" in r for r in result["gate"]["reasons"])


def _bad_inputs(tmp_path: Path, good_csv: Path) -> dict[str, tuple[dict, type]]:
    table = make_table()
    no_target = tmp_path / "no_target.csv"
    table.drop(columns=["label"]).to_csv(no_target, index=False)
    wrong_dtype = tmp_path / "wrong_dtype.csv"
    table.astype({"x1": object}).assign(x1=lambda d: d["x1"].where(d.index != 3, "abc")).to_csv(
        wrong_dtype, index=False)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    all_missing = tmp_path / "all_missing.csv"
    table.assign(x2=np.nan).to_csv(all_missing, index=False)
    return {
        "missing target column": ({"data__path": str(no_target)}, DataError),
        "wrong dtype": ({"data__path": str(wrong_dtype)}, DataError),
        "empty file": ({"data__path": str(empty)}, DataError),
        "all-missing feature": ({"data__path": str(all_missing)}, QualityGateError),
        "unknown model family": ({"model__family": "xgboost"}, ConfigError),
        "split fraction of 0": ({"split__validation": 0.0}, ConfigError),
    }


def test_bad_inputs_leave_registry_and_champion_untouched(tmp_path: Path,
                                                          table_csv: Path) -> None:
    root = tmp_path / "registry"
    good = make_config_dict(str(table_csv), str(root))
    run_training(config_from_dict(good))
    before = snapshot(root)
    for name, (overrides, error) in _bad_inputs(tmp_path, table_csv).items():
        with pytest.raises(error):
            raw = make_config_dict(str(table_csv), str(root), **overrides)
            run_training(config_from_dict(raw))
        assert snapshot(root) == before, name
        assert Registry(root).champion() == 1


def test_tampered_champion_is_never_loaded_and_training_stops(tmp_path: Path, cfg) -> None:
    run_training(cfg)
    reg = Registry(cfg.registry.root)
    model_file = reg.version_dir(1) / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        run_training(cfg)
    assert reg.champion() == 1 and [c["version"] for c in reg.list_versions()] == [1]


def test_linear_model_contributions_sum_to_the_decision_function(tmp_path: Path,
                                                                 table_csv: Path) -> None:
    cfg = config_from_dict(make_config_dict(
        str(table_csv), str(tmp_path / "r"), model__family="logistic_regression",
        model__params={"C": 0.5, "l1_ratio": 0.5}))
    result = run_training(cfg)
    card = Registry(cfg.registry.root).get_card(result["version"])
    assert card["coefficients"]["abs_per_feature"]["x1"] > 0
    model = Registry(cfg.registry.root).load_model(result["version"])
    frame = load_table(cfg.data).head(20)
    contrib = linear_contributions(cfg, model, frame)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), model.decision_function(frame),
                               rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("family,params", [
    ("sgd", {}),
    ("logistic_regression", {}),
])
def test_other_families_train_and_search_on_validation(tmp_path: Path, table_csv: Path,
                                                       family: str, params: dict) -> None:
    cfg = config_from_dict(make_config_dict(
        str(table_csv), str(tmp_path / "r"), model__family=family, model__params=params,
        model__search={"method": "grid", "space": {"alpha": [1e-4, 1e-2]} if family == "sgd"
                       else {"C": [0.01, 1.0]}}))
    result = run_training(cfg)
    card = Registry(cfg.registry.root).get_card(result["version"])
    trials = card["model"]["search_trials"]
    assert len(trials) == 2
    best = max(trials, key=lambda t: t["validation_pr_auc"])
    assert card["model"]["params"] == best["params"]
    if family == "sgd":
        curve = card["model"]["validation_curve"]
        assert curve["best_iteration"] == int(np.argmin(curve["values"]))


def test_regression_with_time_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 800
    frame = pd.DataFrame({"t": pd.date_range("2025-01-01", periods=n, freq="h").astype(str),
                          "a": rng.normal(size=n), "c": rng.choice(["u", "v"], n)})
    frame["y"] = 3 * frame["a"] + (frame["c"] == "u") * 2 + rng.normal(0, 0.5, n)
    path = tmp_path / "r.csv"
    frame.to_csv(path, index=False)
    raw = {
        "task": "regression", "data": {"path": str(path), "target": "y", "time_column": "t",
                                       "features": {"numeric": ["a"], "categorical": ["c"]}},
        "split": {"strategy": "time"}, "model": {"family": "ridge"},
        "evaluation": {"bootstrap": 30}, "gate": {"floors": {"r2": 0.8}},
        "registry": {"root": str(tmp_path / "reg")},
    }
    result = run_training(config_from_dict(raw))
    assert result["promoted"] and result["metrics"]["r2"]["value"] > 0.9
    assert set(result["metrics"]) == {"mae", "rmse", "r2"}


def _cli(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include")}
    return subprocess.run([sys.executable, "-m", "ml_lifecycle", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.integration
def test_cli_exit_codes_and_models_commands(tmp_path: Path, table_csv: Path) -> None:
    import yaml

    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(make_config_dict(str(table_csv), str(tmp_path / "reg"))))
    first = _cli("train", "--config", str(cfg_path), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["promoted"] is True
    rejected = _cli("train", "--config", str(cfg_path), "--set", "gate.floors.roc_auc=0.9999")
    assert rejected.returncode == EXIT_GATE_REJECTED and "REJECTED" in rejected.stdout
    bad = _cli("train", "--config", str(cfg_path), "--set", "split.strategy=sideways")
    assert bad.returncode == EXIT_INVALID_INPUT and "split.strategy" in bad.stderr
    assert "Traceback" not in bad.stderr
    listing = _cli("models", "list", "--config", str(cfg_path), "--json")
    rows = json.loads(listing.stdout)["versions"]
    assert [r["version"] for r in rows] == [1, 2] and rows[0]["champion"]
    vs = rows[1]["vs_champion"]  # the paired comparison that decided, not two test splits
    assert rows[0]["vs_champion"] is None and vs["champion"] == 1
    assert isinstance(vs["diff"], float) and vs["low"] <= vs["diff"]
    text = _cli("models", "list", "--config", str(cfg_path)).stdout
    assert "vs v1: " in text and "own test split" in text
    shown = _cli("models", "show", "2", "--config", str(cfg_path)).stdout
    assert shown.startswith("v2 of synthetic") and "gate: REJECTED" in shown
    assert "candidate - champion v1" in shown and "pr_auc" in shown and "baseline" in shown
    assert json.loads(_cli("models", "show", "2", "--config", str(cfg_path), "--json").stdout)[
        "version"] == 2
    refused = _cli("models", "promote", "2", "--config", str(cfg_path))
    assert refused.returncode == EXIT_INVALID_INPUT and "rejected by the gate" in refused.stderr
    assert "--force" in refused.stderr and "roc_auc" in refused.stderr
    assert Registry(tmp_path / "reg").champion() == 1
    no_reason = _cli("models", "promote", "2", "--force", "--config", str(cfg_path))
    assert no_reason.returncode == EXIT_INVALID_INPUT
    promote = _cli("models", "promote", "2", "--force", "--reason", "hotfix for a bad feed",
                   "--config", str(cfg_path))
    assert promote.returncode == 0 and "champion is now v2" in promote.stdout
    event = Registry(tmp_path / "reg").history()[-1]
    assert "forced over a gate rejection" in event["reason"] and "hotfix" in event["reason"]
    rollback = _cli("models", "rollback", "--config", str(cfg_path))
    assert rollback.returncode == 0 and "champion is now v1" in rollback.stdout
    history = json.loads(_cli("models", "list", "--config", str(cfg_path), "--json").stdout)
    assert [e["event"] for e in history["history"]] == ["promote", "promote", "rollback"]
    model = Registry(tmp_path / "reg").version_dir(1) / "model.skops"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    tampered = _cli("train", "--config", str(cfg_path))
    assert tampered.returncode == EXIT_INTEGRITY and "sha256" in tampered.stderr


def _imbalanced_arrays(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4000, 3))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(-2.5 + 1.2 * x[:, 0])))).astype(int)  # ~12 % pos.
    return x[:3000], y[:3000], x[3000:], y[3000:]


@pytest.mark.parametrize("family", ["hist_gradient_boosting", "sgd"])
def test_early_stopping_watches_the_class_weighted_validation_loss(tmp_path: Path,
                                                                    family: str) -> None:
    """class_weight=balanced trains on a weighted loss: the validation curve that decides when
    to stop is that same weighted loss, with per-class weights from the TRAINING labels."""
    from sklearn.metrics import log_loss
    from sklearn.utils.class_weight import compute_class_weight

    from ml_lifecycle.models import _FITTERS as FITTERS

    cfg = config_from_dict(make_config_dict("x.csv", str(tmp_path / "r"),
                                            model__family=family, model__max_iter=60))
    assert cfg.model.class_weight == "balanced"
    xt, yt, xv, yv = _imbalanced_arrays(0)
    est, curve, _ = FITTERS[family](cfg, {}, xt, yt, xv, yv)
    per_class = compute_class_weight("balanced", classes=np.array([0, 1]), y=yt)
    assert per_class[1] > 3 * per_class[0]  # the weighting is far from uniform here
    weights = per_class[yv]
    scores = est.predict_proba(xv)[:, 1]
    weighted = log_loss(yv, scores, sample_weight=weights)
    best = curve["best_iteration"]  # both families return the model of their best iteration
    assert curve["values"][best] == pytest.approx(weighted, rel=1e-6)
    assert abs(log_loss(yv, scores) - weighted) > 0.01  # unweighted would be another curve
    # Validation labels never set the weights: the same training rows with a validation split of
    # another class balance give a curve weighted by the same per-class values.
    keep = np.r_[np.flatnonzero(yv == 1), np.flatnonzero(yv == 0)[:200]]
    est2, curve2, _ = FITTERS[family](cfg, {}, xt, yt, xv[keep], yv[keep])
    scores2 = est2.predict_proba(xv[keep])[:, 1]
    best2 = curve2["best_iteration"]
    assert curve2["values"][best2] == pytest.approx(
        log_loss(yv[keep], scores2, sample_weight=per_class[yv[keep]]), rel=1e-6)


def test_permutation_importance_preprocesses_once_with_the_same_result(cfg, monkeypatch) -> None:
    """The fast path (shuffles applied to the preprocessed matrix) gives the numbers the plain
    path (each shuffled copy through the whole pipeline) gives for the same shuffles, and both
    agree with scikit-learn's permutation_importance within its repeat noise."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import make_scorer

    from ml_lifecycle import explain
    from ml_lifecycle.metrics import compute_metric
    x, y, parts, fit = _fitted(cfg)
    x_val, y_val = x.iloc[parts.validation], y[parts.validation]
    calls = []
    real = explain._transformed_groups
    monkeypatch.setattr(explain, "_transformed_groups",
                        lambda *a: calls.append(real(*a)) or calls[-1])
    fast = explain.permutation_importances(cfg, fit.pipeline, x_val, y_val)
    assert calls and calls[0] is not None, "the package's preprocessing takes the fast path"
    monkeypatch.setattr(explain, "_transformed_groups", lambda *a: None)
    slow = explain.permutation_importances(cfg, fit.pipeline, x_val, y_val)
    assert list(fast) == list(slow)
    for name in fast:
        assert fast[name]["mean"] == pytest.approx(slow[name]["mean"], abs=1e-9), name
        assert fast[name]["std"] == pytest.approx(slow[name]["std"], abs=1e-9), name
    assert max(fast, key=lambda f: fast[f]["mean"]) == "x1"
    sk = permutation_importance(
        fit.pipeline, x_val[cfg.data.features.all], y_val, n_repeats=20, random_state=0,
        scoring=make_scorer(lambda t, p: compute_metric("classification", cfg.primary_metric, t, p),
                            response_method="predict_proba"))
    for name, mean, std in zip(cfg.data.features.all, sk.importances_mean, sk.importances_std,
                               strict=True):
        assert abs(fast[name]["mean"] - mean) <= 3 * std + 0.01, name


@pytest.mark.parametrize("path", ["preprocessed", "pipeline"])
def test_permutation_importance_predicts_only_the_rows_a_shuffle_changed(cfg, monkeypatch,
                                                                         path: str) -> None:
    """A row a shuffle left as it was keeps its score: skipping its prediction changes no
    number, and on a column with few distinct values most rows are skipped."""
    from ml_lifecycle import explain, scoring

    x, y, parts, fit = _fitted(cfg)
    x_val, y_val = x.iloc[parts.validation].copy(), y[parts.validation]
    if path == "pipeline":
        monkeypatch.setattr(explain, "_transformed_groups", lambda *a: None)
    predicted: list[int] = []
    real_predict = scoring.predict_scores
    monkeypatch.setattr(scoring, "predict_scores",
                        lambda m, rows, task: predicted.append(len(rows)) or real_predict(
                            m, rows, task))
    skipping = explain.permutation_importances(cfg, fit.pipeline, x_val, y_val)
    rows_skipping = sum(predicted)
    predicted.clear()
    monkeypatch.setattr(explain, "_changed_rows", lambda before, after: np.ones(len(before),
                                                                                 dtype=bool))
    every_row = explain.permutation_importances(cfg, fit.pipeline, x_val, y_val)
    assert skipping == every_row  # the same floats, not just close
    n = min(len(x_val), cfg.evaluation.importance_max_rows)
    shuffles = cfg.evaluation.importance_repeats * len(cfg.data.features.all)
    assert sum(predicted) >= n * shuffles
    assert rows_skipping < sum(predicted)  # fewer rows predicted, for the same numbers


def test_changed_rows_treat_missing_as_unchanged() -> None:
    from ml_lifecycle.explain import _changed_rows

    before = np.array([[1.0, np.nan], [np.nan, 2.0], [3.0, 4.0]])
    after = np.array([[1.0, np.nan], [np.nan, 5.0], [3.0, 4.0]])
    assert _changed_rows(before, after).tolist() == [False, True, False]
    text = np.array([["a"], [None], ["b"]], dtype=object)
    assert _changed_rows(text, np.array([["a"], [None], ["c"]], dtype=object)).tolist() == [
        False, False, True]


def test_a_pipeline_that_mixes_columns_falls_back_to_shuffling_inputs() -> None:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from ml_lifecycle.explain import _transformed_groups

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (x["a"] + rng.normal(size=400) > 0).astype(int)
    mixing = Pipeline([("prep", PCA(n_components=2)), ("model", LogisticRegression())]).fit(x, y)
    assert _transformed_groups(mixing, x, ["a", "b"], 0) is None


def test_early_stopping_keeps_the_best_iteration_not_the_patience_trees(cfg) -> None:
    """HistGradientBoosting stops ``patience`` iterations after its best validation loss; the
    model kept is cut back to the best iteration, and is exactly what a fit with
    ``max_iter=best`` grows."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y, parts, fit = _fitted(cfg)
    curve, model = fit.validation_curve, fit.pipeline.named_steps["model"]
    best, stopped = curve["best_iteration"], curve["stopped_iteration"]
    assert stopped == best + cfg.model.patience or stopped == cfg.model.max_iter
    assert stopped > best >= 1, (best, stopped)
    assert model.n_iter_ == best == fit.stopping_iteration
    assert min(curve["values"]) == curve["values"][best]
    prep = fit.pipeline.named_steps["prep"]
    xt = prep.transform(x.iloc[parts.train])
    xv = prep.transform(x.iloc[parts.validation])
    refit = HistGradientBoostingClassifier(
        max_iter=best, early_stopping=False, random_state=cfg.model.seed,
        class_weight=cfg.model.class_weight, **fit.params).fit(xt, y[parts.train])
    np.testing.assert_allclose(model.predict_proba(xv), refit.predict_proba(xv), rtol=1e-10)
    result = run_training(cfg, reason="unit test")
    card = Registry(cfg.registry.root).get_card(result["version"])
    assert card["model"]["stopping_iteration"] == card["model"]["validation_curve"][
        "best_iteration"] < card["model"]["validation_curve"]["stopped_iteration"]


def test_a_retrain_keeps_the_champions_positive_class_when_the_balance_flips(
        tmp_path: Path) -> None:
    """Without data.positive_label the first model's positive class is the minority class; a
    retrain on data where the other class became the minority keeps that encoding."""
    table = make_table(n=1500, seed=4)
    table["label"] = np.where(table["label"] == 1, "late", "on_time")
    first = tmp_path / "first.csv"
    table.to_csv(first, index=False)
    raw = make_config_dict(str(first), str(tmp_path / "registry"))
    raw["data"].pop("positive_label", None)
    cfg = config_from_dict(raw)
    one = run_training(cfg, reason="first")
    card = Registry(cfg.registry.root).get_card(one["version"])
    assert card["data"]["target"]["positive_label"] == "late"  # the minority class
    flipped = table.copy()
    on_time = flipped.index[flipped["label"] == "on_time"]
    flipped.loc[on_time[: int(0.7 * len(on_time))], "label"] = "late"  # 'on_time' the minority
    second = tmp_path / "second.csv"
    flipped.to_csv(second, index=False)
    assert (flipped["label"] == "on_time").mean() < 0.5
    two = run_training(cfg.model_copy(update={"data": cfg.data.model_copy(
        update={"path": str(second)})}), reason="retrain")
    card = Registry(cfg.registry.root).get_card(two["version"])
    assert card["data"]["target"]["positive_label"] == "late"


def _fitted(cfg) -> tuple[pd.DataFrame, np.ndarray, object, object]:
    """(features, labels, split, ``train_model`` result) of the fixture table."""
    from ml_lifecycle.models import train_model

    frame = load_table(cfg.data)
    y, _ = encode_target(frame, cfg)
    parts = split_frame(frame, y, cfg)
    x = frame[cfg.data.features.all]
    fit = train_model(cfg, x.iloc[parts.train], y[parts.train], x.iloc[parts.validation],
                      y[parts.validation])
    return x, y, parts, fit


def _two_column_pipeline(x: pd.DataFrame, transformers: list) -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    y = (np.arange(len(x)) % 3 == 0).astype(int)
    return Pipeline([("prep", ColumnTransformer(transformers)),
                     ("model", LogisticRegression())]).fit(x, y)


def test_the_transformer_prefix_tells_a_numeric_a_b_from_category_b_of_a() -> None:
    """A numeric ``a_b`` and a categorical ``a`` with category ``b`` both fit the name ``a_b``
    (as UCI Adult's ``education_num`` and ``education``): the ColumnTransformer's prefix says
    which one made each output, so the fast path is taken, and the groups are right."""
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from ml_lifecycle.explain import _transformed_groups

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.choice(["b", "c"], 400), "a_b": rng.normal(size=400)})
    pipe = _two_column_pipeline(x, [("numeric", StandardScaler(), ["a_b"]),
                                    ("categorical", OneHotEncoder(), ["a"])])
    found = _transformed_groups(pipe, x, ["a_b", "a"], 0)
    assert found is not None
    groups = found[2]
    names = list(pipe[:-1].get_feature_names_out())
    assert [names[i] for i in groups["a_b"]] == ["numeric__a_b"]
    assert [names[i] for i in groups["a"]] == ["categorical__a_b", "categorical__a_c"]


def test_importance_falls_back_when_column_names_are_ambiguous() -> None:
    """Two categoricals of one transformer, ``a`` with category ``b_c`` and ``a_b`` with category
    ``c``, both explain the output ``categorical__a_b_c``: not groupable by name, no fast path."""
    from sklearn.preprocessing import OneHotEncoder

    from ml_lifecycle.explain import _transformed_groups

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.choice(["b_c", "d"], 400), "a_b": rng.choice(["c", "e"], 400)})
    pipe = _two_column_pipeline(x, [("categorical", OneHotEncoder(), ["a", "a_b"])])
    assert _transformed_groups(pipe, x, ["a", "a_b"], 0) is None
