"""Benchmark (not a test): how close is the label-free performance estimate, and what does it cost?

(a) Accuracy: the estimate of ROC-AUC and F1 against the metric realized on the labels, with
the share of batches whose realized value lies inside the estimate's interval.

  (i) The demo's simulated days (``ml_lifecycle.simulate.simulate`` with its default schedule
      and ``harmless_day=5``: clean days, harmless-shift days, covariate-shift days, then a
      concept change). The champion is trained by the project's own ``run_training`` with
      ``configs/demo.yaml`` on ``train.csv``; its stored estimator is loaded from the registry
      version folder (``performance_estimator.json`` / ``.npz``) with
      ``PerformanceEstimator.from_stored``; every day's batch is scored with the registered model
      and estimated, and compared with the metric on that day's labels. Reported per phase:
      before the concept change the assumptions hold; after it P(y|x) changed, which the
      estimate cannot see by design (the realized metric on arrived labels catches it).
  (ii) UCI Adult (``../shared/data/adult``): the project's training with ``configs/adult.yaml``
      on ``adult.data``; the held-out ``adult.test`` rows are resampled into covariate-shifted
      slices (70 % of a slice's rows from one quantile group of age, education_num or
      hours_per_week, or from one sex, 30 % from the rest), so P(y|x) is that of the data.

(b) Time of the estimate for 1,000,000 scores with the default settings (200 simulated label
vectors on 20,000 sampled rows, 50 calibration replicates), median of 3 runs, next to the drift
core at 1,000,000 rows (``benchmarks/drift.py``'s worker: the full data-drift check of 25
features, in a fresh process, median of 3), and the regression DLE estimate for 1,000,000 rows.

Reproduce::

    PYTHONPATH=include .venv/bin/python benchmarks/estimation.py            # everything
    PYTHONPATH=include .venv/bin/python benchmarks/estimation.py --quick    # small, 1 run
    PYTHONPATH=include .venv/bin/python benchmarks/estimation.py --json out.json

The figures go to stdout as text, and as one JSON object on the last stdout line (or to the
``--json`` path).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Stopwatch, bench_env, fmt_range, machine_info, run_json, summary

COMMAND = "PYTHONPATH=include .venv/bin/python benchmarks/estimation.py"
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
ADULT_CONFIG = ROOT / "configs" / "adult.yaml"
ADULT_TEST = ROOT.parent / "shared" / "data" / "adult" / "adult.test"
METRICS = ("roc_auc", "f1")
# Small and fast (--quick): the demo config with fewer iterations and resamples.
QUICK_OVERRIDES = ["model.max_iter=60", "model.patience=5", "evaluation.bootstrap=20",
                   "evaluation.importance_repeats=1", "gate.bootstrap=50",
                   "quality.min_rows=100"]


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- shared


def load_stored_estimator(version_dir: Path) -> Any:
    """The estimator the registry stored with a version, rebuilt from its files."""
    from ml_lifecycle.drift.estimate import (
        ESTIMATOR_JSON,
        ESTIMATOR_NPZ,
        LOSS_MODEL_FILE,
        PerformanceEstimator,
    )

    meta = json.loads((version_dir / ESTIMATOR_JSON).read_text(encoding="utf-8"))
    with np.load(version_dir / ESTIMATOR_NPZ, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    loss_models = None
    if (version_dir / LOSS_MODEL_FILE).is_file():
        import joblib

        loss_models = joblib.load(version_dir / LOSS_MODEL_FILE)
    return PerformanceEstimator.from_stored(meta, arrays, loss_models)


def train_champion(cfg: Any) -> tuple[Any, Any, int]:
    """Train with the project's ``run_training``; the registered model, its estimator, version."""
    from ml_lifecycle.registry import open_registry
    from ml_lifecycle.train import run_training

    result = run_training(cfg, reason="benchmark", actor="benchmarks/estimation.py")
    registry = open_registry(cfg.registry.root)
    version = result["version"]
    model = registry.load_model(version)
    estimator = load_stored_estimator(Path(result["version_dir"]))
    return model, estimator, version


def compare(estimator: Any, scores: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Estimate (no labels) and realized metric (labels) of one batch."""
    from ml_lifecycle.drift.estimate import apply_calibration
    from ml_lifecycle.metrics import compute_metric

    estimate = estimator.estimate(scores)
    # calibration in the large: the positive rate the estimate assumes vs the labels' one
    out: dict[str, Any] = {
        "rows": len(y), "positive_rate": round(float(np.mean(y)), 4),
        "expected_positive_rate": round(float(np.mean(
            apply_calibration(estimator.calibration_, scores))), 4)}
    for m in METRICS:
        real = float(compute_metric("classification", m, y, scores, estimator.threshold))
        e = estimate[m]
        out[m] = {"estimated": e["value"], "low": e["low"], "high": e["high"], "realized": real,
                  "error": e["value"] - real,
                  "inside": bool(e["low"] <= real <= e["high"])}
    return out


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """MAE, mean signed error, interval coverage and mean interval width per metric."""
    if not rows:
        return {"batches": 0}
    out: dict[str, Any] = {
        "batches": len(rows),
        "positive_rate": round(float(np.mean([r["positive_rate"] for r in rows])), 4),
        "expected_positive_rate": round(float(np.mean([r["expected_positive_rate"]
                                                       for r in rows])), 4)}
    for m in METRICS:
        err = np.array([r[m]["error"] for r in rows])
        out[m] = {"mae": round(float(np.mean(np.abs(err))), 4),
                  "mean_error": round(float(np.mean(err)), 4),
                  "coverage": round(float(np.mean([r[m]["inside"] for r in rows])), 3),
                  "mean_width": round(float(np.mean([r[m]["high"] - r[m]["low"]
                                                     for r in rows])), 4)}
    return out


def print_aggregate(label: str, agg: dict[str, Any]) -> None:
    if not agg.get("batches"):
        log(f"  {label:<34} no batches")
        return
    parts = [f"{m}: MAE {agg[m]['mae']:.4f} (mean error {agg[m]['mean_error']:+.4f}), "
             f"{agg[m]['coverage']:.0%} inside, width {agg[m]['mean_width']:.3f}"
             for m in METRICS]
    log(f"  {label:<34} {agg['batches']:>3} batches | " + " | ".join(parts)
        + f" | positive rate {agg['positive_rate']:.3f}, expected "
          f"{agg['expected_positive_rate']:.3f}")


# --------------------------------------------------------------------------- (a)(i) demo days


def demo_days(workdir: Path, quick: bool) -> dict[str, Any]:
    """Estimated vs realized metric on every simulated day of the demo data."""
    from ml_lifecycle.config import apply_overrides, config_from_dict, load_raw
    from ml_lifecycle.data import load_table
    from ml_lifecycle.scoring import predict_scores
    from ml_lifecycle.simulate import simulate

    base = workdir / "demo"
    sim_args: dict[str, Any] = {"harmless_day": 5}
    if quick:
        sim_args.update(days=12, shift_day=7, concept_day=10, initial_rows=6000,
                        rows_per_day=1000)
    t0 = time.perf_counter()
    sim = simulate(base / "var/demo/data", **sim_args)
    raw = apply_overrides(load_raw(DEMO_CONFIG), QUICK_OVERRIDES if quick else [])
    cfg = config_from_dict(raw, source=str(DEMO_CONFIG), base=base / "configs")
    model, estimator, version = train_champion(cfg)
    log(f"  demo: simulated {sim['days']} days ({sim_args}), trained v{version} "
        f"with configs/demo.yaml in {time.perf_counter() - t0:.0f} s; calibration "
        f"{estimator.calibration_['method']} on {estimator.n_validation_} validation rows; "
        f"test ROC-AUC realized {estimator.reference_['roc_auc']['realized']:.4f}, "
        f"estimated {estimator.reference_['roc_auc']['estimated']:.4f}")

    phases = {"harmless": (sim["harmless_shift_day"], sim["harmless_shift_end_day"]),
              "shift": (sim["covariate_shift_day"], sim["concept_change_day"]),
              "concept": (sim["concept_change_day"], None)}

    def phase_of(day: str) -> str:
        for name, (start, end) in phases.items():
            if start and day >= start and (end is None or day < end):
                return name
        return "clean"

    rows = []
    batches = sorted((base / "var/demo/data/batches").glob("*.csv"))
    for path in batches:
        day = path.stem
        frame = load_table(cfg.data, str(path), require_target=False)
        labels = pd.read_csv(base / "var/demo/data/labels" / path.name)
        y = (frame[[cfg.data.id_column]]
             .merge(labels, on=cfg.data.id_column, how="left")[cfg.data.target]
             .to_numpy(dtype=float))
        scores = predict_scores(model, frame[cfg.data.features.all], cfg.task)
        row = {"day": day, "phase": phase_of(day), **compare(estimator, scores, y)}
        rows.append(row)
        log(f"    {day} {row['phase']:<8} rows {row['rows']:>5}  "
            + "  ".join(f"{m} est {row[m]['estimated']:.3f} [{row[m]['low']:.3f}, "
                        f"{row[m]['high']:.3f}] real {row[m]['realized']:.3f}"
                        + ("" if row[m]["inside"] else " (outside)") for m in METRICS))
    before = [r for r in rows if r["phase"] != "concept"]
    after = [r for r in rows if r["phase"] == "concept"]
    out = {
        "simulate": {k: (str(v) if isinstance(v, Path) else v) for k, v in sim_args.items()},
        "days": len(rows), "calibration": estimator.calibration_["method"],
        "n_validation": estimator.n_validation_, "threshold": estimator.threshold,
        "reference": {m: estimator.reference_[m] for m in METRICS},
        "before_concept_change": aggregate(before),
        "by_phase": {p: aggregate([r for r in rows if r["phase"] == p])
                     for p in ("clean", "harmless", "shift", "concept")},
        "after_concept_change": aggregate(after),
        "per_day": rows,
    }
    log("  demo days, estimate vs realized:")
    for phase, agg in out["by_phase"].items():
        print_aggregate(f"phase {phase}", agg)
    print_aggregate("before the concept change (all)", out["before_concept_change"])
    print_aggregate("after the concept change", out["after_concept_change"])
    log("  (after the concept change P(y|x) differs from training: the estimate assumes it does "
        "not, so it is expected to miss there; the realized metric on arrived labels is the "
        "signal. 'expected' positive rate = mean calibrated score: where it differs from the "
        "labels' rate, P(y|score) moved and the estimate is biased)")
    return out


# --------------------------------------------------------------------------- (a)(ii) Adult


def shifted_slices(frame: pd.DataFrame, rng: np.random.Generator, *, rows: int,
                   draws: int) -> list[tuple[str, np.ndarray]]:
    """Row indices of covariate-shifted slices: 70 % from one group of a feature, 30 % rest."""
    groups: dict[str, pd.Series] = {}
    for col in ("age", "education_num", "hours_per_week"):
        ranks = frame[col].rank(method="first")
        groups[col] = pd.qcut(ranks, 4, labels=[f"q{i + 1}" for i in range(4)]).astype(str)
    groups["sex"] = frame["sex"].astype(str)
    slices = []
    for col, group in groups.items():
        for value in sorted(group.unique()):
            inside = np.flatnonzero((group == value).to_numpy())
            outside = np.flatnonzero((group != value).to_numpy())
            n_in = min(int(0.7 * rows), len(inside))
            n_out = min(rows - n_in, len(outside))
            for k in range(draws):
                idx = np.concatenate([rng.choice(inside, n_in, replace=False),
                                      rng.choice(outside, n_out, replace=False)])
                slices.append((f"{col}={value}#{k}", idx))
    return slices


def adult(workdir: Path, quick: bool) -> dict[str, Any]:
    """Estimated vs realized metric on covariate-shifted slices of Adult's held-out rows."""
    from ml_lifecycle.config import load_config
    from ml_lifecycle.data import load_table
    from ml_lifecycle.scoring import predict_scores
    from ml_lifecycle.train import encode_target

    overrides = [f"registry.root={workdir / 'adult-registry'}"]
    if quick:
        overrides += ["model.max_iter=60", "model.patience=5", "evaluation.bootstrap=20",
                      "evaluation.importance_repeats=1", "gate.bootstrap=50"]
    cfg = load_config(str(ADULT_CONFIG), overrides)
    t0 = time.perf_counter()
    model, estimator, _ = train_champion(cfg)
    held_out = load_table(cfg.data, str(ADULT_TEST))
    y_all, _ = encode_target(held_out, cfg)
    scores_all = predict_scores(model, held_out[cfg.data.features.all], cfg.task)
    log(f"  adult: trained on adult.data in {time.perf_counter() - t0:.0f} s; calibration "
        f"{estimator.calibration_['method']} on {estimator.n_validation_} validation rows; "
        f"held-out adult.test {len(held_out):,} rows")
    rng = np.random.default_rng(0)
    rows = []
    whole = {"slice": "adult.test (all)", **compare(estimator, scores_all, y_all)}
    for name, idx in shifted_slices(held_out, rng, rows=1000 if quick else 2000,
                                    draws=1 if quick else 3):
        rows.append({"slice": name, **compare(estimator, scores_all[idx], y_all[idx])})
    out = {"held_out": whole, "slices": aggregate(rows),
           "calibration": estimator.calibration_["method"],
           "n_validation": estimator.n_validation_, "per_slice": rows,
           "realized_range": {m: [round(min(r[m]["realized"] for r in rows), 4),
                                  round(max(r[m]["realized"] for r in rows), 4)]
                              for m in METRICS}}
    log("  adult, estimate vs realized:")
    print_aggregate("all held-out rows", aggregate([whole]))
    print_aggregate("covariate-shifted slices", out["slices"])
    log("  (realized over the slices: "
        + ", ".join(f"{m} {lo:.3f}..{hi:.3f}" for m, (lo, hi) in out["realized_range"].items())
        + ")")
    return out


# --------------------------------------------------------------------------- (b) time


def _time(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    seconds = []
    for _ in range(repeats):
        gc.collect()
        with Stopwatch() as sw:
            fn()
        seconds.append(sw.seconds)
    return summary(seconds)


def time_classification(rows: int, repeats: int) -> dict[str, Any]:
    """CBPE with the default settings on ``rows`` scores of a calibrated-by-sigmoid model."""
    from ml_lifecycle.drift.estimate import PerformanceEstimator

    rng = np.random.default_rng(0)

    def scores_of(n: int) -> tuple[np.ndarray, np.ndarray]:
        logit = rng.normal(-1.5, 1.8, n)
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
        return y, 1 / (1 + np.exp(-(logit + 1.2)))  # class-weighted: needs a map

    y_val, s_val = scores_of(10_000)
    with Stopwatch() as fit:
        estimator = PerformanceEstimator("classification").fit(y_val, s_val)
    _, scores = scores_of(rows)
    return {"rows": rows, "seconds": _time(lambda: estimator.estimate(scores), repeats),
            "fit_seconds_10k_validation": round(fit.seconds, 3),
            "settings": {"draws": estimator.draws, "max_rows": estimator.max_rows,
                         "replicates": estimator.replicates,
                         "metrics": list(estimator.metrics)}}


def time_regression(rows: int, repeats: int) -> dict[str, Any]:
    """DLE on ``rows`` rows (10 features, a scaler + gradient-boosting pipeline)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from ml_lifecycle.drift.estimate import PerformanceEstimator

    rng = np.random.default_rng(1)
    cols = [f"x{i}" for i in range(10)]

    def table(n: int) -> tuple[pd.DataFrame, np.ndarray]:
        x = rng.normal(size=(n, len(cols)))
        y = x[:, 0] - 2 * x[:, 1] + rng.normal(size=n) * (1 + (x[:, 2] > 1))
        return pd.DataFrame(x, columns=cols), y

    x_tr, y_tr = table(20_000)
    x_val, y_val = table(10_000)
    pipeline = Pipeline([("scale", StandardScaler()),
                         ("model", HistGradientBoostingRegressor(max_iter=100))]).fit(x_tr, y_tr)
    with Stopwatch() as fit:
        estimator = PerformanceEstimator("regression").fit(
            y_val, pipeline.predict(x_val), pipeline=pipeline, x_val=x_val)
    x_batch, _ = table(rows)
    predictions = pipeline.predict(x_batch)
    return {"rows": rows, "fit_seconds_10k_validation": round(fit.seconds, 3),
            "seconds": _time(lambda: estimator.estimate(predictions, pipeline=pipeline,
                                                        features=x_batch), repeats),
            "note": "includes the pipeline's preprocessing of the batch (loss-model inputs)"}


def time_drift_core(rows: int, repeats: int) -> dict[str, Any]:
    """``benchmarks/drift.py``'s worker (our full check), each run in a fresh process."""
    runs = [run_json([sys.executable, str(ROOT / "benchmarks" / "drift.py"), "--worker", "ours",
                      "--rows", str(rows), "--seed", "0", "--n-jobs", "1"],
                     env=bench_env(None), timeout=1800) for _ in range(repeats)]
    return {"rows": rows, "seconds": summary([r["seconds"] for r in runs]),
            "what": "data-drift check of 25 features (20 numeric, 5 categorical), JSON included; "
                    "the reference profile is built before the clock"}


def timing(quick: bool, repeats: int) -> dict[str, Any]:
    rows = 200_000 if quick else 1_000_000
    out = {"classification": time_classification(rows, repeats),
           "regression": time_regression(rows, repeats)}
    out["drift_core"] = time_drift_core(rows, repeats)
    per_million = 1_000_000 / rows
    log(f"  time for {rows:,} rows (median of {repeats}):")
    log(f"    CBPE estimate (6 metrics, {out['classification']['settings']['draws']} draws on "
        f"{out['classification']['settings']['max_rows']:,} sampled rows, "
        f"{out['classification']['settings']['replicates']} calibration replicates): "
        f"{fmt_range(out['classification']['seconds'])}; fit on 10k validation rows "
        f"{out['classification']['fit_seconds_10k_validation']:.2f} s")
    log(f"    DLE estimate (MAE, RMSE): {fmt_range(out['regression']['seconds'])}; fit on 10k "
        f"validation rows {out['regression']['fit_seconds_10k_validation']:.2f} s")
    log(f"    drift core (benchmarks/drift.py worker, fresh process): "
        f"{fmt_range(out['drift_core']['seconds'])}")
    if per_million != 1:
        log(f"    (x{per_million:.0f} for 1M rows if linear; run without --quick to measure)")
    cbpe, drift = out["classification"]["seconds"]["median"], out["drift_core"]["seconds"]["median"]
    if cbpe and drift:
        out["cbpe_share_of_drift_core"] = round(cbpe / drift, 3)
        log(f"    the CBPE estimate costs {cbpe / drift:.0%} of the drift core's time")
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer days, quicker training, 200k rows, 1 run: tests the harness")
    parser.add_argument("--repeats", type=int, default=None, help="timing runs (default 3)")
    parser.add_argument("--skip", nargs="+", default=[], choices=["demo", "adult", "time"])
    parser.add_argument("--json", type=Path, help="write the figures here instead of stdout")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    command = COMMAND + (" --quick" if args.quick else "") + (
        f" --repeats {args.repeats}" if args.repeats else "") + (
        f" --skip {' '.join(args.skip)}" if args.skip else "")

    started = time.perf_counter()
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full", "command": command,
                               "machine": machine_info(None)}
    log(f"performance-estimation benchmark ({results['mode']}); machine: "
        f"{results['machine']['cpu_model']}, {results['machine']['cores_usable']} cores, "
        f"load {results['machine']['loadavg_at_start']}")
    with tempfile.TemporaryDirectory(prefix="ml-estimation-bench-") as tmp:
        workdir = Path(tmp)
        if "demo" not in args.skip:
            log("(a)(i) demo days")
            results["demo"] = demo_days(workdir, args.quick)
        if "adult" not in args.skip:
            log("(a)(ii) UCI Adult")
            results["adult"] = adult(workdir, args.quick)
    if "time" not in args.skip:
        log("(b) time")
        results["time"] = timing(args.quick, repeats)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    log(f"reproduce: {command}")
    text = json.dumps(results, default=_jsonable)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
        log(f"figures written to {args.json}")
    else:
        print(text)
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
