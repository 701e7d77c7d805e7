"""MLflow export (``tracking.mlflow``) against a real MLflow: a SQLite tracking store in a temp
folder, and once a real ``mlflow server`` process on a free port.

MLflow's client is the ``mlflow`` extra (``requirements-mlflow.txt``), kept out of the Airflow
venv; ``make test-mlflow`` (part of ``make test``) runs this file in ``.venv-mlflow`` and starts
the server from ``.venv-mlflow-server`` (``ML_LIFECYCLE_MLFLOW_SERVER`` names its ``mlflow``
command). In a venv without MLflow the file is skipped, with that reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed here; "
                                              "make test-mlflow runs this file in .venv-mlflow")

from conftest import make_config_dict, make_table  # noqa: E402
from ml_lifecycle.cli import main  # noqa: E402
from ml_lifecycle.config import ConfigError, config_from_dict, load_config  # noqa: E402
from ml_lifecycle.registry import Registry  # noqa: E402
from ml_lifecycle.train import run_training  # noqa: E402

FEATURES = ["x1", "x2", "cat", "merchant"]


def write_config(tmp_path: Path, uri: str, **tracking: Any) -> Path:
    make_table(n=1500).to_csv(tmp_path / "train.csv", index=False)
    raw = make_config_dict(str(tmp_path / "train.csv"), str(tmp_path / "registry"),
                           name="churn")
    raw["gate"]["champion_tolerance"] = 0.5  # a retrain on the same data is promoted
    raw["tracking"] = {"mlflow": {"tracking_uri": uri, **tracking}}
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def client(uri: str) -> Any:
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri)


def champion_alias(uri: str, name: str = "churn") -> tuple[int, str]:
    mv = client(uri).get_model_version_by_alias(name, "champion")
    return int(mv.version), mv.tags.get("ml_lifecycle.version")


def check_a_lifecycle(tmp_path: Path, uri: str) -> None:
    """Train (promoted), retrain (promoted), roll back: the run, the versions and the alias."""
    config = write_config(tmp_path, uri)
    assert main(["train", "--config", str(config)]) == 0
    cfg = load_config(config)
    registry = Registry(cfg.registry.root)
    card = registry.get_card(1)
    logged = card["tracking"]["mlflow"]
    assert logged["status"] == "logged", logged

    c = client(uri)
    run = c.get_run(logged["run_id"])
    assert run.data.params["family"] == "hist_gradient_boosting"
    assert run.data.params["split_seed"] == "42"
    for metric in ("roc_auc", "pr_auc"):
        value = card["metrics"][metric]
        assert run.data.metrics[f"test_{metric}"] == pytest.approx(value["value"])
        assert run.data.metrics[f"test_{metric}_low"] == pytest.approx(value["low"])
        assert run.data.metrics[f"test_{metric}_high"] == pytest.approx(value["high"])
    assert run.data.metrics["gate_passed"] == 1.0
    assert run.data.tags["ml_lifecycle.version"] == "1"
    artifacts = {a.path for a in c.list_artifacts(logged["run_id"])}
    assert {"model_card.json", "gate.json", "quality_report.json"} <= artifacts

    mv = c.get_model_version("churn", "1")
    assert mv.tags["ml_lifecycle.version"] == "1" and mv.run_id == logged["run_id"]
    info = mlflow.models.get_model_info("models:/churn/1")
    inputs = [i["name"] for i in info.signature.inputs.to_dict()]
    assert inputs == FEATURES  # the signature names the input features
    assert champion_alias(uri) == (1, "1")

    # the MLflow champion predicts what the package's champion predicts on the same rows
    rows = make_table(n=200, seed=3)[FEATURES]
    served = mlflow.pyfunc.load_model("models:/churn@champion").predict(rows)
    ours = registry.load_model(registry.champion()).predict_proba(rows)
    np.testing.assert_allclose(np.asarray(served, dtype=float), ours, atol=1e-12)

    assert main(["train", "--config", str(config), "--reason", "retrain"]) == 0
    assert registry.champion() == 2 and champion_alias(uri) == (2, "2")
    assert main(["models", "rollback", "--config", str(config), "--reason", "worse"]) == 0
    assert registry.champion() == 1 and champion_alias(uri) == (1, "1")
    assert main(["models", "promote", "2", "--config", str(config)]) == 0
    assert champion_alias(uri) == (2, "2")


def test_a_sqlite_tracking_store_gets_runs_versions_and_the_champion_alias(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # run from another folder, as a worker does: artifacts go beside the database, never into
    # the working directory (MLflow's own default for a SQLite store is ./mlruns)
    workdir = tmp_path / "worker-cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    check_a_lifecycle(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert list(workdir.iterdir()) == []
    stored = {p.name for p in (tmp_path / "mlruns").rglob("*") if p.is_file()}
    assert {"model_card.json", "gate.json", "MLmodel"} <= stored


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_real_mlflow_server_gets_the_same(tmp_path: Path) -> None:
    import urllib.request

    command = os.environ.get("ML_LIFECYCLE_MLFLOW_SERVER")
    if not command:
        pytest.skip("ML_LIFECYCLE_MLFLOW_SERVER (the mlflow command of .venv-mlflow-server) is "
                    "unset; make test-mlflow sets it")
    port = free_port()
    server = subprocess.Popen(
        [command, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=open(tmp_path / "server.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start in 90 s"
            time.sleep(0.5)
        (tmp_path / "client").mkdir()
        check_a_lifecycle(tmp_path / "client", uri)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_mlflow_down_changes_nothing_but_a_warning(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = write_config(tmp_path, uri, request_timeout_seconds=2, max_retries=0)
    started = time.monotonic()
    assert main(["train", "--config", str(config)]) == 0  # promoted as without MLflow
    assert time.monotonic() - started < 120  # bounded, not MLflow's minutes of retries
    registry = Registry(load_config(config).registry.root)
    assert registry.champion() == 1
    logged = registry.get_card(1)["tracking"]["mlflow"]
    assert logged["status"] == "failed" and logged["step"] == "logging"
    assert "MLflow logging failed" in logged["warning"]
    assert "warning: MLflow logging failed" in capsys.readouterr().err
    # promoting by hand with MLflow still down: promoted, with a warning
    assert main(["train", "--config", str(config), "--no-promote"]) == 0
    assert main(["models", "promote", "2", "--config", str(config)]) == 0
    assert registry.champion() == 2
    assert "warning: MLflow alias update failed" in capsys.readouterr().err


def test_the_summary_lists_every_failed_step(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, f"http://127.0.0.1:{free_port()}",
                                   request_timeout_seconds=1, max_retries=0))
    out = run_training(cfg)
    mlflow_out = out["tracking"]["mlflow"]
    assert out["promoted"] and mlflow_out["logged"]["status"] == "failed"
    assert mlflow_out["registered"] == {"status": "skipped"}
    assert mlflow_out["alias"]["status"] == "failed"
    assert len(mlflow_out["warnings"]) == 2


def test_a_name_mlflow_refuses_is_a_config_error(tmp_path: Path) -> None:
    raw = make_config_dict("train.csv", "registry")
    raw["tracking"] = {"mlflow": {"registered_model": "team/churn"}}
    with pytest.raises(ConfigError, match=r"tracking.mlflow.registered_model.*'/' or ':'"):
        config_from_dict(raw)


def test_without_a_tracking_section_nothing_is_sent(tmp_path: Path) -> None:
    make_table(n=1500).to_csv(tmp_path / "train.csv", index=False)
    cfg = config_from_dict(make_config_dict(str(tmp_path / "train.csv"),
                                            str(tmp_path / "registry")))
    out = run_training(cfg)
    assert out["tracking"] is None
    assert "tracking" not in Registry(cfg.registry.root).get_card(1)
    assert not pd.Series([p.name for p in tmp_path.rglob("*.db")]).any()
