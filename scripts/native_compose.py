"""Run the Airflow services of docker-compose.yaml natively: the cluster without containers.

No Docker engine runs on the project's machines, but PostgreSQL and Redis do. This harness reads
``docker-compose.yaml``, interpolates it like ``docker compose`` does (``${VAR}``, ``${VAR:-d}``,
``${VAR:?message}``, ``$$``; values from an env file and the calling environment), and starts each
Airflow service as a native process group with the command and environment the file gives it. It
follows ``depends_on`` conditions (``service_healthy`` runs the service's own healthcheck command,
``service_completed_successfully`` waits for a one-shot service) and ``--scale``-like replicas.

What a container would have provided is played as follows (``NativeTopology.describe()`` prints it):

* host names of services (``postgres``, ``redis``, ``airflow-apiserver``, ...) -> ``127.0.0.1``;
  the ``postgres`` service is the local PostgreSQL server, in which the harness creates the role and
  database that the postgres image would create from POSTGRES_USER/PASSWORD/DB; the ``redis``
  service is the local Redis, with a database index of the harness's own (flushed before and after);
* every container has its own network namespace: ports a process listens on (api-server 8080,
  scheduler health 8974, log servers 8793/8794, flower 5555) get a free port per process, and URLs
  to ``<service>:<port>`` or published ``localhost:<port>`` are rewritten to it;
* the container file system: ``<workdir>/rootfs/opt/airflow`` with one symlink per mount point
  (bind mounts -> project folders, named volumes -> ``<workdir>/volumes/<name>``), so paths in
  commands and environment are rewritten by one prefix swap and relative paths resolve the same;
* the container host name: ``HOSTNAME=<service>-<n>``, a ``hostname_callable`` returning it (so task
  instances record which worker ran them) and ``celery@<HOSTNAME>`` as Celery node name.

Fault injection (tests/test_reliability_airflow_faults.py): ``extra_env`` adds settings to every
Airflow service (like a ``docker-compose.override.yaml``), ``kill(hostname)`` SIGKILLs a replica's
whole emulated container (its process group, its marked processes and their descendants, the
task processes included) and ``restart(hostname)`` starts it again with the same identity.

Everything started is stopped by ``stop()`` (process groups, then a /proc scan for any process
carrying this run's marker variable); ``cleanup()`` also drops the database and role and flushes the
Redis index. Use as a context manager, or from the command line::

    PYTHONPATH=include .venv/bin/python scripts/native_compose.py config --env-file .env
    PYTHONPATH=include .venv/bin/python scripts/native_compose.py up --env-file .env \
        --scale airflow-worker=2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
CONTAINER_HOME = "/opt/airflow"  # AIRFLOW_HOME and WORKDIR of the official image
MARKER_VAR = "NATIVE_COMPOSE_RUN_ID"
INFRA_SERVICES = ("postgres", "redis")
# Ports Airflow processes listen on inside their container, and the setting that moves each one.
LISTEN_PORTS = {
    8080: "AIRFLOW__API__PORT",
    8974: "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    8793: "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
    8794: "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    5555: "AIRFLOW__CELERY__FLOWER_PORT",
}
# The official image's entrypoint runs `bash ...`/`python ...` as they are, `airflow X` as X, and
# anything else as `airflow <args>` (so `celery worker` is `airflow celery worker`).
DIRECT_COMMANDS = {"bash", "python", "airflow"}
HOST_ENV_PASSTHROUGH = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "OMP_NUM_THREADS")
HOSTNAME_MODULE = "native_compose_hostname"


class ComposeError(Exception):
    """docker-compose.yaml cannot be read or interpolated (the message names the variable)."""


class NativeComposeError(Exception):
    """The native topology cannot be prepared, started or checked (the message says why)."""


# --------------------------------------------------------------------------- reading the file


def read_env_file(path: str | os.PathLike[str] | None) -> dict[str, str]:
    """Parse a compose ``.env`` file (KEY=VALUE, comments, optional quotes); missing file -> {}."""
    if path is None or not Path(path).is_file():
        return {}
    values: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if "=" not in line:
            raise ComposeError(f"{path}:{number}: expected KEY=VALUE, found {line!r}")
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


def interpolate(text: str, env: dict[str, str], where: str) -> str:
    """Substitute compose variables in one string, as ``docker compose`` does."""

    def sub(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        expr = match.group("braced")
        parsed = _BRACED.match(expr)
        if not parsed:
            raise ComposeError(f"error while interpolating {where}: invalid expression ${{{expr}}}")
        name, op, arg = parsed.group("name"), parsed.group("op"), parsed.group("arg") or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op and op.startswith(":"))
        if op is None:
            return value or ""
        if op in (":-", "-"):
            return arg if (value is None if op == "-" else unset_or_empty) else value
        if op in (":?", "?"):
            if value is None if op == "?" else unset_or_empty:
                raise ComposeError(
                    f"error while interpolating {where}: required variable {name} is missing a "
                    f"value: {arg}"
                )
            return value
        # :+ / +
        return arg if not (value is None if op == "+" else unset_or_empty) else ""

    return _VAR.sub(sub, text)


def _interpolate_tree(node: Any, env: dict[str, str], where: str) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, where)
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


def load_compose(
    path: str | os.PathLike[str] = COMPOSE_FILE,
    env_file: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Read and interpolate a compose file (anchors and ``<<`` merges resolved by PyYAML).

    Variables come from ``env_file`` (compose's ``.env``), overridden by ``environ`` (default: the
    calling process's environment), as with ``docker compose --env-file``.
    """
    import yaml

    env = {**read_env_file(env_file), **(os.environ if environ is None else environ)}
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ComposeError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        raise ComposeError(f"{path}: no 'services' mapping")
    return {key: _interpolate_tree(value, env, key) for key, value in raw.items()}


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or KEY=VALUE list) as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in env.items()}


def service_argv(service: dict[str, Any]) -> list[str]:
    """The argv the official image runs: entrypoint + command, or ``airflow <command>``."""
    command = service.get("command") or []
    command = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    entrypoint = service.get("entrypoint")
    if entrypoint:
        entry = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint)
        return [*entry, *command]
    if command and command[0] in DIRECT_COMMANDS:
        return command
    return ["airflow", *command]


def parse_volume(spec: str, compose_dir: Path) -> tuple[str, str, bool]:
    """``source:target[:mode]`` -> (source, container target, is_bind_mount)."""
    parts = spec.split(":")
    if len(parts) < 2:
        raise ComposeError(f"volume {spec!r}: expected SOURCE:TARGET")
    source, target = parts[0], parts[1]
    is_bind = source.startswith((".", "/", "~"))
    if is_bind:
        source = str((compose_dir / os.path.expanduser(source)).resolve())
    return source, target, is_bind


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


def active_services(compose: dict[str, Any], profiles: tuple[str, ...] = ()) -> list[str]:
    return [name for name, svc in compose["services"].items()
            if not svc.get("profiles") or set(svc["profiles"]) & set(profiles)]


def airflow_env_keys(compose: dict[str, Any]) -> dict[str, set[str]]:
    """Every ``AIRFLOW__SECTION__KEY`` variable set by any service -> the services setting it."""
    found: dict[str, set[str]] = {}
    for name, svc in compose["services"].items():
        for key in service_environment(svc):
            if key.startswith("AIRFLOW__"):
                found.setdefault(key, set()).add(name)
    return found


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _parse_utc(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _duration(value: Any, default: float) -> float:
    if value is None:
        return default
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(value))
    if not match or not any(match.groups()):
        return default
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


@dataclass
class NativeProcess:
    service: str
    replica: int
    hostname: str
    argv: list[str]
    env: dict[str, str]
    ports: dict[int, int]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    expected_exit: bool = False  # killed on purpose (fault injection): not a failure

    @property
    def name(self) -> str:
        return self.hostname

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Mapping:
    """How container names, paths and ports of the compose file map onto this machine."""

    rootfs: Path
    hosts: dict[str, str] = field(default_factory=dict)  # service host name -> 127.0.0.1
    service_ports: dict[tuple[str, int], int] = field(default_factory=dict)  # (svc, port) -> port
    published: dict[int, int] = field(default_factory=dict)  # published host port -> native port
    redis_db: int = 0

    def path(self, text: str) -> str:
        return re.sub(r"(?<![\w.-])" + re.escape(CONTAINER_HOME) + r"(?=/|\b|$)",
                      str(self.rootfs / CONTAINER_HOME.lstrip("/")), text)

    def url(self, text: str, own_ports: dict[int, int]) -> str:
        """Rewrite a URL value: service hosts, published/own ports, the Redis database index."""
        if "://" not in text:
            return text
        try:
            parts = urlsplit(text)
            host, port = parts.hostname, parts.port
        except ValueError:
            return text
        if host is None:
            return text
        new_host, new_port, path = host, port, parts.path
        if host in self.hosts:
            new_host = self.hosts[host]
            if port is not None and (host, port) in self.service_ports:
                new_port = self.service_ports[(host, port)]
            if host == "redis":
                path = f"/{self.redis_db}"
        elif host in ("localhost", "127.0.0.1"):
            # A published port reaches the publishing service; others stay in the container.
            if port in self.published:
                new_port = self.published[port]
            elif port in own_ports:
                new_port = own_ports[port]
        else:
            return text
        auth = ""
        if parts.username is not None or parts.password is not None:
            auth = quote(unquote(parts.username or ""), safe="")
            if parts.password is not None:
                auth += ":" + quote(unquote(parts.password), safe="")
            auth += "@"
        netloc = auth + new_host + (f":{new_port}" if new_port else "")
        return urlunsplit(parts._replace(netloc=netloc, path=path))

    def text(self, text: str, own_ports: dict[int, int]) -> str:
        """Map a command argument or env value (URLs inside shell text are mapped too)."""
        text = self.path(text)
        if "://" not in text:
            return text
        if re.fullmatch(r"\S+", text):
            return self.url(text, own_ports)
        return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"']+",
                      lambda m: self.url(m.group(0), own_ports), text)


def services_unreachable(pg: dict[str, Any] | None = None,
                         redis_server: tuple[str, int] = ("127.0.0.1", 6379)) -> str | None:
    """Why the local PostgreSQL / Redis cannot be used for a native run (None: both answer)."""
    try:
        import psycopg2
        import redis
    except ImportError as exc:
        return f"driver missing: {exc}"
    params = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres",
              **(pg or {})}
    try:
        psycopg2.connect(**params, connect_timeout=3).close()
    except psycopg2.Error as exc:
        return (f"PostgreSQL at {params['host']}:{params['port']} is not reachable: "
                f"{str(exc).strip()}")
    try:
        redis.Redis(host=redis_server[0], port=redis_server[1], socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {redis_server[0]}:{redis_server[1]} is not reachable: {exc}"
    return None


def write_env_from_example(path: str | os.PathLike[str], example: str | os.PathLike[str] | None
                           = None, **overrides: str) -> dict[str, str]:
    """Write a .env made from .env.example with every CHANGE_ME value replaced by a new secret.

    POSTGRES_USER/POSTGRES_DB get a unique name (a fresh role and database per native run).
    """
    import secrets

    from cryptography.fernet import Fernet

    values = read_env_file(example or PROJECT_ROOT / ".env.example")
    for key, value in values.items():
        if "CHANGE_ME" in value:
            values[key] = (Fernet.generate_key().decode() if "FERNET" in key
                           else secrets.token_hex(24))
    suffix = uuid.uuid4().hex[:10]
    values.update({"POSTGRES_USER": f"mlc_native_{suffix}",
                   "POSTGRES_DB": f"mlc_native_{suffix}",
                   "AIRFLOW_UID": str(os.getuid()), **overrides})
    Path(path).write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return values


# --------------------------------------------------------------------------- the topology


class NativeTopology:
    """Prepare, start, check and stop the compose file's Airflow services as native processes."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        compose_file: str | os.PathLike[str] = COMPOSE_FILE,
        env_file: str | os.PathLike[str] | None = None,
        environ: dict[str, str] | None = None,
        scale: dict[str, int] | None = None,
        profiles: tuple[str, ...] = (),
        mount_overrides: dict[str, str | os.PathLike[str]] | None = None,
        pg_admin: dict[str, Any] | None = None,
        redis_server: tuple[str, int] = ("127.0.0.1", 6379),
        redis_db: int | None = None,
        bin_dir: str | os.PathLike[str] | None = None,
        extra_env: dict[str, str] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.compose_file = Path(compose_file).resolve()
        self.compose_dir = self.compose_file.parent
        self.env_file = env_file
        self.compose = load_compose(self.compose_file, env_file, environ if environ is not None
                                    else {})
        self.workdir = Path(workdir).resolve()
        self.scale = dict(scale or {})
        self.profiles = tuple(profiles)
        self.mount_overrides = {k: str(v) for k, v in (mount_overrides or {}).items()}
        self.pg_admin = {"host": "127.0.0.1", "port": 5432, "user": "postgres",
                         "dbname": "postgres", **(pg_admin or {})}
        self.redis_server = redis_server
        self.requested_redis_db = redis_db
        self.bin_dir = Path(bin_dir or Path(sys.executable).parent)
        # Added to every Airflow service's environment, like a docker-compose.override.yaml
        # (e.g. shorter scheduler timeouts for fault-injection tests).
        self.extra_env = dict(extra_env or {})
        self.log = log
        self.run_id = uuid.uuid4().hex[:12]
        self.rootfs = self.workdir / "rootfs"
        self.mapping = Mapping(rootfs=self.rootfs)
        self.processes: list[NativeProcess] = []
        self.completed: dict[str, int] = {}
        self.healthy: set[str] = set()
        self.started_at: datetime | None = None
        self.notes: list[str] = []
        self._db_created = False
        self._role_created = False
        self._redis_claimed = False
        services = self.compose["services"]
        self.airflow_services = [n for n in active_services(self.compose, self.profiles)
                                 if n not in INFRA_SERVICES]
        missing = [n for n in INFRA_SERVICES if n not in services]
        if missing:
            raise NativeComposeError(f"{self.compose_file}: services {missing} are missing")
        pg_env = service_environment(services["postgres"])
        self.db_user = pg_env.get("POSTGRES_USER", "postgres")
        self.db_password = pg_env.get("POSTGRES_PASSWORD", "")
        self.db_name = pg_env.get("POSTGRES_DB", self.db_user)

    # ------------------------------------------------------------------ preparation

    def describe(self) -> str:
        lines = [f"native topology {self.run_id} from {self.compose_file}",
                 f"  workdir {self.workdir}"]
        lines += [f"  {note}" for note in self.notes]
        for proc in self.processes:
            state = "running" if proc.popen and proc.popen.poll() is None else "stopped"
            pid = proc.popen.pid if proc.popen else "-"
            lines.append(f"  {proc.hostname:<26} pid {pid!s:>7}  {state:<8} "
                         f"{shlex.join(proc.argv).splitlines()[0][:80]}")
        return "\n".join(lines)

    def _pg_connect(self, dbname: str | None = None):  # -> psycopg2 connection
        import psycopg2

        params = {**self.pg_admin, "connect_timeout": 5}
        if dbname:
            params["dbname"] = dbname
        try:
            conn = psycopg2.connect(**params)
        except psycopg2.OperationalError as exc:
            raise NativeComposeError(
                f"PostgreSQL (service 'postgres' of {self.compose_file.name}, played by the local "
                f"server {self.pg_admin['host']}:{self.pg_admin['port']} as user "
                f"{self.pg_admin['user']}) is not reachable: {str(exc).strip()}"
            ) from None
        conn.autocommit = True
        return conn

    def _redis(self, db: int = 0):  # -> redis.Redis
        import redis

        host, port = self.redis_server
        return redis.Redis(host=host, port=port, db=db, socket_connect_timeout=5)

    def check_services(self) -> None:
        """Raise NativeComposeError with a clear message when PostgreSQL or Redis is unreachable."""
        self._pg_connect().close()
        import redis

        try:
            self._redis().ping()
        except redis.RedisError as exc:
            host, port = self.redis_server
            raise NativeComposeError(
                f"Redis (service 'redis' of {self.compose_file.name}, played by the local server "
                f"{host}:{port}) is not reachable: {exc}"
            ) from None

    def prepare(self) -> None:
        """Build the native file system, claim a Redis index, create the role and the database."""
        self.check_services()
        self.started_at = datetime.now(UTC)
        home = self.rootfs / CONTAINER_HOME.lstrip("/")
        home.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        mounts: dict[str, str] = {}
        for name in self.airflow_services:
            for spec in self.compose["services"][name].get("volumes") or []:
                source, target, is_bind = parse_volume(str(spec), self.compose_dir)
                if target in self.mount_overrides:
                    source = self.mount_overrides[target]
                elif not is_bind:
                    source = str(self.workdir / "volumes" / source)
                    Path(source).mkdir(parents=True, exist_ok=True)
                elif not Path(source).exists():
                    raise NativeComposeError(
                        f"service {name}: bind mount source {source} (for {target}) does not exist"
                    )
                if mounts.setdefault(target, source) != source:
                    raise NativeComposeError(f"{target} is mounted from two sources")
        for target, source in sorted(mounts.items()):
            if not target.startswith(CONTAINER_HOME + "/"):
                raise NativeComposeError(f"mount target {target} is outside {CONTAINER_HOME}")
            link = self.rootfs / target.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(source, target_is_directory=True)
            self.notes.append(f"mount {target} -> {source}")
        support = self.workdir / "native-support"
        support.mkdir(exist_ok=True)
        (support / f"{HOSTNAME_MODULE}.py").write_text(
            '"""hostname_callable for native runs: the emulated container host name."""\n'
            "import os\n\n\ndef hostname():\n    return os.environ['HOSTNAME']\n",
            encoding="utf-8",
        )
        for name in self.compose["services"]:
            self.mapping.hosts[name] = "127.0.0.1"
        self.mapping.service_ports[("postgres", 5432)] = int(self.pg_admin["port"])
        self.mapping.service_ports[("redis", 6379)] = int(self.redis_server[1])
        self._claim_redis_db()
        self._create_database()
        self._plan_processes()

    def _claim_redis_db(self) -> None:
        if self.requested_redis_db is not None:
            candidates = [self.requested_redis_db]
        else:
            candidates = list(range(15, 0, -1))
        for index in candidates:
            client = self._redis(index)
            # SETNX claim key: two concurrent runs never share an index.
            if client.dbsize() == 0 or self.requested_redis_db is not None:
                client.flushdb()
                if client.set("native-compose-claim", self.run_id, nx=True):
                    self.mapping.redis_db = index
                    self._redis_claimed = True
                    self.notes.append(
                        f"service redis -> local Redis {self.redis_server[0]}:"
                        f"{self.redis_server[1]} database index {index} (flushed)")
                    return
        raise NativeComposeError("no free Redis database index (1-15 all hold keys)")

    def _create_database(self) -> None:
        from psycopg2 import sql

        conn = self._pg_connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.db_user,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(
                        sql.Identifier(self.db_user)), (self.db_password,))
                    self._role_created = True
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.db_name,))
                if cur.fetchone() is not None:
                    raise NativeComposeError(
                        f"database {self.db_name} already exists on the local server: use a "
                        "fresh POSTGRES_DB for a native run")
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.db_name), sql.Identifier(self.db_user)))
                self._db_created = True
        finally:
            conn.close()
        self.notes.append(
            f"service postgres -> local PostgreSQL {self.pg_admin['host']}:{self.pg_admin['port']}"
            f", fresh database {self.db_name} owned by role {self.db_user}")

    def _plan_processes(self) -> None:
        services = self.compose["services"]
        for name in self.airflow_services:
            svc = services[name]
            replicas = 1 if svc.get("restart") == "no" else self.scale.get(name, 1)
            for replica in range(1, replicas + 1):
                own_ports = {port: free_port() for port in LISTEN_PORTS}
                if replica == 1:
                    for port, native in own_ports.items():
                        self.mapping.service_ports[(name, port)] = native
                    for spec in svc.get("ports") or []:
                        published, _, container = str(spec).rpartition(":")
                        if published and int(container) in own_ports:
                            self.mapping.published[int(published.rsplit(":", 1)[-1])] = \
                                own_ports[int(container)]
                hostname = f"{name}-{replica}"
                self.processes.append(NativeProcess(
                    service=name, replica=replica, hostname=hostname, argv=[], env={},
                    ports=own_ports, log_path=self.workdir / "logs" / f"{hostname}.log"))
        for proc in self.processes:
            proc.argv, proc.env = self._native_command(proc)

    def _native_command(self, proc: NativeProcess) -> tuple[list[str], dict[str, str]]:
        svc = self.compose["services"][proc.service]
        m = self.mapping
        env = {key: os.environ[key] for key in HOST_ENV_PASSTHROUGH if key in os.environ}
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        env["AIRFLOW_HOME"] = m.path(CONTAINER_HOME)
        env["HOSTNAME"] = proc.hostname
        for key, value in {**service_environment(svc), **self.extra_env}.items():
            env[key] = m.text(value, proc.ports)
        # Native-only additions (each stands for something a container gives for free).
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = f"{HOSTNAME_MODULE}.hostname"
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (env.get("PYTHONPATH", ""), str(self.workdir / "native-support")) if p)
        for port, setting in LISTEN_PORTS.items():
            env[setting] = str(proc.ports[port])
        env[MARKER_VAR] = self.run_id
        argv = [m.text(arg, proc.ports) for arg in service_argv(svc)]
        if argv[:3] == ["airflow", "celery", "worker"] and "-H" not in argv:
            argv += ["--celery-hostname", f"celery@{proc.hostname}"]
        if argv and argv[0] in ("airflow", "celery", "python", "python3"):
            candidate = self.bin_dir / argv[0]
            if candidate.exists():
                argv[0] = str(candidate)
        return argv, env

    # ------------------------------------------------------------------ running

    def _spawn(self, proc: NativeProcess) -> None:
        log_file = open(proc.log_path, "ab")  # the child keeps its own copy
        try:
            proc.popen = subprocess.Popen(
                proc.argv, env=proc.env, cwd=self.mapping.path(CONTAINER_HOME),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log_file.close()
        proc.started_at = time.monotonic()
        shown = shlex.join(proc.argv).splitlines()[0][:110]
        self.log(f"[native-compose] started {proc.hostname} pid {proc.popen.pid}: {shown}")

    def run_healthcheck(self, proc: NativeProcess) -> tuple[bool, str]:
        """Run the service's compose healthcheck ``test`` natively; (passed, output)."""
        svc = self.compose["services"].get(proc.service, {})
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        if not test or test == ["NONE"]:
            return (proc.popen is not None and proc.popen.poll() is None), "no healthcheck"
        if isinstance(test, str):
            argv = ["/bin/sh", "-c", test]
        elif test[0] == "CMD-SHELL":
            argv = ["/bin/sh", "-c", test[1]]
        elif test[0] == "CMD":
            argv = list(test[1:])
        else:
            argv = list(test)
        argv = [self.mapping.text(a, proc.ports) for a in argv]
        env = dict(proc.env) if proc.env else {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True,
                                  timeout=_duration(check.get("timeout"), 30) + 30,
                                  cwd=self.mapping.path(CONTAINER_HOME))
        except (subprocess.TimeoutExpired, FileNotFoundError) as exc:
            return False, str(exc)
        return done.returncode == 0, (done.stdout + done.stderr).strip()[-500:]

    def _infra_healthy(self, name: str) -> bool:
        """postgres/redis: run their compose healthcheck against the local servers."""
        if name in self.healthy:
            return True
        proc = NativeProcess(service=name, replica=1, hostname=f"{name}-1", argv=[], env={},
                             ports={}, log_path=self.workdir / "logs" / f"{name}.log")
        svc = self.compose["services"][name]
        test = [str(t) for t in (svc.get("healthcheck") or {}).get("test") or []]
        if name == "postgres" and test[:2] == ["CMD", "pg_isready"]:
            # Inside the container pg_isready uses the local socket; here: the mapped host/port.
            svc = {**svc, "healthcheck": {**svc["healthcheck"], "test": [
                *test, "-h", self.pg_admin["host"], "-p", str(self.pg_admin["port"])]}}
        if name == "redis" and test[:2] == ["CMD", "redis-cli"]:
            svc = {**svc, "healthcheck": {**svc["healthcheck"], "test": [
                "CMD", "redis-cli", "-h", self.redis_server[0], "-p", str(self.redis_server[1]),
                *test[2:]]}}
        self.compose["services"][name] = svc
        ok, output = self.run_healthcheck(proc)
        if ok:
            self.healthy.add(name)
            self.log(f"[native-compose] {name} healthy (compose healthcheck: {output[:60]})")
        return ok

    def _condition_met(self, name: str, condition: str) -> bool:
        if name in INFRA_SERVICES:
            return self._infra_healthy(name) if condition == "service_healthy" else True
        procs = [p for p in self.processes if p.service == name]
        if not procs:
            raise NativeComposeError(f"depends_on names {name}, which is not started natively")
        if condition == "service_completed_successfully":
            return self.completed.get(name) == 0
        if condition == "service_healthy":
            return name in self.healthy
        return all(p.popen is not None for p in procs)

    def _check_one_shot(self) -> None:
        for proc in self.processes:
            if proc.popen is None or proc.service in self.completed or proc.expected_exit:
                continue
            code = proc.popen.poll()
            svc = self.compose["services"][proc.service]
            if code is None:
                continue
            if svc.get("restart") == "no":
                self.completed[proc.service] = code
                if code != 0:
                    raise NativeComposeError(
                        f"service {proc.service} exited with code {code}; its output ends "
                        f"with:\n{proc.tail(25)}")
                self.log(f"[native-compose] {proc.service} completed successfully")
            else:
                raise NativeComposeError(
                    f"{proc.hostname} (pid {proc.popen.pid}) exited with code {code}; its "
                    f"output ends with:\n{proc.tail(40)}")

    def up(self, timeout: float = 180.0, only: list[str] | None = None) -> None:
        """Start services in depends_on order until each long-running one passes its healthcheck."""
        if self.started_at is None:
            self.prepare()
        wanted = set(only or self.airflow_services)
        deadline = time.monotonic() + timeout
        last_health_try: dict[str, float] = {}
        while True:
            self._check_one_shot()
            for proc in self.processes:
                if proc.popen is not None or proc.service not in wanted:
                    continue
                deps = depends_on(self.compose["services"][proc.service])
                if all(self._condition_met(dep, cond) for dep, cond in deps.items()):
                    self._spawn(proc)
            for name in {p.service for p in self.processes if p.popen is not None}:
                svc = self.compose["services"][name]
                if name in self.healthy or svc.get("restart") == "no":
                    continue
                procs = [p for p in self.processes if p.service == name]
                if any(p.popen is None for p in procs):
                    continue
                if time.monotonic() - last_health_try.get(name, 0) < 3:
                    continue
                last_health_try[name] = time.monotonic()
                if not self._fresh_heartbeat_ok(name):
                    continue
                results = [self.run_healthcheck(p) for p in procs]
                if all(ok for ok, _ in results):
                    self.healthy.add(name)
                    self.log(f"[native-compose] {name} healthy ({len(procs)} process(es), "
                             f"compose healthcheck passed)")
            pending = [p for p in self.processes if p.service in wanted and (
                p.popen is None or (p.service not in self.healthy
                                    and self.compose["services"][p.service].get("restart")
                                    != "no"))]
            if not pending and all(self.completed.get(p.service) == 0 for p in self.processes
                                   if self.compose["services"][p.service].get("restart") == "no"
                                   and p.service in wanted):
                return
            if time.monotonic() > deadline:
                details = "\n".join(f"--- {p.hostname} ---\n{p.tail(15)}" for p in pending)
                raise NativeComposeError(
                    f"not healthy after {timeout:.0f}s: {[p.hostname for p in pending]}\n{details}")
            time.sleep(0.5)

    def _fresh_heartbeat_ok(self, name: str) -> bool:
        """scheduler/triggerer/dag-processor: a heartbeat newer than this run's start (REST)."""
        keys = {"airflow-scheduler": ("scheduler", "latest_scheduler_heartbeat"),
                "airflow-triggerer": ("triggerer", "latest_triggerer_heartbeat"),
                "airflow-dag-processor": ("dag_processor", "latest_dag_processor_heartbeat")}
        if name not in keys or "airflow-apiserver" not in self.healthy:
            return name not in keys
        section, key = keys[name]
        try:
            health = self.http("GET", "/api/v2/monitor/health", token=None)
        except NativeComposeError:
            return False
        beat = _parse_utc((health.get(section) or {}).get(key))
        return beat is not None and self.started_at is not None and beat > self.started_at

    # ------------------------------------------------------------------ fault injection

    def process(self, hostname: str) -> NativeProcess:
        """The process of a service replica by its host name (``airflow-worker-2``, ...)."""
        for proc in self.processes:
            if proc.hostname == hostname:
                return proc
        raise NativeComposeError(f"no process {hostname}; known: "
                                 f"{[p.hostname for p in self.processes]}")

    def container_pids(self, hostname: str) -> list[int]:
        """Every live process of a replica's emulated container: its process group, anything
        carrying this run's marker and the replica's HOSTNAME, and all their descendants (task
        processes may start their own session and clean their environment)."""
        proc = self.process(hostname)
        wanted = (f"{MARKER_VAR}={self.run_id}".encode(), f"HOSTNAME={hostname}".encode())
        parents: dict[int, int] = {}
        found: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                stat = (entry / "stat").read_text()
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            in_group = proc.popen is not None and int(fields[2]) == proc.popen.pid
            if in_group or all(item in environ for item in wanted):
                found.add(pid)
        changed = True
        while changed:  # add descendants
            new = {pid for pid, parent in parents.items() if parent in found} - found
            found |= new
            changed = bool(new)
        return sorted(found)

    def kill(self, hostname: str, sig: int = signal.SIGKILL) -> list[int]:
        """Kill a replica's whole emulated container (as ``docker kill`` does); return the pids.

        The process is marked as stopped on purpose, so ``_check_one_shot`` does not report it.
        """
        proc = self.process(hostname)
        proc.expected_exit = True
        pids = self.container_pids(hostname)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if proc.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(30)
        deadline = time.monotonic() + 30
        while sig == signal.SIGKILL and self.container_pids(hostname):
            if time.monotonic() > deadline:
                raise NativeComposeError(f"{hostname}: processes survive SIGKILL: "
                                         f"{self.container_pids(hostname)}")
            time.sleep(0.1)
        self.log(f"[native-compose] killed {hostname} (signal {int(sig)}): pids {pids}")
        return pids

    def restart(self, hostname: str, sig: int = signal.SIGKILL) -> None:
        """Stop a replica (``sig``, then SIGKILL after 30 s) and start it again, as a container
        restart does; it keeps its host name, ports and log file."""
        proc = self.process(hostname)
        self.kill(hostname, sig)
        if sig != signal.SIGKILL:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(30)  # type: ignore[union-attr]
            self.kill(hostname, signal.SIGKILL)
        self.healthy.discard(proc.service)
        proc.expected_exit = False
        self._spawn(proc)

    # ------------------------------------------------------------------ REST client

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.mapping.service_ports[('airflow-apiserver', 8080)]}"

    def http(self, method: str, path: str, *, token: str | None, body: Any = None,
             expect: tuple[int, ...] = (200, 201), timeout: float = 30) -> Any:
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise NativeComposeError(f"{method} {path}: {exc}") from None
        if status not in expect:
            raise NativeComposeError(f"{method} {path} -> HTTP {status}: {payload[:500]!r}")
        return json.loads(payload) if payload else None

    def token(self, username: str, password: str) -> str:
        reply = self.http("POST", "/auth/token", token=None,
                          body={"username": username, "password": password})
        return str(reply["access_token"])

    # ------------------------------------------------------------------ stopping

    def _our_pids(self) -> list[int]:
        """Every live process carrying this run's marker variable (found through /proc)."""
        pids = []
        needle = f"{MARKER_VAR}={self.run_id}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if needle in environ.split(b"\0") and ") Z " not in stat:
                pids.append(int(entry.name))
        return pids

    def stop(self, grace: float = 20.0) -> list[str]:
        """SIGTERM every process group, SIGKILL what is left; return what had to be killed."""
        killed: list[str] = []
        running = [p for p in self.processes if p.popen is not None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.1, deadline - time.monotonic()))  # type: ignore[union-attr]
        while time.monotonic() < deadline and self._our_pids():
            time.sleep(0.2)
        for proc in running:
            try:
                os.killpg(proc.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]
                killed.append(f"group of {proc.hostname}")
            except (ProcessLookupError, PermissionError):
                pass
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)  # type: ignore[union-attr]
        for pid in self._our_pids():  # escaped their group (setsid): kill by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(f"pid {pid}")
        time.sleep(0.2)
        left = self._our_pids()
        if left:
            raise NativeComposeError(f"processes still alive after stop: {left}")
        return killed

    def cleanup(self) -> list[str]:
        """stop(), drop the database and role, flush the Redis index; returns what was done."""
        done: list[str] = []
        errors: list[str] = []
        try:
            killed = self.stop()
            done.append(f"stopped {len(self.processes)} process(es), none left"
                        + (f" (had to SIGKILL: {killed})" if killed else ""))
        except Exception as exc:
            errors.append(str(exc))
        if self._db_created or self._role_created:
            from psycopg2 import sql

            try:
                conn = self._pg_connect()
                with conn.cursor() as cur:
                    if self._db_created:
                        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(self.db_name)))
                        done.append(f"dropped database {self.db_name}")
                        self._db_created = False
                    if self._role_created:
                        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                            sql.Identifier(self.db_user)))
                        done.append(f"dropped role {self.db_user}")
                        self._role_created = False
                conn.close()
            except Exception as exc:
                errors.append(f"dropping {self.db_name}: {exc}")
        if self._redis_claimed:
            try:
                self._redis(self.mapping.redis_db).flushdb()
                done.append(f"flushed Redis database index {self.mapping.redis_db}")
                self._redis_claimed = False
            except Exception as exc:
                errors.append(f"flushing Redis index {self.mapping.redis_db}: {exc}")
        if errors:
            raise NativeComposeError("cleanup incomplete: " + "; ".join(errors))
        return done

    def __enter__(self) -> NativeTopology:
        return self

    def __exit__(self, *exc: object) -> None:
        for line in self.cleanup():
            self.log(f"[native-compose] cleanup: {line}")


# --------------------------------------------------------------------------- command line


def _scale_arg(values: list[str]) -> dict[str, int]:
    scale = {}
    for item in values:
        name, _, count = item.partition("=")
        scale[name] = int(count)
    return scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["config", "up"],
                        help="config: print each service's native command and environment; "
                             "up: run the topology until Ctrl-C")
    parser.add_argument("--compose-file", default=str(COMPOSE_FILE))
    parser.add_argument("--env-file", default=str(PROJECT_ROOT / ".env"))
    parser.add_argument("--scale", action="append", default=[], metavar="SERVICE=N")
    parser.add_argument("--profile", action="append", default=[])
    parser.add_argument("--workdir", default=None, help="default: a new temp folder")
    args = parser.parse_args(argv)
    import tempfile

    workdir = args.workdir or tempfile.mkdtemp(prefix="native-compose-")
    try:
        topo = NativeTopology(workdir, compose_file=args.compose_file, env_file=args.env_file,
                              environ=dict(os.environ), scale=_scale_arg(args.scale),
                              profiles=tuple(args.profile))
    except ComposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.action == "config":
        for name in topo.airflow_services:
            svc = topo.compose["services"][name]
            print(f"{name}: {shlex.join(service_argv(svc))[:100]}")
            for key, value in sorted(service_environment(svc).items()):
                shown = _mask_url(value) if "://" in value else (
                    "***" if any(s in key for s in ("SECRET", "PASSWORD", "FERNET")) else value)
                print(f"    {key}={shown[:100]}")
        return 0
    try:
        with topo:
            topo.up()
            print(topo.describe())
            print(f"api-server: {topo.api_url}  (Ctrl-C stops everything)")
            while True:
                time.sleep(1)
                topo._check_one_shot()
    except KeyboardInterrupt:
        return 0
    except NativeComposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
