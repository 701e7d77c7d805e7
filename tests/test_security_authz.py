"""Who may see what on the monitoring page: per-model authorization and generic error answers.

In-process: the app with a stand-in predicate for Airflow's auth manager (which DAGs the user
may read). Through Airflow: its own FastAPI app with the plugin mounted, real JWTs from
``/auth/token``, and an auth manager with per-model scopes (``tests/authz_manager.py``).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import PROJECT_ROOT, make_config_dict

pytestmark = pytest.mark.airflow
MODELS = ("churn", "fraud")
PLUGINS = PROJECT_ROOT / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))


@pytest.fixture
def configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "configs"
    folder.mkdir()
    for name in MODELS:
        raw = make_config_dict("../train.csv", f"../var/{name}/registry", name=name)
        raw["lifecycle"] = {k: f"../var/{name}/{k}"
                            for k in ("batches", "labels", "predictions", "reports", "alerts")}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    (folder / "broken.yaml").write_text("task: classification\nname: broken\n")
    monkeypatch.delenv("ML_LIFECYCLE_CONFIG", raising=False)
    monkeypatch.setenv("ML_LIFECYCLE_CONFIGS", str(folder))
    return folder


def client_for(readable: set[str]) -> Any:
    """A logged-in client whose user may read exactly the DAGs of ``readable`` models."""
    from fastapi.testclient import TestClient
    from ml_monitoring.app import authenticated, create_app, dag_reader

    app = create_app()
    app.dependency_overrides[authenticated] = lambda: None
    app.dependency_overrides[dag_reader] = lambda: (
        lambda dag_ids: all(d.split("__")[0] in readable for d in dag_ids))
    return TestClient(app)


def test_a_model_is_visible_only_to_users_who_may_read_its_dags(configs: Path) -> None:
    client = client_for({"churn"})
    assert client.get("/models/churn/").status_code == 200
    assert client.get("/api/models/churn/versions").status_code == 200
    for path in ("/models/fraud/", "/models/fraud/drift", "/models/fraud/versions/1",
                 "/models/fraud/drift/reports/2026-01-01", "/api/models/fraud/versions",
                 "/api/models/fraud/champion", "/api/models/fraud/drift",
                 "/api/models/fraud/drift/2026-01-01"):
        reply = client.get(path)
        assert reply.status_code == 403, path
        assert "fraud" in reply.text and "registry" not in reply.text, path
    listed = client.get("/api/models").json()
    assert [m["name"] for m in listed["models"]] == ["churn"]
    assert listed["broken_configs"] == []  # its stand-in DAG is not readable either
    page = client.get("/").text
    assert 'data-model="churn"' in page and 'data-model="fraud"' not in page
    assert client.get("/models/nobody/").status_code == 404


def test_a_user_with_access_to_every_dag_sees_every_model(configs: Path) -> None:
    client = client_for({"churn", "fraud", "broken"})
    listed = client.get("/api/models").json()
    assert [m["name"] for m in listed["models"]] == ["churn", "fraud"]
    [broken] = listed["broken_configs"]
    assert broken["config_file"].endswith("broken.yaml")


def test_errors_answer_a_reference_and_log_the_detail(configs: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    registry = configs.parent / "var" / "churn" / "registry"
    registry.mkdir(parents=True)
    (registry / "history.jsonl").write_text("{not json\n")
    client = client_for({"churn"})
    with caplog.at_level(logging.ERROR, logger="ml_monitoring.app"):
        page = client.get("/models/churn/")
        api = client.get("/api/models/churn/versions")
    assert page.status_code == 500 and api.status_code == 500
    for text in (page.text, api.json()["detail"]):
        assert "reference" in text and str(registry) not in text and "history.jsonl" not in text
    ref = api.json()["detail"].split("reference ")[1].split(";")[0]
    logged = [r for r in caplog.records if ref in r.getMessage()]
    assert logged and str(registry) in logged[0].getMessage()


REAL_AIRFLOW = r"""
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

client = TestClient(create_app())
out = {}
for user in ("churn-reader", "fraud-reader", "admin"):
    reply = client.post("/auth/token", json={"username": user, "password": user + "-pw"})
    bearer = {"Authorization": "Bearer " + reply.json()["access_token"]}
    row = {"token": reply.status_code}
    for model in ("churn", "fraud"):
        row[model] = [client.get(f"/ml-monitoring/models/{model}/", headers=bearer).status_code,
                      client.get(f"/ml-monitoring/api/models/{model}/champion",
                                 headers=bearer).status_code]
    row["listed"] = [m["name"] for m in
                     client.get("/ml-monitoring/api/models", headers=bearer).json()["models"]]
    out[user] = row
out["anonymous"] = client.get("/ml-monitoring/api/models/churn/champion").status_code
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_real_tokens_and_a_per_model_auth_manager(configs: Path, tmp_path: Path) -> None:
    from ml_lifecycle_airflow.embedded import EmbeddedAirflow

    (configs / "broken.yaml").unlink()
    users = {"admin": "admin", "churn-reader": "viewer", "fraud-reader": "viewer"}
    airflow = EmbeddedAirflow(PROJECT_ROOT, tmp_path / "airflow_home", extra_env={
        "ML_LIFECYCLE_CONFIGS": str(configs),
        "AIRFLOW__CORE__AUTH_MANAGER": "authz_manager.ModelScopedAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in
                                                             users.items()),
    })
    airflow.home.mkdir(parents=True)
    airflow.password_file.write_text(json.dumps({u: f"{u}-pw" for u in users}))
    env = airflow.env()
    env["PYTHONPATH"] = f"{PROJECT_ROOT / 'tests'}:{env.get('PYTHONPATH', '')}"
    airflow.migrate()
    done = subprocess.run([sys.executable, "-c", REAL_AIRFLOW], env=env, capture_output=True,
                          text=True, timeout=300, cwd=PROJECT_ROOT, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, done.stdout[-3000:] + done.stderr[-5000:]
    out = json.loads(line.removeprefix("RESULT "))
    assert out["anonymous"] == 401
    assert out["churn-reader"] == {"token": 201, "churn": [200, 200], "fraud": [403, 403],
                                   "listed": ["churn"]}
    assert out["fraud-reader"] == {"token": 201, "churn": [403, 403], "fraud": [200, 200],
                                   "listed": ["fraud"]}
    assert out["admin"] == {"token": 201, "churn": [200, 200], "fraud": [200, 200],
                            "listed": ["churn", "fraud"]}
