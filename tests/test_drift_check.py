"""The drift check end to end: trained champion in a real registry, store, policy and CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_config_dict, make_table
from ml_lifecycle.config import Config, config_from_dict
from ml_lifecycle.drift.check import RESULT_KEYS, cli_main, run_drift_check
from ml_lifecycle.drift.policy import load_policy_state
from ml_lifecycle.drift.profile import load_profile
from ml_lifecycle.drift.store import drift_history
from ml_lifecycle.errors import (
    EXIT_INTEGRITY,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    EXIT_RETRAIN_RECOMMENDED,
    DataError,
    RegistryError,
)
from ml_lifecycle.registry import Registry
from ml_lifecycle.scoring import predict_scores
from ml_lifecycle.train import run_training

# decision time: after the champion was trained (the cooldown counts from its creation)
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One champion trained on the synthetic table, shared (read-only) by the tests."""
    base = tmp_path_factory.mktemp("drift_check")
    make_table(n=3000, seed=0).to_csv(base / "train.csv", index=False)
    raw = make_config_dict(str(base / "train.csv"), str(base / "registry"),
                           policy__cooldown_days=0)
    cfg = config_from_dict(raw)
    assert run_training(cfg, reason="drift tests")["promoted"]
    batches = base / "batches"
    batches.mkdir()
    fresh = make_table(n=1200, seed=1).drop(columns=["label"])
    fresh.to_csv(batches / "fresh.csv", index=False)
    # harmless: x1 moves (the model's most important feature), P(y|x) is that of training
    shifted = fresh.assign(x1=fresh["x1"] + 1.0)
    shifted.to_csv(batches / "shifted.csv", index=False)
    # harmful covariate shift: x1 crowds around the decision boundary (logit ~ 0), where the
    # model cannot rank the rows well: its ROC-AUC on such a batch is far below its test level
    rng = np.random.default_rng(5)
    fresh.assign(x1=rng.normal(1.33, 0.3, len(fresh))).to_csv(batches / "harmful.csv",
                                                              index=False)
    fresh.drop(columns=["x2"]).to_csv(batches / "no_x2.csv", index=False)
    config_path = base / "config.json"  # JSON is YAML
    config_path.write_text(json.dumps(raw))
    return {"base": base, "raw": raw, "config": config_path, "batches": batches}


def _fresh_cfg(trained: dict, tmp_path: Path) -> Config:
    """A config whose registry is a private copy (tests must not share monitoring state)."""
    import shutil

    root = tmp_path / "registry"
    shutil.copytree(Path(trained["raw"]["registry"]["root"]), root)
    raw = {**trained["raw"], "registry": {"root": str(root)}}
    return config_from_dict(raw)


def test_the_trainer_stores_a_profile_with_the_version(trained) -> None:
    registry = Registry(trained["raw"]["registry"]["root"])
    card = registry.champion_card()
    assert {"reference_profile.json", "reference_profile.npz"} <= set(card["artifacts"])
    profile = load_profile(registry.version_dir(card["version"]))
    assert profile.features == ["x1", "x2", "cat", "merchant"]
    assert profile.scores is not None and profile.scores.sample_size > 100
    assert profile.importances == card["importances"]
    assert profile.test_metrics["roc_auc"]["value"] == card["metrics"]["roc_auc"]["value"]


def test_no_drift_on_a_fresh_batch_and_drift_on_a_shifted_one(trained, tmp_path: Path) -> None:
    cfg = _fresh_cfg(trained, tmp_path)
    batches = trained["batches"]
    ok = run_drift_check(cfg, batch_path=str(batches / "fresh.csv"), day="2026-06-30", now=NOW,
                         report_dir=tmp_path / "reports")
    assert tuple(ok) == RESULT_KEYS
    assert ok["verdict"] == "no_drift" and not ok["retrain"] and ok["severity"] == "none"
    assert ok["data_drift"]["n_drifted"] == 0 and ok["quality"]["severity"] == "ok"
    assert ok["prediction_drift"]["status"] == "no_drift"
    assert ok["model"]["version"] == 1 and ok["batch"]["n_rows"] == 1200
    for key in ("store_json", "store_html", "json", "html"):
        assert Path(ok["report_paths"][key]).is_file(), key
    assert json.loads(Path(ok["report_paths"]["json"]).read_text())["verdict"] == "no_drift"

    assert ok["estimated_performance"]["status"] == "no_drift" and ok["alert"]["action"] is None

    # the inputs move (data and prediction drift) but the model is not hurt: drift explains,
    # it does not retrain (policy.trigger: performance, the default)
    moved = run_drift_check(cfg, batch_path=str(batches / "shifted.csv"), day="2026-07-01",
                            now=NOW)
    assert moved["verdict"] == "drift" and not moved["retrain"] and moved["severity"] == "low"
    assert moved["data_drift"]["drifted_features"] == ["x1"]
    assert moved["prediction_drift"]["status"] == "drift"
    est = moved["estimated_performance"]
    assert est["status"] == "no_drift" and est["method"] == "cbpe" and est["metric"] == "roc_auc"
    assert est["low"] <= est["value"] <= est["high"] and est["reference_value"] > 0.6
    assert set(est["metrics"]) >= {"roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy"}
    assert moved["alert"]["action"] is None

    # the inputs move where the model is weak: the estimate drops, the policy retrains
    hurt = run_drift_check(cfg, batch_path=str(batches / "harmful.csv"), day="2026-07-02",
                           now=NOW)
    est = hurt["estimated_performance"]
    assert est["status"] == "drift" and est["flagged"] and est["drop"] > est["tolerance"]
    assert est["high"] < est["reference_value"] and est["reliable"]
    assert hurt["retrain"] and hurt["severity"] == "high"
    assert hurt["decision"]["trigger_id"] == "drift-2026-07-02"
    assert hurt["alert"]["action"] == "open"
    history = drift_history(cfg.registry.root)
    assert [h["day"] for h in history] == ["2026-06-30", "2026-07-01", "2026-07-02"]
    assert history[-1]["estimated_metric"] == est["value"] and history[-1]["alert"] == "open"
    assert load_policy_state(cfg.registry.root)["pending"]["trigger_id"] == "drift-2026-07-02"
    assert "estimated" in Path(hurt["report_paths"]["store_html"]).read_text()


def test_the_drift_trigger_keeps_the_earlier_rule(trained, tmp_path: Path) -> None:
    cfg = _fresh_cfg(trained, tmp_path)
    cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"trigger": "drift"})})
    moved = run_drift_check(cfg, batch_path=str(trained["batches"] / "shifted.csv"),
                            day="2026-07-01", now=NOW)
    assert moved["retrain"] and moved["severity"] == "high"


def test_the_estimator_is_hash_checked_and_optional(trained, tmp_path: Path) -> None:
    from ml_lifecycle.errors import IntegrityError

    cfg = _fresh_cfg(trained, tmp_path)
    vdir = Registry(cfg.registry.root).version_dir(1)
    card = Registry(cfg.registry.root).champion_card()
    assert {"performance_estimator.json", "performance_estimator.npz"} <= set(card["artifacts"])
    assert card["performance_estimation"]["method"] == "cbpe"
    assert set(card["performance_estimation"]["reference"]["roc_auc"]) == {"estimated",
                                                                           "realized"}
    stored = vdir / "performance_estimator.json"
    original = stored.read_bytes()
    stored.write_bytes(original.replace(b'"threshold"', b'"threshold" ', 1))
    with pytest.raises(IntegrityError, match="performance estimator"):
        run_drift_check(cfg, batch_path=str(trained["batches"] / "fresh.csv"),
                        day="2026-07-01", now=NOW)
    stored.write_bytes(original)
    off = cfg.model_copy(update={"drift": cfg.drift.model_copy(
        update={"estimate_performance": False})})
    result = run_drift_check(off, batch_path=str(trained["batches"] / "harmful.csv"),
                             day="2026-07-01", now=NOW)
    assert result["estimated_performance"]["status"] == "unavailable"
    assert not result["retrain"]  # no estimate, no labels: nothing says the model is hurt


def test_rechecking_a_day_overwrites_it_and_keeps_a_single_trigger(trained,
                                                                   tmp_path: Path) -> None:
    cfg = _fresh_cfg(trained, tmp_path)
    shifted = str(trained["batches"] / "harmful.csv")
    first = run_drift_check(cfg, batch_path=shifted, day="2026-07-01", now=NOW)
    again = run_drift_check(cfg, batch_path=shifted, day="2026-07-01",
                            now=NOW + timedelta(minutes=10))
    assert first["retrain"] and again["retrain"] and again["decision"]["rerun"]
    assert len(drift_history(cfg.registry.root)) == 1
    assert drift_history(cfg.registry.root)[0]["checked_at"] == again["checked_at"]
    assert len(load_policy_state(cfg.registry.root)["triggers"]) == 1
    later = run_drift_check(cfg, batch_path=shifted, day="2026-07-02",
                            now=NOW + timedelta(days=1))
    assert later["verdict"] == "drift" and not later["retrain"]
    assert "pending" in later["decision"]["blocked_by"]
    # one alert for the episode: the re-run repeats it, the next day is quiet
    assert first["alert"]["action"] == again["alert"]["action"] == "open"
    assert later["alert"]["action"] is None


def test_concept_drift_from_delayed_labels_of_past_batches(trained, tmp_path: Path) -> None:
    cfg = _fresh_cfg(trained, tmp_path)
    registry = Registry(cfg.registry.root)
    model = registry.load_model()
    past = make_table(n=2500, seed=7)
    past["ts"] = "2026-06-25 12:00:00"
    scores = predict_scores(model, past[["x1", "x2", "cat", "merchant"]], "classification")
    preds = past[["row_id", "ts"]].assign(score=scores)
    preds.to_csv(tmp_path / "preds.csv", index=False)
    past[["row_id", "label"]].to_csv(tmp_path / "labels_ok.csv", index=False)
    rng = np.random.default_rng(0)
    segment = (past["cat"].isin(["a", "b"])).to_numpy()
    flip = segment & (rng.random(len(past)) < 0.3)
    flipped = past[["row_id", "label"]].assign(label=np.where(flip, 1 - past["label"],
                                                              past["label"]))
    flipped.to_csv(tmp_path / "labels_flipped.csv", index=False)
    batch = str(trained["batches"] / "fresh.csv")
    stable = run_drift_check(cfg, batch_path=batch, day="2026-06-30", now=NOW,
                             labels=[(str(tmp_path / "labels_ok.csv"),
                                      str(tmp_path / "preds.csv"))])
    assert stable["concept_drift"]["status"] == "no_drift"
    assert stable["concept_drift"]["n_labelled"] == 2500 and not stable["retrain"]
    broken = run_drift_check(cfg, batch_path=batch, day="2026-07-01", now=NOW,
                             labels=[(str(tmp_path / "labels_flipped.csv"),
                                      str(tmp_path / "preds.csv"))])
    perf = broken["concept_drift"]
    assert perf["status"] == "drift" and perf["metric"] == "roc_auc" and perf["drop_low"] > 0
    assert broken["verdict"] == "drift" and broken["retrain"]
    assert broken["severity"] in ("high", "critical")
    outside = run_drift_check(cfg, batch_path=batch, day="2026-08-30",
                              now=NOW + timedelta(days=60),
                              labels=[(str(tmp_path / "labels_flipped.csv"),
                                       str(tmp_path / "preds.csv"))])
    assert outside["concept_drift"]["status"] == "insufficient_data"  # labels too old


def test_labels_showing_a_miscalibrated_model_are_harm_even_with_its_ranking_intact(
        trained, tmp_path: Path) -> None:
    """More positives than the calibrated model expects, the more the higher the score (the
    ranking is kept): the realized ROC-AUC does not drop, the observed / expected ratio moves."""
    cfg = _fresh_cfg(trained, tmp_path)
    model = Registry(cfg.registry.root).load_model()
    past = make_table(n=3000, seed=8)
    past["ts"] = "2026-06-25 12:00:00"
    scores = predict_scores(model, past[["x1", "x2", "cat", "merchant"]], "classification")
    past[["row_id", "ts"]].assign(score=scores).to_csv(tmp_path / "preds.csv", index=False)
    past[["row_id", "label"]].to_csv(tmp_path / "labels_ok.csv", index=False)
    rng = np.random.default_rng(1)
    extra = (past["label"] == 0).to_numpy() & (rng.random(len(past)) < 0.5 * scores)
    past[["row_id", "label"]].assign(label=np.where(extra, 1, past["label"])).to_csv(
        tmp_path / "labels_more.csv", index=False)
    batch = str(trained["batches"] / "fresh.csv")
    ok = run_drift_check(cfg, batch_path=batch, day="2026-06-30", now=NOW,
                         labels=[(str(tmp_path / "labels_ok.csv"), str(tmp_path / "preds.csv"))])
    calibration = ok["concept_drift"]["calibration"]
    assert calibration["status"] == "no_drift" and not calibration["flagged"]
    assert calibration["low"] <= 1.10 and calibration["high"] >= 1 / 1.10
    more = run_drift_check(cfg, batch_path=batch, day="2026-07-01", now=NOW,
                           labels=[(str(tmp_path / "labels_more.csv"),
                                    str(tmp_path / "preds.csv"))])
    calibration = more["concept_drift"]["calibration"]
    assert calibration["flagged"] and calibration["direction"] == "under"
    assert calibration["observed"] > calibration["expected"] * 1.1
    assert not more["concept_drift"]["flagged"], more["concept_drift"]["reason"]
    assert more["verdict"] == "drift" and more["severity"] == "high" and more["retrain"]
    assert any("miscalibration" in r for r in more["reasons"])
    html = Path(more["report_paths"]["store_html"]).read_text(encoding="utf-8")
    assert "observed / expected positives" in html and "under-predicts" in html
    off = run_drift_check(cfg.model_copy(update={"drift": cfg.drift.model_copy(
        update={"calibration_tolerance": None})}), batch_path=batch, day="2026-07-02", now=NOW,
        labels=[(str(tmp_path / "labels_more.csv"), str(tmp_path / "preds.csv"))])
    assert "calibration" not in off["concept_drift"]


def test_unusable_inputs_fail_clearly(trained, tmp_path: Path) -> None:
    cfg = _fresh_cfg(trained, tmp_path)
    with pytest.raises(DataError, match="x2"):
        run_drift_check(cfg, batch_path=str(trained["batches"] / "no_x2.csv"),
                        day="2026-07-01", now=NOW)
    with pytest.raises(DataError, match="does not exist"):
        run_drift_check(cfg, batch_path=str(tmp_path / "nope.csv"), day="2026-07-01", now=NOW)
    assert drift_history(cfg.registry.root) == []  # nothing stored for a refused batch
    empty = config_from_dict({**trained["raw"], "registry": {"root": str(tmp_path / "empty")}})
    with pytest.raises(RegistryError, match="no champion"):
        run_drift_check(empty, batch_path=str(trained["batches"] / "fresh.csv"),
                        day="2026-07-01", now=NOW)


def test_cli_exit_codes(trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _fresh_cfg(trained, tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**trained["raw"], "registry": {"root": cfg.registry.root}}))
    batches = trained["batches"]
    base = ["--config", str(config), "--day", "2026-07-01"]
    assert cli_main([*base, "--batch", str(batches / "fresh.csv")]) == EXIT_OK
    assert "verdict no_drift" in capsys.readouterr().out
    code = cli_main([*base, "--batch", str(batches / "harmful.csv"), "--json",
                     "--report-dir", str(tmp_path / "out")])
    assert code == EXIT_RETRAIN_RECOMMENDED
    printed = json.loads(capsys.readouterr().out)
    assert printed["retrain"] and set(printed) == set(RESULT_KEYS)
    assert (tmp_path / "out" / "drift_2026-07-01.html").is_file()
    assert cli_main([*base, "--batch", str(batches / "no_x2.csv")]) == EXIT_INVALID_INPUT
    assert "missing column(s) ['x2']" in capsys.readouterr().err  # from data.load_table
    assert cli_main(["--config", str(config), "--batch", str(batches / "fresh.csv"),
                     "--day", "2026-13-01"]) == EXIT_INVALID_INPUT
    assert cli_main([*base, "--batch", str(batches / "fresh.csv"), "--labels", "a.csv",
                     "--labels", "b.csv", "--predictions", "p.csv"]) == EXIT_INVALID_INPUT
    assert cli_main([*base, "--batch", str(batches / "fresh.csv"), "--set",
                     "drift.fdr_q=7"]) == EXIT_INVALID_INPUT
    assert "drift.fdr_q" in capsys.readouterr().err
    assert cli_main(["--batch", "x.csv"]) == EXIT_INVALID_INPUT  # --config is required
    assert cli_main(["--help"]) == EXIT_OK
    capsys.readouterr()
    profile_npz = Registry(cfg.registry.root).version_dir(1) / "reference_profile.npz"
    profile_npz.write_bytes(profile_npz.read_bytes() + b"\0")
    assert cli_main([*base, "--batch", str(batches / "fresh.csv")]) == EXIT_INTEGRITY
    assert "sha256" in capsys.readouterr().err


def test_cli_accepts_a_scored_and_labelled_file(trained, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _fresh_cfg(trained, tmp_path)
    model = Registry(cfg.registry.root).load_model()
    past = make_table(n=1000, seed=9)
    past["score"] = predict_scores(model, past[["x1", "x2", "cat", "merchant"]],
                                   "classification")
    past["ts"] = "2026-06-29"
    past.to_parquet(tmp_path / "scored.parquet")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**trained["raw"], "registry": {"root": cfg.registry.root}}))
    code = cli_main(["--config", str(config), "--batch", str(trained["batches"] / "fresh.csv"),
                     "--day", "2026-06-30", "--labels", str(tmp_path / "scored.parquet"),
                     "--json"])
    assert code == EXIT_OK
    perf = json.loads(capsys.readouterr().out)["concept_drift"]
    assert perf["status"] == "no_drift" and perf["n_labelled"] == 1000


def test_python_dash_m_wires_the_command(trained, tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = _fresh_cfg(trained, tmp_path)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**trained["raw"], "registry": {"root": cfg.registry.root}}))
    project = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "ml_lifecycle", "check-drift", "--config", str(config),
         "--batch", str(trained["batches"] / "harmful.csv"), "--day", "2026-07-01"],
        capture_output=True, text=True, cwd=project, timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(project / "include")},
    )
    assert proc.returncode == EXIT_RETRAIN_RECOMMENDED, proc.stderr
    assert "retrain RECOMMENDED" in proc.stdout
    frame = pd.read_json(Path(cfg.registry.root) / "monitoring" / "days" / "2026-07-01.json",
                         typ="series")
    assert frame["verdict"] == "drift"
