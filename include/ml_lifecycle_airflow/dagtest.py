"""Run DAGs in-process with ``dag.test()`` and report what happened as JSON (tests, debugging).

Usage (``AIRFLOW_HOME`` and ``AIRFLOW__CORE__DAGS_FOLDER`` set, database migrated)::

    python -m ml_lifecycle_airflow.dagtest '[{"dag_id": "ml_drift_check",
        "logical_date": "2026-01-05", "conf": {"wait_for_retrain": false}}]'

Each step runs one DAG run with ``dag.test`` (tasks run in this process, no scheduler; a
``TriggerDagRunOperator`` only *creates* the triggered run). The output is one JSON list on
stdout's last line: per step the run state, each task's state, the XCom return values, the runs
the step created in other DAGs (with their conf), or ``error`` when the run could not even be
created (e.g. a ``ParamValidationError`` for an invalid trigger-form value).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any


def airflow_env(home: str | Path, project_root: str | Path,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of an isolated Airflow (SQLite in ``home``) that parses the project's DAGs."""
    root = Path(project_root)
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # dag.test runs no scheduler; an unpaused target lets TriggerDagRunOperator create its run.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{Path(home) / 'airflow.db'}",
        "PYTHONPATH": os.pathsep.join([str(root / "include"),
                                       *filter(None, [env.get("PYTHONPATH")])]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "OMP_NUM_THREADS": "1",
    })
    env.update(extra or {})
    return env


def run_steps(steps: list[dict[str, Any]], env: dict[str, str], *,
              timeout: float = 600) -> list[dict[str, Any]]:
    """Run ``python -m ml_lifecycle_airflow.dagtest`` in a subprocess; return its results.

    The log of the subprocess is attached to each result under ``log``.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "ml_lifecycle_airflow.dagtest", json.dumps(steps)],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    try:
        results = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"dagtest exited with {proc.returncode}:\n{proc.stdout[-5000:]}\n"
                           f"{proc.stderr[-5000:]}") from None
    log = proc.stdout + proc.stderr
    for result in results:
        result["log"] = log
    return results


def _logical_date(value: str | None) -> dt.datetime | None:
    if value in (None, "", "none"):
        return None
    day = dt.date.fromisoformat(str(value)[:10])
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def run_step(dagbag: Any, step: dict[str, Any]) -> dict[str, Any]:
    from airflow.models import DagRun, TaskInstance
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = dagbag.get_dag(step["dag_id"])
    started = dt.datetime.now(dt.UTC)
    kwargs: dict[str, Any] = {"run_conf": step.get("conf") or None}
    if "logical_date" in step:
        kwargs["logical_date"] = _logical_date(step["logical_date"])
    out: dict[str, Any] = {"dag_id": dag.dag_id, "logical_date": step.get("logical_date")}
    try:
        dr = dag.test(**kwargs)
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc(limit=5)
        return out
    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dr.run_id)).all()
        out["run_id"] = dr.run_id
        out["state"] = str(dr.state)
        out["tasks"] = {ti.task_id: str(ti.state) for ti in tis}
        xcoms = session.scalars(select(XComModel).where(
            XComModel.dag_id == dag.dag_id, XComModel.run_id == dr.run_id,
            XComModel.key == "return_value")).all()
        out["xcom"] = {x.task_id: _load(x.value) for x in xcoms}
        created = session.scalars(select(DagRun).where(
            DagRun.dag_id != dag.dag_id, DagRun.created_at >= started)).all()
        out["triggered"] = [{"dag_id": r.dag_id, "run_id": r.run_id, "state": str(r.state),
                             "conf": r.conf} for r in created]
        events = session.execute(
            select(AssetModel.name, AssetEvent.extra, AssetEvent.source_task_id)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == dag.dag_id,
                   AssetEvent.source_run_id == dr.run_id)).all()
        out["asset_events"] = [{"asset": name, "extra": extra, "task_id": task_id}
                               for name, extra, task_id in events]
    return out


def _load(value: Any) -> Any:
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def main(argv: list[str]) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import configuration

    steps = json.loads(argv[0])
    results = []
    for step in steps:
        # A fresh parse per step, as every real task process gets: rendering templates mutates
        # the task objects, so a DAG object must not be reused for a second run.
        dagbag = DagBag(dag_folder=configuration.conf.get("core", "dags_folder"))
        if dagbag.import_errors:
            print(json.dumps([{"error": f"import errors: {dagbag.import_errors}"}]))
            return 1
        results.append(run_step(dagbag, step))
    sys.stdout.write("\n" + json.dumps(results, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
