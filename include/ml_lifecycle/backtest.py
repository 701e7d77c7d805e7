"""Backtest a retraining policy: replay past batches and compare strategies before switching on.

Each strategy replays the same dated batches, in order, through the same code the DAGs run:

1. score the day's batch with the champion in place (``scoring.predict_scores``);
2. (drift strategies) ``drift.check.run_drift_check`` with the labels that have *arrived* by that
   day, which applies the retrain policy;
3. when the strategy says so, ``train.run_training`` on the configured training window, built
   only from labels that had arrived by that day, through the gate (promotion only if it passes);
4. once a day's labels exist, its live metric is the metric of the scores the model in place that
   day produced.

No information from the future: a batch's labels are used (for concept drift, for retraining)
only from their arrival day on, and concept drift is judged only on days the champion in place
scored (the rule production uses, :func:`~.drift.concept.judged_days`). Strategies: ``never`` (no
retraining: no registry writes at all), ``every_k`` for each k, the configured policy under each
trigger (``performance``: estimated and realized performance drive the decision, the default;
``performance+escalate``: the same with ``policy.escalate_unreliable``; ``drift``: the earlier
rule, data and prediction drift on their own), and one policy strategy per combination of the
``backtest.grid`` settings. Each strategy starts from a copy of the same initial registry.

With a simulator's ``ground_truth.json`` the summary also counts the retrains on
harmless-shift days (inputs drift, the model is not hurt: each of them is a wasted retrain) and
the detection delay of the covariate shift and of the concept change.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .charts import GREY, PALETTE, escape, line_chart, short_days
from .config import Config, apply_overrides, base_dir, config_from_dict, load_raw
from .drift.concept import multiclass_rows, probability_columns
from .errors import EXIT_OK, ConfigError, DataError
from .io import atomic_write_json, atomic_write_text, dumps_json
from .labels import apply_label_map, binary_labels, label_keys, positive_class
from .metrics import compute_metric, higher_is_better
from .model_format import pickles_allowed

#: The policy strategies every backtest runs: name -> config overrides.
POLICY_STRATEGIES: dict[str, list[str]] = {
    "performance": ["policy.trigger=performance", "policy.escalate_unreliable=false"],
    "performance+escalate": ["policy.trigger=performance", "policy.escalate_unreliable=true"],
    "drift": ["policy.trigger=drift"],
}


@dataclass
class Batch:
    """One dated batch: features (no target) and its labels, usable from ``labels_available``."""

    day: str
    path: str
    labels: pd.DataFrame  # id column + target
    labels_available: str


# --------------------------------------------------------------------------- inputs


def _day_of(path: Path) -> str | None:
    try:
        return date.fromisoformat(path.stem).isoformat()
    except ValueError:
        return None


def batches_from_files(cfg: Config, batches: str, labels_dir: str | None) -> list[Batch]:
    """Dated batch files ``<YYYY-MM-DD>.<ext>`` and their label files of the same name.

    A ``manifest.json`` beside the batches folder (written by ``simulate``) gives each day's
    ``labels_available_on``; otherwise labels arrive ``lifecycle.label_delay_days`` later.
    """
    from .data import list_files, read_file

    files = [f for f in list_files(batches) if _day_of(f)]
    if not files:
        raise DataError(f"backtest: no dated batch file (YYYY-MM-DD.csv) in '{batches}'")
    labels_root = Path(labels_dir or cfg.lifecycle.labels)
    arrivals: dict[str, str] = {}
    manifest = Path(files[0]).parent.parent / "manifest.json"
    if manifest.exists():
        for item in json.loads(manifest.read_text()).get("files", []):
            arrivals[item["date"]] = item["labels_available_on"]
    out = []
    for f in files:
        day = _day_of(f)
        assert day is not None
        label_file = labels_root / f.name
        if not label_file.exists():
            raise DataError(f"backtest: batch '{f}' has no labels file '{label_file}'")
        labels = read_file(label_file, cfg.data)
        delay = timedelta(days=cfg.lifecycle.label_delay_days)
        available = arrivals.get(day) or (date.fromisoformat(day) + delay).isoformat()
        out.append(Batch(day=day, path=str(f), labels=labels, labels_available=available))
    return sorted(out, key=lambda b: b.day)


def batches_from_table(cfg: Config, work: Path) -> tuple[pd.DataFrame, list[Batch]]:
    """Cut ``data.path`` by ``data.time_column`` into periods: the first ``initial_periods``
    train the initial model, each later period is one batch (written as Parquet under ``work``).
    """
    from .data import load_table

    bt = cfg.backtest
    time_col = cfg.data.time_column
    if not time_col:
        raise ConfigError("backtest.period needs data.time_column to cut the table into batches")
    frame = load_table(cfg.data)
    stamps = pd.to_datetime(frame[time_col])
    freq = {"day": "D", "week": "W", "month": "M"}[bt.period or "month"]
    keys = stamps.dt.to_period(freq)
    periods = sorted(keys.unique())
    if len(periods) <= bt.initial_periods:
        raise DataError(f"backtest: {len(periods)} {bt.period} periods in '{cfg.data.path}', "
                        f"need more than backtest.initial_periods={bt.initial_periods}")
    initial = frame[keys.isin(periods[: bt.initial_periods])].reset_index(drop=True)
    initial.attrs["files"] = frame.attrs.get("files", [])
    id_col = cfg.data.id_column or "__row_id"
    if id_col not in frame.columns:
        frame[id_col] = np.arange(len(frame)).astype(str)
    batch_dir = work / "batches"
    batch_dir.mkdir(parents=True, exist_ok=True)
    out = []
    later = periods[bt.initial_periods:]
    for i, period in enumerate(later):
        part = frame[keys == period]
        day = period.start_time.date().isoformat()
        path = batch_dir / f"{day}.parquet"
        part.drop(columns=[cfg.data.target]).to_parquet(path, index=False)
        arrival_i = i + bt.label_delay_periods
        available = (later[arrival_i].start_time.date().isoformat() if arrival_i < len(later)
                     else (period + bt.label_delay_periods).start_time.date().isoformat())
        out.append(Batch(day=day, path=str(path), labels=part[[id_col, cfg.data.target]],
                         labels_available=available))
    return initial, out


# --------------------------------------------------------------------------- one strategy


def _config_with(raw: dict[str, Any], overrides: list[str], source: str) -> Config:
    """A strategy's config: ``raw`` with overrides, relative paths as in the file ``source``."""
    return config_from_dict(apply_overrides(raw, overrides), source=source,
                            base=base_dir(source))


def _id_col(cfg: Config) -> str:
    return cfg.data.id_column or "__row_id"


def arrived_labels(batches: list[Batch], today: str) -> list[Batch]:
    """The batches whose labels have arrived by ``today`` (the no-future-labels rule)."""
    return [b for b in batches if b.labels_available <= today and b.day < today]


def _training_frame(cfg: Config, original: pd.DataFrame, batches: list[Batch],
                    today: str) -> pd.DataFrame:
    from .data import attach_labels, load_table

    window_start = (date.fromisoformat(today)
                    - timedelta(days=cfg.lifecycle.training_window_days)).isoformat()
    frames = [original] if cfg.lifecycle.include_original else []
    for b in arrived_labels(batches, today):
        if b.day < window_start:
            continue
        feats = load_table(cfg.data, b.path, require_target=False)
        frames.append(attach_labels(feats, b.labels, id_column=_id_col(cfg),
                                    target=cfg.data.target, source=f"backtest batch {b.day}"))
    if not frames:
        raise DataError(f"backtest {today}: the training window holds no labelled rows")
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs["files"] = original.attrs.get("files", [])
    return frame


def _labelled_scores(cfg: Config, scored: dict[str, pd.DataFrame], batches: list[Batch],
                     today: str, champion: int | None) -> pd.DataFrame | None:
    """Past scored rows whose labels have arrived: the concept-drift input of the drift check.

    The days are chosen by the rule production uses (:func:`~.drift.concept.judged_days`, also
    behind ``lifecycle.concept_pairs``): within ``drift.performance_window_days`` and scored by
    the champion in place today only.
    """
    from .drift.concept import judged_days

    arrived = {b.day: b for b in arrived_labels(batches, today) if b.day in scored}
    candidates = {d: scored[d]["model_version"].unique().tolist() for d in arrived}
    parts = []
    score_col = cfg.drift.score_column
    for d in judged_days(candidates, day=today, window_days=cfg.drift.performance_window_days,
                         recent_days=cfg.drift.performance_recent_days,
                         champion=champion):
        b = arrived[d]
        s = scored[d].drop(columns=["model_version"]).merge(
            b.labels.assign(**{_id_col(cfg): b.labels[_id_col(cfg)].astype(str)}),
            on=_id_col(cfg), how="inner")
        parts.append(s.rename(columns={"score": score_col}))
    return pd.concat(parts, ignore_index=True) if parts else None


def run_strategy(name: str, kind: str, cfg: Config, base_registry: Path, work: Path,
                 original: pd.DataFrame, batches: list[Batch], every: int | None = None,
                 log: Any = None) -> dict[str, Any]:
    """Replay every batch under one strategy; return its daily records and summary."""
    from .data import load_table
    from .drift.check import run_drift_check
    from .drift.policy import mark_retrain_finished
    from .registry import Registry
    from .scoring import multiclass_predictions, predict_scores
    from .train import run_training

    started = time.perf_counter()
    root = work / name / "registry"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(base_registry, root)
    cfg = cfg.model_copy(deep=True)
    cfg.registry.root = str(root)
    registry = Registry(root)
    scored: dict[str, pd.DataFrame] = {}
    days: list[dict[str, Any]] = []
    id_col = _id_col(cfg)
    for i, b in enumerate(batches):
        now = datetime.fromisoformat(b.day).replace(tzinfo=UTC) + timedelta(hours=23)
        champion = registry.champion()
        model = registry.load_model(champion, allow_pickle=pickles_allowed(cfg))
        card = registry.get_card(champion)
        batch = load_table(cfg.data, b.path, require_target=False)
        scores = predict_scores(model, batch, cfg.task)
        if cfg.task == "multiclass":  # the class probabilities, as the scoring DAG writes them
            scored[b.day] = multiclass_predictions(card, scores, id_col,
                                              batch[id_col].astype(str).to_numpy(), champion)
        else:
            scored[b.day] = pd.DataFrame({id_col: batch[id_col].astype(str), "score": scores,
                                          "model_version": champion})
        record: dict[str, Any] = {"day": b.day, "champion": champion, "retrain": False,
                                  "verdict": None, "severity": None, "gate": None,
                                  "labels_used_through": None,
                                  "threshold": card.get("threshold")}
        want = False
        trigger: dict[str, Any] = {}
        if kind == "policy":
            labelled = _labelled_scores(cfg, scored, batches, b.day, champion)
            result = run_drift_check(cfg, batch_path=b.path, day=b.day, labels=labelled,
                                     registry=registry, now=now)
            estimated = result.get("estimated_performance") or {}
            record.update(verdict=result["verdict"], severity=result["severity"],
                          reasons=result["reasons"][:3],
                          alert=(result.get("alert") or {}).get("action"),
                          estimated_metric=estimated.get("value"),
                          estimated_flagged=estimated.get("flagged"))
            want = bool(result["retrain"])
            trigger = {"drift_report": result["report_paths"].get("store_json")}
        elif kind == "every" and every and (i + 1) % every == 0:
            want = True
        if want:
            frame = _training_frame(cfg, original, batches, b.day)
            outcome = run_training(cfg, reason=f"backtest {name} {b.day}", trigger=trigger,
                                   frame=frame, actor=f"backtest:{name}", now=now)
            record.update(retrain=True, gate="promoted" if outcome["promoted"] else "rejected",
                          version=outcome["version"],
                          labels_used_through=max((a.day for a in
                                                   arrived_labels(batches, b.day)), default=None))
            if kind == "policy":
                mark_retrain_finished(root, outcome=record["gate"], version=outcome["version"],
                                      now=now)
        days.append(record)
        if log:
            log(f"  {name:>16} {b.day}: champion v{champion} verdict={record['verdict']} "
                f"retrain={record['retrain']} gate={record['gate']}")
    return {"name": name, "kind": kind, "every": every, "days": days, "scored": scored,
            "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------- summary


def live_metrics(cfg: Config, metric: str, run: dict[str, Any], batches: list[Batch],
                 horizon: str) -> None:
    """Fill each day's live metric (labels that arrived by ``horizon`` only)."""
    id_col = _id_col(cfg)
    by_day = {b.day: b for b in batches}
    for record in run["days"]:
        b = by_day[record["day"]]
        record["live_metric"] = None
        if b.labels_available > horizon:
            continue
        s = run["scored"][record["day"]].merge(
            b.labels.assign(**{id_col: b.labels[id_col].astype(str)}), on=id_col)
        if cfg.task == "multiclass":
            y, scores = multiclass_rows(s, cfg, probability_columns(s))
        else:
            y, scores = _encode(cfg, s[cfg.data.target]), s["score"].to_numpy(dtype=float)
        known = np.isfinite(y)  # a row whose label is missing is not judged
        value = compute_metric(cfg.task, metric, y[known], scores[known],
                               float(record.get("threshold") or 0.5))
        record["live_metric"] = None if not np.isfinite(value) else float(value)


def _encode(cfg: Config, values: pd.Series) -> np.ndarray:
    """Labels as 0/1 (NaN where missing) or regression targets, by the one label rule."""
    mapped = apply_label_map(values, cfg.data.label_map)
    if cfg.task == "regression":
        return pd.to_numeric(mapped).to_numpy(dtype=float)
    return binary_labels(mapped, positive_class(label_keys(mapped), cfg.data.positive_label))


def summarize(cfg: Config, metric: str, run: dict[str, Any],
              change_points: list[str],
              harmless: tuple[str, str] | None = None) -> dict[str, Any]:
    """One strategy's figures: retrains, promotions, live metric, delays, wasted retrains.

    ``harmless`` is the ``[first, end)`` day range of a harmless shift: retrains there are
    counted as ``harmless_retrains``.
    """
    values = [d["live_metric"] for d in run["days"] if d.get("live_metric") is not None]
    hib = higher_is_better(metric)
    floor = cfg.gate.floors.get(metric)
    below = None
    if floor is not None:
        below = sum(1 for v in values if (v < floor if hib else v > floor))
    delays = {}
    for cp in change_points:
        alarm = next((d["day"] for d in run["days"] if d["day"] >= cp and d["retrain"]), None)
        delays[cp] = None if alarm is None else (date.fromisoformat(alarm)
                                                 - date.fromisoformat(cp)).days
    return {
        "strategy": run["name"],
        "retrains": sum(1 for d in run["days"] if d["retrain"]),
        "promotions": sum(1 for d in run["days"] if d["gate"] == "promoted"),
        "mean_live_metric": float(np.mean(values)) if values else None,
        "worst_live_metric": (float(min(values)) if hib else float(max(values))) if values
        else None,
        "days_with_labels": len(values),
        "days_below_floor": below,
        "detection_delay_days": delays,
        "harmless_retrains": None if harmless is None else sum(
            1 for d in run["days"] if d["retrain"] and harmless[0] <= d["day"] < harmless[1]),
        "alerts": sum(1 for d in run["days"]
                      if d.get("alert") in ("open", "escalated", "reminder")),
        "compute_seconds": round(run["seconds"], 2),
    }


# --------------------------------------------------------------------------- report


def _svg_chart(runs: list[dict[str, Any]], metric: str, floor: float | None,
               change_points: list[str]) -> str:
    """The live metric per day and strategy: retrains marked (filled circle: promoted, open
    square: rejected), change points dashed, the gate floor as a threshold."""
    days = sorted({d["day"] for r in runs for d in r["days"]})
    if not days or not any(d.get("live_metric") is not None for r in runs for d in r["days"]):
        return "<p>No day has labels yet: nothing to plot.</p>"
    position = {day: i for i, day in enumerate(days)}
    series = []
    for idx, run in enumerate(runs):
        by_day = {d["day"]: d for d in run["days"]}
        series.append({
            "name": run["name"], "colour": PALETTE[idx % len(PALETTE)],
            "x": list(range(len(days))),
            "y": [by_day.get(day, {}).get("live_metric") for day in days],
            "marks": [{"i": position[d["day"]],
                       "shape": "circle" if d["gate"] == "promoted" else "square",
                       "title": f"{run['name']}: retrain on {d['day']} ({d['gate']})"}
                      for d in run["days"] if d["retrain"]],
        })
    return line_chart(
        series, kind="backtest", label=f"live {metric} per day and strategy", width=860,
        height=340, x_labels=short_days(days), y_title=metric,
        hlines=[{"y": floor, "label": "gate floor"}] if floor is not None else [],
        vlines=[{"x": position[cp], "label": f"change {cp}", "colour": GREY, "row": k}
                for k, cp in enumerate(change_points) if cp in position])


def render_html(result: dict[str, Any], runs: list[dict[str, Any]], floor: float | None) -> str:
    metric = result["metric"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(_fmt(s.get(k)))}</td>" for k in (
            "strategy", "retrains", "promotions", "mean_live_metric", "worst_live_metric",
            "days_below_floor", "detection_delay_days", "compute_seconds")) + "</tr>"
        for s in result["strategies"])
    chart = _svg_chart(runs, metric, floor, result["change_points"])
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Retraining policy backtest</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f4f4f4}}</style>
</head><body><h1>Retraining policy backtest</h1>
<p>{escape(result['batches'])} batches from {escape(result['first_day'])} to
{escape(result['last_day'])}; live metric: <b>{escape(metric)}</b> of each day's scores by the model
in place that day, once its labels had arrived. Filled circles: retrain promoted; open squares:
retrain rejected by the gate.</p>
<table><tr><th>strategy</th><th>retrains</th><th>promotions</th><th>mean live</th>
<th>worst live</th><th>days below floor</th><th>detection delay (days)</th><th>compute s</th></tr>
{rows}</table><h2>Live {escape(metric)} per day</h2>{chart}
<p>Reproduce: <code>{escape(result['command'])}</code></p></body></html>"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


# --------------------------------------------------------------------------- driver


def _require_local_paths(cfg: Config, **paths: str | None) -> None:
    """The backtest replays files on this machine into a throw-away local registry: a URL in
    one of the paths it reads or writes is refused by name (instead of becoming a local folder
    called ``s3:``). Copy the batches locally first (e.g. ``aws s3 sync``)."""
    from .storage import require_local

    require_local({"data.path": cfg.data.path, "lifecycle.batches": cfg.lifecycle.batches,
                   "lifecycle.labels": cfg.lifecycle.labels,
                   **{f"--{k.replace('_', '-')}": v for k, v in paths.items()}}, "backtest")


def run_backtest(config_path: str, *, overrides: list[str] | None = None,
                 batches: str | None = None, labels: str | None = None,
                 every: list[int] | None = None, grid: dict[str, list[Any]] | None = None,
                 strategies: list[str] | None = None, work_dir: str | None = None,
                 report_dir: str | None = None, log: Any = None,
                 command: str = "") -> dict[str, Any]:
    """Run every strategy and return the JSON-able comparison (and write reports).

    Steps: the batches (files, or the training table cut by period) and the known change
    points (:func:`_load_history`), one initial model trained on the original data
    (:func:`_initial_model`), the strategies to compare (:func:`_plan`), each replayed from a
    copy of the initial registry (:func:`run_strategy`), then the live metrics, the summaries
    and the reports.
    """
    raw = apply_overrides(load_raw(config_path), overrides or [])
    cfg = config_from_dict(raw, source=config_path, base=base_dir(config_path))
    _require_local_paths(cfg, batches=batches, labels=labels, work_dir=work_dir,
                         report_dir=report_dir)
    metric = cfg.backtest.metric or cfg.primary_metric
    own_work = work_dir is None
    work = Path(work_dir or tempfile.mkdtemp(prefix="ml-backtest-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        original, batch_list, change_points, harmless = _load_history(cfg, work, batches, labels)
        base_root, initial = _initial_model(cfg, work, original, batch_list[0].day)
        runs = []
        for name, kind, strategy_cfg, k in _plan(cfg, raw, config_path, every, grid,
                                                 strategies):
            if log:
                log(f"strategy {name}")
            runs.append(run_strategy(name, kind, strategy_cfg, base_root, work, original,
                                     batch_list, every=k, log=log))
        for run in runs:
            live_metrics(cfg, metric, run, batch_list, batch_list[-1].day)
        summaries = [summarize(cfg, metric, r, change_points, harmless) for r in runs]
        result: dict[str, Any] = {
            "metric": metric,
            "higher_is_better": higher_is_better(metric),
            "batches": len(batch_list),
            "first_day": batch_list[0].day,
            "last_day": batch_list[-1].day,
            "change_points": change_points,
            "harmless_shift": list(harmless) if harmless else None,
            "initial_model": {"version": initial["version"],
                              "metrics": {metric: initial["metrics"][metric]}},
            "strategies": summaries,
            "days": {r["name"]: r["days"] for r in runs},
            "comparison": compare(summaries, metric),
            "command": command,
        }
        if report_dir:
            out = Path(report_dir)
            atomic_write_json(out / "backtest.json", result)
            atomic_write_text(out / "backtest.html",
                              render_html(result, runs, cfg.gate.floors.get(metric)))
            result["report_paths"] = {"json": str(out / "backtest.json"),
                                      "html": str(out / "backtest.html")}
        return result
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def _load_history(cfg: Config, work: Path, batches: str | None, labels: str | None
                  ) -> tuple[pd.DataFrame, list[Batch], list[str], tuple[str, str] | None]:
    """(original training table, dated batches, change points, harmless period): change points
    from ``backtest.change_points``, else the simulator's ``ground_truth.json``."""
    bt = cfg.backtest
    if bt.period:
        original, batch_list = batches_from_table(cfg, work)
    else:
        from .data import load_table

        original = load_table(cfg.data)
        batch_list = batches_from_files(cfg, batches or cfg.lifecycle.batches, labels)
    if bt.max_batches:
        batch_list = batch_list[: bt.max_batches]
    change_points = list(bt.change_points)
    truth = Path(batch_list[0].path).parent.parent / "ground_truth.json"
    harmless: tuple[str, str] | None = None
    if truth.exists() and not bt.period:
        gt = json.loads(truth.read_text())
        if not change_points:
            change_points = [d for d in (gt.get("covariate_shift_day"),
                                         gt.get("concept_change_day")) if d]
        if gt.get("harmless_shift_day") and gt.get("harmless_shift_end_day"):
            harmless = (gt["harmless_shift_day"], gt["harmless_shift_end_day"])
    return original, batch_list, change_points, harmless


def _initial_model(cfg: Config, work: Path, original: pd.DataFrame,
                   first_day: str) -> tuple[Path, dict[str, Any]]:
    """The model every strategy starts from, trained the day before the first batch in a
    registry of its own: (that registry's root, the training summary)."""
    from .train import run_training

    first = datetime.fromisoformat(first_day).replace(tzinfo=UTC)
    base_cfg = cfg.model_copy(deep=True)
    base_cfg.registry.root = str(work / "initial" / "registry")
    if Path(base_cfg.registry.root).exists():
        shutil.rmtree(base_cfg.registry.root)
    initial = run_training(base_cfg, reason="backtest initial model", frame=original,
                           actor="backtest", now=first - timedelta(days=1))
    if not initial["promoted"]:
        raise DataError(f"backtest: the initial model was not promoted "
                        f"({initial['gate']['reasons']}); nothing to replay")
    return Path(base_cfg.registry.root), initial


def _plan(cfg: Config, raw: dict[str, Any], config_path: str, every: list[int] | None,
          grid: dict[str, list[Any]] | None, strategies: list[str] | None
          ) -> list[tuple[str, str, Config, int | None]]:
    """The strategies to replay: ``never``, ``every_k`` for each k, the policy under each
    trigger and one policy per combination of the grid, filtered by ``strategies`` (names or
    kinds)."""
    plan: list[tuple[str, str, Config, int | None]] = [("never", "never", cfg, None)]
    for k in (every if every is not None else cfg.backtest.every_k):
        plan.append((f"every_{k}", "every", cfg, k))
    for name, sets in POLICY_STRATEGIES.items():
        plan.append((name, "policy", _config_with(raw, sets, config_path), None))
    grid = grid if grid is not None else cfg.backtest.grid
    if grid:
        keys = sorted(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            sets = [f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
            name = "policy[" + ",".join(f"{k.split('.')[-1]}={v}" for k, v in
                                       zip(keys, combo, strict=True)) + "]"
            plan.append((name, "policy", _config_with(raw, sets, config_path), None))
    if strategies:
        plan = [p for p in plan if p[0] in strategies or p[1] in strategies]
    return plan


def relative_to_daily(summary: dict[str, Any], daily: dict[str, Any],
                      metric: str) -> dict[str, Any]:
    """One strategy relative to retraining every batch (``daily``, the ``every_1`` summary).

    Returns:
        ``{"metric_ratio", "retrain_share"}``: its share of ``daily``'s mean live metric (above
        1 is better, for either direction of the metric) and of its retrains (``None`` when
        either is undefined).
    """
    mean, daily_mean = summary["mean_live_metric"], daily["mean_live_metric"]
    num, den = (mean, daily_mean) if higher_is_better(metric) else (daily_mean, mean)
    ratio = num / den if num is not None and den else None
    share = summary["retrains"] / daily["retrains"] if daily["retrains"] else None
    return {"metric_ratio": ratio, "retrain_share": share}


def compare(summaries: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Each policy strategy relative to retraining every batch: metric ratio, retrain share.

    Returns:
        ``{strategy: {"metric_ratio", "retrain_share"}}`` for every policy strategy (empty
        without ``every_1``).
    """
    by = {s["strategy"]: s for s in summaries}
    daily = by.get("every_1")
    if not daily or not daily["mean_live_metric"]:
        return {}
    out: dict[str, Any] = {}
    for s in summaries:
        if s["strategy"] in ("never",) or s["strategy"].startswith("every_") \
                or s["mean_live_metric"] is None:
            continue
        out[s["strategy"]] = relative_to_daily(s, daily, metric)
    return out


def _parse_grid(items: list[str]) -> dict[str, list[Any]]:
    import yaml

    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid '{item}': expected dotted.key=v1,v2")
        key, values = item.split("=", 1)
        grid[key.strip()] = [yaml.safe_load(v) for v in values.split(",") if v.strip()]
    return grid


def _percent(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}%}"


def comparison_lines(result: dict[str, Any]) -> list[str]:
    """One sentence per policy strategy of ``result["comparison"]`` (empty without one)."""
    return [f"{name} vs retraining every batch: {_percent(comp['metric_ratio'], 1)}"
            f" of its mean live {result['metric']}, "
            f"{_percent(comp['retrain_share'], 0)} of its retrains"
            for name, comp in (result.get("comparison") or {}).items()]


def table_columns(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The comparison table's columns, ``(key, heading)``, in order: shared by the text table
    (:func:`format_table`) and the markdown one (:func:`format_markdown`)."""
    return [("strategy", "strategy"), ("retrains", "retrains"), ("promoted", "promoted"),
            ("mean", f"mean {result['metric']}"), ("worst", "worst"), ("below", "<floor"),
            ("delay", "delay (days)"), ("harmless", "harmless retrains"), ("alerts", "alerts"),
            ("metric_ratio", "vs every_1 mean"), ("retrain_share", "vs every_1 retrains"),
            ("seconds", "seconds")]


def table_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """Each strategy's cells, as text, by :func:`table_columns` key: the one rendering of the
    rows. ``metric_ratio`` and ``retrain_share`` (relative to ``every_1``) are present only when
    the result has a comparison."""
    by = {s["strategy"]: s for s in result["strategies"]}
    daily = by.get("every_1") if result.get("comparison") else None
    rows = []
    for s in result["strategies"]:
        delay = ",".join("-" if v is None else str(v) for v in s["detection_delay_days"].values())
        row = {"strategy": s["strategy"], "retrains": str(s["retrains"]),
               "promoted": str(s["promotions"]),
               "mean": "n/a" if s["mean_live_metric"] is None else f"{s['mean_live_metric']:.4f}",
               "worst": ("n/a" if s["worst_live_metric"] is None
                         else f"{s['worst_live_metric']:.4f}"),
               "below": _fmt(s["days_below_floor"]), "delay": delay or "-",
               "harmless": _fmt(s.get("harmless_retrains")), "alerts": str(s.get("alerts", 0)),
               "seconds": f"{s['compute_seconds']:.1f}"}
        if daily is not None:
            rel = relative_to_daily(s, daily, result["metric"])
            row.update(metric_ratio=_percent(rel["metric_ratio"], 1),
                       retrain_share=_percent(rel["retrain_share"], 0))
        rows.append(row)
    return rows


#: The text table's column widths (the strategy column is left-aligned, the others right).
_TEXT_WIDTHS = {"strategy": -28, "retrains": 8, "promoted": 8, "mean": 14, "worst": 8,
                "below": 6, "delay": 16, "harmless": 8, "alerts": 6, "seconds": 8}
_TEXT_HEADINGS = {"harmless": "harmless"}


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a plain-text table, then the comparison lines."""
    columns = [(k, _TEXT_HEADINGS.get(k, h)) for k, h in table_columns(result)
               if k in _TEXT_WIDTHS]

    def line(cells: dict[str, str]) -> str:
        return " ".join(f"{cells[k]:<{-_TEXT_WIDTHS[k]}}" if _TEXT_WIDTHS[k] < 0
                        else f"{cells[k]:>{_TEXT_WIDTHS[k]}}" for k, _ in columns)

    head = line(dict(columns))
    lines = [head, "-" * len(head)]
    lines += [line(row) for row in table_rows(result)]
    return "\n".join(lines + comparison_lines(result))


def _md_cell(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def format_markdown(result: dict[str, Any], command: str, today: str | None = None) -> str:
    """The comparison as a markdown file a docs page includes: a first-line comment (generated,
    by which command, on which day), a line on the run, the table (no compute time: it is not
    reproducible) and the comparison lines."""
    today = today or date.today().isoformat()
    rows = table_rows(result)
    columns = [(k, h) for k, h in table_columns(result)
               if k != "seconds" and (not rows or k in rows[0])]
    direction = "higher" if result["higher_is_better"] else "lower"
    about = (f"{result['batches']} batches from {result['first_day']} to {result['last_day']}; "
             f"live metric: {result['metric']} ({direction} is better)")
    if result.get("change_points"):
        about += ("; delay (days) after each change point: "
                  + ", ".join(result["change_points"]))
    if result.get("harmless_shift"):
        first, end = result["harmless_shift"]
        about += (f"; harmless shift from {first} until (not including) {end}: harmless "
                  "retrains counts the retrains on those days")
    if "metric_ratio" in (rows[0] if rows else {}):
        about += (f"; vs every_1: the share of every_1's mean {result['metric']} (inverted when "
                  "lower is better: above 100% is better either way) and of its retrains")
    lines = [f"<!-- generated by `{command}` on {today}; do not edit -->",
             f"`{command}`, run on {today}: {about}.", "",
             "| " + " | ".join(_md_cell(h) for _, h in columns) + " |",
             "|" + "|".join("---" if k == "strategy" else "--:" for k, _ in columns) + "|"]
    lines += ["| " + " | ".join(_md_cell(row[k]) for k, _ in columns) + " |" for row in rows]
    comparison = comparison_lines(result)
    if comparison:
        lines += [""] + [f"* {c}" for c in comparison]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``backtest``."""
    parser = argparse.ArgumentParser(prog="python -m ml_lifecycle backtest",
                                     description="replay past batches under retrain strategies")
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config value (repeatable; YAML)")
    parser.add_argument("--batches", help="folder or glob of YYYY-MM-DD batch files "
                        "(default lifecycle.batches; ignored when backtest.period is set)")
    parser.add_argument("--labels", help="folder of the labels files (default lifecycle.labels)")
    parser.add_argument("--every", type=int, action="append",
                        help="retrain every k batches (repeatable; default backtest.every_k)")
    parser.add_argument("--grid", action="append", default=[],
                        help="policy variant grid: dotted.key=v1,v2 (repeatable)")
    parser.add_argument("--strategies",
                        help="comma-separated subset (e.g. never,every_1,performance,drift; "
                             "'policy' selects every policy strategy)")
    parser.add_argument("--work-dir", help="keep the strategies' registries here")
    parser.add_argument("--report-dir", help="write backtest.json and backtest.html here")
    parser.add_argument("--json", action="store_true", help="print the JSON result on stdout")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the comparison table as a markdown file (atomically; "
                             "its first line names this command and the date), for a docs page "
                             "to include; nothing is written when the backtest fails")
    return parser


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    command = "python -m ml_lifecycle backtest " + shlex.join(argv)
    result = run_backtest(
        args.config, overrides=args.overrides, batches=args.batches, labels=args.labels,
        every=args.every, grid=_parse_grid(args.grid) if args.grid else None,
        strategies=args.strategies.split(",") if args.strategies else None,
        work_dir=args.work_dir, report_dir=args.report_dir,
        log=None if args.json else (lambda m: print(m, file=sys.stderr)),
        command=command,
    )
    if args.markdown:
        atomic_write_text(args.markdown, format_markdown(result, command))
    if args.json:
        sys.stdout.write(dumps_json(result) + "\n")
    else:
        print(format_table(result))
        if result.get("report_paths"):
            print(f"report: {result['report_paths']['html']}")
        if args.markdown:
            print(f"markdown: {args.markdown}")
    return EXIT_OK
