"""Models that cannot run code on load: the skops format with an allowlist, joblib as an opt-in.

* every built-in family is stored as ``model.skops`` and, loaded back without any opt-in,
  reproduces the test metric its card records (same rows, same scores);
* a pickle planted as a version's model is never unpickled without the config's opt-in (a
  pickle whose loading would create a file proves it: the file is never created);
* a skops file naming a type outside the allowlist is refused before anything is built;
* a model that holds such a type is refused at training time with the opt-in named, and the
  registry is left as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import make_config_dict, make_table
from ml_lifecycle import model_format
from ml_lifecycle.config import config_from_dict
from ml_lifecycle.errors import IntegrityError, ModelFormatError
from ml_lifecycle.metrics import compute_metric
from ml_lifecycle.registry import Registry
from ml_lifecycle.train import run_training

pytestmark = pytest.mark.integration

FAMILIES = [("classification", "hist_gradient_boosting"), ("classification", "logistic_regression"),
            ("classification", "sgd"), ("regression", "hist_gradient_boosting"),
            ("regression", "ridge"), ("regression", "lasso"), ("regression", "sgd")]


def config_for(tmp_path: Path, task: str, family: str, **registry: Any) -> Any:
    table = make_table(1500)
    if task == "regression":
        table["label"] = table["x1"] * 2 + table["x2"].fillna(5)
    path = tmp_path / f"{task}.csv"
    table.to_csv(path, index=False)
    raw = make_config_dict(str(path), str(tmp_path / f"registry-{task}-{family}"))
    raw["task"], raw["model"]["family"] = task, family
    raw["registry"].update(registry)
    if task == "regression":
        raw["data"].pop("positive_label")
        raw["split"]["strategy"] = "random"
        raw["gate"] = {"floors": {}, "bootstrap": 50}
    return config_from_dict(raw)


class Boom:
    """Unpickling this creates a file: the proof that a pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, ...]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(("task", "family"), FAMILIES)
def test_every_built_in_family_round_trips_in_the_safe_format(tmp_path: Path, task: str,
                                                              family: str) -> None:
    cfg = config_for(tmp_path, task, family)
    result = run_training(cfg, reason="safe format", promote=False)
    registry = Registry(cfg.registry.root)
    card = registry.get_card(result["version"])
    assert card["model_format"] == "skops" and card["model_file"] == "model.skops"
    assert "model.joblib" not in card["artifacts"]
    assert not any(name.endswith(".joblib") for name in card["artifacts"])
    model = registry.load_model(result["version"])  # no opt-in needed
    split = pd.read_parquet(registry.version_dir(result["version"]) / "split_assignment.parquet")
    table = pd.read_csv(cfg.data.path)
    test = table.iloc[split.loc[split["split"] == "test", "position"].to_numpy()]
    x = test[cfg.data.features.all]
    if task == "classification":
        scores = model.predict_proba(x)[:, 1]
        y = test[cfg.data.target].to_numpy()
    else:
        scores = model.predict(x)
        y = test[cfg.data.target].to_numpy(dtype=float)
    metric = card["primary_metric"]
    value = compute_metric(task, metric, np.asarray(y, dtype=float), scores,
                           float(card.get("threshold") or 0.5))
    assert value == pytest.approx(card["metrics"][metric]["value"], abs=1e-9)


def _plant(registry: Registry, version: int, name: str, data: bytes, fmt: str) -> None:
    """Replace a version's model with ``data`` and rewrite its card consistently (what an
    attacker who can write the registry folder can do)."""
    folder = registry.version_dir(version)
    (folder / name).write_bytes(data)
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text())
    card["model_file"], card["model_format"] = name, fmt
    card["artifacts"][name] = hashlib.sha256(data).hexdigest()
    card_path.write_text(json.dumps(card))
    history = folder.parents[1] / "history.jsonl"
    if history.is_file():  # the promotion recorded the card's hash: rewrite that too
        events = [json.loads(line) for line in history.read_text().splitlines() if line]
        for event in events:
            if event.get("version") == version and "card_sha256" in event:
                event["card_sha256"] = hashlib.sha256(card_path.read_bytes()).hexdigest()
        history.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_a_planted_pickle_is_never_loaded(tmp_path: Path) -> None:
    cfg = config_for(tmp_path, "classification", "logistic_regression")
    run_training(cfg, reason="first")
    registry = Registry(cfg.registry.root)
    marker = tmp_path / "code-ran"
    _plant(registry, 1, "model.joblib", pickle.dumps(Boom(str(marker))), "joblib")
    with pytest.raises(ModelFormatError, match=r"model\.joblib is a pickle .* "
                                               r"registry\.model_format: joblib"):
        registry.load_model(1)
    with pytest.raises(ModelFormatError):
        registry.load_model()  # the champion, as scoring and the drift check load it
    assert not marker.exists()


def test_a_skops_file_with_an_untrusted_type_is_refused(tmp_path: Path) -> None:
    import skops.io as sio

    cfg = config_for(tmp_path, "classification", "logistic_regression")
    run_training(cfg, reason="first")
    registry = Registry(cfg.registry.root)
    marker = tmp_path / "code-ran"
    _plant(registry, 1, "model.skops", sio.dumps({"model": Boom(str(marker))}), "skops")
    with pytest.raises(IntegrityError, match=r"types outside the trusted list: .*Boom"):
        registry.load_model(1)
    assert not marker.exists()


class Doubler:
    """A custom estimator the safe format does not know."""

    def fit(self, x: Any, y: Any) -> Doubler:
        return self

    def predict(self, x: Any) -> Any:
        return np.asarray(x, dtype=float) * 2


def test_a_model_outside_the_allowlist_needs_the_opt_in(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    staging = registry.stage()
    with pytest.raises(ModelFormatError, match=r"does not trust: .*Doubler.*"
                                               r"registry\.model_format: joblib"):
        registry.save_model(staging, Doubler())
    registry.discard(staging)
    assert registry.list_versions() == []
    # the opt-in stores it as a pickle, and loads it only when asked to
    staging = registry.stage()
    registry.save_model(staging, Doubler(), fmt="joblib")
    version = registry.register(staging, {"threshold": 0.5}, model_file="model.joblib")
    assert registry.get_card(version)["model_format"] == "joblib"
    with pytest.raises(ModelFormatError):
        registry.load_model(version)
    loaded = registry.load_model(version, allow_pickle=True)
    assert list(loaded.predict([1.0, 2.0])) == [2.0, 4.0]
    assert model_format.pickles_allowed(config_for(tmp_path, "classification", "sgd",
                                                   model_format="joblib"))


# --------------------------------------------------------------------------- signed versions

KEY_A = "key-a:" + "a" * 40
KEY_B = "key-b:" + "b" * 40


def test_a_model_swapped_with_a_consistent_card_is_refused_when_signed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_LIFECYCLE_SIGNING_KEY", KEY_A)
    cfg = config_for(tmp_path, "classification", "logistic_regression")
    run_training(cfg, reason="signed")
    (tmp_path / "other").mkdir()
    other = config_for(tmp_path / "other", "classification", "sgd")
    run_training(other, reason="another model")
    registry = Registry(cfg.registry.root)
    card = registry.get_card(1)
    assert card["signature"]["key_id"] == "key-a" and len(card["signature"]["hmac"]) == 64
    registry.load_model(1)  # verifies
    # an attacker swaps in another (valid, safe-format) model and rewrites card and history
    swapped = (Registry(other.registry.root).version_dir(1) / "model.skops").read_bytes()
    _plant(registry, 1, "model.skops", swapped, "skops")
    with pytest.raises(IntegrityError, match="signature does not match"):
        registry.load_model(1)
    with pytest.raises(IntegrityError, match="signature does not match"):
        registry.load_model()


def test_keys_rotate_and_unsigned_versions_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config_for(tmp_path, "classification", "logistic_regression")
    run_training(cfg, reason="before signing", promote=False)  # v1: unsigned, not serving
    monkeypatch.setenv("ML_LIFECYCLE_SIGNING_KEY", KEY_A)
    registry = Registry(cfg.registry.root)
    with pytest.raises(IntegrityError, match="is not signed"):
        registry.load_model(1)
    run_training(cfg, reason="signed with a")  # v2: key-a
    monkeypatch.setenv("ML_LIFECYCLE_SIGNING_KEY", KEY_B)
    monkeypatch.setenv("ML_LIFECYCLE_SIGNING_OLD_KEYS", KEY_A)
    registry.load_model(2)  # the old key still verifies
    run_training(cfg, reason="signed with b")  # v3: key-b
    assert registry.get_card(3)["signature"]["key_id"] == "key-b"
    monkeypatch.delenv("ML_LIFECYCLE_SIGNING_OLD_KEYS")
    registry.load_model(3)
    with pytest.raises(IntegrityError, match="key 'key-a', which is not a valid key"):
        registry.load_model(2)


@pytest.mark.parametrize("value", ["nocolon", "id:short", "bad id!:" + "x" * 40, ":" + "x" * 40])
def test_a_malformed_signing_key_is_a_clear_error_without_the_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from ml_lifecycle.errors import ConfigError

    cfg = config_for(tmp_path, "classification", "logistic_regression")
    run_training(cfg, reason="unsigned")
    monkeypatch.setenv("ML_LIFECYCLE_SIGNING_KEY", value)
    with pytest.raises(ConfigError, match="ML_LIFECYCLE_SIGNING_KEY: expected") as info:
        Registry(cfg.registry.root).load_model(1)
    assert value.split(":")[-1] not in str(info.value) or len(value.split(":")[-1]) < 4
    with pytest.raises(ConfigError):
        run_training(cfg, reason="cannot sign")
    assert [c["version"] for c in Registry(cfg.registry.root).list_versions()] == [1]


@pytest.mark.airflow
def test_the_signing_key_can_come_from_an_airflow_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_lifecycle.errors import ConfigError
    from ml_lifecycle_airflow import settings

    for name in ("ML_LIFECYCLE_SIGNING_KEY", "ML_LIFECYCLE_SIGNING_OLD_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setattr(settings, "_signing_looked_up", set())
    monkeypatch.setenv("AIRFLOW_CONN_ML_LIFECYCLE_SIGNING", json.dumps({
        "conn_type": "generic", "login": "key-c", "password": "c" * 40,
        "extra": {"old_keys": [KEY_A]}}))
    assert settings.export_signing_keys() is True
    assert os.environ["ML_LIFECYCLE_SIGNING_KEY"] == "key-c:" + "c" * 40
    assert os.environ["ML_LIFECYCLE_SIGNING_OLD_KEYS"] == KEY_A
    cfg = config_for(tmp_path, "classification", "logistic_regression")
    run_training(cfg, reason="signed through the connection")
    assert Registry(cfg.registry.root).get_card(1)["signature"]["key_id"] == "key-c"
    # a named connection that does not exist is a clear error, not silently unsigned
    monkeypatch.delenv("ML_LIFECYCLE_SIGNING_KEY")
    monkeypatch.setenv("ML_LIFECYCLE_SIGNING_CONN_ID", "no_such_connection")
    with pytest.raises(ConfigError, match="ML_LIFECYCLE_SIGNING_CONN_ID=no_such_connection"):
        settings.export_signing_keys()
