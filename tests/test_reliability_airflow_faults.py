"""Airflow-level faults on the distributed setup: a Celery worker killed in the middle of the
training task, the scheduler restarted mid-run, the Redis broker restarted -- one scenario.

The topology is docker-compose.yaml run natively by ``scripts/native_compose.py`` (PostgreSQL,
CeleryExecutor, api-server, scheduler, dag-processor, triggerer, two Celery workers), as in
``tests/test_distributed.py``, with two differences:

* the broker is a ``redis-server`` this test starts on a free port (the machine's Redis on 6379 is
  shared with others and is never restarted); skipped when the binary is missing;
* shorter scheduler timeouts (an override of the compose environment, ``extra_env``): a task whose
  worker died is noticed after 30 s without heartbeat instead of 300 s; the restarted scheduler
  adopts the tasks its predecessor queued within 20 s instead of 300 s (until then nobody watches
  their heartbeat: only the scheduler job that queued a task does); a task stuck in ``queued``
  (its broker message lost with Redis) is re-queued after 60 s instead of 600 s.

The scenario, driven only through the REST API (plus the process table, to kill and restart):

1. anonymous and forged-token REST calls are refused;
2. the training DAG is triggered (``force``); once ``train_candidate`` runs, the Celery worker
   running it is SIGKILLed with every process of its emulated container (the task's too);
3. the scheduler is SIGKILLed and started again while the task is orphaned;
4. the Redis server is SIGKILLed and started again (empty: no persistence) while the surviving
   worker is connected to it, and once more while the retried task runs (the scheduler, which
   queued the retry through it, must reconnect to queue the tasks after it);
5. the run must still succeed: ``train_candidate`` failed its first try (no heartbeat) and was
   retried on the *other* worker; exactly one new version is registered (a retry finds the
   version its run registered, if any); the registry is consistent and the dead attempt's
   staging debris is gone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))

from native_compose import (  # noqa: E402
    CONTAINER_HOME,
    NativeComposeError,
    NativeTopology,
    free_port,
    services_unreachable,
    write_env_from_example,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

TRAINING_DAG = "late_delivery__training"
TRAIN_TASK = "train_candidate"
WORKERS = 2
PY = str(Path(sys.executable))
FAST_FAILURE_DETECTION = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
    # Only the scheduler job that queued a task watches its heartbeat; after a scheduler restart
    # the orphaned task is first adopted by the new one, which looks every 300 s by default.
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "20",
}


class RedisServer:
    """A private ``redis-server`` (no persistence) that can be killed and restarted."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        import redis

        log = open(self.workdir / f"redis-{self.restarts}.log", "wb")
        self.popen = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=1).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.popen.poll() is not None:
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.1)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()


def core_cli(topo: NativeTopology, *args: str) -> str:
    home = topo.rootfs / CONTAINER_HOME.lstrip("/")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(home / "include"),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([PY, "-m", "ml_lifecycle", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"ml_lifecycle {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary to run a private, restartable broker")
    workdir = tmp_path_factory.mktemp("airflow-faults")
    redis_server = RedisServer(workdir)
    redis_server.start()
    started = time.monotonic()
    topo = None
    try:
        reason = services_unreachable(redis_server=("127.0.0.1", redis_server.port))
        if reason:
            pytest.skip(f"needs the local PostgreSQL: {reason}")
        env_values = write_env_from_example(workdir / "test.env", AIRFLOW_WORKER_CONCURRENCY="2",
                                            ML_LIFECYCLE_DAILY_SCHEDULE="none")
        topo = NativeTopology(workdir, env_file=workdir / "test.env",
                              environ={"OMP_NUM_THREADS": "1"}, scale={"airflow-worker": WORKERS},
                              redis_server=("127.0.0.1", redis_server.port),
                              extra_env=FAST_FAILURE_DETECTION,
                              log=lambda line: print(line, flush=True))
        topo.prepare()
        config = topo.mapping.path(topo.compose["services"]["airflow-worker"]["environment"]
                                   ["ML_LIFECYCLE_CONFIG"])
        core_cli(topo, "simulate", "--out", topo.mapping.path(f"{CONTAINER_HOME}/var/demo/data"),
                 "--days", "4")
        core_cli(topo, "train", "--config", config, "--reason", "initial champion")
        topo.up(timeout=240)
        print(f"[faults] topology healthy after {time.monotonic() - started:.1f}s", flush=True)
        yield {"topo": topo, "env": env_values, "config": config, "redis": redis_server,
               "started": started}
    finally:
        if topo is not None:
            for line in topo.cleanup():
                print(f"[faults] cleanup: {line}", flush=True)
            assert topo._our_pids() == []
        redis_server.kill()
        print(f"[faults] total wall time {time.monotonic() - started:.1f}s", flush=True)


def _wait(what: str, timeout: float, probe: Any, topo: NativeTopology) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        topo._check_one_shot()  # a component that died unexpectedly fails the test now
        time.sleep(1)


def _fitting_pid(pids: list[int]) -> int | None:
    """A process among ``pids`` that has loaded scikit-learn's gradient boosting (it fits)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if "_hist_gradient_boosting" in Path(f"/proc/{pid}/maps").read_text():
                return pid
    return None


def _task_instance(topo: NativeTopology, token: str, run_id: str, task_id: str) -> dict | None:
    try:
        tis = topo.http("GET", f"/api/v2/dags/{TRAINING_DAG}/dagRuns/{run_id}/taskInstances",
                        token=token)["task_instances"]
    except NativeComposeError:  # the api-server may answer 5xx while the database is busy
        return None
    return next((ti for ti in tis if ti["task_id"] == task_id), None)


def test_worker_killed_mid_training_scheduler_and_broker_restarted(
    cluster: dict[str, Any],
) -> None:
    topo: NativeTopology = cluster["topo"]
    env = cluster["env"]
    from ml_lifecycle.config import load_config
    from ml_lifecycle.registry import Registry

    registry = Registry(load_config(cluster["config"]).registry.root)
    assert [c["version"] for c in registry.list_versions()] == [1]

    # 1. the REST API refuses anonymous and forged callers
    for token in (None, "not-a-jwt", "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.forged"):
        with pytest.raises(NativeComposeError, match=r"HTTP 40[13]"):
            topo.http("GET", "/api/v2/dags", token=token)
    with pytest.raises(NativeComposeError, match=r"HTTP 40[13]"):
        topo.http("POST", f"/api/v2/dags/{TRAINING_DAG}/dagRuns", token=None,
                  body={"logical_date": None})
    token = topo.token(env["_AIRFLOW_WWW_USER_USERNAME"], env["_AIRFLOW_WWW_USER_PASSWORD"])

    def dags_parsed() -> bool:
        dags = topo.http("GET", "/api/v2/dags?tags=ml-lifecycle&limit=50", token=token)["dags"]
        return TRAINING_DAG in {d["dag_id"] for d in dags}

    _wait("the DAGs to be parsed", 180, dags_parsed, topo)
    topo.http("PATCH", f"/api/v2/dags/{TRAINING_DAG}", token=token, body={"is_paused": False})

    # 2. trigger a training; kill the worker that runs train_candidate, mid-task
    t0 = time.monotonic()
    run = topo.http("POST", f"/api/v2/dags/{TRAINING_DAG}/dagRuns", token=token,
                    body={"logical_date": None,
                          "conf": {"reason": "fault injection", "force": True}})
    run_id = run["dag_run_id"]

    def training_running() -> dict | None:
        ti = _task_instance(topo, token, run_id, TRAIN_TASK)
        return ti if ti and ti["state"] == "running" and ti.get("hostname") else None

    first = _wait("train_candidate to run", 240, training_running, topo)
    victim = first["hostname"]
    survivor = next(p.hostname for p in topo.processes
                    if p.service == "airflow-worker" and p.hostname != victim)
    task_pid = int(first["pid"]) if first.get("pid") else None
    if task_pid is not None:
        assert task_pid in topo.container_pids(victim), "the task does not run in the victim"
    # kill it in the middle of the fit: once the gradient-boosting code is loaded
    fitting = _wait("the task to start fitting", 120,
                    lambda: _fitting_pid(topo.container_pids(victim)), topo)
    killed = topo.kill(victim)
    print(f"[faults] {time.monotonic() - t0:5.1f}s killed {victim} (pids {killed}) while "
          f"{TRAIN_TASK} try {first['try_number']} was fitting in pid {fitting}", flush=True)

    # 3. restart the scheduler while the task is orphaned
    scheduler = next(p for p in topo.processes if p.service == "airflow-scheduler")
    topo.restart(scheduler.hostname)
    _wait("the restarted scheduler's health check", 120,
          lambda: topo.run_healthcheck(scheduler)[0], topo)
    print(f"[faults] {time.monotonic() - t0:5.1f}s restarted {scheduler.hostname}", flush=True)

    # 4. restart the broker (empty afterwards) under the connected scheduler and worker
    cluster["redis"].restart()
    print(f"[faults] {time.monotonic() - t0:5.1f}s restarted redis-server on port "
          f"{cluster['redis'].port}", flush=True)

    # 4b. once the retry runs, restart the broker again: the scheduler, which sent the retry
    # through it, must reconnect to send the tasks after it; the worker running it too
    def retry_running() -> dict | None:
        ti = _task_instance(topo, token, run_id, TRAIN_TASK)
        return ti if ti and ti["try_number"] >= 2 and ti["state"] in ("running", "success") \
            else None

    retry = _wait("the retry of train_candidate to start", 240, retry_running, topo)
    cluster["redis"].restart()
    print(f"[faults] {time.monotonic() - t0:5.1f}s restarted redis-server again while try "
          f"{retry['try_number']} was {retry['state']} on {retry.get('hostname')}", flush=True)

    # 5. the run recovers and finishes
    def finished() -> dict | None:
        try:
            current = topo.http("GET", f"/api/v2/dags/{TRAINING_DAG}/dagRuns/{run_id}",
                                token=token)
        except NativeComposeError:
            return None
        return current if current["state"] in ("success", "failed") else None

    outcome = _wait("the training run to finish", 300, finished, topo)
    tis = topo.http("GET", f"/api/v2/dags/{TRAINING_DAG}/dagRuns/{run_id}/taskInstances",
                    token=token)["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    print(f"[faults] {time.monotonic() - t0:5.1f}s run {run_id}: {outcome['state']} {states}",
          flush=True)
    train = next(ti for ti in tis if ti["task_id"] == TRAIN_TASK)
    with contextlib.suppress(NativeComposeError):
        tries = topo.http("GET", f"/api/v2/dags/{TRAINING_DAG}/dagRuns/{run_id}/taskInstances/"
                                 f"{TRAIN_TASK}/tries", token=token)["task_instances"]
        print("[faults] tries: " + json.dumps([(t["try_number"], t["state"], t.get("hostname"))
                                               for t in tries]), flush=True)
    assert outcome["state"] == "success", (outcome, states)
    assert train["state"] == "success" and train["try_number"] >= 2, train
    assert train["hostname"] == survivor, (train["hostname"], survivor)

    # exactly one new version, from this run; the registry is consistent and clean
    cards = registry.list_versions()
    assert [c["version"] for c in cards] == [1, 2], [c["version"] for c in cards]
    assert cards[1]["trigger"]["run_id"] == run_id
    for card in cards:
        registry.verify(card["version"])
    history = registry.history()
    assert history[0]["previous"] is None
    assert all(b["previous"] == a["version"] for a, b in itertools.pairwise(history))
    if states.get("promote") == "success":
        assert registry.champion() == 2 and len(history) == 2
    else:
        assert states.get("reject") == "success" and registry.champion() == 1
    staging = Path(registry.root) / ".staging"
    assert not staging.exists() or [p for p in staging.iterdir() if p.is_dir()] == []
    print(f"[faults] one new version (v2), champion v{registry.champion()}; recovered in "
          f"{time.monotonic() - t0:.1f}s", flush=True)


def test_two_retrainings_started_together_both_finish_in_order(cluster: dict[str, Any]) -> None:
    """After the faults: the killed worker rejoins, two retrains are triggered at once. The DAG
    runs one at a time (max_active_runs=1); each registers one version and promotes with a
    compare-and-swap on the champion it was gated against: the history stays one chain."""
    topo: NativeTopology = cluster["topo"]
    env = cluster["env"]
    from ml_lifecycle.config import load_config
    from ml_lifecycle.registry import Registry

    for proc in topo.processes:
        if proc.service == "airflow-worker" and (proc.popen is None or proc.expected_exit
                                                 or proc.popen.poll() is not None):
            topo.restart(proc.hostname)
    registry = Registry(load_config(cluster["config"]).registry.root)
    before = [c["version"] for c in registry.list_versions()]
    token = topo.token(env["_AIRFLOW_WWW_USER_USERNAME"], env["_AIRFLOW_WWW_USER_PASSWORD"])
    run_ids = [topo.http("POST", f"/api/v2/dags/{TRAINING_DAG}/dagRuns", token=token,
                         body={"logical_date": None,
                               "conf": {"reason": f"together {i}", "force": True}})["dag_run_id"]
               for i in range(2)]
    t0 = time.monotonic()

    def all_finished() -> list[dict] | None:
        runs = []
        for run_id in run_ids:
            try:
                run = topo.http("GET", f"/api/v2/dags/{TRAINING_DAG}/dagRuns/{run_id}",
                                token=token)
            except NativeComposeError:
                return None
            if run["state"] not in ("success", "failed"):
                return None
            runs.append(run)
        return runs

    runs = _wait("both training runs to finish", 300, all_finished, topo)
    print(f"[faults] two runs started together finished in {time.monotonic() - t0:.1f}s: "
          f"{[r['state'] for r in runs]}", flush=True)
    assert [r["state"] for r in runs] == ["success", "success"]
    first_end = min(r["end_date"] for r in runs)
    assert max(r["start_date"] for r in runs) >= first_end  # one after the other
    cards = registry.list_versions()
    new = [c for c in cards if c["version"] not in before]
    assert len(new) == 2 and sorted(c["trigger"]["run_id"] for c in new) == sorted(run_ids)
    history = registry.history()
    assert all(b["previous"] == a["version"] for a, b in itertools.pairwise(history))
    for card in cards:
        registry.verify(card["version"])
