"""Full training runs on the real UCI Adult and Metro traffic data, through their configs only."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PROJECT_ROOT, SHARED_DATA
from ml_lifecycle.config import load_config
from ml_lifecycle.registry import Registry
from ml_lifecycle.train import run_training

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not present"),
]


def test_adult_trains_through_config_alone(tmp_path: Path) -> None:
    cfg = load_config(PROJECT_ROOT / "configs" / "adult.yaml",
                      [f"registry.root={tmp_path / 'reg'}"])
    result = run_training(cfg, reason="adult test")
    print("ADULT", {k: result["metrics"][k] for k in ("roc_auc", "pr_auc", "f1")},
          "stopping_iteration", result["stopping_iteration"])
    assert result["promoted"]
    assert result["metrics"]["roc_auc"]["value"] > 0.9
    assert result["metrics"]["pr_auc"]["value"] > 0.75
    assert result["rows_per_split"]["test"] == pytest.approx(0.2 * 32561, abs=2)
    assert result["stopping_iteration"] < cfg.model.max_iter  # early stopping did stop
    card = Registry(cfg.registry.root).get_card(1)
    assert card["data"]["target"]["positive_label"] == ">50K"
    assert 0.2 < card["data"]["target"]["positive_rate"] < 0.3
    assert not card["leakage_audit"]["target_leak_screen"]["suspects"]


def test_traffic_trains_through_config_alone(tmp_path: Path) -> None:
    cfg = load_config(PROJECT_ROOT / "examples" / "traffic.yaml",
                      [f"registry.root={tmp_path / 'reg'}"])
    result = run_training(cfg, reason="traffic test")
    print("TRAFFIC", result["metrics"], "stopping_iteration", result["stopping_iteration"])
    assert result["promoted"]
    assert result["metrics"]["r2"]["value"] > 0.8
    card = Registry(cfg.registry.root).get_card(1)
    assert card["leakage_audit"]["time_order_ok"] is True
    ranges = card["leakage_audit"]["time_ranges"]
    assert ranges["train"][1] < ranges["validation"][0] < ranges["test"][0]
    quality = Registry(cfg.registry.root).version_dir(1) / "quality_report.json"
    assert "temp" in quality.read_text()  # the 0 K sentinels are reported
