"""``make demo``: the whole lifecycle, played through a real Airflow on this machine.

Two models run side by side, each with its own DAG set built by the factory from ``configs/``:
``late_delivery`` (``configs/demo.yaml``, simulated data with a harmless shift, a harmful shift
and a concept change) and ``adult_income`` (``configs/adult.yaml``, the real UCI Adult data:
trained on ``adult.data``, its daily batches cut from ``adult.test``, without labels, so its
drift check relies on the label-free performance estimate).

1. resets the demo's state (``var/demo/``, ``var/adult/`` and the Airflow database under
   ``.airflow/``);
2. simulates the data (``ml_lifecycle.simulate``): a training table, one batch per day for the
   last ``--days`` days with a covariate shift and later a concept change, labels 3 days late;
   cuts the same days' batches of the second model from ``adult.test``;
3. migrates SQLite and starts scheduler, dag-processor, triggerer and api-server (LocalExecutor)
   with ``AIRFLOW_HOME=.airflow``, and unpauses the six DAGs;
4. trains each model's first champion through its ``<name>__training`` DAG;
5. for every day, triggers both models' ``<name>__scoring`` and ``<name>__drift_check`` with
   that day as logical date; when a model's retrain policy says so its drift check triggers its
   own training DAG, which the scheduler runs for real, and waits for it before the day ends.
   On ``--override-day`` someone trains a weak ``late_delivery`` model by hand (2 boosting
   iterations), the gate rejects it, and they promote it anyway with
   ``ml-lifecycle models promote --force --reason``: the replaced champion scores in the shadow,
   and once the labels arrive the drift check rolls the weak model back (``policy.auto_rollback``);
6. prints one table per model, writes ``demo-summary.json`` (per model), lists the HTML
   reports, pauses the DAGs and stops every process it started (and checks that none is left).

The daily DAGs run with ``ML_LIFECYCLE_DAILY_SCHEDULE=none`` here: the demo is the clock, so
each simulated day is processed once, in order, after the previous day's retrain finished.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from airflow_embedded import ENV_FILE, HOME, home_pids  # noqa: E402

from ml_lifecycle_airflow import settings  # noqa: E402
from ml_lifecycle_airflow.embedded import EmbeddedAirflow, EmbeddedError  # noqa: E402
from ml_lifecycle_airflow.steps import retrain_run_id  # noqa: E402

SUMMARY_FILE = ROOT / "demo-summary.json"
CONFIGS = ROOT / "configs"
SIMULATED_CONFIG = CONFIGS / "demo.yaml"  # the model whose story the simulation tells
REAL_CONFIG = CONFIGS / "adult.yaml"  # real data, batches cut from adult.test
RUN_TIMEOUT = 300.0
# Imported once by the LocalExecutor's worker processes; task processes fork from them.
PRELOAD = ("airflow.sdk.execution_time.task_runner", "airflow.dag_processing.dagbag",
           "airflow.dag_processing.bundles.manager",
           "airflow.providers.standard.operators.trigger_dagrun",
           "airflow.providers.standard.operators.empty",
           "airflow.providers.standard.decorators.python", "numpy", "pandas", "scipy.stats",
           "sklearn.ensemble", "sklearn.pipeline", "sklearn.compose", "joblib",
           "ml_lifecycle.config", "ml_lifecycle.train", "ml_lifecycle.drift.check",
           "ml_lifecycle.lifecycle",
           "ml_lifecycle_airflow.steps", "ml_lifecycle_airflow.sensors")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Play the ML lifecycle through Airflow.")
    parser.add_argument("--days", type=int, default=21, help="simulated days (default 21)")
    parser.add_argument("--shift-day", type=int, default=7, help="covariate shift (day index)")
    parser.add_argument("--concept-day", type=int, default=14, help="concept change (day index)")
    parser.add_argument("--harmless-day", type=int, default=3,
                        help="harmless shift from this day index until the covariate shift: "
                             "inputs drift, the model is not hurt (default 3; -1: none)")
    parser.add_argument("--initial-rows", type=int, default=6000)
    parser.add_argument("--rows-per-day", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--override-day", type=int, default=8,
                        help="day index on which someone forces a weak model past the gate "
                             "(models promote --force); the shadow comparison on live labels "
                             "rolls it back (default 8; -1: none)")
    parser.add_argument("--adult-rows-per-day", type=int, default=700,
                        help="rows of adult.test per day for the second model (default 700)")
    parser.add_argument("--parallelism", type=int, default=3,
                        help="[core] parallelism: LocalExecutor worker processes")
    parser.add_argument("--docs", type=Path, default=None, metavar="FILE",
                        help="also write the tables as markdown to FILE (the documentation's "
                             "copy: docs/generated/demo.md, then scripts/gen_docs.py); only "
                             "when the demo succeeded")
    return parser.parse_args(argv)


def docs_markdown(summary: dict[str, Any], tables: dict[str, list[str]]) -> str:
    """The demo's output as the documentation shows it (generated, never retyped)."""
    day = summary["started_at"][:10]
    lines = [f"<!-- generated by `python scripts/demo.py --docs docs/generated/demo.md` on {day}; "
             "do not edit -->",
             f"`make demo`, run on {day} on {os.cpu_count()} cores: "
             f"{summary['wall_seconds']:.0f} s from the reset to the last Airflow process "
             "stopped (the first run also installs the runtime lock).", ""]
    for name, part in summary["models"].items():
        sim = part.get("simulation")
        if sim:
            story = (f"simulated, {sim['rows_per_day']} rows a day, labels "
                     f"{sim['label_delay_days']} days late: "
                     + (f"harmless shift from {sim['harmless_shift_day']}, "
                        if sim.get("harmless_shift_day") else "")
                     + f"covariate shift on {sim['covariate_shift_day']}, concept change on "
                     f"{sim['concept_change_day']}")
        else:
            story = "real data, daily batches cut from adult.test, no labels"
        alerts = ", ".join(f"{k} x{v}" for k, v in sorted(part["alerts"].items())) or "none"
        lines += [f"**{name}** (`{part['config']}`; {story}); retrains triggered: "
                  f"{part['retrains_triggered']}, promotions: {part['promotions']}, alerts: "
                  f"{alerts}", "", "```text", *tables[name], "```", ""]
    return "\n".join(lines)


def say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- preparation


def reset(cfg: Any) -> None:
    """Remove the demo's data, registry, outputs and Airflow database (inside the project)."""
    folders = {Path(cfg.data.path).parent, Path(cfg.registry.root), Path(cfg.lifecycle.batches),
               Path(cfg.lifecycle.labels), Path(cfg.lifecycle.predictions),
               Path(cfg.lifecycle.reports), Path(cfg.lifecycle.alerts)}
    for folder in sorted(folders):
        if folder.exists() and folder.resolve().is_relative_to(ROOT / "var"):
            shutil.rmtree(folder)
    for name in ("airflow.db", "logs", "lifecycle-env.json"):
        path = HOME / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    SUMMARY_FILE.unlink(missing_ok=True)


def simulate_data(cfg: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ml_lifecycle.simulate import simulate

    out = Path(cfg.data.path).parent
    expected = {"batches": out / "batches", "labels": out / "labels"}
    for key, path in expected.items():
        if Path(getattr(cfg.lifecycle, key)) != path:
            raise SystemExit(f"the config's lifecycle.{key} is {getattr(cfg.lifecycle, key)}; "
                             f"the demo writes {path}: use configs/demo.yaml")
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=args.days)
    return simulate(out, days=args.days, seed=args.seed, start_date=start,
                    initial_rows=args.initial_rows, rows_per_day=args.rows_per_day,
                    label_delay_days=cfg.lifecycle.label_delay_days,
                    shift_day=args.shift_day, concept_day=args.concept_day,
                    harmless_day=None if args.harmless_day < 0 else args.harmless_day)


def cut_real_batches(cfg: Any, days: list[str], rows_per_day: int) -> dict[str, int]:
    """Write the second model's day batches: consecutive rows of ``adult.test`` (its label
    column dropped: a batch to score has no labels), in the file format the config reads."""
    source = Path(cfg.data.path).with_name("adult.test")
    lines = [line for line in source.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith(cfg.data.comment or "|")]
    folder = Path(cfg.lifecycle.batches)
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i, day in enumerate(days):
        chunk = lines[i * rows_per_day:(i + 1) * rows_per_day]
        if not chunk:
            raise SystemExit(f"{source} has {len(lines)} rows: not enough for {len(days)} days "
                             f"of {rows_per_day} rows (lower --adult-rows-per-day)")
        (folder / f"{day}.csv").write_text(
            "".join(line.rsplit(",", 1)[0] + "\n" for line in chunk), encoding="utf-8")
        counts[day] = len(chunk)
    return counts


# --------------------------------------------------------------------------- the play


def run_day(airflow: EmbeddedAirflow, models: list[Any], day: str) -> dict[str, dict[str, str]]:
    """Scoring and drift check of one day for every model, all triggered at once (a drift run
    includes its retrain, if any)."""
    started = {}
    for model in models:
        ids = settings.dag_ids(model.name)
        started[model.name] = {"scoring": airflow.trigger(ids["scoring"], logical_date=day),
                               "drift": airflow.trigger(ids["drift"], logical_date=day)}
    states = {}
    for model in models:
        ids = settings.dag_ids(model.name)
        runs = started[model.name]
        states[model.name] = {
            "scoring": airflow.wait_for_run(ids["scoring"], runs["scoring"], RUN_TIMEOUT,
                                            poll=0.5),
            "drift": airflow.wait_for_run(ids["drift"], runs["drift"], RUN_TIMEOUT, poll=0.5),
            "drift_run_id": runs["drift"]}
    return states


def day_row(cfg: Any, day: str, states: dict[str, str], regime: str,
            training_runs: dict[str, dict[str, Any]], cards: dict[str, dict[str, Any]],
            last_day: str) -> dict[str, Any]:
    from ml_lifecycle.drift.store import day_json_path
    from ml_lifecycle.io import read_json
    from ml_lifecycle.lifecycle import live_metric

    row: dict[str, Any] = {"day": day, "regime": regime, "scoring": states.get("scoring"),
                           "drift_run": states.get("drift")}
    path = day_json_path(cfg.registry.root, day)
    result = read_json(path) if path.is_file() else {}
    row.update(verdict=result.get("verdict", "n/a"), severity=result.get("severity", "n/a"),
               reasons=list(result.get("reasons") or [])[:3],
               top_reason=top_reason(list(result.get("reasons") or []),
                                     str(result.get("severity"))),
               blocked_by=list((result.get("decision") or {}).get("blocked_by") or []),
               model_checked=(result.get("model") or {}).get("version"),
               retrain_triggered=bool(result.get("retrain")),
               report_html=(result.get("report_paths") or {}).get("html"),
               **performance_of(result))
    run = training_runs.get(retrain_run_id(day))
    card = cards.get(retrain_run_id(day))
    if not row["retrain_triggered"]:
        row["gate"] = ""
    elif card is not None:
        row["candidate"] = card["version"]
        row["gate"] = ("promoted" if card.get("promoted") else "rejected")
        row["gate_reasons"] = list((card.get("gate") or {}).get("reasons") or [])[:2]
    elif run is not None:
        row["gate"] = {"success": "skipped (labels)", "failed": "training failed"}.get(
            run["state"], run["state"])
    else:
        row["gate"] = "not run"
    metric = live_metric(cfg, day, as_of=last_day)
    row["live_metric"] = metric
    return row


def training_cards(cfg: Any) -> dict[str, dict[str, Any]]:
    """The registry's versions by the DAG run that trained them, with ``promoted``."""
    from ml_lifecycle.registry import open_registry

    registry = open_registry(cfg.registry.root)
    promoted = {e["version"] for e in registry.history() if e.get("event") == "promote"}
    cards = {}
    for card in registry.list_versions():
        run_id = (card.get("trigger") or {}).get("run_id")
        if run_id:
            cards[run_id] = {**card, "promoted": card["version"] in promoted}
    return cards


def champion_moves(cfg: Any) -> list[tuple[str, str, int]]:
    """``(day, event, version)`` of every champion move of the promotion history, in order:
    the day comes from the training run of a promoted card (its as-of day), from the drift
    check's run id in an automatic rollback's actor, or from a forced promotion's reason."""
    import re

    from ml_lifecycle.registry import open_registry

    registry = open_registry(cfg.registry.root)
    cards = {c["version"]: c for c in registry.list_versions()}
    moves = []
    for event in registry.history():
        text = f"{event.get('reason')} {event.get('actor')}"  # the reason names the day
        found = re.search(r"\d{4}-\d{2}-\d{2}", text)
        day = found.group(0) if found else (cards.get(event["version"], {}).get("trigger")
                                             or {}).get("as_of")
        if day:
            moves.append((day, event["event"], event["version"]))
    return moves


def champion_after(rows: list[dict[str, Any]], initial: int | None,
                   moves: list[tuple[str, str, int]]) -> None:
    """The champion at the end of each day, and the day's forced promotion or rollback."""
    champion = initial
    for row in rows:
        for day, event, version in moves:
            if day == row["day"] and version != champion:
                if event == "rollback":
                    row["rolled_back_to"] = version
                elif row.get("candidate") != version:
                    row["forced"] = version
                champion = version
        row["champion"] = champion


def top_reason(reasons: list[str], severity: str) -> str:
    """The first reason of the day's severity (reasons are prefixed ``[severity]``)."""
    for reason in reasons:
        if reason.startswith(f"[{severity}]"):
            return reason
    return reasons[0] if reasons else ""


def performance_of(result: dict[str, Any]) -> dict[str, Any]:
    """The watched metric of one stored check: ``watched_metric``, ``estimated`` (``value``,
    ``low``, ``high``, ``flagged``; None without an estimate) and ``realized`` (``value``,
    ``flagged``; None before labels arrive), read through the store's summary."""
    from ml_lifecycle.drift.store import summarize

    summary = summarize(result)
    estimated = None
    if summary.get("estimated_metric") is not None:
        estimated = {"value": summary["estimated_metric"], "low": summary.get("estimated_low"),
                     "high": summary.get("estimated_high"),
                     "flagged": bool(summary.get("estimated_flagged"))}
    realized = None
    if summary.get("realized_metric") is not None:
        realized = {"value": summary["realized_metric"],
                    "flagged": summary.get("concept_drift") == "drift"}
    return {"watched_metric": summary.get("watched_metric"), "estimated": estimated,
            "realized": realized}


def _metric_text(value: Any) -> str | None:
    """``0.812`` (3 decimals); None when not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return f"{value:.3f}" if math.isfinite(value) else None


def estimated_cell(row: dict[str, Any]) -> str:
    """``0.812 [0.790,0.834]`` (``!`` appended when flagged); ``-`` without an estimate."""
    entry = row.get("estimated") or {}
    value = _metric_text(entry.get("value"))
    if value is None:
        return "-"
    low, high = _metric_text(entry.get("low")), _metric_text(entry.get("high"))
    text = value + (f" [{low},{high}]" if low is not None and high is not None else "")
    return text + (" !" if entry.get("flagged") else "")


def realized_cell(row: dict[str, Any]) -> str:
    """``0.845`` (``!`` appended on concept drift); ``-`` before labels arrive."""
    entry = row.get("realized") or {}
    value = _metric_text(entry.get("value"))
    if value is None:
        return "-"
    return value + (" !" if entry.get("flagged") else "")


def retrain_cell(row: dict[str, Any]) -> str:
    if row["retrain_triggered"]:
        return "yes"
    if row["blocked_by"]:
        return "no: " + ",".join(row["blocked_by"])
    return "no"


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table_lines(rows: list[dict[str, Any]], metric_name: str) -> list[str]:
    """The per-day table (header, rule, one line per day, a legend line), as text lines."""
    watched = next((str(r["watched_metric"]) for r in rows if r.get("watched_metric")), "")
    header = (f"{'day':<10}  {'data':<8}  {'estimated':<21}  {'realized':<8}  {'verdict':<8}  "
              f"{'severity':<8}  {'top reason':<56}  {'retrain':<19}  {'gate':<12}  "
              f"{'champ':<5}  live {metric_name}")
    lines = [header, "-" * len(header)]
    for r in rows:
        metric = r.get("live_metric")
        live = (f"{metric['value']:.3f} (v{metric['model_version']})" if metric else "-")
        gate = r["gate"] + (f" v{r['candidate']}" if r.get("candidate") else "")
        if r.get("forced"):
            gate = f"forced v{r['forced']}"
        if r.get("rolled_back_to"):
            gate = f"rollback v{r['rolled_back_to']}"
        verdict = {"no_drift": "ok", "insufficient_data": "n/a"}.get(r["verdict"], r["verdict"])
        lines.append(
            f"{r['day']:<10}  {r['regime'][:8]:<8}  {estimated_cell(r):<21}  "
            f"{realized_cell(r):<8}  {verdict:<8}  {r['severity']:<8}  "
            f"{short(r['top_reason'], 56):<56}  {retrain_cell(r):<19}  {gate:<12}  "
            f"{'v' + str(r['champion']):<5}  {live}")
    lines.append(f"estimated / realized: the drift check's {watched or 'watched metric'}, "
                 "label-free estimate [interval] / on the labelled trailing window; "
                 "! = flagged")
    return lines


def live_metric_name(rows: list[dict[str, Any]]) -> str:
    return next((str(r["live_metric"]["metric"]) for r in rows if r.get("live_metric")), "metric")


def print_table(rows: list[dict[str, Any]], metric_name: str) -> None:
    for line in table_lines(rows, metric_name):
        say(line)


# --------------------------------------------------------------------------- main


def force_weak_model(airflow: EmbeddedAirflow, cfg: Any, day: str) -> str:
    """A person trains a weak candidate by hand and forces it past the gate (recorded in the
    promotion history); the shadow comparison on live labels is what will catch it."""
    import subprocess

    from ml_lifecycle.registry import open_registry

    training = settings.dag_ids(cfg.name)["training"]
    run_id = airflow.trigger(training, conf={
        "reason": "quick retrain by hand (demo: 2 boosting iterations)", "force": True,
        "as_of_day": day, "config_overrides": ["model.max_iter=2"]})
    state = airflow.wait_for_run(training, run_id, RUN_TIMEOUT)
    registry = open_registry(cfg.registry.root)
    card = next((c for c in reversed(registry.list_versions())
                 if (c.get("trigger") or {}).get("run_id") == run_id), None)
    if state != "success" or card is None:
        raise EmbeddedError(f"the hand-started training run {run_id} ended {state}")
    if registry.champion() == card["version"]:
        return f"v{card['version']} (weak) passed the gate by itself and was promoted"
    done = subprocess.run(
        [sys.executable, "-m", "ml_lifecycle", "models", "promote", str(card["version"]),
         "--config", str(SIMULATED_CONFIG), "--force", "--reason",
         f"demo ({day}): forced past the gate to show the automatic rollback"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "include")},
        timeout=120, check=False)
    if done.returncode != 0:
        raise EmbeddedError(f"models promote --force failed: {done.stderr[-1000:]}")
    return (f"v{card['version']} (weak, gate: {'; '.join(card['gate']['reasons'])[:90]}) "
            "forced past the gate with `models promote --force`")


def model_summary(cfg: Any, days: list[str], states: dict[str, dict[str, str]],
                  regimes: dict[str, str], training_runs: dict[str, dict[str, Any]],
                  initial_champion: int | None) -> dict[str, Any]:
    """One model's part of ``demo-summary.json``; prints its table."""
    cards = training_cards(cfg)
    rows = [day_row(cfg, day, states.get(day, {}), regimes.get(day, "real"), training_runs,
                    cards, days[-1]) for day in days]
    champion_after(rows, initial_champion, champion_moves(cfg))
    metric_name = live_metric_name(rows)
    say(f"\n{cfg.name} ({settings.dag_ids(cfg.name)['drift']}):")
    print_table(rows, metric_name)
    alerts = sorted(Path(cfg.lifecycle.alerts).glob("*.json"))
    by_kind: dict[str, int] = {}
    for alert in alerts:
        kind = alert.name.split("__", 1)[0]
        by_kind[kind] = by_kind.get(kind, 0) + 1
    return {
        "dag_ids": settings.dag_ids(cfg.name),
        "initial_champion": initial_champion, "days": rows, "alerts": by_kind,
        "alerts_dir": cfg.lifecycle.alerts, "reports_dir": cfg.lifecycle.reports,
        "registry": cfg.registry.root,
        "retrains_triggered": sum(1 for r in rows if r["retrain_triggered"]),
        "promotions": sum(1 for r in rows if r.get("gate") == "promoted")}


def train_first_champions(airflow: EmbeddedAirflow, models: list[Any], first_day: str
                          ) -> dict[str, int]:
    """Each model's initial training through its own training DAG, all at once."""
    from ml_lifecycle.registry import open_registry

    before = (dt.date.fromisoformat(first_day) - dt.timedelta(days=1)).isoformat()
    runs = {m.name: airflow.trigger(settings.dag_ids(m.name)["training"], conf={
        "reason": "initial training (demo)", "as_of_day": before}) for m in models}
    champions = {}
    for model in models:
        dag_id = settings.dag_ids(model.name)["training"]
        state = airflow.wait_for_run(dag_id, runs[model.name], RUN_TIMEOUT)
        champion = open_registry(model.registry.root).champion()
        if state != "success" or champion is None:
            raise EmbeddedError(f"initial training of {model.name}: run {state}; tasks: "
                                f"{airflow.task_states(dag_id, runs[model.name])}")
        champions[model.name] = champion
    return champions


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    if home_pids():
        say(f"an Airflow started with AIRFLOW_HOME={HOME} is running (pids {home_pids()}); "
            "stop it first (Ctrl-C in `make airflow`, or "
            "python scripts/airflow_embedded.py stop)")
        return 1
    cfg = settings.load_lifecycle_config(SIMULATED_CONFIG)
    real = settings.load_lifecycle_config(REAL_CONFIG)
    models = [cfg, real]
    say(f"[{0:5.1f}s] resetting the demo state (var/demo, var/adult, {HOME.name}/airflow.db)")
    for model in models:
        reset(model)
    sim = simulate_data(cfg, args)
    truth = json.loads(Path(sim["ground_truth"]).read_text())
    manifest = json.loads(Path(sim["manifest"]).read_text())
    days = [f["date"] for f in manifest["files"]]
    regimes = {r["date"]: r["regime"] for r in truth["positive_rate_per_day"]}
    real_rows = cut_real_batches(real, days, args.adult_rows_per_day)
    say(f"[{time.monotonic() - started:5.1f}s] {cfg.name}: simulated {len(days)} days "
        f"{days[0]} .. {days[-1]} ({args.rows_per_day} rows/day, labels "
        f"{cfg.lifecycle.label_delay_days} days late): "
        + (f"harmless shift from {sim['harmless_shift_day']}, " if sim.get("harmless_in_window")
           else "")
        + f"covariate shift on {sim['covariate_shift_day']}, concept change on "
        f"{sim['concept_change_day']}")
    say(f"[{time.monotonic() - started:5.1f}s] {real.name}: {len(real_rows)} daily batches of "
        f"{args.adult_rows_per_day} rows cut from adult.test (no labels: the drift check "
        "estimates the performance)")

    extra = {
        settings.CONFIGS_ENV: str(CONFIGS),
        settings.DAILY_SCHEDULE_ENV: "none",
        settings.START_DATE_ENV: days[0],
        settings.TRAINING_SCHEDULE_ENV: "none",
    }
    HOME.mkdir(parents=True, exist_ok=True)
    ENV_FILE.write_text(json.dumps(extra, indent=2) + "\n")
    airflow = EmbeddedAirflow(ROOT, HOME, parallelism=args.parallelism, extra_env=extra,
                              preload=PRELOAD, idle_sleep=0.25)
    dag_ids = [i for m in models for i in settings.dag_ids(m.name).values()]
    states: dict[str, dict[str, dict[str, str]]] = {m.name: {} for m in models}
    failure: str | None = None
    champions: dict[str, int] = {}
    training_runs: dict[str, dict[str, dict[str, Any]]] = {m.name: {} for m in models}
    try:
        airflow.migrate()
        airflow.start()
        airflow.wait_for_dags(dag_ids)
        for dag_id in dag_ids:
            airflow.unpause(dag_id)
        say(f"[{time.monotonic() - started:5.1f}s] Airflow up ({airflow.base_url}, "
            f"LocalExecutor x{args.parallelism}, SQLite), {len(dag_ids)} DAGs for "
            f"{len(models)} models; training the first champions")
        champions = train_first_champions(airflow, models, days[0])
        say(f"[{time.monotonic() - started:5.1f}s] champions "
            + ", ".join(f"{name} v{v}" for name, v in champions.items())
            + f"; replaying {len(days)} days")
        for index, day in enumerate(days):
            if index == args.override_day:
                forced = force_weak_model(airflow, cfg, day)
                say(f"[{time.monotonic() - started:5.1f}s] {day}: {forced}")
            today = run_day(airflow, models, day)
            line = []
            for model in models:
                states[model.name][day] = today[model.name]
                path = Path(model.registry.root) / "monitoring" / "days" / f"{day}.json"
                result = json.loads(path.read_text()) if path.is_file() else {}
                line.append(f"{model.name} {result.get('verdict', 'n/a')}"
                            f"{' -> retrain' if result.get('retrain') else ''}")
            say(f"[{time.monotonic() - started:5.1f}s] {day}: " + "; ".join(line))
        for model in models:
            training_runs[model.name] = {
                r["dag_run_id"]: r
                for r in airflow.dag_runs(settings.dag_ids(model.name)["training"])}
        for dag_id in dag_ids:
            airflow.unpause(dag_id, paused=True)
    except (EmbeddedError, OSError) as exc:
        failure = str(exc)
        say(f"DEMO FAILED: {failure}")
    finally:
        t_stop = time.monotonic()
        killed = airflow.stop()
        say(f"[{time.monotonic() - started:5.1f}s] stopped every Airflow process in "
            f"{time.monotonic() - t_stop:.1f}s"
            f"{f' (SIGKILL needed for {killed})' if killed else ''}; none left: "
            f"{not airflow.leftover_pids()}")

    per_model = {}
    for model, config_file in ((cfg, SIMULATED_CONFIG), (real, REAL_CONFIG)):
        per_model[model.name] = model_summary(
            model, days, states[model.name], regimes if model is cfg else {},
            training_runs[model.name], champions.get(model.name))
        per_model[model.name]["config"] = str(config_file.relative_to(ROOT))
    per_model[cfg.name]["simulation"] = {
        "days": days, "rows_per_day": args.rows_per_day, "initial_rows": args.initial_rows,
        "seed": args.seed, "covariate_shift_day": sim["covariate_shift_day"],
        "concept_change_day": sim["concept_change_day"],
        "harmless_shift_day": sim.get("harmless_shift_day"),
        "label_delay_days": cfg.lifecycle.label_delay_days}
    per_model[real.name]["batches"] = {"source": "adult.test", "rows_per_day": real_rows}
    wall = time.monotonic() - started
    summary = {"started_at": started_at.isoformat(), "wall_seconds": round(wall, 1),
               "failure": failure, "models": per_model, "airflow_home": str(HOME)}
    from ml_lifecycle.io import atomic_write_json

    atomic_write_json(SUMMARY_FILE, summary)
    if args.docs is not None and failure is None:
        tables = {name: table_lines(part["days"], live_metric_name(part["days"]))
                  for name, part in per_model.items()}
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        args.docs.write_text(docs_markdown(summary, tables))
        say(f"documentation copy: {args.docs} (then: python scripts/gen_docs.py)")
    say("\nHTML drift reports:")
    for name, model_part in per_model.items():
        reports = [r["report_html"] for r in model_part["days"] if r.get("report_html")]
        say(f"  {name}: {len(reports)} in {model_part['reports_dir']}"
            + (f" (latest {reports[-1]})" if reports else ""))
    for name, model_part in per_model.items():
        say(f"alerts of {name} ({model_part['alerts_dir']}): "
            + (", ".join(f"{k} x{v}" for k, v in sorted(model_part["alerts"].items()))
               or "none"))
    say(f"summary: {SUMMARY_FILE}")
    say("explore the runs in the UI: make airflow (http://localhost:8080)")
    say(f"wall time: {wall:.0f} s ({wall / 60:.1f} min)")
    return 1 if failure else 0


if __name__ == "__main__":
    raise SystemExit(main())
