"""The DAG factory: one DAG set per model config, isolated models, clear errors per config.

Discovery (``settings.discover``) is pure Python and tested in-process; what Airflow makes of
the DAG file (ids, assets, trigger targets, stand-in DAGs, import errors) is inspected in a
subprocess with a temporary ``AIRFLOW_HOME`` and a temporary configs folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import PROJECT_ROOT, make_config_dict
from ml_lifecycle.errors import ConfigError
from ml_lifecycle_airflow import settings
from ml_lifecycle_airflow.dagtest import airflow_env

INSPECT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {},
       "heavy": [m for m in ("pandas", "sklearn", "scipy") if m in sys.modules]}
for dag in bag.dags.values():
    tasks = {}
    for t in dag.tasks:
        tasks[t.task_id] = {
            "outlets": sorted(a.name for a in (t.outlets or [])),
            "config_file": getattr(t, "config_file", None),
            "trigger_dag_id": getattr(t, "trigger_dag_id", None),
        }
    out["dags"][dag.dag_id] = {"tags": sorted(dag.tags), "doc_md": dag.doc_md,
                               "description": dag.description, "tasks": tasks}
print(json.dumps(out))
"""


def write_config(folder: Path, stem: str, name: str, **overrides: Any) -> Path:
    """A valid config named ``name`` with its own registry and outputs under ``folder``;
    its data file does not exist (parsing must not read data)."""
    root = folder.parent / "var" / stem
    lifecycle = {k: str(root / k)
                 for k in ("batches", "labels", "predictions", "reports", "alerts")}
    raw = make_config_dict(str(root / "train.csv"), str(root / "registry"), name=name,
                           lifecycle=lifecycle, **overrides)
    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def parse(configs: Path, tmp_path: Path) -> dict[str, Any]:
    env = airflow_env(tmp_path / "home", PROJECT_ROOT, {settings.CONFIGS_ENV: str(configs)})
    env.pop(settings.CONFIG_ENV, None)
    proc = subprocess.run([sys.executable, "-c", INSPECT, str(PROJECT_ROOT / "dags")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "configs"
    folder.mkdir()
    monkeypatch.delenv(settings.CONFIG_ENV, raising=False)
    monkeypatch.delenv(settings.BASE_DIR_ENV, raising=False)
    monkeypatch.setenv(settings.CONFIGS_ENV, str(folder))
    return folder


# --------------------------------------------------------------------------- discovery


def test_every_config_of_the_folder_is_a_model(configs: Path) -> None:
    for stem in ("b", "a", "c"):
        write_config(configs, stem, f"model_{stem}")
    (configs / "notes.txt").write_text("not a config")
    (configs / ".hidden.yaml").write_text("task: [")
    specs, broken = settings.discover()
    assert [s.name for s in specs] == ["model_a", "model_b", "model_c"]
    assert broken == []
    assert specs[0].config_file == str(configs / "a.yaml")


def test_single_config_variable_restricts_to_one_model(
        configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(configs, "a", "model_a")
    only = write_config(configs, "b", "model_b")
    monkeypatch.setenv(settings.CONFIG_ENV, str(only))
    specs, _ = settings.discover()
    assert [s.name for s in specs] == ["model_b"]


def test_same_name_is_refused_naming_both_files(configs: Path) -> None:
    first = write_config(configs, "first", "churn")
    second = write_config(configs, "second", "churn")
    write_config(configs, "third", "fraud")
    specs, broken = settings.discover()
    assert [s.name for s in specs] == ["fraud"]
    assert {b.config_file for b in broken} == {str(first), str(second)}
    for item in broken:
        assert str(first) in item.error and str(second) in item.error
        assert "name 'churn'" in item.error


def test_a_shared_registry_or_output_folder_is_refused(configs: Path) -> None:
    shared = str(configs.parent / "shared-registry")
    write_config(configs, "a", "model_a", registry__root=shared)
    write_config(configs, "b", "model_b", registry__root=shared)
    write_config(configs, "c", "model_c")
    write_config(configs, "d", "model_d", lifecycle__reports=str(configs.parent / "var/c/reports"))
    specs, broken = settings.discover()
    assert [s.name for s in specs] == []  # c and d share reports, a and b the registry
    errors = " ".join(b.error for b in broken)
    assert "registry.root" in errors and "lifecycle.reports" in errors


@pytest.mark.parametrize("name", ["has space", "a__b", "slash/name", "x" * 201, "caf\u00e9"])
def test_a_name_that_cannot_be_part_of_a_dag_id_is_refused(configs: Path, name: str) -> None:
    path = write_config(configs, "bad", name)
    write_config(configs, "good", "good")
    specs, broken = settings.discover()
    assert [s.name for s in specs] == ["good"]
    [item] = broken
    assert str(path) in item.error and "cannot be part of a DAG id" in item.error


def test_the_configs_folder_itself_must_be_usable(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.CONFIG_ENV, raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no config here")
    monkeypatch.setenv(settings.CONFIGS_ENV, str(empty))
    with pytest.raises(ConfigError, match=r"empty' holds no model config"):
        settings.discover()
    monkeypatch.setenv(settings.CONFIGS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"nowhere' does not exist or is not a folder"):
        settings.discover()
    monkeypatch.setenv(settings.CONFIGS_ENV, str(empty))

    def refuse(self: Path) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", refuse)  # root ignores chmod: refuse the listing
    with pytest.raises(ConfigError, match=r"empty' cannot be read: Permission denied"):
        settings.discover()


def test_relative_paths_resolve_against_the_config_file_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml_lifecycle.config import load_config

    monkeypatch.delenv(settings.BASE_DIR_ENV, raising=False)
    project = tmp_path / "proj"
    (project / "configs").mkdir(parents=True)
    raw = make_config_dict("../data/train.csv", "../var/registry", name="m")
    (project / "configs" / "m.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)  # not the project: the answer must not depend on it
    cfg = load_config(Path("proj/configs/m.yaml"))
    assert cfg.registry.root == str(project / "var" / "registry")
    assert cfg.data.path == str(project / "data" / "train.csv")
    assert cfg.lifecycle.alerts == str(project / "configs" / "var" / "m" / "alerts")
    monkeypatch.setenv(settings.BASE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert load_config(Path("proj/configs/m.yaml")).registry.root == str(
        tmp_path / "var" / "registry")  # the override wins: elsewhere/../var/registry


# --------------------------------------------------------------------------- Airflow


@pytest.mark.airflow
def test_n_configs_give_3n_isolated_dags(configs: Path, tmp_path: Path) -> None:
    names = ["churn", "fraud", "eta"]
    files = {name: write_config(configs, name, name) for name in names}
    out = parse(configs, tmp_path)
    assert out["import_errors"] == {} and out["heavy"] == []
    expected = {f"{n}__{k}" for n in names for k in ("training", "scoring", "drift_check")}
    assert set(out["dags"]) == expected
    assets: dict[str, str] = {}
    for dag_id, dag in out["dags"].items():
        model = dag_id.split("__")[0]
        assert model in dag["tags"] and model in dag["doc_md"]
        for task_id, task in dag["tasks"].items():
            if task["config_file"] is not None:  # sensors: the model's own config only
                assert task["config_file"] == str(files[model]), (dag_id, task_id)
            for asset in task["outlets"]:
                assert asset.startswith(f"ml_lifecycle__{model}__"), asset
                assert assets.setdefault(asset, dag_id) == dag_id, "an asset is shared"
            if task["trigger_dag_id"] is not None:  # the drift check triggers its own training
                assert task["trigger_dag_id"] == f"{model}__training"
    assert len(assets) == 3 * len(names)  # champion, predictions, drift verdict per model


@pytest.mark.airflow
def test_a_broken_config_does_not_hide_the_other_models(configs: Path, tmp_path: Path) -> None:
    write_config(configs, "good", "good")
    broken = configs / "broken.yaml"
    broken.write_text("task: classification\nname: broken\nmodle: {}\n")
    out = parse(configs, tmp_path)
    assert out["import_errors"] == {}
    assert {"good__training", "good__scoring", "good__drift_check"} <= set(out["dags"])
    stand_in = out["dags"]["broken__config_error"]
    assert str(broken) in stand_in["doc_md"] and "modle" in stand_in["doc_md"]
    assert "unknown key" in stand_in["doc_md"]
    assert "config-error" in stand_in["tags"] and list(stand_in["tasks"]) == ["config_error"]
    assert len(out["dags"]) == 4


@pytest.mark.airflow
def test_an_empty_configs_folder_is_an_import_error_naming_it(configs: Path,
                                                              tmp_path: Path) -> None:
    out = parse(configs, tmp_path)
    assert out["dags"] == {}
    [(path, error)] = out["import_errors"].items()
    assert path.endswith("ml_lifecycle.py")
    assert str(configs) in error and "holds no model config" in error


@pytest.mark.airflow
def test_approval_mode_adds_the_approval_step_to_that_model_only(configs: Path,
                                                                 tmp_path: Path) -> None:
    write_config(configs, "auto", "auto")
    write_config(configs, "asked", "asked", promotion={"mode": "approval",
                                                       "approval_timeout_hours": 2})
    out = parse(configs, tmp_path)
    assert out["import_errors"] == {}
    asked = out["dags"]["asked__training"]["tasks"]
    assert {"await_approval", "not_approved", "promote", "reject"} <= set(asked)
    assert "await_approval" not in out["dags"]["auto__training"]["tasks"]
    assert "not_approved" not in out["dags"]["auto__training"]["tasks"]
