"""Whole-decision false-alarm rate: how often does a clean day reach the retrain severity?

A monitoring decision is judged by its false alarms on clean data (and its delay on harmful change:
``docs/how-to/tuning-the-policy.md``). This benchmark simulates a long run of **clean days** (the
demo's world without any shift or concept change: ``simulate(..., shift_day=days,
concept_day=days)``), trains the demo model once, and replays every day through the backtest's
``never`` schedule of checks: each day the drift check runs with **all signals together** (data
drift with the missing-share test, prediction drift, the label-free performance estimate, the
realized metric and the realized calibration on the labels that have arrived, data quality) and the
policy grades the day. A day is a false alarm when its severity reaches ``policy.min_severity``
(the retrain severity), whatever the cooldown or the budget would do with it. Every policy strategy
of the backtest runs on the same days: ``performance`` (the default), ``performance+escalate`` and
``drift`` (the earlier rule).

Reproduce::

    PYTHONPATH=include .venv/bin/python benchmarks/false_alarms.py            # 240 days
    PYTHONPATH=include .venv/bin/python benchmarks/false_alarms.py --days 60  # quicker look

It prints one line per strategy (false-alarm days / clean days, the rate with its 95 % Wilson
interval, which signals raised the alarms, alerts sent) and writes the figures as JSON
(``--out``, default ``benchmarks/out/false_alarms.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

from ml_lifecycle.backtest import run_backtest  # noqa: E402
from ml_lifecycle.drift.policy import severity_rank  # noqa: E402
from ml_lifecycle.simulate import simulate  # noqa: E402


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return (max(0.0, center - half), min(1.0, center + half))


def _signal_of(reason: str) -> str:
    """Which signal a ``[level] ...`` reason comes from."""
    text = reason.split("] ", 1)[-1]
    for key, name in (("estimated performance", "estimated"), ("realized performance", "realized"),
                      ("concept drift", "realized"), ("realized miscalibration", "calibration"),
                      ("prediction drift", "prediction"),
                      ("data quality", "quality"), ("data drift", "data")):
        if text.startswith(key):
            return name
    return "other"


def run(days: int, rows: int, seed: int, work: Path) -> dict[str, Any]:
    data = work / "data"
    simulate(data, days=days, seed=seed, rows_per_day=rows, shift_day=days, concept_day=days)
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    raw["data"]["path"] = str(data / "train.csv")
    raw["lifecycle"].update(batches=str(data / "batches"), labels=str(data / "labels"))
    raw["registry"]["root"] = str(work / "unused-registry")
    raw["data"]["data_roots"] = [str(work)]
    config = work / "demo.yaml"
    config.write_text(yaml.safe_dump(raw))
    started = time.perf_counter()
    # every policy strategy; the cooldown and the budget do not matter: severity is counted
    result = run_backtest(str(config), strategies=["policy"], every=[])
    seconds = time.perf_counter() - started
    min_severity = raw.get("policy", {}).get("min_severity", "medium")
    out: dict[str, Any] = {"days": days, "rows_per_day": rows, "seed": seed,
                           "min_severity": min_severity, "seconds": round(seconds, 1),
                           "strategies": {}}
    for name, records in result["days"].items():
        judged = [d for d in records if d.get("severity") is not None]
        alarms = [d for d in judged
                  if severity_rank(d["severity"]) >= severity_rank(min_severity)]
        signals: Counter[str] = Counter()
        for d in alarms:
            for reason in d.get("reasons") or []:
                level = reason[1:reason.index("]")] if reason.startswith("[") else "none"
                if level in ("none", "low"):
                    continue
                if severity_rank(level) >= severity_rank(min_severity):
                    signals[_signal_of(reason)] += 1
        low, high = wilson(len(alarms), len(judged))
        out["strategies"][name] = {
            "clean_days": len(judged), "false_alarm_days": len(alarms),
            "rate": len(alarms) / len(judged) if judged else None,
            "rate_95ci": [round(low, 4), round(high, 4)],
            "by_signal": dict(signals),
            "severities": dict(Counter(d["severity"] for d in judged)),
            "retrains": sum(1 for d in records if d["retrain"]),
            "alerts": sum(1 for d in records if d.get("alert") in ("open", "escalated",
                                                                   "reminder")),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=240, help="clean days (default 240)")
    parser.add_argument("--rows", type=int, default=2000, help="rows per day (default 2000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "false_alarms.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="false-alarms-") as tmp:
        figures = run(args.days, args.rows, args.seed, Path(tmp))
    command = ("PYTHONPATH=include .venv/bin/python benchmarks/false_alarms.py "
               f"--days {args.days} --rows {args.rows} --seed {args.seed}")
    figures["command"] = command
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"clean days: {figures['days']} x {figures['rows_per_day']} rows, seed "
          f"{figures['seed']}; a false alarm = severity >= {figures['min_severity']} "
          f"({figures['seconds']} s)")
    for name, s in figures["strategies"].items():
        print(f"  {name:<22} {s['false_alarm_days']:>4} / {s['clean_days']:<4} "
              f"= {s['rate']:.1%} (95% CI {s['rate_95ci'][0]:.1%} .. {s['rate_95ci'][1]:.1%})"
              f"; signals {s['by_signal'] or '-'}; retrains {s['retrains']}, alerts "
              f"{s['alerts']}")
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
