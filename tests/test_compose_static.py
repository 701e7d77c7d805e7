"""docker-compose.yaml, Dockerfile and .env.example checked without running the cluster.

The compose file parses and interpolates; every mounted host path exists; every
``AIRFLOW__SECTION__KEY`` names an option Airflow itself knows (its own configuration description,
providers included); the image tags match the Airflow pin in requirements.txt; and bad
configuration gets a clear message: a missing .env / secret (the interpolation error names the
variable), example secrets (airflow-init refuses them), an unreachable database (the harness names
it) and a registry root the workers cannot write (airflow-init names it; needs PostgreSQL+Redis).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import project_config_raw

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))

from native_compose import (  # noqa: E402
    COMPOSE_FILE,
    ComposeError,
    NativeComposeError,
    NativeTopology,
    airflow_env_keys,
    free_port,
    interpolate,
    load_compose,
    parse_volume,
    read_env_file,
    service_environment,
    services_unreachable,
    write_env_from_example,
)

pytestmark = pytest.mark.integration

EXAMPLE_ENV = PROJECT_ROOT / ".env.example"
SECRET_VARS = ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
               "AIRFLOW_API_SECRET_KEY", "_AIRFLOW_WWW_USER_PASSWORD")
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-worker", "airflow-triggerer", "airflow-init")


def real_env() -> dict[str, str]:
    """.env.example's values with the CHANGE_ME placeholders replaced (as a user's .env)."""
    values = read_env_file(EXAMPLE_ENV)
    return {k: ("x" + k.lower() if "CHANGE_ME" in v else v) for k, v in values.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE_FILE, environ=real_env())


def airflow_pin() -> str:
    text = (PROJECT_ROOT / "requirements.txt").read_text(encoding="utf-8")
    match = re.search(r"^apache-airflow==([\w.]+)\s*$", text, re.M)
    assert match, "requirements.txt pins no apache-airflow==X.Y.Z"
    return match.group(1)


# --------------------------------------------------------------------------- structure


def test_compose_parses_with_the_services_of_the_official_layout(compose: dict[str, Any]) -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert "x-airflow-common" in raw
    services = compose["services"]
    for name in ("postgres", "redis", *AIRFLOW_SERVICES, "flower"):
        assert name in services, name
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"].startswith("redis:7.2")
    assert services["flower"]["profiles"] == ["flower"]
    for name in AIRFLOW_SERVICES:
        env = service_environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["PYTHONPATH"] == "/opt/airflow/include", name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "xairflow_jwt_secret", name
        assert env["ML_LIFECYCLE_CONFIG"].startswith("/opt/airflow/configs/"), name
        if name != "airflow-init":
            assert services[name]["healthcheck"]["test"], name
            assert services[name]["depends_on"]["airflow-init"]["condition"] == \
                "service_completed_successfully", name
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == \
        "service_healthy"
    # Scalable with --scale: no fixed container name or published port on the worker.
    assert "container_name" not in services["airflow-worker"]
    assert "ports" not in services["airflow-worker"]


def test_every_mounted_host_path_exists_and_named_volumes_are_declared(
        compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    targets = set()
    for name, svc in compose["services"].items():
        for spec in svc.get("volumes") or []:
            source, target, is_bind = parse_volume(str(spec), COMPOSE_FILE.parent)
            if is_bind:
                assert Path(source).is_dir(), f"{name}: bind mount source {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
            targets.add(target)
    for target in ("/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include",
                   "/opt/airflow/configs", "/opt/airflow/var"):
        assert target in targets, target


def test_every_airflow_variable_names_a_real_airflow_option(compose: dict[str, Any]) -> None:
    from airflow.configuration import conf

    description = conf.configuration_description  # core + installed providers (celery, ...)
    assert "celery" in description, "provider configuration not loaded"
    keys = airflow_env_keys(compose)
    assert len(keys) >= 15
    unknown = []
    for var, services in sorted(keys.items()):
        match = re.fullmatch(r"AIRFLOW__([A-Z0-9_.]+?)__([A-Z0-9_]+)", var)
        assert match, var
        section, key = match.group(1).lower(), match.group(2).lower()
        options = (description.get(section) or {}).get("options") or {}
        base = re.sub(r"_(cmd|secret)$", "", key)
        if key not in options and base not in options:
            unknown.append(f"{var} (services {sorted(services)})")
    assert not unknown, f"not an Airflow config option: {unknown}"


def test_image_tags_match_the_airflow_pin() -> None:
    import airflow

    pin = airflow_pin()
    assert airflow.__version__ == pin, "the venv's Airflow differs from requirements.txt"
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    image = raw["x-airflow-common"]["image"]
    default = re.fullmatch(r"\$\{AIRFLOW_IMAGE_NAME:-([^}]+)\}", image)
    assert default, image
    assert default.group(1).rsplit(":", 1)[1] == pin, image
    froms = re.findall(r"^FROM\s+(\S+)", (PROJECT_ROOT / "Dockerfile").read_text(), re.M)
    assert len(froms) == 1, froms
    repo, tag = froms[0].rsplit(":", 1)
    assert repo == "apache/airflow"
    assert tag == pin or tag.startswith(pin + "-python"), froms[0]
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN pip install .*-r .*requirements\.txt", dockerfile, re.M)
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE_FILE.read_text()


def test_no_secret_is_committed_and_the_build_context_excludes_env() -> None:
    example = read_env_file(EXAMPLE_ENV)
    for var in SECRET_VARS:
        assert "CHANGE_ME" in example[var], f".env.example: {var} must be a CHANGE_ME placeholder"
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()
    ignore = [line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*" and "!.env" not in ignore  # allow-list: .env never in the image


# --------------------------------------------------------------------------- bad configuration


def test_missing_env_file_names_the_missing_variable(tmp_path: Path) -> None:
    with pytest.raises(ComposeError) as info:
        load_compose(COMPOSE_FILE, env_file=tmp_path / "no.env", environ={})
    message = str(info.value)
    assert "required variable" in message and "is missing a value" in message
    assert any(var in message for var in SECRET_VARS), message
    assert "copy .env.example to .env" in message


@pytest.mark.parametrize("var", SECRET_VARS)
def test_each_secret_is_required(var: str) -> None:
    env = real_env()
    del env[var]
    with pytest.raises(ComposeError) as info:
        load_compose(COMPOSE_FILE, environ=env)
    assert f"required variable {var} is missing a value" in str(info.value)
    if var == "AIRFLOW_JWT_SECRET":
        assert "Invalid auth token" in str(info.value)
    env[var] = ""  # ${VAR:?} also refuses an empty value
    with pytest.raises(ComposeError, match=var):
        load_compose(COMPOSE_FILE, environ=env)


def test_interpolation_follows_compose_rules() -> None:
    env = {"A": "1", "E": ""}
    assert interpolate("${A}-${B:-d}-${E:-e}-${E-f}-$$x-$A", env, "t") == "1-d-e--$x-1"
    assert interpolate("${A:+set}${B:+no}", env, "t") == "set"
    with pytest.raises(ComposeError, match="required variable B is missing a value: why"):
        interpolate("${B:?why}", env, "t")


def _init_command(compose: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    svc = compose["services"]["airflow-init"]
    argv = [*([svc["entrypoint"]] if isinstance(svc["entrypoint"], str) else svc["entrypoint"]),
            *svc["command"]]
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           **service_environment(svc)}
    return argv, env


def test_airflow_init_refuses_the_example_secrets() -> None:
    compose = load_compose(COMPOSE_FILE, env_file=EXAMPLE_ENV, environ={})
    argv, env = _init_command(compose)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    print(done.stderr)
    assert done.returncode == 1
    assert "example secrets from .env.example are still in use" in done.stderr
    for var in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY",
                "_AIRFLOW_WWW_USER_PASSWORD", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        assert var in done.stderr
    assert "Refusing to start" in done.stderr
    assert "migrating" not in done.stdout  # stopped before touching the database


def test_harness_names_an_unreachable_database(tmp_path: Path) -> None:
    write_env_from_example(tmp_path / "test.env")
    closed = free_port()
    topo = NativeTopology(tmp_path, env_file=tmp_path / "test.env", environ={},
                          pg_admin={"port": closed})
    with pytest.raises(NativeComposeError) as info:
        topo.prepare()
    message = str(info.value)
    print(message)
    assert f"PostgreSQL (service 'postgres' of docker-compose.yaml, played by the local server " \
           f"127.0.0.1:{closed}" in message
    assert "is not reachable" in message and "Connection refused" in message
    assert topo.cleanup() == ["stopped 0 process(es), none left"]  # nothing was created


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[str]:
    """Make ``path`` unwritable for the current user (root: the immutable attribute)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            yield "read-only mode"
        finally:
            path.chmod(mode)
        return
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a folder unwritable for root here: {done.stderr.strip()}")
    try:
        yield "immutable attribute"
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.services
def test_airflow_init_names_a_registry_root_the_workers_cannot_write(tmp_path: Path) -> None:
    reason = services_unreachable()
    if reason:
        pytest.skip(f"needs the local PostgreSQL and Redis: {reason}")
    write_env_from_example(tmp_path / "test.env")
    topo = NativeTopology(tmp_path / "work", env_file=tmp_path / "test.env", environ={})
    try:
        topo.prepare()
        demo = Path(topo.mapping.path("/opt/airflow/var")) / "demo"
        with unwritable(demo), pytest.raises(NativeComposeError) as info:
            topo.up(only=["airflow-init"], timeout=120)
    finally:
        topo.cleanup()
    message = str(info.value)
    print(message)
    assert "service airflow-init exited with code 1" in message
    assert "ERROR: registry.root = /" in message and "/opt/airflow/var/demo/registry" in message
    assert f"is not writable by uid {os.getuid()}" in message
    assert "the user the Celery workers run as" in message
    assert "migrating" not in message


def _init_with_s3_root(workdir: Path, root: str, s3_env: dict[str, str]) -> tuple[str, str]:
    """Run airflow-init natively with ``registry.root: root``; return (error or "", its log)."""
    workdir.mkdir(parents=True)
    write_env_from_example(workdir / "test.env",
                           ML_LIFECYCLE_CONFIG="/opt/airflow/var/s3-config.yaml", **s3_env)
    topo = NativeTopology(workdir / "work", env_file=workdir / "test.env", environ={})
    error = ""
    try:
        topo.prepare()
        raw = project_config_raw(rebase=False)  # written to /opt/airflow/var/
        raw["registry"]["root"] = root
        Path(topo.mapping.path("/opt/airflow/var/s3-config.yaml")).write_text(
            yaml.safe_dump(raw))
        try:
            topo.up(only=["airflow-init"], timeout=300)
        except NativeComposeError as exc:
            error = str(exc)
        log = topo.process("airflow-init-1").log_path.read_text(errors="replace")
    finally:
        topo.cleanup()
    return error, log


@pytest.mark.services
def test_airflow_init_checks_an_s3_registry_root_with_the_aws_settings(tmp_path: Path) -> None:
    """registry.root: s3://...: airflow-init probes the bucket with the AWS_* settings of .env;
    a missing bucket stops it with a message naming the root and the settings, before any
    migration; once the bucket exists the same init passes the check and completes."""
    reason = services_unreachable()
    if reason:
        pytest.skip(f"needs the local PostgreSQL and Redis: {reason}")
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from s3server import new_bucket, s3_server

    with s3_server() as s3:
        missing = f"s3://missing-{os.getpid()}/late-delivery/registry"
        error, log = _init_with_s3_root(tmp_path / "missing", missing, s3)
        print(error)
        assert "service airflow-init exited with code 1" in error
        assert f"registry.root '{missing}' is not writable" in error
        assert "AWS_ENDPOINT_URL_S3" in error and "migrating" not in log

        root = f"s3://{new_bucket()}/late-delivery/registry"
        error, log = _init_with_s3_root(tmp_path / "ok", root, s3)
        print(log[-2000:])
        assert error == ""
        assert f"registry.root: {root} writable" in log
        assert "airflow-init: done" in log
