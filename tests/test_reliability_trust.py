"""Trust boundaries: tampered artifacts are refused and never unpickled, run input stays inside
the data roots, no secret leaks into what the lifecycle writes, example secrets are refused.

Already covered elsewhere (referenced in docs/operations/reliability.md, not repeated here):
``test_registry.py::test_tampered_model_is_never_unpickled`` (registry API),
``test_training.py::test_tampered_champion_is_never_loaded_and_training_stops``,
``test_data.py::test_paths_from_run_input_must_stay_inside_roots``,
``test_compose_static.py::test_airflow_init_refuses_the_example_secrets``,
``test_plugin_api.py::test_anonymous_requests_are_refused_on_every_route`` (the UI plugin), and
``test_reliability_airflow_faults.py`` (anonymous REST calls on the distributed setup).

Here: a *malicious* pickle (it would create a marker folder when unpickled) put in place of the
champion's model, a rewritten card, a tampered or missing reference profile and split assignment,
through every consumer (training, drift check, batch scoring, promotion, the CLI); paths from a
trigger form or DAG conf through the DAG's own validation; canary secrets in the environment.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PROJECT_ROOT, make_config_dict, make_table
from ml_lifecycle import cli
from ml_lifecycle.config import config_from_dict
from ml_lifecycle.data import ensure_inside_roots
from ml_lifecycle.errors import EXIT_INTEGRITY, IntegrityError, PathNotAllowedError
from ml_lifecycle.registry import Registry

pytestmark = pytest.mark.slow

FAST = {
    "quality__min_rows": 50, "model__max_iter": 10, "model__patience": 3,
    "evaluation__bootstrap": 10, "evaluation__importance_repeats": 1, "gate__bootstrap": 50,
    "policy__cooldown_days": 0,
}
CLI_ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), "OMP_NUM_THREADS": "1"}


class _Exploit:
    """Unpickling this creates the folder ``path``: proof that a file was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.path,)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data, a config and a registry with v1 (former champion) and v2 (champion)."""
    from ml_lifecycle.train import run_training

    base = tmp_path_factory.mktemp("trust")
    make_table(400, seed=1).to_csv(base / "train.csv", index=False)
    (base / "batches").mkdir()
    make_table(300, seed=2).drop(columns=["label"]).to_csv(base / "batches" / "2026-07-01.csv",
                                                           index=False)
    raw = make_config_dict(str(base / "train.csv"), str(base / "registry"), **FAST)
    raw["lifecycle"] = {"batches": str(base / "batches"),
                        "predictions": str(base / "predictions")}
    (base / "config.yaml").write_text(yaml.safe_dump(raw))
    cfg = config_from_dict(raw)
    run_training(cfg)
    run_training(cfg)
    assert Registry(cfg.registry.root).champion() == 2
    return base


@pytest.fixture
def world(pristine: Path, tmp_path: Path) -> dict[str, Any]:
    base = tmp_path / "world"
    shutil.copytree(pristine, base)
    raw = yaml.safe_load((pristine / "config.yaml").read_text())
    text = json.dumps(raw).replace(str(pristine), str(base))
    raw = json.loads(text)
    (base / "config.yaml").write_text(yaml.safe_dump(raw))
    return {"base": base, "raw": raw, "config": base / "config.yaml",
            "root": base / "registry", "marker": tmp_path / "PWNED"}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def plant_exploit(world: dict[str, Any], version: int) -> Path:
    path = Registry(world["root"]).version_dir(version) / "model.skops"
    path.write_bytes(pickle.dumps(_Exploit(str(world["marker"]))))
    return path


def test_the_exploit_really_runs_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    joblib.load(io.BytesIO(pickle.dumps(_Exploit(str(marker)))))
    assert marker.is_dir()  # so its absence below proves nothing was unpickled


@pytest.mark.parametrize("argv", [
    ["train", "--config", "{config}"],
    ["check-drift", "--config", "{config}", "--batch", "{base}/batches/2026-07-01.csv",
     "--day", "2026-07-01"],
    ["models", "rollback", "--config", "{config}"],  # the former champion v1 is verified first
])
def test_a_malicious_model_file_is_refused_by_every_command(world: dict[str, Any],
                                                            argv: list[str]) -> None:
    target = 1 if argv[:2] == ["models", "rollback"] else 2
    path = plant_exploit(world, target)
    args = [a.format(config=world["config"], base=world["base"]) for a in argv]
    code, _, err = run_cli(*args)
    assert code == EXIT_INTEGRITY, err
    assert f"version {target}" in err and "model.skops" in err and "sha256" in err
    assert str(path.parent) in err and "Traceback" not in err
    assert not world["marker"].exists()
    assert Registry(world["root"]).champion() == 2
    assert not (world["root"] / "monitoring" / "days").exists()  # no result stored


def test_batch_scoring_refuses_a_malicious_model(world: dict[str, Any]) -> None:
    from ml_lifecycle.lifecycle import score_batch

    plant_exploit(world, 2)
    with pytest.raises(IntegrityError, match="sha256"):
        score_batch(config_from_dict(world["raw"]), "2026-07-01")
    assert not world["marker"].exists()
    assert not (world["base"] / "predictions").exists()


def test_a_card_rewritten_to_match_a_malicious_model_is_refused(world: dict[str, Any]) -> None:
    """The attacker also updates the card's sha256: the card hash recorded at promotion
    (history.jsonl) catches it before anything is unpickled."""
    import hashlib

    path = plant_exploit(world, 2)
    card_path = path.parent / "card.json"
    card = json.loads(card_path.read_text())
    card["artifacts"]["model.skops"] = hashlib.sha256(path.read_bytes()).hexdigest()
    card_path.write_text(json.dumps(card))
    for argv in (["train", "--config", str(world["config"])],
                 ["check-drift", "--config", str(world["config"]), "--batch",
                  str(world["base"] / "batches" / "2026-07-01.csv"), "--day", "2026-07-01"]):
        code, _, err = run_cli(*argv)
        assert code == EXIT_INTEGRITY, err
        assert "card.json" in err and "recorded at promotion" in err, err
    assert not world["marker"].exists()


@pytest.mark.parametrize("name,change", [
    ("reference_profile.json", "edit"), ("reference_profile.npz", "edit"),
    ("reference_profile.npz", "delete"),
])
def test_a_tampered_or_missing_reference_profile_stops_the_drift_check(
    world: dict[str, Any], name: str, change: str,
) -> None:
    path = Registry(world["root"]).version_dir(2) / name
    if change == "delete":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    code, _, err = run_cli("check-drift", "--config", str(world["config"]), "--batch",
                           str(world["base"] / "batches" / "2026-07-01.csv"), "--day",
                           "2026-07-01")
    assert code == EXIT_INTEGRITY, err
    assert str(path) in err
    assert not (world["root"] / "monitoring" / "days").exists()


def test_a_tampered_split_assignment_of_the_champion_stops_training(
    world: dict[str, Any],
) -> None:
    """It decides which test rows the champion comparison may use: verified before use."""
    import pandas as pd

    path = Registry(world["root"]).version_dir(2) / "split_assignment.parquet"
    frame = pd.read_parquet(path)
    frame["split"] = "test"  # would make the champion look unseen on every row
    frame.to_parquet(path, index=False)
    before = sorted(p.name for p in (world["root"] / "versions").iterdir())
    code, _, err = run_cli("train", "--config", str(world["config"]))
    assert code == EXIT_INTEGRITY and "split_assignment.parquet" in err, err
    assert sorted(p.name for p in (world["root"] / "versions").iterdir()) == before


def test_the_real_process_refuses_a_malicious_model(world: dict[str, Any]) -> None:
    plant_exploit(world, 2)
    done = subprocess.run(
        [sys.executable, "-m", "ml_lifecycle", "check-drift", "--config", str(world["config"]),
         "--batch", str(world["base"] / "batches" / "2026-07-01.csv"), "--day", "2026-07-01"],
        env=CLI_ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_INTEGRITY and "Traceback" not in done.stderr
    assert not world["marker"].exists()


# ---------------------------------------------------------------------------- run input paths


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    (data / "batches").mkdir(parents=True)
    (data / "train.csv").write_text("x")
    (data / "batches" / "2026-01-01.csv").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("x")
    sibling = tmp_path / "data-evil"  # shares the prefix "data"
    sibling.mkdir()
    (sibling / "x.csv").write_text("x")
    (data / "link-out").symlink_to(outside, target_is_directory=True)
    (data / "file-link").symlink_to(outside / "secret.csv")
    return {"data": data, "outside": outside, "sibling": sibling}


def _escapes(roots: dict[str, Path]) -> list[str]:
    data = roots["data"]
    return [
        str(data / ".." / "outside" / "secret.csv"),
        str(data / "batches" / ".." / ".." / "outside"),
        str(roots["outside"] / "secret.csv"),
        "/etc/passwd",
        str(roots["sibling"] / "x.csv"),
        str(data / "link-out" / "secret.csv"),
        str(data / "file-link"),
        str(data / "link-out"),
        str(data / ".." / "data-evil" / "x.csv"),
    ]


def test_escaping_paths_are_refused(roots: dict[str, Path]) -> None:
    for path in _escapes(roots):
        with pytest.raises(PathNotAllowedError, match="outside the allowed data roots"):
            ensure_inside_roots(path, [str(roots["data"])])
    inside = ensure_inside_roots(str(roots["data"] / "batches" / ".." / "train.csv"),
                                 [str(roots["data"])])
    assert inside == str((roots["data"] / "train.csv").resolve())


_segments = st.lists(st.sampled_from(["..", ".", "batches", "link-out", "file-link", "x.csv",
                                      "", "data-evil", "outside", "secret.csv", "..."]),
                     max_size=6)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segments=_segments, absolute=st.booleans())
def test_any_accepted_path_resolves_inside_the_root(roots: dict[str, Path],
                                                    segments: list[str], absolute: bool) -> None:
    start = roots["data"].parent if absolute else roots["data"]
    path = os.path.join(str(start), *segments) if segments else str(start)
    root = str(roots["data"].resolve())
    try:
        resolved = ensure_inside_roots(path, [str(roots["data"])])
    except PathNotAllowedError:
        assert not (os.path.realpath(path) + os.sep).startswith(root + os.sep)
    else:
        assert resolved == root or resolved.startswith(root + os.sep)
        assert os.path.realpath(resolved) == resolved  # no symlink left to follow


@pytest.fixture
def dag_config(roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    raw = make_config_dict(str(roots["data"] / "train.csv"), str(tmp_path / "registry"))
    raw["data"]["data_roots"] = [str(roots["data"])]
    raw["lifecycle"] = {"batches": str(roots["data"] / "batches"),
                        "reports": str(tmp_path / "reports")}
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("ML_LIFECYCLE_CONFIG", str(path))
    monkeypatch.setenv("ML_LIFECYCLE_BASE_DIR", str(tmp_path))
    return path


@pytest.mark.airflow
def test_trigger_form_overrides_cannot_point_outside_the_data_roots(
    roots: dict[str, Path], dag_config: Path,
) -> None:
    from ml_lifecycle.errors import ConfigError
    from ml_lifecycle_airflow.settings import load_lifecycle_config

    for key in ("data.path", "lifecycle.batches", "lifecycle.labels"):
        for path in _escapes(roots):
            with pytest.raises(PathNotAllowedError, match=f"config override {key}"):
                load_lifecycle_config(dag_config, [f"{key}={path}"])
    # Where artifacts live is never run input, not even a folder inside the data roots: a run
    # that could point the registry at a planted model would make a worker load it.
    inside = roots["data"] / "planted"
    for item in (f"registry.root={inside}", "registry={root: /tmp/x}",
                 f"lifecycle.predictions={inside}", f"lifecycle.reports={inside}",
                 f"lifecycle.alerts={inside}", f"data.data_roots=[{roots['outside']}]",
                 "data.data_roots=[/]", "promotion.mode=auto", "promotion={mode: auto}"):
        key = item.split("=", 1)[0]
        with pytest.raises(ConfigError, match=rf"config override {re.escape(key)}: .* cannot "
                                              "be changed from run input"):
            load_lifecycle_config(dag_config, [item])
    # a symlink inside a data-root folder that points outside is resolved, then refused
    link = roots["data"] / "innocent"
    link.symlink_to(roots["outside"], target_is_directory=True)
    with pytest.raises(PathNotAllowedError, match=r"config override data\.path"):
        load_lifecycle_config(dag_config, [f"data.path={link / 'train.csv'}"])
    cfg = load_lifecycle_config(dag_config, [f"data.path={roots['data'] / 'batches'}"])
    assert cfg.data.path == str(roots["data"] / "batches")


@pytest.mark.airflow
def test_a_drift_report_from_the_dag_conf_must_stay_inside_the_roots(
    roots: dict[str, Path], dag_config: Path,
) -> None:
    import datetime as dt

    from ml_lifecycle_airflow.params import resolve_training_request

    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    for path in _escapes(roots):
        with pytest.raises(PathNotAllowedError, match=r"params\.drift_report"):
            resolve_training_request({"drift_report": path}, config_file=dag_config,
                                     logical_date=when, run_after=when, dag_id="ml_training",
                                     run_id="manual__x")


# ---------------------------------------------------------------------------- secrets


CANARIES = {
    "AIRFLOW__CORE__FERNET_KEY": "canaryFernetKey0000000000000000000000000000=",
    "AIRFLOW__API_AUTH__JWT_SECRET": "canary-jwt-secret-5b1f",
    "AIRFLOW__API__SECRET_KEY": "canary-api-secret-9c2e",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
        "postgresql+psycopg2://airflow:canary-db-password-77aa@postgres:5432/airflow",
    "AIRFLOW__CELERY__RESULT_BACKEND":
        "db+postgresql+psycopg2://airflow:canary-result-password-31bd@postgres/airflow",
    "AIRFLOW__CELERY__BROKER_URL": "redis://:canary-redis-password-8f0c@redis:6379/0",
    "AIRFLOW_CONN_WAREHOUSE": "postgres://etl:canary-conn-password-4d6e@warehouse:5432/dw",
    "POSTGRES_PASSWORD": "canary-postgres-password-1a2b",
    "_AIRFLOW_WWW_USER_PASSWORD": "canary-admin-password-3c4d",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-5e6f",
}
#: distinctive parts: a leak of the value in any form (URL, repr, JSON) contains one of them
NEEDLES = ["canaryFernetKey", "canary-jwt", "canary-api", "canary-db-password",
           "canary-result-password", "canary-redis-password", "canary-conn-password",
           "canary-postgres-password", "canary-admin-password", "canary-aws"]


@pytest.mark.airflow
def test_no_secret_from_the_environment_reaches_cards_reports_alerts_or_output(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**CLI_ENV, **CANARIES}
    config, base = str(world["config"]), world["base"]
    batch = str(base / "batches" / "2026-07-01.csv")
    shifted = base / "batches" / "shifted.csv"
    frame = make_table(300, seed=4).drop(columns=["label"])
    frame.assign(x1=frame["x1"] + 2).to_csv(shifted, index=False)
    runs = [
        ["train", "--config", config, "--reason", "canary"],
        ["train", "--config", config, "--json"],
        ["train", "--config", config, "--set", "split.seed=-1"],  # an error message
        ["train", "--config", config, "--set", f"data.path={base / 'missing.csv'}"],
        ["check-drift", "--config", config, "--batch", batch, "--day", "2026-07-01",
         "--report-dir", str(base / "reports")],
        ["check-drift", "--config", config, "--batch", str(shifted), "--day", "2026-07-02",
         "--json", "--report-dir", str(base / "reports")],
        ["models", "list", "--config", config, "--json"],
        ["models", "show", "--config", config],
        ["models", "rollback", "--config", config],
    ]
    outputs = []
    for argv in runs:
        done = subprocess.run([sys.executable, "-m", "ml_lifecycle", *argv], env=env,
                              capture_output=True, text=True, timeout=300, cwd=base)
        assert done.returncode in (0, 2, 3, 4), (argv, done.stderr)
        outputs.append(done.stdout + done.stderr)

    # the DAG notifier's alert files, written with the same environment
    for key, value in CANARIES.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ML_LIFECYCLE_CONFIG", config)
    monkeypatch.setenv("ML_LIFECYCLE_BASE_DIR", str(base))
    _write_alerts(base)

    written = [p for p in base.rglob("*") if p.is_file()]
    assert any(p.name == "card.json" for p in written)
    assert any(p.suffix == ".html" for p in written)
    assert any(p.parent.name == "alerts" for p in written)
    for path in written:
        data = path.read_bytes()
        for needle in NEEDLES:
            assert needle.encode() not in data, f"{needle} leaked into {path}"
    for text in outputs:
        for needle in NEEDLES:
            assert needle not in text, f"{needle} leaked into CLI output"


def _write_alerts(base: Path) -> None:
    """A failure alert and a drift-breach alert through the DAGs' notifier."""
    from types import SimpleNamespace

    pytest.importorskip("airflow")
    from ml_lifecycle_airflow.notifier import (
        KIND_DRIFT_BREACH,
        KIND_TASK_FAILURE,
        LifecycleNotifier,
    )

    alerts = base / "alerts"
    cfg_path = Path(os.environ["ML_LIFECYCLE_CONFIG"])
    raw = yaml.safe_load(cfg_path.read_text())
    raw.setdefault("lifecycle", {})["alerts"] = str(alerts)
    cfg_path.write_text(yaml.safe_dump(raw))
    ti = SimpleNamespace(dag_id="ml_training", run_id="manual__canary", task_id="train_candidate",
                         try_number=1, log_url=None, xcom_pull=lambda **kwargs: None)
    context = {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(dag_id="ml_training",
                                                                         run_id="manual__canary"),
               "logical_date": None, "params": {"reason": "canary test"},
               "exception": RuntimeError("could not connect to the warehouse")}
    LifecycleNotifier(KIND_TASK_FAILURE, config_file=cfg_path)(context)
    LifecycleNotifier(KIND_DRIFT_BREACH, config_file=cfg_path, message="drift",
                      details={"day": "2026-07-02"})(context)
    assert len(list(alerts.glob("*.json"))) == 2


# ---------------------------------------------------------------------------- compose secrets


def test_airflow_init_refuses_even_one_example_secret_left(tmp_path: Path) -> None:
    """The full set of example secrets is refused (test_compose_static.py); so is a single one
    left behind while the others were changed, naming it."""
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    from native_compose import (
        COMPOSE_FILE,
        load_compose,
        read_env_file,
        service_environment,
    )

    values = read_env_file(PROJECT_ROOT / ".env.example")
    for key, value in values.items():
        if "CHANGE_ME" in value and key != "AIRFLOW_JWT_SECRET":
            values[key] = "a-real-value-" + key.lower()
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    compose = load_compose(COMPOSE_FILE, env_file=env_file, environ={})
    svc = compose["services"]["airflow-init"]
    argv = [*([svc["entrypoint"]] if isinstance(svc["entrypoint"], str) else svc["entrypoint"]),
            *svc["command"]]
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           **service_environment(svc)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "example secrets from .env.example are still in use in: " \
           "AIRFLOW__API_AUTH__JWT_SECRET" in done.stderr
    assert "FERNET" not in done.stderr.split("in use in:")[1].splitlines()[0]
    assert "migrating" not in done.stdout
