"""Config loading, validation messages and --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PROJECT_ROOT, make_config_dict
from ml_lifecycle.config import apply_overrides, config_from_dict, load_config, parse_override
from ml_lifecycle.errors import ConfigError

EXAMPLES = ["demo.yaml", "adult.yaml", "traffic.yaml"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_configs_validate(name: str) -> None:
    folder = PROJECT_ROOT / ("examples" if name == "traffic.yaml" else "configs")
    cfg = load_config(folder / name)
    assert Path(cfg.registry.root).is_absolute()
    assert cfg.data.target not in cfg.data.features.all


def test_set_overrides_parse_yaml_values(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text((PROJECT_ROOT / "configs" / "adult.yaml").read_text())
    cfg = load_config(path, [
        "data.path=/x.csv", "registry.root=/tmp/r", "evaluation.slices=[sex, race, age]",
        "model.max_iter=7", "gate.floors.roc_auc=0.5",
    ])
    assert cfg.data.path == "/x.csv"
    assert cfg.registry.root == "/tmp/r"
    assert cfg.evaluation.slices == ["sex", "race", "age"]
    assert cfg.model.max_iter == 7
    assert cfg.gate.floors["roc_auc"] == 0.5


def test_error_names_key_value_and_expectation(tmp_path: Path) -> None:
    raw = make_config_dict("x.csv", "r")
    raw["split"]["train"] = 0
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    msg = str(err.value)
    assert "split.train" in msg and "found 0" in msg and "greater than 0" in msg


def test_unknown_key_refused() -> None:
    raw = make_config_dict("x.csv", "r")
    raw["model"]["famliy"] = "ridge"
    with pytest.raises(ConfigError, match=r"model\.famliy: unknown key"):
        config_from_dict(raw)


def test_unknown_model_family_refused() -> None:
    raw = make_config_dict("x.csv", "r")
    raw["model"]["family"] = "xgboost"
    with pytest.raises(ConfigError, match=r"model\.family: found 'xgboost'"):
        config_from_dict(raw)


@pytest.mark.parametrize("key", ["data.path", "data.target", "split.strategy", "registry.root",
                                 "task", "data.features"])
def test_required_keys(key: str) -> None:
    raw = make_config_dict("x.csv", "r")
    section, _, leaf = key.rpartition(".")
    node = raw[section] if section else raw
    del node[leaf]
    with pytest.raises(ConfigError, match=f"{key}: required key is missing"):
        config_from_dict(raw)


def test_cross_field_rules() -> None:
    raw = make_config_dict("x.csv", "r")
    raw["split"]["strategy"] = "time"
    raw["data"]["time_column"] = None
    with pytest.raises(ConfigError, match="time_column"):
        config_from_dict(raw)
    raw = make_config_dict("x.csv", "r")
    raw["model"]["family"] = "ridge"
    with pytest.raises(ConfigError, match="needs task 'regression'"):
        config_from_dict(raw)


def test_malformed_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(empty)


@pytest.mark.parametrize("item", ["novalue", "=3", "a..b=1", "data.path=[unclosed"])
def test_bad_overrides(item: str) -> None:
    with pytest.raises(ConfigError):
        parse_override(item)


def test_override_into_scalar_is_refused() -> None:
    with pytest.raises(ConfigError, match="is a value"):
        apply_overrides({"task": "classification"}, ["task.x=1"])


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_override_text_gives_config_error_or_valid_config(text: str) -> None:
    raw = make_config_dict("x.csv", "r")
    try:
        config_from_dict(apply_overrides(raw, [text]))
    except ConfigError:
        pass  # a clear, expected error; anything else (a bare exception) fails the test
