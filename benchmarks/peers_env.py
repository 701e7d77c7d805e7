"""The peers' virtual environment (Evidently, NannyML), created by the benchmark itself.

``benchmarks/.peers-venv`` is built with ``python3.11 -m venv`` from
``benchmarks/requirements-peers.txt`` and rebuilt when that file changes (a stamp holds its
sha256). The project's own ``.venv`` is never touched.

Reproduce::

    .venv/bin/python benchmarks/peers_env.py          # create or check the venv, print versions
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, PEERS_PYTHON, PEERS_VENV, versions_of

REQUIREMENTS = BENCH_DIR / "requirements-peers.txt"
STAMP = PEERS_VENV / ".requirements.sha256"
INSTALL_LOG = PEERS_VENV / "install.log"
PEER_PACKAGES = ("evidently", "nannyml", "statsmodels", "pandas", "numpy", "scipy",
                 "scikit-learn", "pyarrow")


def _base_python() -> str:
    for name in ("python3.11",):
        found = shutil.which(name)
        if found:
            return found
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    raise SystemExit("the peers' venv needs python3.11 on PATH")


def ensure(log=print) -> Path:
    """Create (or reuse) the peers' venv; return its python."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if PEERS_PYTHON.exists() and STAMP.is_file() and STAMP.read_text().strip() == wanted:
        return PEERS_PYTHON
    t0 = time.monotonic()
    log(f"creating {PEERS_VENV} from {REQUIREMENTS.name} (first run: ~2-3 min)")
    if PEERS_VENV.exists():
        shutil.rmtree(PEERS_VENV)
    subprocess.run([_base_python(), "-m", "venv", str(PEERS_VENV)], check=True)
    pip = [str(PEERS_PYTHON), "-m", "pip", "--disable-pip-version-check"]
    with open(INSTALL_LOG, "w") as out:  # pip's chatter goes to a file, not the figures
        for step in (["install", "--upgrade", "pip"], ["install", "-r", str(REQUIREMENTS)],
                     ["check"]):
            done = subprocess.run([*pip, *step], stdout=out, stderr=subprocess.STDOUT,
                                  check=False)
            if done.returncode != 0:
                raise SystemExit(f"pip {' '.join(step)} failed in {PEERS_VENV}; see {INSTALL_LOG}")
    STAMP.write_text(wanted + "\n")
    log(f"peers' venv ready in {time.monotonic() - t0:.0f} s")
    return PEERS_PYTHON


def versions() -> dict[str, str]:
    return versions_of(PEERS_PYTHON, PEER_PACKAGES)


if __name__ == "__main__":
    ensure()
    print(versions())
