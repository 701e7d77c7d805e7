"""The package installs as a wheel: both importable packages, the ``ml-lifecycle`` console
script, dependency ranges whose lower bounds are the lock file's tested versions."""

from __future__ import annotations

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
    pins = {}
    for line in (PROJECT_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
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


@pytest.mark.slow
def test_the_wheel_installs_and_its_console_script_runs(tmp_path: Path) -> None:
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
    (wheel,) = wheels.glob("ml_lifecycle-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ml_lifecycle/cli.py" in names and "ml_lifecycle_airflow/steps.py" in names
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
