"""Run Airflow's own components for this project: ``make airflow`` (``serve``) and friends.

    python scripts/airflow_embedded.py serve [--port 8080]   UI + scheduler until Ctrl-C
    python scripts/airflow_embedded.py stop                  stop processes a crashed run left
    python scripts/airflow_embedded.py status                list them

``AIRFLOW_HOME`` is ``.airflow/`` in the project (git-ignored): SQLite metadata database,
LocalExecutor with ``[core] parallelism`` 2, DAGs from ``dags/``, plugins from ``plugins/``,
``include/`` on ``PYTHONPATH``, SimpleAuthManager with one ``admin`` user whose password is
generated once into ``.airflow/simple_auth_manager_passwords.json.generated``.

The DAGs' parse-time settings (``ML_LIFECYCLE_*``, see ``ml_lifecycle_airflow.settings``) come
from the environment; after ``make demo`` they are read from ``.airflow/lifecycle-env.json`` so
the UI shows the DAGs exactly as the demo ran them. The models are the configs of ``configs/``
(or ``ML_LIFECYCLE_CONFIGS``): one DAG set per model.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

from ml_lifecycle_airflow.embedded import MARKER_ENV, EmbeddedAirflow  # noqa: E402

HOME = ROOT / ".airflow"
ENV_FILE = HOME / "lifecycle-env.json"


def lifecycle_env() -> dict[str, str]:
    """Parse-time settings for the components: the demo's, the environment's, the config's."""
    from ml_lifecycle_airflow import settings

    env: dict[str, str] = {}
    if ENV_FILE.is_file():
        env.update(json.loads(ENV_FILE.read_text()))
    for key in (settings.CONFIG_ENV, settings.CONFIGS_ENV, settings.BASE_DIR_ENV,
                settings.START_DATE_ENV, settings.DAILY_SCHEDULE_ENV,
                settings.TRAINING_SCHEDULE_ENV):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def dag_ids(env: dict[str, str], project_root: Path = ROOT) -> list[str]:
    """The DAG ids the factory builds for the models of ``env`` (broken configs excluded)."""
    from unittest import mock

    from ml_lifecycle_airflow import settings

    with mock.patch.dict(os.environ, env):  # the components' settings, for this lookup only
        specs, broken = settings.discover(project_root)
    for item in broken:
        print(f"note: {item.error}")
    return [dag_id for spec in specs for dag_id in settings.dag_ids(spec.name).values()]


def home_pids(home: Path = HOME) -> list[int]:
    """Live processes of an embedded Airflow started with this ``AIRFLOW_HOME``."""
    needle = f"AIRFLOW_HOME={home.resolve()}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                env = handle.read().split(b"\0")
        except OSError:
            continue
        if needle in env and any(v.startswith(MARKER_ENV.encode()) for v in env):
            found.append(int(entry))
    return found


def stop_leftovers(home: Path = HOME, timeout: float = 15) -> int:
    pids = home_pids(home)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while home_pids(home) and time.monotonic() < deadline:
        time.sleep(0.3)
    for pid in home_pids(home):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    left = home_pids(home)
    if left:
        raise SystemExit(f"processes still alive: {left}")
    return len(pids)


def serve(port: int, parallelism: int) -> int:
    if home_pids():
        print(f"an embedded Airflow is already running with AIRFLOW_HOME={HOME} "
              f"(pids {home_pids()}); stop it first: python scripts/airflow_embedded.py stop")
        return 1
    extra = lifecycle_env()
    airflow = EmbeddedAirflow(ROOT, HOME, port=port, parallelism=parallelism, extra_env=extra)
    stopping = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"AIRFLOW_HOME={HOME}; migrating the SQLite database ...", flush=True)
    airflow.migrate()
    try:
        airflow.start()
        ids = dag_ids(extra)
        airflow.wait_for_dags(ids)
        print(
            f"\nAirflow is running: {airflow.base_url}\n"
            f"  log in as user 'admin', password '{airflow.admin_password()}'\n"
            f"  (stored in {airflow.password_file})\n"
            f"  DAGs: {', '.join(ids)} (new DAGs start paused: unpause them in the UI)\n"
            f"  settings: {json.dumps(extra)}\n"
            f"  component logs: {HOME / 'logs'}\n"
            "Press Ctrl-C to stop every component.", flush=True)
        while not stopping["flag"]:
            airflow.check_alive()
            time.sleep(1)
    finally:
        print("stopping the components ...", flush=True)
        killed = airflow.stop()
        print(f"stopped; no process left{f' (SIGKILL needed for {killed})' if killed else ''}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="start everything, UI on localhost, until Ctrl-C")
    serve_cmd.add_argument("--port", type=int, default=8080)
    serve_cmd.add_argument("--parallelism", type=int, default=2)
    sub.add_parser("stop", help="stop the processes of an embedded Airflow under .airflow/")
    sub.add_parser("status", help="list them")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.port, args.parallelism)
    if args.command == "stop":
        print(f"stopped {stop_leftovers()} process(es)")
        return 0
    pids = home_pids()
    print(f"{len(pids)} process(es) running under {HOME}: {pids}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
