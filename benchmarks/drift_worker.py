"""One drift-check measurement in a fresh process (run by ``drift_compare.py``, not by hand).

Runs in the project's venv (``load``, ``plain``, ``ours``, ``ours_profile``) or in the peers'
venv (``load``, ``evidently``, ``nannyml``). Every kind reads the same Parquet files, then:

1. records the RSS after imports and loading (and the high-water mark of the load);
2. resets the kernel's RSS high-water mark, runs the timed section, reads the mark again.

Prints one JSON line: ``seconds`` (timed section), ``rss_before_mb``, ``load_peak_mb``,
``check_peak_mb`` (high-water mark during the timed section, data included), ``peak_mb`` (the
process's peak: max of the two marks), ``flagged`` (drifted columns by the tool's own rule).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import peak_reset, status_mb


def _read(path: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


def _columns(frame: Any) -> tuple[list[str], list[str]]:
    numeric = [c for c in frame.columns if c.startswith("num_")]
    categorical = [c for c in frame.columns if c.startswith("cat_")]
    return numeric, categorical


# --------------------------------------------------------------------------- contenders


def _plain(ref: Any, cur: Any) -> dict[str, Any]:
    from drift import plain_loop

    numeric, categorical = _columns(ref)
    return {"flagged": plain_loop(ref, cur, numeric, categorical)}


def _ours(cur: Any, profile_dir: Path, n_jobs: int | None) -> dict[str, Any]:
    from ml_lifecycle.drift.check import evaluate_batch
    from ml_lifecycle.drift.profile import load_profile
    from ml_lifecycle.drift.report import to_json
    from ml_lifecycle.drift.settings import DriftConfig

    cfg = DriftConfig() if n_jobs is None else DriftConfig(n_jobs=n_jobs)
    profile = load_profile(profile_dir)  # what the daily check does: stored profile + batch
    result = evaluate_batch(profile, cur, cfg)
    text = to_json(result)
    return {"flagged": result["data_drift"]["drifted_features"],
            "verdict": result["data_drift"]["verdict"], "json_kb": round(len(text) / 1024, 1),
            "n_jobs": cfg.n_jobs, "inner_timings": result.get("timings_seconds")}


def _ours_profile(ref: Any, profile_dir: Path) -> dict[str, Any]:
    from ml_lifecycle.drift.profile import build_profile

    numeric, categorical = _columns(ref)
    profile = build_profile(ref, numeric=numeric, categorical=categorical)
    profile_dir.mkdir(parents=True, exist_ok=True)
    paths = profile.save(profile_dir)
    return {"flagged": None, "profile_kb": round(sum(p.stat().st_size for p in paths) / 1024, 1)}


def _evidently(ref: Any, cur: Any) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric, categorical = _columns(ref)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    current = Dataset.from_pandas(cur, data_definition=definition)
    reference = Dataset.from_pandas(ref, data_definition=definition)
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    flagged, methods = [], {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not config.get("type", "").endswith(":ValueDrift"):
            continue
        method, threshold, value = config["method"], config["threshold"], metric["value"]
        methods[config["column"]] = method
        # Evidently's own rule: p-value tests drift when p <= threshold, distances when >= it
        drifted = value <= threshold if "p_value" in method else value >= threshold
        if drifted:
            flagged.append(config["column"])
    return {"flagged": flagged, "methods": sorted(set(methods.values()))}


def _nannyml(ref: Any, cur: Any) -> dict[str, Any]:
    import nannyml as nml

    numeric, categorical = _columns(ref)
    calc = nml.UnivariateDriftCalculator(  # defaults: Jensen-Shannon, ~10 chunks, 3-sigma alerts
        column_names=[*numeric, *categorical], treat_as_categorical=categorical)
    t0 = time.perf_counter()
    calc.fit(ref)
    fit_seconds = time.perf_counter() - t0
    frame = calc.calculate(cur).filter(period="analysis").to_df()
    flagged = []
    for column in [*numeric, *categorical]:
        alerts = [c for c in frame.columns if c[0] == column and c[-1] == "alert"]
        if any(bool(frame[c].any()) for c in alerts):
            flagged.append(column)
    return {"flagged": flagged, "fit_seconds": round(fit_seconds, 4), "chunks": len(frame)}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["load", "plain", "ours", "ours_profile", "evidently",
                                         "nannyml"])
    parser.add_argument("--ref", type=Path, required=True)
    parser.add_argument("--cur", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="our stored reference profile folder")
    parser.add_argument("--frames", choices=["both", "ref", "cur"], default="both",
                        help="load: which frames to load")
    parser.add_argument("--n-jobs", type=int, default=None, help="ours: DriftConfig.n_jobs")
    args = parser.parse_args(argv)

    # imports first (outside the timed section, like a worker that has them preloaded)
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    if args.kind in ("plain", "ours", "ours_profile"):
        import scipy.stats  # noqa: F401
    if args.kind in ("ours", "ours_profile"):
        import ml_lifecycle.drift.check  # noqa: F401
    if args.kind == "evidently":
        import evidently.presets  # noqa: F401
    if args.kind == "nannyml":
        import nannyml  # noqa: F401

    frames = {"load": args.frames, "ours": "cur", "ours_profile": "ref"}.get(args.kind, "both")
    t0 = time.perf_counter()
    ref = _read(args.ref) if frames in ("both", "ref") else None
    cur = _read(args.cur) if frames in ("both", "cur") else None
    load_seconds = time.perf_counter() - t0
    gc.collect()
    out: dict[str, Any] = {"kind": args.kind, "frames": frames,
                           "load_seconds": round(load_seconds, 4),
                           "load_peak_mb": round(status_mb("VmHWM"), 1),
                           "rss_before_mb": round(status_mb("VmRSS"), 1)}
    peak_reset()
    t0 = time.perf_counter()
    if args.kind == "load":
        extra: dict[str, Any] = {"flagged": None}
    elif args.kind == "plain":
        extra = _plain(ref, cur)
    elif args.kind == "ours":
        extra = _ours(cur, args.profile, args.n_jobs)
    elif args.kind == "ours_profile":
        extra = _ours_profile(ref, args.profile)
    elif args.kind == "evidently":
        extra = _evidently(ref, cur)
    else:
        extra = _nannyml(ref, cur)
    out["seconds"] = round(time.perf_counter() - t0, 4)
    out["check_peak_mb"] = round(status_mb("VmHWM"), 1)
    out["peak_mb"] = max(out["check_peak_mb"], out["load_peak_mb"])
    out["added_mb"] = round(out["check_peak_mb"] - out["rss_before_mb"], 1)
    out.update(extra)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
