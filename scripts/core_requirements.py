"""Print the lock-file pins of the core's dependencies and of the unit-test tools.

The core (``ml_lifecycle``) needs only the ``[project] dependencies`` of ``pyproject.toml``; this
prints their exact versions from ``requirements.txt`` (the lock file), plus pytest and hypothesis
from ``requirements-dev.txt``, so the core unit tests can run on other Python versions with the
locked versions and nothing of Airflow (``make test-pythons``). One source: the lock files.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_TOOLS = ("pytest", "hypothesis")


def pins() -> dict[str, str]:
    out = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s#]+)", line.strip())
            if match:
                out[match.group(1).lower()] = f"{match.group(1)}=={match.group(3)}"
    return out


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [re.match(r"^[A-Za-z0-9_.\-]+", d).group(0).lower() for d in project["dependencies"]]
    locked = pins()
    missing = [n for n in [*names, *TEST_TOOLS] if n not in locked]
    if missing:
        print(f"not pinned in requirements*.txt: {missing}", file=sys.stderr)
        return 1
    print("\n".join(locked[n] for n in [*names, *TEST_TOOLS]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
