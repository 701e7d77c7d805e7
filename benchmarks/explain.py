"""Benchmark (not a test): what do SHAP explanations cost when scoring?

The champion is the project's own ``run_training`` with ``configs/demo.yaml`` on the demo's
simulated training table (``ml_lifecycle.simulate``, seed 1: the built-in
``hist_gradient_boosting`` family, TreeSHAP). A batch of ``--rows`` rows (1,000,000 by
default) is drawn from the demo's daily batches. Each measurement is one fresh process running
``ml_lifecycle.lifecycle.score_file`` (the ``score`` command's and the scoring DAG's one scoring
path: read the batch, score, write the predictions CSV) without and with ``explain=3`` (the
three largest contributions per row), ``--repeats`` times each (default 3), alternating.
Reported: the medians with min-max, the ratio of the medians, and rows per second.

Reproduce::

    PYTHONPATH=include .venv/bin/python benchmarks/explain.py               # 1M rows, 3 runs
    PYTHONPATH=include .venv/bin/python benchmarks/explain.py --rows 20000 --repeats 1

The figures go to stdout as text, and as one JSON object on the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    MAIN_PYTHON,
    ROOT,
    bench_env,
    fmt_range,
    machine_info,
    run_json,
    summary,
)

COMMAND = "PYTHONPATH=include .venv/bin/python benchmarks/explain.py"
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"


def prepare(work: Path, rows: int) -> dict[str, str]:
    """Train the champion and write a ``rows``-row batch; return the paths."""
    import pandas as pd

    from ml_lifecycle.config import apply_overrides, config_from_dict, load_raw
    from ml_lifecycle.simulate import simulate
    from ml_lifecycle.train import run_training

    simulate(work / "data", days=5, seed=1, initial_rows=20_000, rows_per_day=20_000)
    raw = apply_overrides(load_raw(str(DEMO_CONFIG)), [
        f"data.path={work / 'data' / 'train.csv'}", f"registry.root={work / 'registry'}",
        f"data.data_roots=[{work}]"])
    config = work / "bench.json"
    config.write_text(json.dumps(raw))
    cfg = config_from_dict(raw, source=str(config), base=work)
    run_training(cfg, reason="benchmark")
    days = sorted((work / "data" / "batches").glob("*.csv"))
    pool = pd.concat([pd.read_csv(p) for p in days], ignore_index=True)
    batch = pool.sample(n=rows, replace=rows > len(pool), random_state=0)
    batch[cfg.data.id_column] = [f"b{i}" for i in range(rows)]  # unique ids
    path = work / "batch.parquet"
    batch.to_parquet(path, index=False)
    return {"config": str(config), "batch": str(path), "base": str(work)}


def worker(config: str, batch: str, base: str, explain: int) -> dict[str, Any]:
    """One measurement (run in a fresh process): ``score_file`` with ``explain``."""
    from ml_lifecycle.config import config_from_dict
    from ml_lifecycle.lifecycle import score_file

    cfg = config_from_dict(json.loads(Path(config).read_text()), source=config, base=base)
    out = Path(base) / f"preds_{explain}.csv"
    started = time.perf_counter()
    summary_ = score_file(cfg, batch, out, explain=explain)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": summary_["rows"], "explain": explain}


def measure(rows: int, repeats: int, threads: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ml-explain-bench-") as tmp:
        paths = prepare(Path(tmp), rows)
        runs: dict[int, list[float]] = {0: [], 3: []}
        for _ in range(repeats):
            for explain in (0, 3):  # alternating: a slow moment hits both sides
                res = run_json([str(MAIN_PYTHON), __file__, "--worker", paths["config"],
                                paths["batch"], paths["base"], str(explain)],
                               env=bench_env(threads), timeout=7200)
                runs[explain].append(res["seconds"])
    plain, explained = summary(runs[0]), summary(runs[3])
    ratio = round(explained["median"] / plain["median"], 2)
    return {
        "rows": rows, "repeats": repeats, "model": "hist_gradient_boosting (configs/demo.yaml)",
        "explainer": "tree (TreeSHAP)", "score_seconds": plain, "score_explain3_seconds": explained,
        "ratio": ratio,
        "rows_per_second": {"score": round(rows / plain["median"]),
                            "score_explain3": round(rows / explained["median"])},
        "machine": machine_info(threads),
        "command": f"{COMMAND} --rows {rows} --repeats {repeats}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=4, metavar=("CONFIG", "BATCH", "BASE", "EXPLAIN"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        config, batch, base, explain = args.worker
        print(json.dumps(worker(config, batch, base, int(explain))))
        return 0
    res = measure(args.rows, args.repeats)
    print(f"score {res['rows']:,} rows: {fmt_range(res['score_seconds'])}; with --explain 3: "
          f"{fmt_range(res['score_explain3_seconds'])}; ratio {res['ratio']}x "
          f"({res['rows_per_second']['score_explain3']:,} explained rows/s)")
    print(f"reproduce: {res['command']}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
