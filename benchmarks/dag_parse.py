"""Figure 3: what each DAG file costs the dag-processor beyond Airflow's own import.

For every ``dags/*.py``, in a fresh interpreter (``PYTHONPATH`` = ``include/`` + ``dags/``, as the
project's Airflow runs them; a scratch ``AIRFLOW_HOME``): ``import airflow.sdk`` first (the
baseline every DAG file pays anyway), then time the import of the DAG file by path; median of
``--repeats`` (default 5) processes. The modules the DAG file pulled in beyond the baseline are
listed by top-level package, and one extra run under ``python -X importtime`` attributes the
import time to those packages (self time; ``-X importtime`` itself slows imports a little).

Target: no pandas, scikit-learn or scipy (not even numpy is needed) and < 0.2 s per file.

**Many models** (``--configs 1,10,50``): the factory builds three DAGs per config, so the parse
grows with the configs folder. For each count N, a scratch folder holds N copies of
``configs/demo.yaml`` (distinct names, registries and outputs; no data file exists), and a fresh
interpreter that has already imported what the dag-processor imports times what the
dag-processor does with the folder: ``DagBag`` over ``dags/`` (the factory's discovery, config
validation and DAG building) plus ``DagSerialization.to_dict`` of every DAG; median of
``--repeats``. Target: 50 configs add under 5 s over 1 config.

Reproduce::

    PYTHONPATH=include .venv/bin/python benchmarks/dag_parse.py
    PYTHONPATH=include .venv/bin/python benchmarks/dag_parse.py --configs 1,10,50 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    MAIN_PYTHON,
    OUT,
    ROOT,
    WorkerError,
    bench_env,
    fmt_range,
    loadavg,
    run_json,
    summary,
)

COMMAND = "PYTHONPATH=include .venv/bin/python benchmarks/dag_parse.py"
HEAVY = ("pandas", "sklearn", "scipy", "numpy", "pyarrow", "joblib")
FORBIDDEN = ("pandas", "sklearn", "scipy")
MARK = "=== dag import starts ==="
BASELINES = {
    # what the brief asks: beyond `import airflow.sdk`
    "sdk": "airflow.sdk",
    # what a file costs the real dag-processor, whose parsing processes are forked from a
    # manager that has already imported these (and everything they import)
    "processor": "airflow.sdk,airflow.dag_processing.manager,airflow.dag_processing.processor",
}

PROBE = r"""
import importlib, importlib.util, json, sys, time
path = sys.argv[1]
t0 = time.perf_counter()
for name in sys.argv[2].split(","):  # the baseline: airflow.sdk (+ the dag-processor's modules)
    importlib.import_module(name)
baseline = time.perf_counter() - t0
before = set(sys.modules)
sys.stderr.write("__MARK__\n")
sys.stderr.flush()
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_dag_module", path)
module = importlib.util.module_from_spec(spec)
sys.modules["bench_dag_module"] = module
spec.loader.exec_module(module)
seconds = time.perf_counter() - t1
new = sorted(set(sys.modules) - before - {"bench_dag_module"})
print(json.dumps({"seconds": seconds, "baseline_seconds": baseline, "new_modules": new,
                  "loaded_before": sorted(m for m in __HEAVY__ if m in before)}))
""".replace("__MARK__", MARK).replace("__HEAVY__", repr(HEAVY))


def _env() -> dict[str, str]:
    env = bench_env(None)
    home = OUT / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env["AIRFLOW_HOME"] = str(home)
    env["PYTHONPATH"] = f"{ROOT / 'include'}:{ROOT / 'dags'}"
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    return env


def _importtime(path: Path, env: dict[str, str]) -> dict[str, float]:
    """Self import time (s) per top-level package, for the DAG file's part only (sdk baseline)."""
    import subprocess

    proc = subprocess.run(
        [str(MAIN_PYTHON), "-X", "importtime", "-c", PROBE, str(path), BASELINES["sdk"]],
        capture_output=True, text=True, env=env, cwd=str(ROOT), check=False)
    if proc.returncode != 0:
        return {}
    lines = proc.stderr.splitlines()
    try:
        start = lines.index(MARK)
    except ValueError:
        return {}
    per_pkg: dict[str, float] = defaultdict(float)
    for line in lines[start + 1:]:
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        self_us = int(parts[0].split(":")[1])
        name = parts[2].strip().split(".")[0]
        per_pkg[name] += self_us / 1e6
    return dict(sorted(((k, round(v, 4)) for k, v in per_pkg.items()), key=lambda kv: -kv[1]))


def _probe(path: Path, baseline: str, repeats: int, env: dict[str, str]
           ) -> tuple[list[dict[str, Any]], str | None]:
    runs = []
    for _ in range(repeats):
        try:
            runs.append(run_json([str(MAIN_PYTHON), "-c", PROBE, str(path), BASELINES[baseline]],
                                 env=env, timeout=300))
        except WorkerError as exc:
            return runs, str(exc)[-1500:]
    return runs, None


def measure(repeats: int = 5, log: Callable[[str], None] = print) -> dict[str, Any]:
    env = _env()
    files = sorted((ROOT / "dags").glob("*.py"))
    out: dict[str, Any] = {"files": {}, "loadavg_before": loadavg(), "repeats": repeats,
                           "baselines": BASELINES}
    baseline_times: dict[str, list[float]] = {"sdk": [], "processor": []}
    for path in files:
        name = path.name
        runs, error = _probe(path, "sdk", repeats, env)
        proc_runs, proc_error = _probe(path, "processor", repeats, env)
        if not runs:
            out["files"][name] = {"error": error}
            log(f"  {name}: FAILED {error}")
            continue
        baseline_times["sdk"] += [r["baseline_seconds"] for r in runs]
        baseline_times["processor"] += [r["baseline_seconds"] for r in proc_runs]
        new = runs[0]["new_modules"]
        packages: dict[str, int] = defaultdict(int)
        for mod in new:
            packages[mod.split(".")[0]] += 1
        heavy_loaded = sorted({m.split(".")[0] for m in new if m.split(".")[0] in HEAVY})
        res = {
            "seconds": summary([r["seconds"] for r in runs]),
            "seconds_beyond_processor": summary([r["seconds"] for r in proc_runs]),
            "new_modules_count": len(new),
            "new_modules_count_beyond_processor": (len(proc_runs[0]["new_modules"])
                                                   if proc_runs else None),
            "new_packages": dict(sorted(packages.items(), key=lambda kv: -kv[1])),
            "heavy_imported": heavy_loaded,
            "forbidden_imported": [p for p in heavy_loaded if p in FORBIDDEN],
            "heavy_already_loaded_by_airflow": runs[0]["loaded_before"],
            "new_modules_outside_airflow": [m for m in new if not m.startswith("airflow")],
            "new_modules_beyond_processor": proc_runs[0]["new_modules"] if proc_runs else None,
            "import_time_by_package": _importtime(path, env),
            "error": error or proc_error,
        }
        out["files"][name] = res
        top = ", ".join(f"{k} {v}" for k, v in list(res["new_packages"].items())[:5])
        log(f"  {name:<22} beyond airflow.sdk {fmt_range(res['seconds'], 's', 3)} "
            f"+{len(new)} modules ({top}); "
            f"beyond the dag-processor {fmt_range(res['seconds_beyond_processor'], 's', 3)} "
            f"+{res['new_modules_count_beyond_processor']} modules; "
            f"pandas/sklearn/scipy: {res['forbidden_imported'] or 'none'}")
    out["airflow_sdk_import_seconds"] = summary(baseline_times["sdk"], 3)
    out["processor_baseline_import_seconds"] = summary(baseline_times["processor"], 3)
    out["loadavg_after"] = loadavg()
    ok = [f for f in out["files"].values() if "seconds" in f]
    complete = bool(ok) and len(ok) == len(files)
    out["all_under_0_2s"] = complete and all(f["seconds"]["median"] < 0.2 for f in ok)
    out["all_under_0_2s_beyond_processor"] = complete and all(
        (f["seconds_beyond_processor"]["median"] or 1.0) < 0.2 for f in ok)
    out["none_forbidden"] = complete and all(not f["forbidden_imported"] for f in ok)
    return out


FOLDER_PROBE = r"""
import importlib, json, sys, time
for name in sys.argv[2].split(","):
    importlib.import_module(name)
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
parsed = time.perf_counter() - t0
for dag in bag.dags.values():
    DagSerialization.to_dict(dag)
total = time.perf_counter() - t0
print(json.dumps({"seconds": total, "parse_seconds": parsed, "dags": len(bag.dags),
                  "import_errors": len(bag.import_errors),
                  "forbidden": [m for m in ("pandas", "sklearn", "scipy") if m in sys.modules]}))
"""


def write_configs(folder: Path, count: int) -> None:
    """``count`` copies of configs/demo.yaml, each its own model (name, registry, outputs)."""
    import yaml

    from ml_lifecycle.config import LIFECYCLE_FOLDERS, load_raw

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    raw = load_raw(ROOT / "configs" / "demo.yaml")
    for i in range(count):
        name = f"model_{i:03d}"
        raw["name"] = name
        raw["registry"]["root"] = f"../var/{name}/registry"
        for key in LIFECYCLE_FOLDERS:
            raw["lifecycle"][key] = f"../var/{name}/{key}"
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw))


def measure_configs(counts: list[int], repeats: int,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    env = _env()
    env.pop("ML_LIFECYCLE_CONFIG", None)
    results: dict[str, Any] = {}
    for count in counts:
        folder = OUT / "dag-parse-configs" / "configs"
        write_configs(folder, count)
        env["ML_LIFECYCLE_CONFIGS"] = str(folder)
        runs = [run_json([str(MAIN_PYTHON), "-c", FOLDER_PROBE, str(ROOT / "dags"),
                          BASELINES["processor"]], env=env, timeout=600)
                for _ in range(repeats)]
        res = {"seconds": summary([r["seconds"] for r in runs], 3),
               "parse_seconds": summary([r["parse_seconds"] for r in runs], 3),
               "dags": runs[0]["dags"], "import_errors": runs[0]["import_errors"],
               "forbidden_imported": runs[0]["forbidden"]}
        results[str(count)] = res
        log(f"  {count:>3} config(s): {res['dags']} DAGs, parse + serialize "
            f"{fmt_range(res['seconds'], 's', 3)} (parse alone "
            f"{fmt_range(res['parse_seconds'], 's', 3)}), import errors {res['import_errors']}, "
            f"pandas/sklearn/scipy: {res['forbidden_imported'] or 'none'}")
    low, high = str(min(counts)), str(max(counts))
    added = results[high]["seconds"]["median"] - results[low]["seconds"]["median"]
    per_config = added / max(1, max(counts) - min(counts))
    out = {"counts": results, "added_seconds": round(added, 3),
           "added_seconds_per_config": round(per_config, 4),
           "added_between": [int(low), int(high)],
           "target_met": bool(int(high) < 50 or added < 5.0), "repeats": repeats}
    log(f"  {high} configs add {added:.2f} s over {low} ({per_config * 1000:.0f} ms per config; "
        f"target < 5 s for 50: {'met' if out['target_met'] else 'NOT met'})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--configs", type=str, default="",
                        help="comma-separated config counts, e.g. 1,10,50: time the parse of "
                             "the dags folder with that many models")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    if args.configs:
        counts = sorted({int(c) for c in args.configs.split(",") if c.strip()})
        res = measure_configs(counts, args.repeats)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        print(f"reproduce: {COMMAND} --configs {args.configs} --repeats {args.repeats} "
              f"({time.monotonic() - t0:.0f} s)")
        return 0
    res = measure(args.repeats)
    print(f"baseline `import airflow.sdk`: {fmt_range(res['airflow_sdk_import_seconds'])}")
    print(f"every file < 0.2 s: {res['all_under_0_2s']}; none imports pandas/sklearn/scipy: "
          f"{res['none_forbidden']} ({time.monotonic() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    print(f"reproduce: {COMMAND}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
