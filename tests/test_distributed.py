"""The cluster of docker-compose.yaml, run for real without containers.

``scripts/native_compose.py`` reads docker-compose.yaml and starts its Airflow services natively,
each with the command and environment the file gives it (service host names -> 127.0.0.1, a fresh
PostgreSQL database, a Redis database index of its own): airflow-init, api-server, scheduler,
dag-processor, triggerer and TWO Celery workers. The test then acts only as a REST client: it
unpauses the DAGs, triggers the drift check for a drifted day of the simulated demo data and
follows the retraining run that the drift check triggers, down to the task instances (which
worker process ran ``train_candidate``) and the new version in the registry. It runs twice: with
every artifact on the shared volume (the default config), and with the registry, predictions,
reports and alerts on S3-compatible storage (``s3://`` URLs; moto's S3 server on loopback stands
in for MinIO/AWS, reached through the AWS_* settings of ``.env`` like a real deployment) while
the batches and labels stay on the volume. Clean-up always runs: processes stopped and verified
gone, database and role dropped, Redis index flushed.

Skipped (with the reason) only when the local PostgreSQL or Redis is not reachable.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import project_config_raw

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))

from native_compose import (  # noqa: E402
    CONTAINER_HOME,
    NativeTopology,
    services_unreachable,
    write_env_from_example,
)

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from s3server import new_bucket, s3_server  # noqa: E402

pytestmark = [pytest.mark.services, pytest.mark.slow]

DRIFT_DAG = "late_delivery__drift_check"
TRAINING_DAG = "late_delivery__training"
SCORING_DAG = "late_delivery__scoring"
TRAIN_TASK = "train_candidate"
DRIFTED_DAY = "2026-01-11"  # the simulator's covariate-shift day (first drifted day)
SIM_DAYS = 14
WORKERS = 2
PY = str(Path(sys.executable))


def write_test_env(path: Path, **extra: str) -> dict[str, str]:
    return write_env_from_example(
        path,
        AIRFLOW_WORKER_CONCURRENCY="2",
        # The daily DAGs would otherwise replay every day since 2026-01-01 once unpaused.
        ML_LIFECYCLE_DAILY_SCHEDULE="none",
        **extra,
    )


TEST_CONFIG = f"{CONTAINER_HOME}/var/test-config.yaml"


def write_test_config(topo: NativeTopology, bucket: str | None) -> None:
    """configs/demo.yaml with the drift-led retrain rule (the cluster's wiring is under test: the
    simulated covariate shift costs the model ~3 % of ROC-AUC, within the performance-led
    default's tolerance, so that rule would rightly not retrain) and, with ``bucket``, the
    registry and every lifecycle output on ``s3://bucket``."""
    import yaml

    raw = project_config_raw(rebase=False)  # written to /opt/airflow/var/
    raw.setdefault("policy", {})["trigger"] = "drift"
    if bucket:
        raw["registry"]["root"] = f"s3://{bucket}/late-delivery/registry"
        for key in ("predictions", "reports", "alerts"):
            raw["lifecycle"][key] = f"s3://{bucket}/late-delivery/{key}"
    Path(topo.mapping.path(TEST_CONFIG)).write_text(yaml.safe_dump(raw))


def core_cli(topo: NativeTopology, *args: str, extra_env: dict[str, str] | None = None) -> str:
    """Run ``python -m ml_lifecycle`` as a user would before `docker compose up` (same paths)."""
    home = topo.rootfs / CONTAINER_HOME.lstrip("/")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONPATH": str(home / "include"),
           "OMP_NUM_THREADS": "1", **(extra_env or {})}
    done = subprocess.run([PY, "-m", "ml_lifecycle", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"ml_lifecycle {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module", params=["volume", "s3"])
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = services_unreachable()
    if reason:
        pytest.skip(f"needs the local PostgreSQL and Redis: {reason}")
    with contextlib.ExitStack() as stack:
        s3_env: dict[str, str] = {}
        if request.param == "s3":
            s3_env = stack.enter_context(s3_server())
        yield from _cluster(tmp_path_factory, request.param, s3_env)


def _cluster(tmp_path_factory: pytest.TempPathFactory, store: str,
             s3_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp(f"native-compose-{store}")
    extra = {**s3_env, "ML_LIFECYCLE_CONFIG": TEST_CONFIG}
    env_values = write_test_env(workdir / "test.env", **extra)
    topo = NativeTopology(workdir, env_file=workdir / "test.env",
                          environ={"OMP_NUM_THREADS": "1"}, scale={"airflow-worker": WORKERS},
                          profiles=("flower",),
                          log=lambda line: print(line, flush=True))
    try:
        topo.prepare()
        # Before `docker compose up`: demo data and a first champion on the shared volume,
        # written through the same /opt/airflow paths the components see.
        bucket = new_bucket() if s3_env else None
        write_test_config(topo, bucket)
        if s3_env:
            print(f"[test] artifact store: s3://{bucket} at {s3_env['AWS_ENDPOINT_URL_S3']} "
                  "(registry, predictions, reports, alerts); batches and labels on the volume",
                  flush=True)
        config = topo.mapping.path(topo.compose["services"]["airflow-worker"]["environment"]
                                   ["ML_LIFECYCLE_CONFIG"])
        core_cli(topo, "simulate", "--out", topo.mapping.path(f"{CONTAINER_HOME}/var/demo/data"),
                 "--days", str(SIM_DAYS))
        core_cli(topo, "train", "--config", config, "--reason", "initial champion",
                 extra_env=s3_env)
        topo.up(timeout=240)
        print(topo.describe(), flush=True)
        print(f"[test] topology healthy after {time.monotonic() - started:.1f}s", flush=True)
        yield {"topo": topo, "env": env_values, "config": config, "started": started,
               "store": store}
    finally:
        print(f"[test] cleaning up (after {time.monotonic() - started:.1f}s)", flush=True)
        done = topo.cleanup()
        for line in done:
            print(f"[test] cleanup: {line}", flush=True)
        _assert_cleaned(topo)
        print(f"[test] total wall time {time.monotonic() - started:.1f}s", flush=True)


def _assert_cleaned(topo: NativeTopology) -> None:
    import psycopg2
    import redis

    assert topo._our_pids() == [], "processes of the native topology are still alive"
    for proc in topo.processes:
        assert proc.popen is None or proc.popen.poll() is not None, proc.hostname
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (topo.db_name,))
        assert cur.fetchone()[0] == 0, f"database {topo.db_name} was not dropped"
        cur.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (topo.db_user,))
        assert cur.fetchone()[0] == 0, f"role {topo.db_user} was not dropped"
    conn.close()
    assert redis.Redis(host="127.0.0.1", port=6379, db=topo.mapping.redis_db).dbsize() == 0


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1 and len(chain) < 20:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return chain


def _wait_run(topo: NativeTopology, token: str, dag_id: str, run_id: str, timeout: float,
              on_poll: Any = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = topo.http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", token=token)
        if on_poll:
            on_poll()
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"{dag_id}/{run_id} still {run['state']} after {timeout}s")
        topo._check_one_shot()  # a component that died fails the test now, with its output
        time.sleep(1)


def _task_instances(topo: NativeTopology, token: str, dag_id: str, run_id: str) -> list[dict]:
    return topo.http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                     token=token)["task_instances"]


def _print_tis(title: str, tis: list[dict]) -> None:
    print(f"[test] {title}", flush=True)
    print(f"  {'task_id':<22} {'state':<10} {'executor':<15} {'queue':<8} "
          f"{'hostname':<26} pid", flush=True)
    for ti in sorted(tis, key=lambda t: t.get("start_date") or ""):
        print(f"  {ti['task_id']:<22} {ti['state']!s:<10} {ti.get('executor')!s:<15} "
              f"{ti.get('queue')!s:<8} {ti.get('hostname')!s:<26} {ti.get('pid')}", flush=True)


def test_drift_check_triggers_retraining_on_a_celery_worker(cluster: dict[str, Any]) -> None:
    topo: NativeTopology = cluster["topo"]
    env = cluster["env"]
    token = topo.token(env["_AIRFLOW_WWW_USER_USERNAME"], env["_AIRFLOW_WWW_USER_PASSWORD"])
    me = topo.http("GET", "/api/v2/version", token=token)
    print(f"[test] REST as {env['_AIRFLOW_WWW_USER_USERNAME']} on {topo.api_url}: "
          f"Airflow {me['version']}", flush=True)

    # The dag-processor parses the mounted dags/ folder; wait until the DAGs are serialized.
    deadline = time.monotonic() + 120
    while True:
        dags = topo.http("GET", "/api/v2/dags?tags=ml-lifecycle&limit=50", token=token)["dags"]
        if {DRIFT_DAG, TRAINING_DAG} <= {d["dag_id"] for d in dags}:
            break
        errors = topo.http("GET", "/api/v2/importErrors", token=token)
        assert not errors["import_errors"], f"DAG import errors: {errors['import_errors']}"
        assert time.monotonic() < deadline, f"DAGs not parsed in 120s: {dags}"
        time.sleep(1)
    for dag_id in (TRAINING_DAG, DRIFT_DAG, SCORING_DAG):
        reply = topo.http("PATCH", f"/api/v2/dags/{dag_id}", token=token,
                          body={"is_paused": False}, expect=(200, 404))
        if reply and dag_id != SCORING_DAG:
            assert reply["is_paused"] is False

    worker_pids = {p.popen.pid: p.hostname for p in topo.processes
                   if p.service == "airflow-worker" and p.popen}
    scheduler_pid = next(p.popen.pid for p in topo.processes
                         if p.service == "airflow-scheduler" and p.popen)
    seen_chains: dict[str, list[int]] = {}

    def watch_training() -> None:
        """While the retrain runs, find the process chain of its running task instances."""
        runs = topo.http("GET", f"/api/v2/dags/{TRAINING_DAG}/dagRuns", token=token)["dag_runs"]
        for run in runs:
            for ti in _task_instances(topo, token, TRAINING_DAG, run["dag_run_id"]):
                if ti["state"] == "running" and ti.get("pid") and ti["task_id"] not in seen_chains:
                    chain = _ancestors(int(ti["pid"]))
                    if chain:
                        seen_chains[ti["task_id"]] = [int(ti["pid"]), *chain]

    t0 = time.monotonic()
    drift = topo.http("POST", f"/api/v2/dags/{DRIFT_DAG}/dagRuns", token=token,
                      body={"logical_date": None, "conf": {"day": DRIFTED_DAY}})
    print(f"[test] triggered {DRIFT_DAG} run {drift['dag_run_id']} for day {DRIFTED_DAY}",
          flush=True)
    drift = _wait_run(topo, token, DRIFT_DAG, drift["dag_run_id"], 240, on_poll=watch_training)
    drift_tis = _task_instances(topo, token, DRIFT_DAG, drift["dag_run_id"])
    _print_tis(f"{DRIFT_DAG} {drift['dag_run_id']}: {drift['state']} "
               f"({time.monotonic() - t0:.1f}s)", drift_tis)
    verdict = topo.http(
        "GET", f"/api/v2/dags/{DRIFT_DAG}/dagRuns/{drift['dag_run_id']}/taskInstances/"
               "check_drift/xcomEntries/return_value", token=token)["value"]
    verdict = json.loads(verdict) if isinstance(verdict, str) else verdict
    print(f"[test] drift verdict: {verdict.get('verdict')} severity={verdict.get('severity')} "
          f"retrain={verdict.get('retrain')} reasons={verdict.get('reasons')}", flush=True)
    assert drift["state"] == "success", drift
    assert verdict["retrain"] is True, verdict

    runs = topo.http("GET", f"/api/v2/dags/{TRAINING_DAG}/dagRuns", token=token)["dag_runs"]
    triggered = [r for r in runs if r["run_type"] == "operator_triggered"]
    assert len(triggered) == 1, runs
    training = _wait_run(topo, token, TRAINING_DAG, triggered[0]["dag_run_id"], 120,
                         on_poll=watch_training)
    train_tis = _task_instances(topo, token, TRAINING_DAG, training["dag_run_id"])
    _print_tis(f"{TRAINING_DAG} {training['dag_run_id']} (run_type {training['run_type']}, "
               f"conf reason {training['conf'].get('reason')!r}): {training['state']}",
               train_tis)
    assert training["state"] == "success", training
    assert training["dag_run_id"] == f"drift_retrain__{DRIFTED_DAY}"
    assert training["conf"]["as_of_day"] == DRIFTED_DAY

    # Which process ran the training task: a Celery worker, not the scheduler.
    ti = next(t for t in train_tis if t["task_id"] == TRAIN_TASK)
    worker_hosts = {p.hostname for p in topo.processes if p.service == "airflow-worker"}
    print(f"[test] {TRAIN_TASK}: state={ti['state']} executor={ti.get('executor')} "
          f"queue={ti.get('queue')} hostname={ti.get('hostname')} pid={ti.get('pid')}; "
          f"worker processes {worker_pids}, scheduler pid {scheduler_pid}", flush=True)
    assert ti["state"] == "success"
    assert ti["hostname"] in worker_hosts, (ti["hostname"], worker_hosts)
    assert ti["pid"] not in (scheduler_pid, *worker_pids)
    for task_id, chain in seen_chains.items():
        owner = next((worker_pids[p] for p in chain if p in worker_pids), None)
        print(f"[test] {task_id} process chain while running: {chain} -> Celery worker "
              f"{owner}", flush=True)
        assert scheduler_pid not in chain, f"{task_id} ran under the scheduler: {chain}"
        assert owner is not None, f"{task_id}: no Celery worker among its ancestors {chain}"
    if TRAIN_TASK in seen_chains:
        owner = next(worker_pids[p] for p in seen_chains[TRAIN_TASK] if p in worker_pids)
        assert owner == ti["hostname"]
    hosts = sorted({t["hostname"] for t in drift_tis + train_tis if t.get("hostname")})
    print(f"[test] task instances ran on: {hosts}", flush=True)

    # The new version (and champion, if the gate passed) is in the registry: on the shared
    # volume, or in the bucket.
    from ml_lifecycle.config import load_config
    from ml_lifecycle.registry import open_registry

    cfg = load_config(cluster["config"])
    registry = open_registry(cfg.registry.root)
    print(f"[test] artifact store ({cluster['store']}): registry {cfg.registry.root}", flush=True)
    if cluster["store"] == "s3":
        assert cfg.registry.root.startswith("s3://")
        from s3server import s3fs_client

        fs = s3fs_client()
        bucket = cfg.registry.root.removeprefix("s3://").split("/")[0]
        keys = fs.find(bucket)
        print(f"[test] {len(keys)} objects in s3://{bucket}, e.g. "
              f"{[k for k in keys if '/monitoring/days/' in k or '/log/' in k][:4]}", flush=True)
        assert f"{bucket}/late-delivery/registry/monitoring/days/{DRIFTED_DAY}.json" in keys
        assert f"{bucket}/late-delivery/reports/drift_{DRIFTED_DAY}.html" in keys
        assert not any(Path(topo.mapping.path(f"{CONTAINER_HOME}/var")).rglob("registry"))
    versions = registry.list_versions()
    for card in versions:
        reason = (card.get("trigger") or {}).get("reason")
        print(f"[test] registry v{card['version']}: reason={reason!r} "
              f"gate={(card.get('gate') or {}).get('passed')} champion={card.get('is_champion')}",
              flush=True)
    states = {t["task_id"]: t["state"] for t in train_tis}
    assert len(versions) == 2, versions
    new = versions[-1]
    assert new["version"] == 2
    assert "drift" in str((new.get("trigger") or {}).get("reason")).lower(), new.get("trigger")
    if states.get("promote") == "success":
        assert registry.champion() == 2
    else:
        assert states.get("reject") == "success" and registry.champion() == 1
    print(f"[test] champion is now v{registry.champion()} "
          f"({'promoted' if registry.champion() == 2 else 'candidate rejected by the gate'}); "
          f"drift check -> retrain done in {time.monotonic() - t0:.1f}s", flush=True)
