"""Shared helpers of the benchmarks (standard library only: also imported in the peers' venv).

* measurement inside a worker process: peak-RSS reset and read (Linux ``/proc``), load average;
* running one measurement in a fresh process and reading its JSON answer (last stdout line);
* medians with min-max, the machine description, and least-squares exponents on log-log.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT = BENCH_DIR / "out"
MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
PEERS_VENV = BENCH_DIR / ".peers-venv"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
MIB = 2**20


# --------------------------------------------------------------------------- in-process measurement


def peak_reset() -> None:
    """Reset the kernel's RSS high-water mark of this process (Linux)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0


# --------------------------------------------------------------------------- fresh processes


class WorkerError(RuntimeError):
    """A measurement process failed (its stderr tail is in the message)."""


def run_json(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float | None = None) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process; its last stdout line is a JSON object."""
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, env=full_env,
                              cwd=str(cwd or ROOT), timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WorkerError(f"{' '.join(map(str, cmd))}: timed out after {timeout} s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise WorkerError(f"{' '.join(map(str, cmd))}: exit {proc.returncode}\n{tail}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise WorkerError(f"{' '.join(map(str, cmd))}: no JSON answer: {lines[-1][:300]}") from exc


def bench_env(threads: str | None) -> dict[str, str]:
    """Environment of measurement processes: ``include/`` importable; OpenMP threads as chosen.

    ``threads`` None means the machine default (``OMP_NUM_THREADS`` removed, so OpenMP uses every
    core); otherwise its value is exported.
    """
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT / "include")
    env["PYTHONHASHSEED"] = "0"
    if threads:
        env["OMP_NUM_THREADS"] = threads
    return env


# --------------------------------------------------------------------------- statistics


def summary(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """Median, min, max and the runs themselves."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    return {"median": round(statistics.median(vals), digits), "min": round(min(vals), digits),
            "max": round(max(vals), digits), "n": len(vals),
            "runs": [round(v, digits) for v in vals]}


def fmt_range(s: dict[str, Any] | None, unit: str = "s", digits: int = 2) -> str:
    """``1.23 s (1.20-1.31, n=3)``."""
    if not s or s.get("median") is None:
        return "n/a"
    med, lo, hi, n = s["median"], s["min"], s["max"], s["n"]
    if n == 1:
        return f"{med:.{digits}f} {unit} (n=1)"
    return f"{med:.{digits}f} {unit} ({lo:.{digits}f}-{hi:.{digits}f}, n={n})"


def loglog_exponent(sizes: Sequence[float], times: Sequence[float]) -> float | None:
    """Least-squares slope of log(time) on log(size): time ~ size**slope."""
    pts = [(math.log(s), math.log(t)) for s, t in zip(sizes, times, strict=True)
           if s and t and s > 0 and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return round(sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx, 3)


# --------------------------------------------------------------------------- the machine


def _meminfo_gb(field: str) -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions_of(python: Path, packages: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``packages`` in the environment of ``python``."""
    code = (
        "import json, platform, sys\nfrom importlib import metadata\n"
        "out = {'python': platform.python_version()}\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n        out[p] = metadata.version(p)\n"
        "    except metadata.PackageNotFoundError:\n        out[p] = None\n"
        "print(json.dumps(out))\n"
    )
    try:
        return run_json([str(python), "-c", code, *packages], timeout=120)
    except WorkerError as exc:
        return {"error": str(exc)[:300]}


def machine_info(threads: str | None) -> dict[str, Any]:
    """Cores, memory, CPU, OS, Python and thread settings of this run."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": usable,
        "memory_total_gb": _meminfo_gb("MemTotal"),
        "memory_available_gb_at_start": _meminfo_gb("MemAvailable"),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "omp_num_threads_inherited": os.environ.get("OMP_NUM_THREADS"),
        "omp_num_threads_used": threads or f"unset (machine default: {usable} threads)",
        "loadavg_at_start": loadavg(),
    }
