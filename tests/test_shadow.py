"""Shadow scoring by the replaced champion and automatic rollback on live labels (no Airflow).

A good champion v1 is replaced by v2, a model trained on shuffled labels (what a hasty manual
promotion can put in production). The previous champion keeps scoring in the shadow; once the
labels of those days arrive, the paired comparison on the same rows shows v2 worse and, with
``policy.auto_rollback``, v1 is the champion again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import project_config_raw
from ml_lifecycle import lifecycle, shadow
from ml_lifecycle.config import Config, apply_overrides, config_from_dict
from ml_lifecycle.errors import RegistryError
from ml_lifecycle.registry import Registry
from ml_lifecycle.simulate import simulate

START = "2026-03-01"
DAYS = [f"2026-03-0{i}" for i in range(1, 7)]
FAST = ["model.max_iter=60", "model.patience=5", "evaluation.bootstrap=20",
        "evaluation.importance_repeats=1", "gate.bootstrap=100", "quality.min_rows=100"]


def make_config(base: Path, *overrides: str) -> Config:
    raw = apply_overrides(project_config_raw(), [*FAST, *overrides])
    return config_from_dict(raw, source="demo.yaml", base=base)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six simulated days (labels 3 days late), a good v1 and a v2 trained on shuffled labels,
    registered but not promoted."""
    from ml_lifecycle.train import run_training

    base = tmp_path_factory.mktemp("shadow")
    simulate(base / "var/demo/data", days=6, seed=4, start_date=START, initial_rows=2000,
             rows_per_day=400, label_delay_days=3, shift_day=99, concept_day=99)
    cfg = make_config(base)
    assert run_training(cfg, reason="good", trigger={"as_of": "2026-02-28"})["promoted"]
    train = pd.read_csv(cfg.data.path)
    train[cfg.data.target] = train[cfg.data.target].sample(frac=1.0, random_state=0).to_numpy()
    noise = base / "var/demo/data/shuffled.csv"
    train.to_csv(noise, index=False)
    bad = run_training(make_config(base, f"data.path={noise}", "gate.floors={}",
                                   "gate.baseline_margin=0", "gate.champion_tolerance=1"),
                       reason="hasty", trigger={"as_of": "2026-02-28"}, promote=False)
    assert bad["version"] == 2
    return base


@pytest.fixture
def world(pristine: Path, tmp_path: Path) -> Path:
    base = tmp_path / "world"
    shutil.copytree(pristine, base, symlinks=True)
    return base


def replay(cfg: Config, registry: Registry, days: list[str]) -> list[Any]:
    """What the scoring DAG does each day: the champion scores, the shadow scores too."""
    out = []
    for day in days:
        lifecycle.score_batch(cfg, day, registry=registry)
        out.append(shadow.score_shadow(cfg, day, registry))
    return out


def test_no_shadow_without_a_replaced_champion(world: Path) -> None:
    cfg = make_config(world)
    registry = Registry(cfg.registry.root)
    assert shadow.shadow_pair(registry) is None
    assert replay(cfg, registry, DAYS[:1]) == [None]
    assert shadow.compare_shadow(cfg, DAYS[-1], registry) is None
    assert shadow.maybe_rollback(cfg, DAYS[-1], registry) is None
    assert registry.champion() == 1


def test_a_worse_champion_is_rolled_back_on_live_labels(world: Path) -> None:
    cfg = make_config(world, "policy.auto_rollback=true", "policy.shadow_days=3",
                      "policy.rollback_min_rows=1000")
    registry = Registry(cfg.registry.root)
    registry.promote(2, reason="hasty manual promotion", actor="test")
    shadows = replay(cfg, registry, DAYS[:4])
    assert [s["model_version"] if s else None for s in shadows] == [1, 1, 1, None]  # 3 days
    folder = shadow.shadow_folder(cfg, (2, 1))
    assert sorted(p.name for p in folder.glob("*.csv")) == [f"{d}.csv" for d in DAYS[:3]]
    champion_day = pd.read_csv(lifecycle.predictions_path(cfg, DAYS[0]))
    shadow_day = pd.read_csv(folder / f"{DAYS[0]}.csv")
    assert set(champion_day["model_version"]) == {2} and set(shadow_day["model_version"]) == {1}
    assert list(shadow_day["order_id"]) == list(champion_day["order_id"])

    # As of day 4 only the labels of day 1 have arrived (3 days late): 400 rows < 1000.
    early = shadow.maybe_rollback(cfg, DAYS[3], registry)
    assert early["days"] == DAYS[:1] and early["rows"] == 400 and early["difference"] < 0
    assert early["worse"] is False and early["rolled_back"] is False
    assert registry.champion() == 2

    late = shadow.maybe_rollback(cfg, DAYS[5], registry, actor="auto-rollback:test")
    assert late["days"] == DAYS[:3] and late["rows"] == 1200
    assert late["difference"] < -0.1 and late["high"] < 0
    assert late["worse"] and late["rolled_back"]
    assert registry.champion() == 1
    events = [(e["event"], e["version"]) for e in registry.history()]
    assert events == [("promote", 1), ("promote", 2), ("rollback", 1)]
    assert registry.history()[-1]["actor"] == "auto-rollback:test"
    assert registry.history()[-1]["reason"].startswith(
        f"automatic rollback ({DAYS[5]}): on 1200 labelled rows")
    # the shadow period ended with the rollback: nothing more to compare or undo
    assert shadow.maybe_rollback(cfg, DAYS[5], registry) is None


def test_without_auto_rollback_the_evidence_is_reported_only(world: Path) -> None:
    cfg = make_config(world, "policy.shadow_days=3", "policy.auto_rollback=false")
    registry = Registry(cfg.registry.root)
    registry.promote(2, reason="hasty manual promotion", actor="test")
    replay(cfg, registry, DAYS[:3])
    result = shadow.maybe_rollback(cfg, DAYS[5], registry)
    assert result["worse"] and not result["rolled_back"]
    assert registry.champion() == 2


def test_an_equally_good_champion_is_kept(world: Path) -> None:
    from ml_lifecycle.train import run_training

    cfg = make_config(world, "policy.auto_rollback=true", "policy.shadow_days=3")
    registry = Registry(cfg.registry.root)
    again = run_training(make_config(world, "seed=7", "model.seed=7", "gate.champion_tolerance=1"),
                         reason="retrain", trigger={"as_of": "2026-02-28"}, promote=False)
    registry.promote(again["version"], reason="retrain", actor="test")
    replay(cfg, registry, DAYS[:3])
    result = shadow.maybe_rollback(cfg, DAYS[5], registry)
    assert result["rows"] == 1200 and not result["worse"] and not result["rolled_back"]
    assert abs(result["difference"]) < 0.05
    assert registry.champion() == again["version"]


def test_a_rollback_is_a_compare_and_swap(world: Path) -> None:
    cfg = make_config(world, "policy.auto_rollback=true", "policy.shadow_days=3")
    registry = Registry(cfg.registry.root)
    registry.promote(2, reason="hasty", actor="test")
    replay(cfg, registry, DAYS[:3])

    class Moved(Registry):
        def champion(self) -> int | None:  # someone promoted meanwhile
            return 99

    with pytest.raises(RegistryError, match="no longer the champion"):
        shadow.maybe_rollback(cfg, DAYS[5], Moved(cfg.registry.root))
    assert registry.champion() == 2
