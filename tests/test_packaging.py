"""The package installs as a wheel: both importable packages, the ``ml-lifecycle`` console
script, dependency ranges whose lower bounds are the lock file's tested versions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT


def _project() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _lock() -> dict[str, str]:
    """The pins of the lock files: the runtime (requirements.txt) and the mlflow extra's."""
    pins = {}
    for name in ("requirements.txt", "requirements-mlflow.txt"):
        for line in (PROJECT_ROOT / name).read_text(encoding="utf-8").splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s#]+)", line.strip())
            if match:
                pins[match.group(1).lower()] = match.group(3)
    return pins


def _ranges() -> dict[str, str]:
    project = _project()["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    out = {}
    for spec in specs:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(.*)$", spec)
        assert match, spec
        out[match.group(1).lower()] = match.group(2)
    return out


def test_every_dependency_is_a_range_starting_at_the_locked_version() -> None:
    pins, ranges = _lock(), _ranges()
    assert ranges, "no dependencies declared"
    for name, spec in ranges.items():
        assert "==" not in spec, f"{name}: a pin ({spec}) fights the Airflow a team runs"
        lower = re.search(r">=([^,\s]+)", spec)
        assert lower, f"{name}: no lower bound in '{spec}'"
        assert name in pins, f"{name} is a dependency but not in the lock file"
        assert lower.group(1) == pins[name], (
            f"{name}: lower bound {lower.group(1)} is not the tested (locked) {pins[name]}")


def test_the_core_dependencies_do_not_need_airflow() -> None:
    core = [d.lower() for d in _project()["project"]["dependencies"]]
    assert not [d for d in core if d.startswith("apache-airflow")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of its source (no tests, DAGs or configs in it)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(PROJECT_ROOT / "include", source / "include",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                            "-w", str(wheels), "-q"], capture_output=True, text=True,
                           timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (built,) = wheels.glob("ml_lifecycle-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_installs_and_its_console_script_runs(wheel: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "ml_lifecycle/cli.py" in names and "ml_lifecycle_airflow/steps.py" in names
    assert "ml_lifecycle_airflow/factory.py" in names
    assert "ml_lifecycle/drift/check.py" in names
    assert not [n for n in names if n.startswith(("tests/", "dags/", "configs/"))]
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ml-lifecycle = ml_lifecycle.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()

    prefix = tmp_path / "prefix"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--prefix",
                              str(prefix), str(wheel), "-q"], capture_output=True, text=True,
                             timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    (site,) = prefix.glob("lib/python*/site-packages")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)  # the installed copy only, not include/
    where = subprocess.run([sys.executable, "-c",
                            "import ml_lifecycle; print(ml_lifecycle.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert where.returncode == 0 and str(site) in where.stdout, where.stderr
    script = prefix / "bin" / "ml-lifecycle"
    ran = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert ran.returncode == 0, ran.stderr
    for command in ("train", "models", "score", "check-drift", "backtest"):
        assert command in ran.stdout
    bad = subprocess.run([str(script), "score", "--config", str(tmp_path / "missing.yaml"),
                          "--batch", "x.csv", "--out", "y.csv"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode != 0 and "missing.yaml" in bad.stderr


THREE_LINE_DAG_FILE = """from ml_lifecycle_airflow.factory import build_dag_sets

globals().update(build_dag_sets(__file__))
"""


@pytest.mark.slow
@pytest.mark.airflow
def test_the_wheel_runs_the_factory_in_an_airflow_outside_the_repository(
        wheel: Path, tmp_path: Path) -> None:
    """The guide's steps: the wheel installed with its ``[airflow]`` extra into a new virtualenv
    (pip installs Airflow and everything else, held to the lock file's versions), the three-line
    DAG file and a configs folder in a project outside this repository, one training DAG run."""
    import yaml

    from conftest import make_config_dict, make_table

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # pip resolves Airflow and every dependency into the new venv, held to the lock file's
    # versions (constraints cannot carry extras: they are dropped from the pins)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(
        re.sub(r"\[[^\]]*\]", "", line.split("#")[0]).strip()
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if re.match(r"^[A-Za-z]", line)) + "\n")
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[airflow]",
                              "-c", str(constraints)], capture_output=True, text=True,
                             timeout=1500)
    assert install.returncode == 0, install.stderr[-3000:]
    (site,) = venv.glob("lib/python*/site-packages")

    project = tmp_path / "team-airflow"  # the team's own Airflow project
    (project / "dags").mkdir(parents=True)
    (project / "configs").mkdir()
    (project / "dags" / "ml_models.py").write_text(THREE_LINE_DAG_FILE)
    make_table(n=1500).to_csv(project / "train.csv", index=False)
    raw = make_config_dict("../train.csv", "../var/churn/registry", name="churn")
    raw["data"]["data_roots"] = ["../var"]
    (project / "configs" / "churn.yaml").write_text(yaml.safe_dump(raw))

    python = venv / "bin" / "python"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
           "OMP_NUM_THREADS": "1"}
    where = subprocess.run([str(python), "-c", "import ml_lifecycle_airflow, airflow; "
                            "print(ml_lifecycle_airflow.__file__)"], env=env, cwd=project,
                           capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr[-3000:]
    assert where.stdout.strip().startswith(str(site)), where.stdout  # the installed copy
    migrate = subprocess.run([str(python), "-m", "airflow", "db", "migrate"], env=env,
                             cwd=project, capture_output=True, text=True, timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    steps = [{"dag_id": "churn__training", "logical_date": None,
              "conf": {"reason": "first model of the team", "force": True}}]
    ran = subprocess.run([str(python), "-m", "ml_lifecycle_airflow.dagtest",
                          json.dumps(steps)], env=env, cwd=project,
                         capture_output=True, text=True, timeout=900)
    lines = ran.stdout.strip().splitlines()
    assert ran.returncode == 0 and lines, ran.stdout[-3000:] + ran.stderr[-3000:]
    [result] = json.loads(lines[-1])
    assert result.get("error") is None, result
    assert result["state"] == "success", result
    assert result["tasks"]["train_candidate"] == "success"
    assert result["tasks"]["promote"] == "success"
    card = project / "var" / "churn" / "registry" / "versions" / "v0001" / "card.json"
    assert card.is_file()  # the config's relative paths resolved against its own folder
