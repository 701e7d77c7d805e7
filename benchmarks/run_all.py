"""``make bench``: every benchmark, side by side with the alternatives, in one run.

Writes ``benchmarks/results.json`` (every figure, every run) and ``benchmarks/RESULTS.md`` (the
tables, ratios and targets). Figures, each the median of >= 3 fresh processes with min-max unless
a row says otherwise:

1. drift check at 10k / 100k / 1M rows: ours vs a plain scipy loop vs Evidently
   ``DataDriftPreset`` vs NannyML ``UnivariateDriftCalculator`` (``drift_compare.py``);
2. training overhead: our ``train`` vs a plain scikit-learn pipeline, UCI Adult and a synthetic
   1M-row table, by stage (``training.py``);
3. DAG parse cost of every ``dags/*.py`` beyond Airflow's own import (``dag_parse.py``);
4. the embedded demo, ``make demo`` (``demo_bench.py``);
5. scale: the drift check at 2M and 5M rows, training at 2M, and time ~ rows^k fitted on
   10^4..10^6 rows.
6. label-free performance estimation: estimate vs realized ROC-AUC/F1 on the demo's days and on
   shifted Adult slices, and its time at 1M rows (``estimation.py``; in ``results.json`` only).
7. SHAP explanations: scoring 1M rows with and without ``--explain 3`` (``explain.py``).

The peers (Evidently, NannyML) run in ``benchmarks/.peers-venv``, created here on first use
from ``benchmarks/requirements-peers.txt``. Workers run with ``OMP_NUM_THREADS`` unset (the
machine default: every core) unless ``--threads`` says otherwise; ``make`` exports
``OMP_NUM_THREADS=1`` for the project, so this script removes it for the measurements and records
both values.

Usage::

    .venv/bin/python benchmarks/run_all.py                 # everything (about an hour)
    .venv/bin/python benchmarks/run_all.py --quick         # small sizes, 1 run: tests the harness
    .venv/bin/python benchmarks/run_all.py --only dag drift   # refresh some figures, keep the rest
    .venv/bin/python benchmarks/run_all.py --render        # rewrite RESULTS.md from results.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dag_parse
import demo_bench
import drift_compare
import peers_env
import training
from common import (
    BENCH_DIR,
    MAIN_PYTHON,
    OUT,
    ROOT,
    bench_env,
    loadavg,
    loglog_exponent,
    machine_info,
    run_json,
    versions_of,
)
from render import render, render_performance

FIGURES = ("drift", "training", "dag", "demo", "scale", "estimation", "explain")
RESULTS_JSON = BENCH_DIR / "results.json"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
PERFORMANCE_MD = ROOT / "docs" / "operations" / "performance.md"
MAIN_PACKAGES = ("apache-airflow", "scikit-learn", "pandas", "numpy", "scipy", "pyarrow",
                 "joblib", "pydantic")


def log(message: str) -> None:
    print(message, flush=True)


def _git_commit() -> str | None:
    """The checked-out commit, read from .git (no git command)."""
    head = ROOT / ".git" / "HEAD"
    try:
        text = head.read_text().strip()
        if text.startswith("ref: "):
            ref = ROOT / ".git" / text[5:]
            if ref.is_file():
                return ref.read_text().strip()
            packed = ROOT / ".git" / "packed-refs"
            for line in packed.read_text().splitlines() if packed.is_file() else []:
                if line.endswith(" " + text[5:]):
                    return line.split()[0]
            return None
        return text
    except OSError:
        return None


# --------------------------------------------------------------------------- figures


def fig_drift(cfg: dict[str, Any], peers: Path | None) -> dict[str, Any]:
    by_size = {}
    for rows in cfg["drift_sizes"]:
        ev = cfg["evidently_repeats_1m"] if rows >= 1_000_000 else None
        res = drift_compare.measure_size(rows, repeats=cfg["repeats"], peers_python=peers,
                                         threads=cfg["threads"], evidently_repeats=ev, log=log)
        res["ratios"] = drift_compare.ratios(res)
        by_size[str(rows)] = res
        drift_compare.print_size(res, log)
    exps = drift_compare.exponents(by_size)
    log(f"reproduce: {drift_compare.COMMAND} --sizes "
        f"{' '.join(map(str, cfg['drift_sizes']))} --repeats {cfg['repeats']}")
    return {"by_size": by_size, "exponents": exps,
            "evidently_repeats_1m": cfg["evidently_repeats_1m"],
            "command": f"{drift_compare.COMMAND} --sizes "
                       f"{' '.join(map(str, cfg['drift_sizes']))} --repeats {cfg['repeats']}"}


def fig_training(cfg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"by_dataset": {}}
    if cfg["adult"]:
        res = training.measure("adult", "adult", repeats=cfg["repeats"], threads=cfg["threads"],
                               rows_hint=32_561, log=log)
        out["by_dataset"]["adult"] = res
        training.print_result(res, log)
        if cfg["threads_control"] and cfg["threads"] != "1":
            # the same, one OpenMP thread per process (what `make` and the embedded Airflow
            # use): shows how much of the above is OpenMP threads waiting on a busy machine
            res = training.measure("adult", "adult_omp1", repeats=cfg["repeats"], threads="1",
                                   rows_hint=32_561, kinds=("ours", "plain_same_trees"), log=log)
            res["threads"] = "1"
            out["by_dataset"]["adult_omp1"] = res
            training.print_result(res, log)
    for rows in cfg["train_sizes"]:
        path = training.prepare_synthetic(rows, log=log)
        res = training.measure(str(path), f"synthetic_{rows}", repeats=cfg["repeats"],
                               threads=cfg["threads"], rows_hint=rows,
                               with_profile=rows == max(cfg["train_sizes"]) and cfg["profile"],
                               log=log)
        out["by_dataset"][f"synthetic_{rows}"] = res
        training.print_result(res, log)
    synth = {k: v for k, v in out["by_dataset"].items() if k.startswith("synthetic_")}
    out["exponents"] = {kind: training.exponent(synth, kind)
                        for kind in ("ours", "plain", "plain_same_trees")}
    out["command"] = (f"{training.COMMAND} --sizes {' '.join(map(str, cfg['train_sizes']))} "
                      f"--repeats {cfg['repeats']}" + ("" if cfg["adult"] else " --no-adult"))
    log(f"reproduce: {out['command']}")
    return out


def fig_dag(cfg: dict[str, Any]) -> dict[str, Any]:
    res = dag_parse.measure(cfg["dag_repeats"], log=log)
    res["command"] = f"{dag_parse.COMMAND} --repeats {cfg['dag_repeats']}"
    log(f"reproduce: {res['command']}")
    repeats = max(1, min(3, cfg["dag_repeats"]))
    res["configs"] = dag_parse.measure_configs([1, 10, 50], repeats, log=log)
    res["configs"]["command"] = f"{dag_parse.COMMAND} --configs 1,10,50 --repeats {repeats}"
    log(f"reproduce: {res['configs']['command']}")
    return res


def fig_estimation(cfg: dict[str, Any]) -> dict[str, Any]:
    """Label-free performance estimation: accuracy and time (``estimation.py``, fresh process)."""
    quick = ["--quick"] if cfg["mode"] == "quick" else []
    res = run_json([str(MAIN_PYTHON), str(BENCH_DIR / "estimation.py"), *quick],
                   env=bench_env(cfg["threads"]), timeout=7200)
    log(f"reproduce: {res['command']}")
    return res


def fig_explain(cfg: dict[str, Any]) -> dict[str, Any]:
    """Scoring with and without SHAP explanations (``explain.py``, fresh processes)."""
    rows = 20_000 if cfg["mode"] == "quick" else 1_000_000
    res = run_json([str(MAIN_PYTHON), str(BENCH_DIR / "explain.py"), "--rows", str(rows),
                    "--repeats", str(cfg["repeats"])], env=bench_env(cfg["threads"]),
                   timeout=7200)
    log(f"reproduce: {res['command']}")
    return res


def fig_demo(cfg: dict[str, Any]) -> dict[str, Any]:
    res = demo_bench.run(extra_args=cfg["demo_args"], log=log)
    res["command"] = demo_bench.COMMAND
    log(f"reproduce: {demo_bench.COMMAND}  (the same as `make demo`, in a copy of the tree)")
    return res


def _mem_available_gb() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def fig_scale(cfg: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """Bigger tables for our drift check and training; growth exponents over 10^4..10^6."""
    out: dict[str, Any] = {"drift": {}, "training": {}, "skipped": {}}
    for rows in cfg["scale_drift_sizes"]:
        # two frames of 25 columns, plus the check's per-feature copies: ~3x the frames
        need_gb = rows * 25 * 8 * 2 * 3 / 2**30 + 2
        if _mem_available_gb() < need_gb:
            out["skipped"][f"drift_{rows}"] = (f"MemAvailable {_mem_available_gb():.1f} GB < "
                                               f"{need_gb:.1f} GB estimated")
            continue
        res = drift_compare.measure_size(
            rows, repeats=cfg["scale_repeats"], peers_python=None, threads=cfg["threads"],
            only={"ours", "load_main_cur"}, log=log)
        out["drift"][str(rows)] = res
        drift_compare.print_size(res, log)
    for rows in cfg["scale_train_sizes"]:
        need_gb = rows * 200 * 8 / 2**30 + 3  # dense one-hot training matrix + frames
        if _mem_available_gb() < need_gb:
            out["skipped"][f"training_{rows}"] = (f"MemAvailable {_mem_available_gb():.1f} GB "
                                                  f"< {need_gb:.1f} GB estimated")
            continue
        path = training.prepare_synthetic(rows, log=log)
        res = training.measure_ours_only(str(path), f"synthetic_{rows}",
                                         repeats=cfg["scale_train_repeats"],
                                         threads=cfg["threads"], rows_hint=rows, log=log)
        out["training"][str(rows)] = res
    # growth exponents from figures 1 and 2 (10^4..10^6) plus these sizes, for the record
    drift = results.get("drift", {}).get("by_size", {})
    pts = {int(k): v["contenders"]["ours"]["seconds"]["median"] for k, v in drift.items()
           if "ours" in v["contenders"]}
    pts.update({int(k): v["contenders"]["ours"]["seconds"]["median"]
                for k, v in out["drift"].items() if "ours" in v["contenders"]})
    small = {k: v for k, v in pts.items() if 10_000 <= k <= 1_000_000}
    out["drift_points"] = dict(sorted(pts.items()))
    out["drift_exponent_1e4_1e6"] = loglog_exponent(list(small), list(small.values()))
    out["drift_exponent_1e5_up"] = loglog_exponent(
        [k for k in pts if k >= 100_000], [v for k, v in pts.items() if k >= 100_000])
    train = results.get("training", {}).get("by_dataset", {})
    tpts = {v["rows"]: v["ours"]["seconds"]["median"] for k, v in train.items()
            if k.startswith("synthetic_") and "ours" in v}
    tpts.update({int(k): v["ours"]["seconds"]["median"] for k, v in out["training"].items()
                 if "ours" in v})
    out["training_points"] = dict(sorted(tpts.items()))
    small_t = {k: v for k, v in tpts.items() if 10_000 <= k <= 1_000_000}
    out["training_exponent_1e4_1e6"] = loglog_exponent(list(small_t), list(small_t.values()))
    out["command"] = ".venv/bin/python benchmarks/run_all.py --only scale"
    return out


# --------------------------------------------------------------------------- main


def settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        return {"mode": "quick", "repeats": 1, "drift_sizes": [10_000], "train_sizes": [10_000],
                "adult": False, "dag_repeats": 1, "evidently_repeats_1m": 1,
                "scale_drift_sizes": [200_000], "scale_train_sizes": [5_000], "scale_repeats": 1,
                "scale_train_repeats": 1, "threads": args.threads, "profile": True,
                "threads_control": False,
                "demo_args": ["--days", "4", "--shift-day", "2", "--concept-day", "3"]}
    return {"mode": "full", "repeats": args.repeats,
            "drift_sizes": [10_000, 100_000, 1_000_000],
            "train_sizes": [10_000, 100_000, 1_000_000], "adult": True,
            "dag_repeats": 5, "evidently_repeats_1m": args.evidently_1m_repeats,
            "scale_drift_sizes": [2_000_000, 5_000_000], "scale_train_sizes": [2_000_000],
            "scale_repeats": args.repeats, "scale_train_repeats": 1, "threads": args.threads,
            "profile": True, "threads_control": True, "demo_args": []}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, 1 run each (results under benchmarks/out/)")
    parser.add_argument("--only", nargs="+", choices=FIGURES,
                        help="run only these figures; the others are kept from results.json")
    parser.add_argument("--skip", nargs="+", choices=FIGURES, default=[])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-1m-repeats", type=int, default=3,
                        help="Evidently runs at 1M rows (~2 min each)")
    parser.add_argument("--threads", default=None,
                        help="OMP_NUM_THREADS for the workers (default: unset = every core)")
    parser.add_argument("--no-peers", action="store_true", help="skip Evidently and NannyML")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the generated Parquet tables and registries (GBs) afterwards")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite RESULTS.md from results.json")
    args = parser.parse_args(argv)

    json_path = OUT / "results-quick.json" if args.quick else RESULTS_JSON
    md_path = OUT / "RESULTS-quick.md" if args.quick else RESULTS_MD
    OUT.mkdir(parents=True, exist_ok=True)
    if args.render:
        results = json.loads(json_path.read_text())
        md_path.write_text(render(results))
        if not args.quick:
            PERFORMANCE_MD.write_text(render_performance(results))
        log(f"wrote {md_path}")
        return 0
    cfg = settings(args)
    figures = [f for f in (args.only or FIGURES) if f not in args.skip]
    results: dict[str, Any] = {}
    if args.only and json_path.is_file():
        results = json.loads(json_path.read_text())
    started = time.monotonic()
    history = results.get("meta", {}).get("history", [])
    kept_peers = results.get("meta", {}).get("peer_versions")  # drift figures kept from before
    if results.get("meta"):
        old = results["meta"]
        history.append({k: old.get(k) for k in ("started_at", "figures_run", "total_seconds",
                                                  "git_commit")})
    results["meta"] = {
        "history": history,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": cfg, "figures_run": figures, "git_commit": _git_commit(),
        "machine": machine_info(cfg["threads"]),
        "versions": versions_of(MAIN_PYTHON, MAIN_PACKAGES),
        "command": "make bench  (= .venv/bin/python benchmarks/run_all.py)"
                   + (" --quick" if args.quick else ""),
    }
    peers = None
    if not args.no_peers and "drift" in figures:
        peers = peers_env.ensure(log)
        results["meta"]["peer_versions"] = peers_env.versions()
    elif (BENCH_DIR / ".peers-venv" / "bin" / "python").exists():
        results["meta"]["peer_versions"] = peers_env.versions()
    elif kept_peers and "drift" in results and "drift" not in figures:
        results["meta"]["peer_versions"] = kept_peers
    log(f"machine: {results['meta']['machine']['cores_usable']} cores, "
        f"{results['meta']['machine']['memory_total_gb']} GB, load "
        f"{results['meta']['machine']['loadavg_at_start']}; OMP_NUM_THREADS "
        f"{results['meta']['machine']['omp_num_threads_used']}")
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "drift": lambda: fig_drift(cfg, peers),
        "training": lambda: fig_training(cfg),
        "dag": lambda: fig_dag(cfg),
        "demo": lambda: fig_demo(cfg),
        "scale": lambda: fig_scale(cfg, results),
        "estimation": lambda: fig_estimation(cfg),
        "explain": lambda: fig_explain(cfg),
    }
    for name in FIGURES:
        if name not in figures:
            continue
        log(f"\n=== figure: {name} ===")
        t0, before = time.monotonic(), loadavg()
        figure_started = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            res = runners[name]()
        except Exception as exc:  # keep the other figures
            res = {"error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()[-4000:]}
            log(f"figure {name} FAILED: {exc}")
        res["figure_seconds"] = round(time.monotonic() - t0, 1)
        res["started_at"] = figure_started
        res["loadavg_before_figure"], res["loadavg_after_figure"] = before, loadavg()
        results[name] = res
        json_path.write_text(json.dumps(results, indent=2, default=str))
        md_path.write_text(render(results))
    results["meta"]["total_seconds"] = round(time.monotonic() - started, 1)
    results["meta"]["loadavg_at_end"] = loadavg()
    json_path.write_text(json.dumps(results, indent=2, default=str))
    md_path.write_text(render(results))
    if not args.quick:  # the docs' performance page quotes the published run
        PERFORMANCE_MD.write_text(render_performance(results))
    if not args.keep_data:  # regenerated by every run (deterministic seeds)
        for folder in (OUT / "data", OUT / "registries"):
            shutil.rmtree(folder, ignore_errors=True)
    log(f"\nwrote {md_path.relative_to(ROOT)} and {json_path.relative_to(ROOT)} "
        f"({results['meta']['total_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT / "include"))
    raise SystemExit(main())
