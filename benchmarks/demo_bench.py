"""Figure 4: the embedded demo (``make demo``): wall time, task instances, Airflow vs our work.

``make demo`` is ``.venv/bin/python scripts/demo.py``. To leave the working tree's demo state
(``.airflow/``, ``var/demo/``, ``demo-summary.json``) and anyone's running Airflow alone, the
benchmark runs it in a copy of the project under ``benchmarks/out/demo-tree/`` (sources only,
same ``.venv``), timed from outside. Afterwards it reads that copy's Airflow database (SQLite,
read-only) and the files the demo wrote:

* task instances: how many, per task id, their run time (start -> end) and queue latency
  (queued -> start); DAG runs: wall time vs the sum of their task instances;
* our work inside a task instance where the core records it: ``train_candidate`` (the model
  card's ``timings_seconds.total``) and ``check_drift`` (the day's result ``timings_seconds``);
  the rest of those task instances is Airflow's task runner and our task wrapper;
* Airflow's fixed cost per task instance: the run time of task instances that do almost nothing
  (EmptyOperator, branches, notifications, sensors that succeed on the first poke).

Reproduce::

    .venv/bin/python benchmarks/demo_bench.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MAIN_PYTHON, OUT, ROOT, bench_env, loadavg, summary

COMMAND = ".venv/bin/python benchmarks/demo_bench.py"
TREE = OUT / "demo-tree"
IGNORE = shutil.ignore_patterns(".venv", ".git", ".airflow", "var", "out", ".peers-venv",
                                "__pycache__", "demo-summary.json", "test-output",
                                ".pytest_cache", ".ruff_cache", "*.pyc")
# task instances that do almost nothing of ours: their run time is Airflow's fixed cost
NO_OP_TASKS = ("notify", "reject", "promote", "gate_decision", "retrain_decision",
               "wait_for_batch", "wait_for_new_labels")
# deferred while waiting for another DAG run: their time is waiting, not cost
WAITING_TASKS = ("trigger_retrain",)


def _copy_tree(log: Callable[[str], None]) -> None:
    if TREE.exists():
        # a leftover Airflow of an earlier (interrupted) benchmark would hold this folder
        shutil.rmtree(TREE)
    shutil.copytree(ROOT, TREE, ignore=IGNORE, symlinks=True)
    log(f"  copied the project's sources to {TREE.relative_to(ROOT)}")


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00").split("+")[0])


def _timings_total(timings: dict[str, Any] | None) -> float | None:
    if not isinstance(timings, dict) or not timings:
        return None
    if "total" in timings:
        return float(timings["total"])
    return float(sum(v for v in timings.values() if isinstance(v, int | float)))


def _brief(s: dict[str, Any]) -> dict[str, Any]:
    """A summary without the list of runs (there are hundreds of task instances)."""
    return {k: v for k, v in s.items() if k != "runs"}


def _latencies(tis: list[dict[str, Any]]) -> list[float]:
    """Queued -> started, in seconds; a resumed deferred task's queue time is not comparable."""
    out = []
    for t in tis:
        if t["queued_dttm"] and t["task_id"] not in WAITING_TASKS:
            lat = (_ts(t["start_date"]) - _ts(t["queued_dttm"])).total_seconds()
            if lat >= 0:
                out.append(lat)
    return out


def _core_work(tree: Path, tis: list[dict[str, Any]], xcoms: dict[tuple[str, str, str], Any]
               ) -> dict[tuple[str, str, str], float]:
    """Seconds of core work per (dag_id, run_id, task_id), where the core records it."""
    work: dict[tuple[str, str, str], float] = {}
    for ti in tis:
        key = (ti["dag_id"], ti["run_id"], ti["task_id"])
        value = xcoms.get(key)
        if not isinstance(value, dict):
            continue
        if ti["task_id"] == "train_candidate" and value.get("version") and not value.get("reused"):
            cards = list((tree / "var").glob(f"**/versions/v{int(value['version']):04d}/card.json"))
            if cards:
                card = json.loads(cards[0].read_text())
                total = _timings_total(card.get("timings_seconds"))
                if total is not None:
                    work[key] = total
        if ti["task_id"] == "check_drift" and value.get("report_json"):
            path = Path(value["report_json"])
            if not path.is_absolute():
                path = tree / path
            if path.is_file():
                total = _timings_total(json.loads(path.read_text()).get("timings_seconds"))
                if total is not None:
                    work[key] = total
    return work


def analyse(tree: Path) -> dict[str, Any]:
    """Task instances and DAG runs of the demo's Airflow database."""
    db = tree / ".airflow" / "airflow.db"
    if not db.is_file():
        return {"error": f"no Airflow database at {db}"}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    tis = [dict(r) for r in con.execute(
        "select dag_id, run_id, task_id, state, start_date, end_date, duration, queued_dttm, "
        "operator, try_number from task_instance")]
    runs = [dict(r) for r in con.execute(
        "select dag_id, run_id, state, queued_at, start_date, end_date from dag_run")]
    xcoms = {}
    for r in con.execute("select dag_id, run_id, task_id, value from xcom "
                         "where key = 'return_value'"):
        try:
            xcoms[(r["dag_id"], r["run_id"], r["task_id"])] = json.loads(r["value"])
        except (TypeError, ValueError):
            pass
    con.close()
    ran = [t for t in tis if t["start_date"] and t["end_date"] and t["duration"] is not None]
    states: dict[str, int] = defaultdict(int)
    for t in tis:
        states[str(t["state"])] += 1
    per_task: dict[str, dict[str, Any]] = {}
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in ran:
        by_task[f"{t['dag_id']}.{t['task_id']}"].append(t)
    work = _core_work(tree, ran, xcoms)
    for name, items in sorted(by_task.items()):
        lat = _latencies(items)
        core = [work[(t["dag_id"], t["run_id"], t["task_id"])] for t in items
                if (t["dag_id"], t["run_id"], t["task_id"]) in work]
        per_task[name] = {
            "count": len(items), "operator": items[0]["operator"],
            "run_seconds": _brief(summary([t["duration"] for t in items], 3)),
            "queue_latency_seconds": _brief(summary(lat, 3)),
            "core_work_seconds": _brief(summary(core, 3)) if core else None,
        }
    # EmptyOperator instances never reach a worker (run time 0): left out of the fixed cost
    no_op = [t["duration"] for t in ran if t["task_id"] in NO_OP_TASKS and t["duration"] > 0]
    with_work = [(t["duration"], work[(t["dag_id"], t["run_id"], t["task_id"])]) for t in ran
                 if (t["dag_id"], t["run_id"], t["task_id"]) in work]
    latency = _latencies(ran)
    run_walls = []
    for r in runs:
        if r["start_date"] and r["end_date"]:
            run_walls.append((_ts(r["end_date"]) - _ts(r["start_date"])).total_seconds())
    total_run = sum(t["duration"] for t in ran if t["task_id"] not in WAITING_TASKS)
    total_core = sum(work.values())
    return {
        "task_instances": len(tis), "task_instances_ran": len(ran), "states": dict(states),
        "dag_runs": len(runs), "dag_run_wall_seconds": _brief(summary(run_walls, 2)),
        "ti_run_seconds": _brief(summary([t["duration"] for t in ran
                                          if t["task_id"] not in WAITING_TASKS], 3)),
        "ti_queue_latency_seconds": _brief(summary(latency, 3)),
        "no_op_ti_run_seconds": _brief(summary(no_op, 3)),
        "waiting_tasks_excluded": list(WAITING_TASKS),
        "core_work_seconds_total": round(total_core, 1),
        "ti_run_seconds_total": round(total_run, 1),
        "ti_queue_latency_seconds_total": round(sum(latency), 1),
        "tis_with_core_timing": len(with_work),
        "wrapper_and_runner_seconds_in_those": round(sum(d - w for d, w in with_work), 1),
        "per_task": per_task,
    }


def run(timeout: float = 2400.0, extra_args: list[str] | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    _copy_tree(log)
    env = bench_env(None)
    env["PYTHONPATH"] = str(TREE / "include")
    env.pop("OMP_NUM_THREADS", None)  # the demo sets its own (1), as `make demo` does
    cmd = [str(MAIN_PYTHON), str(TREE / "scripts" / "demo.py"), *(extra_args or [])]
    before = loadavg()
    t0 = time.monotonic()
    log_path = OUT / "demo.log"
    with open(log_path, "w") as handle:
        try:
            proc = subprocess.run(cmd, cwd=str(TREE), env=env, stdout=handle,
                                  stderr=subprocess.STDOUT, timeout=timeout, check=False)
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            code = f"timeout after {timeout:.0f} s"
    wall = time.monotonic() - t0
    out: dict[str, Any] = {"command": " ".join(cmd), "exit_code": code,
                           "wall_seconds": round(wall, 1), "log": str(log_path),
                           "loadavg_before": before, "loadavg_after": loadavg()}
    summary_file = TREE / "demo-summary.json"
    if summary_file.is_file():
        demo = json.loads(summary_file.read_text())
        out["demo_summary"] = {k: demo.get(k) for k in ("wall_seconds", "failure",
                                                         "initial_champion", "alerts")}
        out["demo_summary"]["days"] = len(demo.get("days", []))
        out["demo_summary"]["retrains_triggered"] = sum(
            1 for d in demo.get("days", []) if d.get("retrain_triggered"))
    else:
        out["demo_summary"] = None
    out["airflow"] = analyse(TREE)
    tail = log_path.read_text().splitlines()[-8:] if log_path.is_file() else []
    out["log_tail"] = tail
    log(f"  demo exit {code}, wall {wall:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--analyse-only", action="store_true",
                        help="re-read the last run's database without running the demo")
    parser.add_argument("demo_args", nargs="*", help="passed to scripts/demo.py (after --)")
    args = parser.parse_args(argv)
    res = {"airflow": analyse(TREE)} if args.analyse_only else run(extra_args=args.demo_args)
    a = res["airflow"]
    if "error" not in a:
        print(f"task instances: {a['task_instances']} ({a['states']}), DAG runs {a['dag_runs']}")
        print(f"per task instance: run {a['ti_run_seconds']['median']} s median, queue latency "
              f"{a['ti_queue_latency_seconds']['median']} s median; no-op task instances "
              f"{a['no_op_ti_run_seconds']['median']} s; core work {a['core_work_seconds_total']}"
              f" s of {a['ti_run_seconds_total']} s task-instance time")
    else:
        print(a["error"])
    if "wall_seconds" in res:
        print(f"wall time: {res['wall_seconds']} s (exit {res['exit_code']})")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    print(f"reproduce: {COMMAND}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
