"""Benchmark (not a test): our drift check vs a plain per-column scipy loop at 1,000,000 rows.

Reference and current frames of ``--rows`` rows each (default 1,000,000), 20 numeric features
(normal, log-normal, exponential, uniform and Poisson-count columns) and 5 categorical ones
(cardinality 5, 20, 100, 400 and 1000, Zipf-like), with 13 of the 25 features shifted (10
numeric, 3 categorical). Both contenders run in the same invocation, each repeat in a fresh
subprocess, and are compared on:

* time (median of ``--repeats``):
  - plain loop: ``scipy.stats.ks_2samp`` + PSI on 10 reference-quantile bins per numeric column,
    ``scipy.stats.chi2_contingency`` per categorical column, flag = p < 0.05;
  - ours: the full check (KS, PSI, Wasserstein, Jensen-Shannon / chi-squared, PSI, JS, batch
    quality, Benjamini-Hochberg, effect sizes, dataset verdict) and its JSON text; the HTML
    report is timed separately. The reference profile is built at training time, so its cost is
    reported apart (it is paid once per model, not per check);
* peak memory: the process's peak resident set size during the timed section (the kernel's
  high-water mark is reset just before it), next to the size of the two frames;
* whether each flagged exactly the shifted columns.

Reproduce::

    PYTHONPATH=include .venv/bin/python benchmarks/drift.py            # 1M rows, 3 repeats
    PYTHONPATH=include .venv/bin/python benchmarks/drift.py --rows 100000 --repeats 1
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_NUMERIC = 20
CARDINALITIES = (5, 20, 100, 400, 1000)
SHIFTED_NUMERIC = tuple(range(10))
SHIFTED_CATEGORICAL = (0, 2, 4)
COMMAND = "PYTHONPATH=include .venv/bin/python benchmarks/drift.py"


# --------------------------------------------------------------------------- data


def _numeric(rng: np.random.Generator, i: int, n: int, shifted: bool) -> np.ndarray:
    kind = i % 5
    if kind == 0:
        return rng.normal(0.25 if shifted else 0.0, 1.0, n)
    if kind == 1:
        return rng.lognormal(0.3 if shifted else 0.0, 0.8, n)
    if kind == 2:
        return rng.exponential(2.6 if shifted else 2.0, n)
    if kind == 3:
        return rng.uniform(1.0 if shifted else 0.0, 11.0 if shifted else 10.0, n)
    return rng.poisson(3.6 if shifted else 3.0, n).astype("float64")


def _categorical(rng: np.random.Generator, card: int, n: int, shifted: bool) -> np.ndarray:
    p = 1.0 / np.arange(1, card + 1)
    p /= p.sum()
    if shifted:  # the most frequent category trades its share with the third one
        p[[0, 2]] = p[[2, 0]]
    labels = np.array([f"c{j:04d}" for j in range(card)], dtype=object)
    return labels[rng.choice(card, size=n, p=p)]


def make_frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Reference, current and the names of the shifted columns (deterministic)."""
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    shifted: list[str] = []
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        moved = i in SHIFTED_NUMERIC
        ref[name] = _numeric(rng, i, rows, False)
        cur[name] = _numeric(rng, i, rows, moved)
        if moved:
            shifted.append(name)
    for i, card in enumerate(CARDINALITIES):
        name = f"cat_{i}_{card}"
        moved = i in SHIFTED_CATEGORICAL
        ref[name] = _categorical(rng, card, rows, False)
        cur[name] = _categorical(rng, card, rows, moved)
        if moved:
            shifted.append(name)
    return pd.DataFrame(ref), pd.DataFrame(cur), shifted


def frames_bytes(*frames: pd.DataFrame) -> int:
    """Bytes the frames hold: column buffers (object columns: 8-byte pointers) + the labels."""
    total = 0
    for frame in frames:
        total += int(frame.memory_usage(index=True, deep=False).sum())
    labels = sum(len(f"c{j:04d}") + 49 for card in CARDINALITIES for j in range(card))
    return total + labels


# --------------------------------------------------------------------------- contenders


def plain_loop(ref: pd.DataFrame, cur: pd.DataFrame, numeric: list[str],
               categorical: list[str]) -> list[str]:
    """What one writes first: scipy per column, PSI on reference deciles, flag p < 0.05."""
    from scipy import stats

    flagged = []
    for col in numeric:
        r, c = ref[col].to_numpy(), cur[col].to_numpy()
        ks = stats.ks_2samp(r, c)
        edges = np.quantile(r, np.linspace(0, 1, 11))
        edges[0], edges[-1] = -np.inf, np.inf
        p = np.maximum(np.histogram(r, edges)[0] / len(r), 1e-4)
        q = np.maximum(np.histogram(c, edges)[0] / len(c), 1e-4)
        psi = float(np.sum((q - p) * np.log(q / p)))
        if ks.pvalue < 0.05 or psi >= 0.1:
            flagged.append(col)
    for col in categorical:
        table = pd.concat([ref[col].value_counts(), cur[col].value_counts()], axis=1).fillna(0)
        chi2 = stats.chi2_contingency(table.to_numpy().T)
        if chi2.pvalue < 0.05:
            flagged.append(col)
    return flagged


def _peak_reset() -> None:
    with open("/proc/self/clear_refs", "w") as handle:  # Linux: reset the RSS high-water mark
        handle.write("5")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def worker(kind: str, rows: int, seed: int, n_jobs: int) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    ref, cur, shifted = make_frames(rows, seed)
    numeric = [c for c in ref if c.startswith("num_")]
    categorical = [c for c in ref if c.startswith("cat_")]
    out: dict[str, Any] = {"kind": kind, "rows": rows, "n_jobs": n_jobs,
                           "frames_mb": frames_bytes(ref, cur) / 2**20, "truth": shifted}
    if kind == "ours":
        from ml_lifecycle.drift.check import evaluate_batch
        from ml_lifecycle.drift.profile import build_profile
        from ml_lifecycle.drift.report import render_html, to_json
        from ml_lifecycle.drift.settings import DriftConfig

        cfg = DriftConfig(n_jobs=n_jobs)
        t0 = time.perf_counter()
        profile = build_profile(ref, numeric=numeric, categorical=categorical, settings=cfg)
        out["profile_seconds"] = time.perf_counter() - t0
    else:
        from scipy import stats  # noqa: F401  (imported before timing, like ours)
    gc.collect()
    out["base_rss_mb"] = _status_kb("VmRSS") / 1024
    _peak_reset()
    t0 = time.perf_counter()
    if kind == "ours":
        result = evaluate_batch(profile, cur, cfg)
        text = to_json(result)
        out["seconds"] = time.perf_counter() - t0
        out["flagged"] = result["data_drift"]["drifted_features"]
        out["json_kb"] = len(text) / 1024
        out["verdict"] = result["data_drift"]["verdict"]
        t1 = time.perf_counter()
        page = render_html(result)
        out["html_seconds"] = time.perf_counter() - t1
        out["html_kb"] = len(page.encode()) / 1024
    else:
        out["flagged"] = plain_loop(ref, cur, numeric, categorical)
        out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = _status_kb("VmHWM") / 1024
    return out


def _spawn(kind: str, rows: int, seed: int, n_jobs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "include")}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--rows", str(rows), "--seed", str(seed),
         "--n-jobs", str(n_jobs)],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker {kind} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="threads of our check (config)")
    parser.add_argument("--also-n-jobs", type=int, default=2,
                        help="also time our check with this many threads (0: skip)")
    parser.add_argument("--worker", choices=["plain", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.seed, args.n_jobs)))
        return 0

    contenders = [("plain", args.n_jobs), ("ours", args.n_jobs)]
    if args.also_n_jobs and args.also_n_jobs != args.n_jobs:
        contenders.append(("ours", args.also_n_jobs))
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {c: [] for c in contenders}
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both
        for kind, jobs in contenders:
            runs[(kind, jobs)].append(_spawn(kind, args.rows, args.seed, jobs))

    first = runs[contenders[0]][0]
    truth = set(first["truth"])
    print(f"drift benchmark: {args.rows:,} rows x 2 frames, {N_NUMERIC} numeric + "
          f"{len(CARDINALITIES)} categorical (cardinality {CARDINALITIES[0]}..{CARDINALITIES[-1]})"
          f", {len(truth)} shifted; {args.repeats} repeat(s), each in a fresh process; "
          f"{os.cpu_count()} CPU(s)")
    print(f"two frames: {first['frames_mb']:.0f} MB (2x = {2 * first['frames_mb']:.0f} MB)")
    medians: dict[tuple[str, int], float] = {}
    for (kind, jobs), items in runs.items():
        seconds = [r["seconds"] for r in items]
        med = statistics.median(seconds)
        medians[(kind, jobs)] = med
        peak = max(r["peak_rss_mb"] for r in items)
        base = statistics.median(r["base_rss_mb"] for r in items)
        flagged = set(items[0]["flagged"])
        exact = flagged == truth
        label = "plain scipy loop" if kind == "plain" else f"our full check (n_jobs={jobs})"
        print(f"\n{label}:")
        print(f"  time    median {med:.2f} s  (runs: {', '.join(f'{s:.2f}' for s in seconds)})")
        print(f"  memory  peak RSS {peak:.0f} MB = {peak / first['frames_mb']:.2f}x the frames "
              f"(process held {base:.0f} MB before the timed section; +{peak - base:.0f} MB)")
        print(f"  flagged exactly the shifted columns: {'yes' if exact else 'NO'}"
              + ("" if exact else f" (extra {sorted(flagged - truth)}, missed "
                                  f"{sorted(truth - flagged)})"))
        if kind == "ours":
            print(f"  JSON {items[0]['json_kb']:.0f} kB; HTML report "
                  f"{statistics.median(r['html_seconds'] for r in items):.2f} s, "
                  f"{items[0]['html_kb']:.0f} kB (timed separately)")
            print(f"  reference profile (built once at training time): "
                  f"{statistics.median(r['profile_seconds'] for r in items):.2f} s")
    plain = medians[("plain", args.n_jobs)]
    print()
    for (kind, jobs), med in medians.items():
        if kind == "ours":
            print(f"speed-up of our check (n_jobs={jobs}) over the plain loop: {plain / med:.1f}x")
    print(f"reproduce: {COMMAND}" + (f" --rows {args.rows}" if args.rows != 1_000_000 else "")
          + (f" --repeats {args.repeats}" if args.repeats != 3 else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
