"""Figure 2 (and the training half of figure 5): our ``train`` vs a plain scikit-learn pipeline.

Same data, same preprocessing (``preprocess.build_preprocessor``), same HistGradientBoosting
parameters (the config's ``model.params``, ``max_iter``, ``patience``, ``class_weight``, seed),
each run in a fresh process, data already in memory and libraries loaded when the clock starts
(scikit-learn, pandas, our package; for our runs also :data:`OUR_LIBRARIES`, the safe model
format and the SHAP explainer, which our run alone loads: the seconds they take to load in a new
process are measured apart and reported next to the ratio, which is also given with them):

* **ours** - ``run_training(cfg, frame=...)``: quality gate, split + leakage audit, preprocessing
  + early stopping on the validation split + threshold choice, test evaluation with bootstrap
  intervals, baseline and slices, gate, the label-free performance estimator, permutation
  importance and the SHAP summary, registry write (model, split assignment, reference profile,
  card) and promotion. Its ``timings_seconds`` give the stages.
* **ours_retrain** - the same ``run_training`` with a champion already in place (trained first,
  off the clock): the gate's paired comparison against the champion runs too.
* **plain** - what one writes without us: ``train_test_split`` (stratified, 20 % test),
  ``Pipeline(preprocessor, HistGradientBoostingClassifier(early_stopping=True,
  validation_fraction=0.25))`` fitted on the other 80 % (so 60 % train / 20 % validation, our
  sizes), then ``predict_proba`` on the test rows.
* **plain_same_trees** - the plain pipeline with early stopping off and ``max_iter`` = the number
  of trees our run kept, fitted on the same 60 % of the rows: the same model, so the ratio to it
  is pure overhead (the plain early-stopping run may stop at another iteration on its own random
  validation slice).

Data: UCI Adult (``configs/adult.yaml``) and a synthetic table (``drift.make_frames``' reference
frame: 20 numeric + 5 categorical features, a few missing values, a binary target from a noisy
logistic model, about 50 % positive), written to Parquet once per size.

Reproduce::

    PYTHONPATH=include .venv/bin/python benchmarks/training.py                  # Adult + 1M
    PYTHONPATH=include .venv/bin/python benchmarks/training.py --sizes 100000 --no-adult
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
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
    loglog_exponent,
    peak_reset,
    run_json,
    status_mb,
    summary,
)

COMMAND = "PYTHONPATH=include .venv/bin/python benchmarks/training.py"
STAGES = ("load", "quality", "split", "train", "evaluate", "gate", "performance_estimator",
          "explain", "register", "promote", "tracking")
#: Libraries only our run loads, lazily (the safe model format, the SHAP explainer). A warm
#: worker has them, like scikit-learn and pandas, so they load before the clock; the seconds
#: they take in a new process are measured on their own and reported next to the ratio.
OUR_LIBRARIES = ("skops.io", "shap")
SEED = 1
ADULT_CONFIG = ROOT / "configs" / "adult.yaml"
KINDS = ("ours", "ours_retrain", "plain", "plain_same_trees")


# --------------------------------------------------------------------------- data and config


def synthetic_frame(rows: int, seed: int = SEED) -> Any:
    """The drift benchmark's reference frame plus missing values and a binary target."""
    import numpy as np
    from drift import make_frames

    frame, _, _ = make_frames(rows, seed)
    rng = np.random.default_rng(seed + 1000)
    for col in ("num_03", "num_07"):
        frame.loc[rng.random(rows) < 0.03, col] = np.nan
    frame.loc[rng.random(rows) < 0.02, "cat_1_20"] = None
    z = (
        0.9 * (frame["num_00"].fillna(0.0))
        - 0.6 * np.log1p(frame["num_01"])
        + 0.4 * (frame["num_02"] - 2.0) / 2.0
        + 0.5 * np.sin(frame["num_04"].to_numpy())
        + 0.7 * (frame["cat_0_5"] == "c0000")
        - 0.5 * (frame["cat_2_100"].isin(["c0001", "c0002", "c0003"]))
        + 0.3 * frame["num_05"] * (frame["num_06"] > 1.0)
        + rng.normal(0.0, 1.0, rows)
    )
    # about half positive: with class_weight "balanced" the weights are then ~1, so our early
    # stopping (validation loss without class weights) and scikit-learn's (with them) agree
    logit = z - np.quantile(z, 0.5)
    frame["target"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-3 * logit)), "yes", "no")
    return frame


def synthetic_config(path: Path, registry: Path) -> Any:
    """A config for the synthetic table, with Adult's model/evaluation settings."""
    from ml_lifecycle.config import config_from_dict, load_raw

    adult = load_raw(ADULT_CONFIG)
    numeric = [f"num_{i:02d}" for i in range(20)]
    categorical = ["cat_0_5", "cat_1_20", "cat_2_100", "cat_3_400", "cat_4_1000"]
    raw = {
        "task": "classification", "name": "synthetic_bench", "seed": 42,
        "data": {"path": str(path), "target": "target", "positive_label": "yes",
                 "features": {"numeric": numeric, "categorical": categorical}},
        "split": {"strategy": "stratified", "train": 0.6, "validation": 0.2, "test": 0.2,
                  "seed": 42},
        "model": adult["model"],
        "evaluation": {"slices": ["cat_0_5"]},
        "gate": {"floors": {"roc_auc": 0.6}, "baseline_margin": 0.02},
        "registry": {"root": str(registry)},
    }
    return config_from_dict(raw, source="benchmarks/training.py")


def prepare_synthetic(rows: int, log: Callable[[str], None] = print) -> Path:
    folder = OUT / "data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"train_{rows}_seed{SEED}.parquet"
    t0 = time.perf_counter()
    frame = synthetic_frame(rows)
    frame.to_parquet(path, index=False)
    log(f"  data: synthetic {rows:,} rows -> {path.relative_to(ROOT)} "
        f"({path.stat().st_size / 2**20:.0f} MB, positive rate "
        f"{(frame['target'] == 'yes').mean():.2f}, {time.perf_counter() - t0:.1f} s)")
    return path


def _config_and_frame(dataset: str, registry: Path) -> tuple[Any, Any]:
    from ml_lifecycle.config import load_config
    from ml_lifecycle.data import load_table

    if dataset == "adult":
        cfg = load_config(str(ADULT_CONFIG), [f"registry.root={registry}"])
    else:
        cfg = synthetic_config(Path(dataset), registry)
    return cfg, load_table(cfg.data)


# --------------------------------------------------------------------------- worker


def _plain_estimator(cfg: Any, *, early_stopping: bool, max_iter: int | None) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    from ml_lifecycle.preprocess import build_preprocessor

    model = HistGradientBoostingClassifier(
        max_iter=max_iter or cfg.model.max_iter, early_stopping=early_stopping,
        n_iter_no_change=cfg.model.patience, scoring="loss", validation_fraction=0.25,
        class_weight=cfg.model.class_weight, random_state=cfg.model.seed, **cfg.model.params)
    return Pipeline([("prep", build_preprocessor(cfg)), ("model", model)])


def worker(kind: str, dataset: str, registry: Path, trees: int | None) -> dict[str, Any]:
    import numpy as np

    if registry.exists():
        shutil.rmtree(registry)
    cfg, frame = _config_and_frame(dataset, registry)
    # imports before the clock, as a warm Airflow worker has them
    import importlib

    import sklearn.ensemble
    import sklearn.model_selection  # noqa: F401

    import ml_lifecycle.train as train_mod

    out: dict[str, Any] = {"kind": kind, "rows": len(frame)}
    if kind in ("ours", "ours_retrain"):
        t_imports = time.perf_counter()
        for name in OUR_LIBRARIES:
            importlib.import_module(name)
        out["import_seconds"] = time.perf_counter() - t_imports
    gc.collect()
    out["rss_before_mb"] = round(status_mb("VmRSS"), 1)
    peak_reset()
    t0 = time.perf_counter()
    if kind == "ours_retrain":  # a retrain: a champion is in place, so the gate compares
        train_mod.run_training(cfg, frame=frame, reason="benchmark first model")
        gc.collect()
        peak_reset()
        t0 = time.perf_counter()
    if kind in ("ours", "ours_retrain"):
        result = train_mod.run_training(cfg, frame=frame, reason="benchmark")
        out["seconds"] = time.perf_counter() - t0
        out["timings"] = result["timings_seconds"]
        out["trees"] = result["stopping_iteration"]
        out["metrics"] = {m: round(v["value"], 4) for m, v in result["metrics"].items()
                          if m in ("roc_auc", "pr_auc")}
        out["promoted"] = result["promoted"]
    else:
        from sklearn.model_selection import train_test_split

        y, _ = train_mod.encode_target(frame, cfg)
        x = frame[cfg.data.features.all]
        x_fit, x_test, y_fit, y_test = train_test_split(
            x, y, test_size=cfg.split.test, stratify=y, random_state=cfg.split.seed)
        if kind == "plain":
            pipe = _plain_estimator(cfg, early_stopping=True, max_iter=None)
        else:  # same trees as ours, on the same 60 % share of the rows
            frac = cfg.split.train / (cfg.split.train + cfg.split.validation)
            x_fit, _, y_fit, _ = train_test_split(x_fit, y_fit, train_size=frac, stratify=y_fit,
                                                  random_state=cfg.split.seed)
            pipe = _plain_estimator(cfg, early_stopping=False, max_iter=trees)
        pipe.fit(x_fit, y_fit)
        scores = pipe.predict_proba(x_test)[:, 1]
        out["seconds"] = time.perf_counter() - t0
        from sklearn.metrics import average_precision_score, roc_auc_score

        out["trees"] = int(pipe[-1].n_iter_)
        out["metrics"] = {"roc_auc": round(float(roc_auc_score(y_test, scores)), 4),
                          "pr_auc": round(float(average_precision_score(y_test, scores)), 4)}
        out["n_features_out"] = int(np.asarray(pipe[0].get_feature_names_out()).size)
    out["peak_mb"] = round(status_mb("VmHWM"), 1)
    return out


def profile_worker(dataset: str, registry: Path, top: int = 30) -> dict[str, Any]:
    """cProfile of one ``run_training``: the functions with the largest cumulative time."""
    import cProfile
    import pstats

    import ml_lifecycle.train as train_mod

    if registry.exists():
        shutil.rmtree(registry)
    cfg, frame = _config_and_frame(dataset, registry)
    prof = cProfile.Profile()
    prof.enable()
    train_mod.run_training(cfg, frame=frame, reason="benchmark profile")
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _) in stats.stats.items():
        rel = file.replace(str(ROOT) + "/", "")
        if "site-packages/" in rel:
            rel = rel.split("site-packages/", 1)[1]
        rows.append({"function": f"{rel}:{line}({func})", "calls": ncalls,
                     "tottime": round(tottime, 3), "cumtime": round(cumtime, 3)})
    rows.sort(key=lambda r: -r["cumtime"])
    ours = [r for r in rows if r["function"].startswith("include/ml_lifecycle")][:top]
    return {"top_cumulative": rows[:top], "ours_cumulative": ours}


# --------------------------------------------------------------------------- orchestration


def _spawn(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    return run_json([str(MAIN_PYTHON), __file__, *args], env=env, timeout=timeout)


def measure(dataset: str, label: str, *, repeats: int, threads: str | None, rows_hint: int,
            with_profile: bool = False, kinds: tuple[str, ...] = KINDS,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """ours / plain / plain_same_trees, interleaved, ``repeats`` fresh processes each."""
    env = bench_env(threads)
    timeout = max(900.0, rows_hint / 1_000_000 * 1800.0)
    reg = OUT / "registries" / label
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    errors: dict[str, str] = {}
    started = time.monotonic()
    before = loadavg()
    for rep in range(repeats):
        for kind in runs:
            if kind in errors:
                continue
            args = ["--worker", kind, "--dataset", dataset, "--registry", str(reg / kind)]
            if kind == "plain_same_trees":
                if not runs["ours"]:
                    continue
                args += ["--trees", str(runs["ours"][0]["trees"])]
            try:
                r = _spawn(args, env, timeout)
            except WorkerError as exc:
                errors[kind] = str(exc)[-2000:]
                log(f"  {kind} FAILED: {str(exc)[-600:]}")
                continue
            runs[kind].append(r)
            log(f"  {label:<14} run {rep + 1}/{repeats}  {kind:<17} {r['seconds']:8.2f} s  "
                f"trees {r['trees']}  peak {r['peak_mb']:.0f} MB")
    out: dict[str, Any] = {"label": label, "rows": runs["ours"][0]["rows"] if runs["ours"] else
                           rows_hint, "errors": errors}
    for kind, items in runs.items():
        if not items:
            continue
        agg: dict[str, Any] = {
            "seconds": summary([r["seconds"] for r in items]),
            "peak_mb": summary([r["peak_mb"] for r in items], 1),
            "trees": [r["trees"] for r in items],
            "metrics": items[0]["metrics"],
        }
        if kind in ("ours", "ours_retrain"):
            agg["stages"] = {s: summary([r["timings"].get(s, 0.0) for r in items])
                             for s in [*STAGES, "total"]}
            agg["import_seconds"] = summary([r["import_seconds"] for r in items])
        out[kind] = agg
    if "ours" in out:
        ours = out["ours"]["seconds"]["median"]
        for kind in ("plain", "plain_same_trees"):
            if kind in out:
                out[f"ratio_vs_{kind}"] = round(ours / out[kind]["seconds"]["median"], 2)
        for kind in ("plain", "plain_same_trees"):
            pairs = zip(runs["ours"], runs.get(kind, []), strict=False)
            out[f"paired_ratios_vs_{kind}"] = [round(a["seconds"] / b["seconds"], 2)
                                                for a, b in pairs] or None
        if "ours_retrain" in out:
            out["retrain_vs_first"] = round(out["ours_retrain"]["seconds"]["median"] / ours, 2)
        if "plain_same_trees" in out:
            same = out["plain_same_trees"]["seconds"]["median"]
            out["overhead_seconds"] = round(ours - same, 2)
            # a new process that has not loaded OUR_LIBRARIES yet pays them on top, once
            cold = [a["seconds"] + a["import_seconds"] for a in runs["ours"]]
            out["ratio_new_process_vs_plain_same_trees"] = round(
                float(sorted(cold)[len(cold) // 2]) / same, 2)
    if with_profile and "ours" in out:
        try:
            out["profile"] = _spawn(["--profile-worker", "--dataset", dataset, "--registry",
                                     str(reg / "profile")], env, timeout)
        except WorkerError as exc:
            out["profile_error"] = str(exc)[-1000:]
    out["wall_seconds"] = round(time.monotonic() - started, 1)
    out["loadavg_before"], out["loadavg_after"] = before, loadavg()
    return out


def measure_ours_only(dataset: str, label: str, *, repeats: int, threads: str | None,
                      rows_hint: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Our training alone (the scale figure)."""
    return measure(dataset, label, repeats=repeats, threads=threads, rows_hint=rows_hint,
                   kinds=("ours",), log=log)


def print_result(res: dict[str, Any], log: Callable[[str], None] = print) -> None:
    log(f"\ntraining, {res['label']} ({res['rows']:,} rows):")
    for kind in KINDS:
        if kind in res:
            r = res[kind]
            log(f"  {kind:<17} {fmt_range(r['seconds'])}  trees {r['trees']}  "
                f"peak {r['peak_mb']['median']:.0f} MB  {r['metrics']}")
    for kind in ("ours", "ours_retrain"):
        if kind in res:
            stages = res[kind]["stages"]
            log(f"  {kind} stages (median s): " + ", ".join(
                f"{s} {stages[s]['median']:.2f}" for s in STAGES if stages[s]["median"]))
    if "retrain_vs_first" in res:
        log(f"  retrain (champion in place) / first training: {res['retrain_vs_first']}x")
    for kind in ("plain_same_trees", "plain"):
        if f"ratio_vs_{kind}" in res:
            log(f"  ours / {kind}: {res[f'ratio_vs_{kind}']}x")
    if "ratio_new_process_vs_plain_same_trees" in res:
        imports = res["ours"]["import_seconds"]["median"]
        log(f"  loading {', '.join(OUR_LIBRARIES)} in a new process: {imports:.2f} s (median), "
            f"once per process; counted in: ours / plain_same_trees "
            f"{res['ratio_new_process_vs_plain_same_trees']}x")


def exponent(by_size: dict[str, dict[str, Any]], kind: str = "ours") -> float | None:
    pts = [(r["rows"], r[kind]["seconds"]["median"]) for r in by_size.values()
           if kind in r and r["rows"] <= 1_000_000]
    return loglog_exponent([p[0] for p in pts], [p[1] for p in pts]) if len(pts) >= 2 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--no-adult", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default=None,
                        help="OMP_NUM_THREADS for the workers (default: unset = all cores)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one of our runs")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="which runs to measure (default: all four)")
    parser.add_argument("--worker", choices=list(KINDS),
                        help=argparse.SUPPRESS)
    parser.add_argument("--profile-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--registry", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trees", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.dataset, args.registry, args.trees)))
        return 0
    if args.profile_worker:
        print(json.dumps(profile_worker(args.dataset, args.registry)))
        return 0
    os.environ.setdefault("PYTHONPATH", str(ROOT / "include"))
    results = {}
    if not args.no_adult:
        res = measure("adult", "adult", repeats=args.repeats, threads=args.threads,
                      rows_hint=32_561, with_profile=args.profile, kinds=tuple(args.kinds))
        results["adult"] = res
        print_result(res)
    for rows in args.sizes:
        path = prepare_synthetic(rows)
        res = measure(str(path), f"synthetic_{rows}", repeats=args.repeats,
                      threads=args.threads, rows_hint=rows, with_profile=args.profile,
                      kinds=tuple(args.kinds))
        results[f"synthetic_{rows}"] = res
        print_result(res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"reproduce: {COMMAND} --sizes {' '.join(map(str, args.sizes))} "
          f"--repeats {args.repeats}" + (" --no-adult" if args.no_adult else "")
          + (f" --threads {args.threads}" if args.threads else "")
          + (f" --kinds {' '.join(args.kinds)}" if args.kinds != list(KINDS) else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
