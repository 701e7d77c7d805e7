"""Which config a DAG uses, and the two settings Airflow needs while parsing a DAG file.

Parsing must stay cheap and free of I/O, so the only parse-time inputs are environment
variables (read, never files):

* ``ML_LIFECYCLE_START_DATE`` -- first day of your batches (``YYYY-MM-DD``, UTC; default
  2026-01-01). The daily DAGs replay history from there (``catchup``).
* ``ML_LIFECYCLE_DAILY_SCHEDULE`` -- schedule of the scoring and drift-check DAGs (default
  ``@daily``, one run per day whose logical date is that day; ``none``: runs only when
  triggered, e.g. by the demo, which triggers each simulated day with its logical date).
* ``ML_LIFECYCLE_TRAINING_SCHEDULE`` -- cron or preset of scheduled retraining (unset, empty or
  ``none``: off). ``scripts/airflow_embedded.py`` exports it from the config's
  ``lifecycle.training_schedule`` when it starts the components.

Everything else comes from the YAML config, read inside tasks: ``ML_LIFECYCLE_CONFIG`` names the
file (default ``configs/demo.yaml`` under the project root, which DAG files find from their own
location); its relative paths resolve against ``ML_LIFECYCLE_BASE_DIR`` or else the project root.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

CONFIG_ENV = "ML_LIFECYCLE_CONFIG"
BASE_DIR_ENV = "ML_LIFECYCLE_BASE_DIR"
START_DATE_ENV = "ML_LIFECYCLE_START_DATE"
TRAINING_SCHEDULE_ENV = "ML_LIFECYCLE_TRAINING_SCHEDULE"
DAILY_SCHEDULE_ENV = "ML_LIFECYCLE_DAILY_SCHEDULE"
DEFAULT_CONFIG = "configs/demo.yaml"
DEFAULT_START_DATE = "2026-01-01"
_OFF = {"", "none", "null", "off", "false"}

# Keys of the config whose values are paths; trigger-form overrides of them are checked.
PATH_KEYS = ("data.path", "registry.root", "lifecycle.batches", "lifecycle.labels",
             "lifecycle.predictions", "lifecycle.reports", "lifecycle.alerts")


def start_date() -> dt.datetime:
    """The daily DAGs' start date: ``ML_LIFECYCLE_START_DATE`` or 2026-01-01, midnight UTC."""
    raw = os.environ.get(START_DATE_ENV, "").strip() or DEFAULT_START_DATE
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{START_DATE_ENV}='{raw}' is not a date in YYYY-MM-DD form"
        ) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def training_schedule() -> str | None:
    """Cron/preset of scheduled retraining from ``ML_LIFECYCLE_TRAINING_SCHEDULE`` (None: off)."""
    raw = os.environ.get(TRAINING_SCHEDULE_ENV, "").strip()
    return None if raw.lower() in _OFF else raw


def daily_schedule() -> Any:
    """Timetable of the daily DAGs: ``ML_LIFECYCLE_DAILY_SCHEDULE`` (default ``@daily``) as a
    data-interval cron in UTC, so the run for day D has logical date D and starts after D ends;
    None when set to ``none``."""
    from airflow.sdk import CronDataIntervalTimetable

    raw = os.environ.get(DAILY_SCHEDULE_ENV, "@daily").strip()
    if raw.lower() in _OFF:
        return None
    return CronDataIntervalTimetable(raw, timezone="UTC")


def config_path(project_root: str | Path) -> Path:
    """The config file: ``ML_LIFECYCLE_CONFIG`` (relative to the project root) or the demo's."""
    raw = os.environ.get(CONFIG_ENV, "").strip() or DEFAULT_CONFIG
    path = Path(os.path.expanduser(raw))
    return path if path.is_absolute() else Path(project_root) / path


def base_dir(project_root: str | Path) -> Path:
    """Folder that relative config paths resolve against."""
    raw = os.environ.get(BASE_DIR_ENV, "").strip()
    return Path(raw) if raw else Path(project_root)


def allowed_roots(cfg: Config) -> list[str]:
    """Folders a path coming from run input may point into.

    ``data.data_roots``, plus the lifecycle's own output folders (a drift report path handed from
    the drift check to the training DAG lives there).
    """
    from ml_lifecycle.storage import join

    roots = [*cfg.data.data_roots, cfg.lifecycle.reports, join(cfg.registry.root, "monitoring")]
    return list(dict.fromkeys(roots))


def check_run_path(cfg: Config, path: str, what: str) -> str:
    """Resolve a path from a trigger form or DAG-run conf; refuse it outside ``allowed_roots``.

    Raises:
        PathNotAllowedError: naming the input, the path and the allowed folders.
    """
    from ml_lifecycle.data import ensure_inside_roots
    from ml_lifecycle.errors import PathNotAllowedError

    try:
        return ensure_inside_roots(path, allowed_roots(cfg))
    except PathNotAllowedError as exc:
        raise PathNotAllowedError(f"{what}: {exc}") from None


def load_lifecycle_config(project_root: str | Path, overrides: list[str] | None = None) -> Config:
    """Load and validate the config (with trigger-form overrides) for a task.

    An override may not change ``data.data_roots``, and a path it changes must stay inside the
    data roots of the unmodified config.

    Raises:
        ConfigError: invalid file or override (names the key and the value).
        PathNotAllowedError: an overridden path points outside the allowed folders.
    """
    from ml_lifecycle.config import load_config
    from ml_lifecycle.data import ensure_inside_roots
    from ml_lifecycle.errors import ConfigError, PathNotAllowedError

    path = config_path(project_root)
    base = base_dir(project_root)
    cfg = load_config(path, overrides or [], base=base)
    if not overrides:
        return cfg
    original = load_config(path, [], base=base)
    if cfg.data.data_roots != original.data.data_roots:
        raise ConfigError("config override: data.data_roots cannot be changed from run input")
    for key in PATH_KEYS:
        section, name = key.split(".")
        before = getattr(getattr(original, section), name)
        after = getattr(getattr(cfg, section), name)
        if after != before:
            try:
                ensure_inside_roots(after, original.data.data_roots)
            except PathNotAllowedError as exc:
                raise PathNotAllowedError(f"config override {key}: {exc}") from None
    return cfg
