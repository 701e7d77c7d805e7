"""The MLflow server's address and credentials from an Airflow Connection (the DAGs' way;
``tracking.mlflow``), without MLflow installed: the environment MLflow's client reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow

VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
             "MLFLOW_TRACKING_TOKEN")


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    return monkeypatch


def test_a_connection_gives_the_server_and_its_login(clean: pytest.MonkeyPatch) -> None:
    from ml_lifecycle_airflow import settings

    clean.setenv("ML_LIFECYCLE_MLFLOW_CONN_ID", "team_mlflow")
    clean.setenv("AIRFLOW_CONN_TEAM_MLFLOW", json.dumps({
        "conn_type": "http", "host": "mlflow.internal", "port": 5000, "schema": "https",
        "login": "svc-ml", "password": "s3cret-canary"}))
    assert settings.export_mlflow_credentials() is True
    assert os.environ["MLFLOW_TRACKING_URI"] == "https://mlflow.internal:5000"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "svc-ml"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret-canary"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ


def test_a_password_alone_is_a_token_and_a_set_uri_wins(clean: pytest.MonkeyPatch) -> None:
    from ml_lifecycle_airflow import settings

    clean.setenv("MLFLOW_TRACKING_URI", "http://already-set:5000")
    clean.setenv("ML_LIFECYCLE_MLFLOW_CONN_ID", "token_only")
    clean.setenv("AIRFLOW_CONN_TOKEN_ONLY", json.dumps({
        "conn_type": "http", "host": "elsewhere", "password": "dapi-canary"}))
    assert settings.export_mlflow_credentials() is True
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://already-set:5000"
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "dapi-canary"
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ


def test_no_connection_named_reads_nothing_and_a_missing_one_is_an_error(
        clean: pytest.MonkeyPatch) -> None:
    from ml_lifecycle.errors import ConfigError
    from ml_lifecycle_airflow import settings

    clean.delenv("ML_LIFECYCLE_MLFLOW_CONN_ID", raising=False)
    assert settings.export_mlflow_credentials() is False
    clean.setenv("ML_LIFECYCLE_MLFLOW_CONN_ID", "no_such_connection")
    with pytest.raises(ConfigError, match="ML_LIFECYCLE_MLFLOW_CONN_ID=no_such_connection"):
        settings.export_mlflow_credentials()
