"""Airflow's own components on this machine: scheduler, dag-processor, triggerer, api-server.

``EmbeddedAirflow`` runs them with ``LocalExecutor`` and SQLite under one ``AIRFLOW_HOME``
(``.airflow/`` in the project for ``make demo`` / ``make airflow``, a temp folder in tests).
Every component is started by us, in its own process group (``airflow standalone`` leaves
components behind when stopped), with the venv's ``bin/`` first on ``PATH`` (components start
helpers by name) and a small ``[core] parallelism`` (LocalExecutor starts that many workers).

``stop()`` sends SIGTERM to each process group, waits, SIGKILLs what is left, and then verifies
that no process started under this home is still alive (it finds them by a marker environment
variable, so task processes that changed their group are found too). Use it as a context
manager, so a failing caller still stops everything.

The REST helpers (``trigger``, ``wait_for_run``, ``unpause`` ...) use the public API with a JWT
from ``POST /auth/token`` (SimpleAuthManager, user ``admin``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

COMPONENTS = ("dag-processor", "scheduler", "triggerer", "api-server")
MARKER_ENV = "ML_LIFECYCLE_EMBEDDED_ID"
ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
TERMINAL_STATES = {"success", "failed"}


class EmbeddedError(RuntimeError):
    """A component did not start, a request failed, or a run did not finish in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pids_with_marker(marker: str) -> list[int]:
    """PIDs of live processes whose environment holds ``MARKER_ENV=marker`` (same user)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    with open(f"/proc/{entry}/stat", "rb") as stat:
                        state = stat.read().rsplit(b")", 1)[1].split()[0]
                    if state != b"Z":  # a zombie is already dead; its parent reaps it
                        found.append(int(entry))
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return f"{pid}: " + handle.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return str(pid)


class EmbeddedAirflow:
    """Start, use and stop an embedded Airflow (see the module docstring).

    Args:
        project_root: the project (``dags/``, ``plugins/``, ``include/``).
        home: ``AIRFLOW_HOME``.
        port: api-server port (``None``: a free one).
        parallelism: ``[core] parallelism`` (LocalExecutor worker processes).
        extra_env: more environment for every component (``ML_LIFECYCLE_*`` ...).
        venv_bin: folder of the ``airflow`` executable (default: this interpreter's).
        preload: modules the LocalExecutor's workers import once, before forking task
            processes (``[core] mp_forkserver_preload``): a task then starts with pandas and
            scikit-learn already in memory instead of importing them (~1-2 s of CPU per task).
        idle_sleep: ``[scheduler] scheduler_idle_sleep_time``; below the default 1 s, task
            hand-offs are quicker at the cost of a busier idle scheduler (demo, tests).
    """

    def __init__(
        self,
        project_root: str | Path,
        home: str | Path,
        *,
        port: int | None = None,
        parallelism: int = 2,
        extra_env: dict[str, str] | None = None,
        venv_bin: str | Path | None = None,
        preload: tuple[str, ...] = (),
        idle_sleep: float = 1.0,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        self.home = Path(home).resolve()
        self.port = port or free_port()
        self.parallelism = parallelism
        self.extra_env = dict(extra_env or {})
        self.venv_bin = Path(venv_bin) if venv_bin else Path(sys.executable).parent
        self.preload = tuple(preload)
        self.idle_sleep = idle_sleep
        self.marker = secrets.token_hex(8)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_files: list[Any] = []
        self._token: str | None = None
        self.started_at: dt.datetime | None = None

    # ------------------------------------------------------------------ environment

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def password_file(self) -> Path:
        return self.home / PASSWORDS_FILE

    def _secret(self, name: str) -> str:
        """A random secret kept in the home (same value for every component and restart)."""
        path = self.home / f".{name}"
        if not path.is_file():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def admin_password(self) -> str:
        """The admin password (created once, stored where SimpleAuthManager reads it)."""
        if self.password_file.is_file():
            try:
                return json.loads(self.password_file.read_text())[ADMIN_USER]
            except (ValueError, KeyError):
                pass
        self.home.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        self.password_file.write_text(json.dumps({ADMIN_USER: password}) + "\n")
        self.password_file.chmod(0o600)
        return password

    def env(self) -> dict[str, str]:
        root = self.project_root
        env = dict(os.environ)
        python_path = [str(root / "include"), *filter(None, [env.get("PYTHONPATH")])]
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple."
                                           "simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api_secret"),
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "localhost",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": str(self.idle_sleep),
            "AIRFLOW__TRIGGERER__CAPACITY": "50",
            "PYTHONPATH": os.pathsep.join(python_path),
            "PATH": os.pathsep.join([str(self.venv_bin), env.get("PATH", "")]),
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
            "PYTHONUNBUFFERED": "1",
            MARKER_ENV: self.marker,
        })
        if self.preload:
            env["AIRFLOW__SCHEDULER__MP_START_METHOD"] = "forkserver"
            env["AIRFLOW__CORE__MP_FORKSERVER_PRELOAD"] = ",".join(self.preload)
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, timeout: float = 120, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command with this environment."""
        result = subprocess.run(
            [str(self.venv_bin / "airflow"), *args], env=self.env(), capture_output=True,
            text=True, timeout=timeout, check=False, cwd=self.project_root,
        )
        if check and result.returncode != 0:
            raise EmbeddedError(
                f"`airflow {' '.join(args)}` exited with {result.returncode}:\n"
                f"{result.stderr[-3000:] or result.stdout[-3000:]}")
        return result

    def migrate(self) -> None:
        """Create or upgrade the SQLite metadata database."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate", timeout=300)

    # ------------------------------------------------------------------ processes

    def start(self, components: tuple[str, ...] = COMPONENTS, ready_timeout: float = 90) -> None:
        """Start each component in its own process group and wait until the API answers."""
        self.admin_password()
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self.started_at = dt.datetime.now(dt.UTC)
        env = self.env()
        for name in components:
            args = [str(self.venv_bin / "airflow"), name]
            if name in ("scheduler", "triggerer"):
                args.append("--skip-serve-logs")
            if name == "api-server":
                args += ["--port", str(self.port)]
            log_file = open(self.home / "logs" / f"{name}.out", "ab")
            self._log_files.append(log_file)
            self.processes[name] = subprocess.Popen(
                args, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                cwd=self.project_root, start_new_session=True,
            )
        self.wait_ready(ready_timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "not started"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                health = self._request("GET", "/api/v2/monitor/health", auth=False)
                fresh = all(self._fresh(health.get(part) or {})
                            for part in ("scheduler", "triggerer", "dag_processor")
                            if part.replace("_", "-") in self.processes)
                if fresh:
                    return
                last_error = f"health: {health}"
            except (EmbeddedError, OSError) as exc:
                last_error = str(exc)
            time.sleep(1)
        raise EmbeddedError(f"Airflow components not healthy after {timeout:g} s: {last_error}")

    def _fresh(self, part: dict[str, Any]) -> bool:
        """Healthy with a heartbeat from this start (a reused database keeps old ones)."""
        beat = part.get("latest_scheduler_heartbeat") or part.get(
            "latest_triggerer_heartbeat") or part.get("latest_dag_processor_heartbeat")
        if part.get("status") != "healthy" or not beat or self.started_at is None:
            return False
        return dt.datetime.fromisoformat(beat) >= self.started_at - dt.timedelta(seconds=2)

    def check_alive(self) -> None:
        """Raise naming a component that exited, with the end of its log."""
        for name, proc in self.processes.items():
            code = proc.poll()
            if code is not None:
                log = (self.home / "logs" / f"{name}.out")
                tail = log.read_text(errors="replace")[-2500:] if log.is_file() else ""
                raise EmbeddedError(f"airflow {name} exited with code {code}:\n{tail}")

    def leftover_pids(self) -> list[int]:
        """Live processes started under this instance (components, workers, task processes)."""
        return _pids_with_marker(self.marker)

    def stop(self, timeout: float = 30, grace: float = 2) -> list[str]:
        """Stop every component and verify none of their processes is left.

        SIGTERM to each component's process group; up to ``timeout`` s for the components to
        exit, then ``grace`` s for what they started (workers, the executor's forkserver, task
        processes); SIGKILL for anything still alive.

        Returns:
            Command lines of the processes that had to be SIGKILLed (empty when all exited).

        Raises:
            EmbeddedError: a process survived SIGKILL.
        """
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        deadline = time.monotonic() + grace
        while self.leftover_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        killed = []
        for pid in self.leftover_pids():
            killed.append(_cmdline(pid))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for handle in self._log_files:
            handle.close()
        self._log_files.clear()
        survivors = []
        for _ in range(50):
            survivors = self.leftover_pids()
            if not survivors:
                break
            time.sleep(0.2)
        self.processes.clear()
        if survivors:
            raise EmbeddedError(f"processes still alive after SIGKILL: {survivors}")
        return killed

    def __enter__(self) -> EmbeddedAirflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ REST API

    def token(self) -> str:
        if self._token is None:
            reply = self._request("POST", "/auth/token", {"username": ADMIN_USER,
                                                          "password": self.admin_password()},
                                  auth=False)
            self._token = reply["access_token"]
        return self._token

    def _request(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                 timeout: float = 30) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise EmbeddedError(f"{method} {path} -> HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise EmbeddedError(f"{method} {path}: {exc.reason}") from None
        return json.loads(text) if text else None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the public REST API (``/api/v2/...``) as admin."""
        return self._request(method, path, body)

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 120) -> None:
        """Wait until the dag-processor has parsed these DAGs (and reported no import error)."""
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            self.check_alive()
            errors = self.api("GET", "/api/v2/importErrors").get("import_errors", [])
            if errors:
                raise EmbeddedError(f"DAG import errors: {errors}")
            known = {d["dag_id"] for d in self.api("GET", "/api/v2/dags?limit=100")["dags"]}
            missing = [d for d in dag_ids if d not in known]
            if not missing:
                return
            time.sleep(1)
        raise EmbeddedError(f"DAGs not parsed after {timeout:g} s: {missing}")

    def unpause(self, dag_id: str, paused: bool = False) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, *, logical_date: str | None = None,
                conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        """Create a DAG run; return its run id. ``logical_date``: ``YYYY-MM-DD`` or None."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if logical_date:
            body["logical_date"] = f"{logical_date}T00:00:00Z"
        if run_id:
            body["dag_run_id"] = run_id
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        reply = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=1000&order_by=run_after")
        return reply["dag_runs"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        quoted = urllib.parse.quote(run_id, safe="")
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")["state"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        quoted = urllib.parse.quote(run_id, safe="")
        reply = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances")
        return {t["task_id"]: t["state"] for t in reply["task_instances"]}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300,
                     poll: float = 1.0) -> str:
        """Wait until a run is ``success`` or ``failed``; return that state."""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            self.check_alive()
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_STATES:
                return state
            time.sleep(poll)
        raise EmbeddedError(
            f"{dag_id} run {run_id} still '{state}' after {timeout:g} s; task states: "
            f"{self.task_states(dag_id, run_id)}")

