"""Figure 1 (and the drift half of figure 5): our drift check side by side with the alternatives.

Same data for every tool: ``drift.make_frames`` (20 numeric + 5 categorical features, 13 of them
shifted) is written once per size to Parquet under ``benchmarks/out/data/`` and every contender
reads those files in its own fresh process:

* **ours** - the daily check as the monitoring DAG runs it: the stored reference profile (built
  once at training time from the reference rows, timed apart as ``ours_profile``) + the current
  batch -> ``evaluate_batch`` (KS, PSI, Wasserstein, Jensen-Shannon / chi-squared, PSI, JS, batch
  quality, Benjamini-Hochberg, effect sizes, verdict) and its JSON text. Default ``DriftConfig``
  (``n_jobs=1``) and, as ``ours_nX``, ``n_jobs`` = the number of cores;
* **plain** - ``drift.plain_loop``: ``ks_2samp`` + PSI per numeric column, ``chi2_contingency``
  per categorical column;
* **evidently** - ``Report([DataDriftPreset()]).run(current, reference)`` with its defaults,
  in the peers' venv (pandas 2.3);
* **nannyml** - ``UnivariateDriftCalculator`` with its defaults (Jensen-Shannon, about 10
  chunks, alert beyond 3 standard deviations of the reference chunks): ``fit(reference)`` +
  ``calculate(current)``; a column counts as flagged when any current chunk alerts;
* **load** - baseline processes that only import pandas and read the same Parquet files (one per
  venv, and one reading only the current batch, which is all our check reads).

Time = the check itself (data already in memory). Memory = the peak RSS of the process (the
kernel's high-water mark, reset after loading so the load's own transient peak is kept apart),
next to the peak of the load-only baseline in the same venv. Repeats are interleaved so changing
machine load hits every contender alike.

Reproduce::

    PYTHONPATH=include .venv/bin/python benchmarks/drift_compare.py            # 10k/100k/1M
    PYTHONPATH=include .venv/bin/python benchmarks/drift_compare.py --sizes 10000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    MAIN_PYTHON,
    OUT,
    ROOT,
    WorkerError,
    bench_env,
    fmt_range,
    loadavg,
    loglog_exponent,
    run_json,
    summary,
)

WORKER = BENCH_DIR / "drift_worker.py"
COMMAND = "PYTHONPATH=include .venv/bin/python benchmarks/drift_compare.py"
SIZES = (10_000, 100_000, 1_000_000)
SEED = 0
LABELS = {
    "ours": "ours (stored profile + batch)",
    "ours_nX": "ours, n_jobs = cores",
    "ours_profile": "ours: build the reference profile (once per model)",
    "plain": "plain scipy loop",
    "evidently": "Evidently DataDriftPreset",
    "nannyml": "NannyML UnivariateDriftCalculator",
}


# --------------------------------------------------------------------------- data


def prepare(rows: int, seed: int = SEED, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the reference and current frames of ``rows`` rows to Parquet (once per run)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from drift import make_frames

    folder = OUT / "data" / f"drift_{rows}_seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ref, cur, shifted = make_frames(rows, seed)
    paths = {}
    for name, frame in (("ref", ref), ("cur", cur)):
        # plain Arrow types, no pandas metadata: pandas 2 (peers) and 3 (ours) read the same file
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(table, paths[name])
    info = {
        "rows": rows, "seed": seed, "ref": str(paths["ref"]), "cur": str(paths["cur"]),
        "profile": str(folder / "profile"), "truth": shifted,
        "columns": {"numeric": sum(c.startswith("num_") for c in ref),
                    "categorical": sum(c.startswith("cat_") for c in ref)},
        "parquet_mb": round(sum(p.stat().st_size for p in paths.values()) / 2**20, 1),
        "in_memory_mb": round(sum(int(f.memory_usage(index=True, deep=True).sum())
                                  for f in (ref, cur)) / 2**20, 1),
    }
    (folder / "truth.json").write_text(json.dumps(info, indent=2))
    log(f"  data {rows:,} rows x 2 frames -> {folder.relative_to(ROOT)} "
        f"({info['parquet_mb']} MB Parquet, {time.perf_counter() - t0:.1f} s)")
    return info


# --------------------------------------------------------------------------- measuring


def _contenders(peers_python: Path | None, cores: int) -> list[dict[str, Any]]:
    main = str(MAIN_PYTHON)
    items = [
        {"name": "load_main_both", "python": main, "kind": "load", "args": ["--frames", "both"]},
        {"name": "load_main_cur", "python": main, "kind": "load", "args": ["--frames", "cur"]},
        {"name": "plain", "python": main, "kind": "plain", "args": [],
         "baseline": "load_main_both"},
        {"name": "ours", "python": main, "kind": "ours", "args": [], "baseline": "load_main_cur"},
    ]
    if cores > 1:
        items.append({"name": "ours_nX", "python": main, "kind": "ours",
                      "args": ["--n-jobs", str(cores)], "baseline": "load_main_cur"})
    if peers_python is not None:
        peers = str(peers_python)
        items += [
            {"name": "load_peers_both", "python": peers, "kind": "load",
             "args": ["--frames", "both"]},
            {"name": "evidently", "python": peers, "kind": "evidently", "args": [],
             "baseline": "load_peers_both"},
            {"name": "nannyml", "python": peers, "kind": "nannyml", "args": [],
             "baseline": "load_peers_both"},
        ]
    return items


def _one(item: dict[str, Any], data: dict[str, Any], env: dict[str, str],
         timeout: float) -> dict[str, Any]:
    cmd = [item["python"], str(WORKER), item["kind"], "--ref", data["ref"], "--cur", data["cur"],
           "--profile", data["profile"], *item["args"]]
    return run_json(cmd, env=env, timeout=timeout)


def _aggregate(runs: list[dict[str, Any]], truth: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seconds": summary([r["seconds"] for r in runs]),
        "peak_mb": summary([r["peak_mb"] for r in runs], 1),
        "check_peak_mb": summary([r["check_peak_mb"] for r in runs], 1),
        "added_mb": summary([r["added_mb"] for r in runs], 1),
        "rss_before_mb": summary([r["rss_before_mb"] for r in runs], 1),
        "load_seconds": summary([r["load_seconds"] for r in runs]),
    }
    flagged = runs[0].get("flagged")
    if flagged is not None:
        got, want = set(flagged), set(truth)
        out["flagged"] = sorted(got)
        out["exact"] = got == want
        out["missed"] = sorted(want - got)
        out["extra"] = sorted(got - want)
        out["consistent_across_runs"] = all(set(r.get("flagged") or []) == got for r in runs)
    for key in ("methods", "chunks", "n_jobs", "verdict", "json_kb", "profile_kb"):
        if key in runs[0]:
            out[key] = runs[0][key]
    if "fit_seconds" in runs[0]:
        out["fit_seconds"] = summary([r["fit_seconds"] for r in runs])
    if runs[0].get("inner_timings"):
        out["inner_timings"] = runs[0]["inner_timings"]
    return out


def measure_size(rows: int, *, repeats: int, peers_python: Path | None, threads: str | None,
                 evidently_repeats: int | None = None, only: set[str] | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """All contenders at one size; returns the aggregated figures."""
    env = bench_env(threads)
    cores = len(os.sched_getaffinity(0))
    data = prepare(rows, log=log)
    items = _contenders(peers_python, cores)
    if only:
        items = [i for i in items if i["name"] in only]
    timeout = max(600.0, rows / 1_000_000 * 900.0)
    runs: dict[str, list[dict[str, Any]]] = {i["name"]: [] for i in items}
    errors: dict[str, str] = {}
    started = time.monotonic()
    load_before = loadavg()
    # the stored profile first: every "ours" run reads it
    profile_runs = []
    for _ in range(repeats):
        profile_runs.append(run_json(
            [str(MAIN_PYTHON), str(WORKER), "ours_profile", "--ref", data["ref"], "--cur",
             data["cur"], "--profile", data["profile"]], env=env, timeout=timeout))
    for rep in range(repeats):
        for item in items:
            n = repeats
            if item["name"] == "evidently" and evidently_repeats is not None:
                n = min(repeats, evidently_repeats)
            if rep >= n or item["name"] in errors:
                continue
            try:
                result = _one(item, data, env, timeout)
            except WorkerError as exc:
                errors[item["name"]] = str(exc)[-2000:]
                log(f"  {item['name']} FAILED: {str(exc)[-400:]}")
                continue
            runs[item["name"]].append(result)
            log(f"  {rows:>9,} rows  run {rep + 1}/{n}  {item['name']:<16} "
                f"{result['seconds']:8.2f} s  peak {result['peak_mb']:7.0f} MB"
                + (f"  flagged {len(result['flagged'])}" if result.get("flagged") is not None
                   else ""))
    contenders = {"ours_profile": _aggregate(profile_runs, data["truth"])}
    for item in items:
        if runs[item["name"]]:
            agg = _aggregate(runs[item["name"]], data["truth"])
            base = item.get("baseline")
            if base and runs.get(base):
                base_peak = summary([r["peak_mb"] for r in runs[base]], 1)["median"]
                agg["baseline"] = base
                agg["over_baseline_mb"] = round(agg["peak_mb"]["median"] - base_peak, 1)
            contenders[item["name"]] = agg
    return {
        "rows": rows, "data": {k: v for k, v in data.items() if k not in ("ref", "cur")},
        "contenders": contenders, "errors": errors,
        "wall_seconds": round(time.monotonic() - started, 1),
        "loadavg_before": load_before, "loadavg_after": loadavg(),
    }


def ratios(size_result: dict[str, Any]) -> dict[str, Any]:
    """Time and memory of each alternative divided by ours (> 1: ours is faster / leaner)."""
    c = size_result["contenders"]
    if "ours" not in c:
        return {}
    ours_t, ours_m = c["ours"]["seconds"]["median"], c["ours"]["peak_mb"]["median"]
    out: dict[str, Any] = {}
    for name in ("plain", "evidently", "nannyml"):
        if name in c:
            out[name] = {
                "time_x": round(c[name]["seconds"]["median"] / ours_t, 1) if ours_t else None,
                "peak_memory_x": round(c[name]["peak_mb"]["median"] / ours_m, 2),
            }
            # like for like: our check including building the profile from the reference rows
            prof = c.get("ours_profile", {}).get("seconds", {}).get("median")
            if prof is not None:
                out[name]["time_x_incl_profile"] = round(
                    c[name]["seconds"]["median"] / (ours_t + prof), 1)
    return out


def exponents(by_size: dict[str, dict[str, Any]], upto: int = 1_000_000) -> dict[str, Any]:
    """Fitted exponent of time ~ rows**k per contender over the sizes <= ``upto``."""
    names: set[str] = set()
    for res in by_size.values():
        names |= set(res["contenders"])
    out = {}
    for name in sorted(names):
        pts = [(res["rows"], res["contenders"][name]["seconds"]["median"])
               for res in by_size.values()
               if res["rows"] <= upto and name in res["contenders"]]
        if len(pts) >= 2 and not name.startswith("load"):
            out[name] = {"exponent": loglog_exponent([p[0] for p in pts], [p[1] for p in pts]),
                         "sizes": [p[0] for p in pts]}
    return out


def print_size(res: dict[str, Any], log: Callable[[str], None] = print) -> None:
    rows = res["rows"]
    c = res["contenders"]
    log(f"\ndrift check, {rows:,} + {rows:,} rows x 25 columns "
        f"(truth: {len(res['data']['truth'])} shifted):")
    for name, agg in c.items():
        if name.startswith("load"):
            log(f"  {name:<16} load only: peak {fmt_range(agg['peak_mb'], 'MB', 0)}")
            continue
        flag = ""
        if "exact" in agg:
            flag = "exact" if agg["exact"] else f"missed {agg['missed']} extra {agg['extra']}"
        log(f"  {LABELS.get(name, name):<52} {fmt_range(agg['seconds'])}  "
            f"peak {fmt_range(agg['peak_mb'], 'MB', 0)}  {flag}")
    for name, r in ratios(res).items():
        log(f"  ours is {r['time_x']}x faster than {name} (memory {r['peak_memory_x']}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-repeats", type=int, default=None,
                        help="cap Evidently's repeats (it needs ~2 min per run at 1M rows)")
    parser.add_argument("--no-peers", action="store_true", help="skip Evidently and NannyML")
    parser.add_argument("--only", nargs="+", help="contender names to run (e.g. ours plain)")
    parser.add_argument("--threads", default=None,
                        help="OMP_NUM_THREADS for the workers (default: unset = all cores)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    peers = None
    if not args.no_peers:
        import peers_env

        peers = peers_env.ensure()
    by_size = {}
    for rows in args.sizes:
        res = measure_size(rows, repeats=args.repeats, peers_python=peers, threads=args.threads,
                           evidently_repeats=args.evidently_repeats,
                           only=set(args.only) if args.only else None)
        by_size[str(rows)] = res
        print_size(res)
    exp = exponents(by_size)
    if exp:
        print("\ntime ~ rows^k: " + ", ".join(f"{k} {v['exponent']}" for k, v in exp.items()))
    if args.json:
        args.json.write_text(json.dumps({"by_size": by_size, "exponents": exp}, indent=2))
    print(f"reproduce: {COMMAND} --sizes {' '.join(map(str, args.sizes))} "
          f"--repeats {args.repeats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
