"""Backtest of retraining strategies: no future labels, determinism, no writes when never."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

import ml_lifecycle.drift.check as drift_check
import ml_lifecycle.train as train_module
from conftest import PROJECT_ROOT, SHARED_DATA, project_config_raw
from ml_lifecycle.backtest import cli_main, run_backtest
from ml_lifecycle.errors import DataError
from ml_lifecycle.simulate import simulate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bt")
    simulate(root / "data", days=6, seed=3, initial_rows=2500, rows_per_day=600,
             label_delay_days=2, shift_day=2, concept_day=4, harmless_day=1)
    raw = project_config_raw()
    raw["data"]["path"] = str(root / "data" / "train.csv")
    raw["lifecycle"].update(batches=str(root / "data" / "batches"),
                            labels=str(root / "data" / "labels"), label_delay_days=2)
    raw["evaluation"]["bootstrap"] = 20
    raw["evaluation"]["importance_repeats"] = 1
    raw["gate"]["bootstrap"] = 100
    raw["quality"]["min_rows"] = 100
    raw["policy"] = {"cooldown_days": 0}
    raw["registry"]["root"] = str(root / "unused-registry")
    path = root / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    manifest = json.loads((root / "data" / "manifest.json").read_text())
    arrival = {f["date"]: f["labels_available_on"] for f in manifest["files"]}
    return {"root": root, "config": str(path), "arrival": arrival}


def _day_of_id(root: Path) -> dict[str, str]:
    out = {}
    for f in sorted((root / "data" / "labels").glob("*.csv")):
        for line in f.read_text().splitlines()[1:]:
            out[line.split(",")[0]] = f.stem
    return out


def test_no_label_is_used_before_it_arrives(demo: dict[str, Any], monkeypatch) -> None:
    seen: list[tuple[str, str, list[str]]] = []
    real_train, real_check = train_module.run_training, drift_check.run_drift_check

    def spy_train(cfg, **kw):
        today = kw["now"].date().isoformat()
        seen.append(("train", today, kw["frame"]["order_id"].astype(str).tolist()))
        return real_train(cfg, **kw)

    def spy_check(cfg, **kw):
        labels = kw.get("labels")
        ids = [] if labels is None else labels["order_id"].astype(str).tolist()
        seen.append(("check", kw["day"], ids))
        return real_check(cfg, **kw)

    monkeypatch.setattr(train_module, "run_training", spy_train)
    monkeypatch.setattr(drift_check, "run_drift_check", spy_check)
    result = run_backtest(demo["config"], every=[1], strategies=["every_1", "performance"])
    day_of = _day_of_id(demo["root"])
    used_batch_labels = 0
    for kind, today, ids in seen:
        for row_id in ids:
            if row_id in day_of:  # a row of a daily batch (not of the original table)
                used_batch_labels += 1
                assert demo["arrival"][day_of[row_id]] <= today, (kind, today, row_id)
                assert day_of[row_id] < today
    assert used_batch_labels > 0  # the check is not vacuous: batch labels were used
    assert result["strategies"][0]["retrains"] == 6


def test_two_runs_with_the_same_seed_are_identical(demo: dict[str, Any]) -> None:
    a = run_backtest(demo["config"], every=[3], strategies=["every_3", "performance", "drift"])
    b = run_backtest(demo["config"], every=[3], strategies=["every_3", "performance", "drift"])
    for s in a["strategies"] + b["strategies"]:
        s.pop("compute_seconds")
    assert a["strategies"] == b["strategies"]
    # day 1 is a harmless shift (inputs drift, the model is not hurt): the performance-led
    # default does not reach the retrain severity there
    days = a["days"]["performance"]
    assert a["harmless_shift"] == [days[1]["day"], days[2]["day"]]
    harmless = days[1]
    assert harmless["severity"] in ("none", "low"), harmless
    assert not harmless["retrain"]
    performance = next(s for s in a["strategies"] if s["strategy"] == "performance")
    assert performance["harmless_retrains"] == 0
    strip = {"reasons"}
    for name in a["days"]:
        assert [{k: v for k, v in d.items() if k not in strip} for d in a["days"][name]] == \
            [{k: v for k, v in d.items() if k not in strip} for d in b["days"][name]]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_never_retrain_makes_no_registry_writes(demo: dict[str, Any], tmp_path: Path) -> None:
    result = run_backtest(demo["config"], strategies=["never"], work_dir=str(tmp_path),
                          report_dir=str(tmp_path / "report"))
    assert _tree(tmp_path / "never" / "registry") == _tree(tmp_path / "initial" / "registry")
    never = result["strategies"][0]
    assert never["retrains"] == 0 and never["days_with_labels"] > 0
    html = (tmp_path / "report" / "backtest.html").read_text()
    assert "<svg" in html and "never" in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not present")
def test_traffic_monthly_batches_through_config(tmp_path: Path) -> None:
    result = run_backtest(str(PROJECT_ROOT / "examples" / "traffic.yaml"), overrides=[
        f"registry.root={tmp_path / 'r'}", "backtest.max_batches=3", "evaluation.bootstrap=20",
    ], strategies=["never", "drift"])
    assert result["batches"] == 3 and result["first_day"] == "2014-01-01"
    assert result["metric"] == "rmse" and result["higher_is_better"] is False
    never = result["strategies"][0]
    assert never["days_with_labels"] == 2  # the third month's labels arrive after the horizon


def _markdown_table(text: str) -> list[dict[str, str]]:
    """The rows of the one markdown table in ``text``, by heading."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    head, rule, *rows = cells
    assert all(set(c) <= set("-:") for c in rule[0].split("|")), rule
    assert all(len(r) == len(head) for r in rows)
    return [dict(zip(head, r, strict=True)) for r in rows]


def test_markdown_table_has_the_command_and_the_json_figures(demo: dict[str, Any],
                                                             tmp_path: Path, capsys) -> None:
    out = tmp_path / "docs" / "backtest-x.md"
    argv = ["--config", demo["config"], "--set", "backtest.max_batches=3", "--every", "1",
            "--strategies", "never,every_1,performance", "--json", "--markdown", str(out)]
    assert cli_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    text = out.read_text()
    command = "python -m ml_lifecycle backtest " + shlex.join(argv)
    assert result["command"] == command
    assert text.splitlines()[0].startswith(f"<!-- generated by `{command}` on ")
    rows = _markdown_table(text)
    assert [r["strategy"] for r in rows] == [s["strategy"] for s in result["strategies"]]
    assert result["comparison"] and rows[1]["vs every_1 mean"] == "100.0%"
    for row, s in zip(rows, result["strategies"], strict=True):
        assert int(row["retrains"]) == s["retrains"]
        assert int(row["promoted"]) == s["promotions"]
        mean = row[f"mean {result['metric']}"]
        assert float(mean) == pytest.approx(s["mean_live_metric"], abs=5e-5)
        assert float(row["worst"]) == pytest.approx(s["worst_live_metric"], abs=5e-5)
        assert row["delay (days)"] == ",".join(
            "-" if v is None else str(v) for v in s["detection_delay_days"].values())
        assert int(row["harmless retrains"]) == s["harmless_retrains"]
        assert int(row["alerts"]) == s["alerts"]
        comp = result["comparison"].get(s["strategy"])
        if comp:
            assert float(row["vs every_1 mean"].rstrip("%")) == pytest.approx(
                100 * comp["metric_ratio"], abs=0.05)
            assert float(row["vs every_1 retrains"].rstrip("%")) == pytest.approx(
                100 * comp["retrain_share"], abs=0.5)
            assert f"* {s['strategy']} vs retraining every batch: " in text


def test_no_markdown_is_written_when_the_backtest_fails(demo: dict[str, Any],
                                                        tmp_path: Path) -> None:
    out = tmp_path / "backtest-x.md"
    empty = tmp_path / "no-batches"
    empty.mkdir()
    with pytest.raises(DataError, match="no-batches"):
        cli_main(["--config", demo["config"], "--batches", str(empty), "--markdown", str(out)])
    assert not out.exists() and list(tmp_path.iterdir()) == [empty]
