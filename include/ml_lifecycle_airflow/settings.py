"""Which models the DAGs serve, and the settings Airflow needs while parsing a DAG file.

**Models.** Every ``*.yaml`` / ``*.yml`` file in the configs folder is one model and gets its own
DAG set (``ml_lifecycle_airflow.factory``). The folder is ``ML_LIFECYCLE_CONFIGS`` when set,
else the ``configs/`` folder of the project whose DAG file calls the factory.
``ML_LIFECYCLE_CONFIG`` (one file) restricts the DAGs to that single model. Parsing reads and
validates each config file (YAML + pydantic, no pandas/scikit-learn/scipy, no data file); the
DAGs' tasks re-read their own model's file, so an edited config takes effect on the next task.

**Paths.** A config's relative paths resolve against the config file's folder, or against
``ML_LIFECYCLE_BASE_DIR`` when that is set (``ml_lifecycle.config.base_dir``).

**Parse-time settings** (environment variables, read, never files):

* ``ML_LIFECYCLE_START_DATE`` -- first day of your batches (``YYYY-MM-DD``, UTC; default
  2026-01-01). The daily DAGs replay history from there (``catchup``).
* ``ML_LIFECYCLE_DAILY_SCHEDULE`` -- schedule of the scoring and drift-check DAGs (default
  ``@daily``, one run per day whose logical date is that day; ``none``: runs only when
  triggered, e.g. by the demo, which triggers each simulated day with its logical date).
* ``ML_LIFECYCLE_TRAINING_SCHEDULE`` -- when set, the schedule of every model's training DAG
  (``none``: off for all); unset: each config's ``lifecycle.training_schedule`` (default off).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_lifecycle.config import Config

CONFIG_ENV = "ML_LIFECYCLE_CONFIG"
CONFIGS_ENV = "ML_LIFECYCLE_CONFIGS"
BASE_DIR_ENV = "ML_LIFECYCLE_BASE_DIR"
START_DATE_ENV = "ML_LIFECYCLE_START_DATE"
TRAINING_SCHEDULE_ENV = "ML_LIFECYCLE_TRAINING_SCHEDULE"
DAILY_SCHEDULE_ENV = "ML_LIFECYCLE_DAILY_SCHEDULE"
DEFAULT_CONFIGS = "configs"
CONFIG_SUFFIXES = (".yaml", ".yml")
#: A model name becomes part of DAG ids (``<name>__training``) and asset names: Airflow allows
#: letters, digits, ``_``, ``-`` and ``.`` in a DAG id (at most 250 characters in all).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
DEFAULT_START_DATE = "2026-01-01"
_OFF = {"", "none", "null", "off", "false"}

# Data paths a trigger form may override: each must stay inside data.data_roots (symlinks
# resolved).
PATH_KEYS = ("data.path", "lifecycle.batches", "lifecycle.labels")
# What run input may never change: where artifacts are written and read from (a run that could
# point the registry elsewhere could make a worker load a planted model), the folders run input
# is confined to, and how a passing candidate becomes the champion.
PROTECTED_KEYS = ("registry", "lifecycle.predictions", "lifecycle.reports", "lifecycle.alerts",
                  "data.data_roots", "promotion", "model.estimator", "tracking")


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


def training_schedule(configured: str | None = None) -> str | None:
    """Cron/preset of scheduled retraining: ``ML_LIFECYCLE_TRAINING_SCHEDULE`` when set, else
    ``configured`` (the config's ``lifecycle.training_schedule``); None: off."""
    raw = os.environ.get(TRAINING_SCHEDULE_ENV)
    raw = (configured or "") if raw is None else raw
    raw = raw.strip()
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


DAG_KINDS = {"training": "training", "scoring": "scoring", "drift": "drift_check"}


def dag_ids(name: str) -> dict[str, str]:
    """A model's DAG ids: ``{"training": "<name>__training", "scoring": ..., "drift": ...}``."""
    return {key: f"{name}__{suffix}" for key, suffix in DAG_KINDS.items()}


def config_error_dag_id(config_file: str | Path) -> str:
    """The stand-in DAG of a config that cannot be used: ``<file stem>__config_error``
    (characters a DAG id may not hold become ``_``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(config_file).stem)[:200] or "config"
    return f"{stem}__config_error"


@dataclass(frozen=True)
class ModelSpec:
    """One model the DAGs serve: its validated name and its config file (absolute)."""

    name: str
    config_file: str
    training_schedule: str | None = None
    #: ``(key, value)`` pairs this model must own alone: name, registry and output folders.
    owns: tuple[tuple[str, str], ...] = ()
    #: ``promotion.mode``: ``auto`` or ``approval`` (a human approves in Airflow).
    promotion: str = "auto"
    approval_timeout_hours: float = 72.0
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class BrokenConfig:
    """A config file the factory could not use, and why (shown on its stand-in DAG)."""

    config_file: str
    error: str


def configs_dir(project_root: str | Path | None = None) -> Path:
    """The configs folder: ``ML_LIFECYCLE_CONFIGS``, else ``<project_root>/configs``."""
    raw = os.environ.get(CONFIGS_ENV, "").strip()
    if raw:
        return Path(os.path.expanduser(raw)).absolute()
    if project_root is None:
        raise ValueError(f"no configs folder: set {CONFIGS_ENV} or pass the project root")
    return (Path(project_root) / DEFAULT_CONFIGS).absolute()


def config_files(folder: str | Path) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files of ``folder``, sorted (hidden files skipped).

    Raises:
        ConfigError: the folder is missing, not a folder, unreadable, or holds no config.
    """
    from ml_lifecycle.errors import ConfigError

    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"configs folder '{path}' does not exist or is not a folder "
                          f"(set {CONFIGS_ENV} to the folder of your model configs)")
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise ConfigError(f"configs folder '{path}' cannot be read: "
                          f"{exc.strerror or exc}") from None
    files = [p for p in entries if p.suffix in CONFIG_SUFFIXES and not p.name.startswith(".")
             and p.is_file()]
    if not files:
        raise ConfigError(f"configs folder '{path}' holds no model config (*.yaml or *.yml); "
                          "add one per model, e.g. a copy of configs/demo.yaml")
    return files


def check_model_name(name: str, config_file: str | Path) -> str:
    """Refuse a ``name`` that cannot be part of a DAG id, naming the file."""
    from ml_lifecycle.errors import ConfigError

    if not NAME_PATTERN.match(name) or "__" in name:
        raise ConfigError(
            f"{config_file}: name '{name}' cannot be part of a DAG id; expected 1-200 letters, "
            "digits, '_', '-' or '.', without a double underscore (it separates the name from "
            "the DAG kind, e.g. <name>__training)")
    return name


def read_spec(config_file: str | Path) -> ModelSpec:
    """Validate one config file (YAML + pydantic; no data is read) into a :class:`ModelSpec`.

    Raises:
        ConfigError: naming the file and the key.
    """
    from ml_lifecycle.config import load_config

    path = Path(config_file).absolute()
    cfg = load_config(path)
    owns = [("name", cfg.name), ("registry.root", cfg.registry.root)]
    owns += [(f"lifecycle.{key}", str(getattr(cfg.lifecycle, key)))
             for key in ("predictions", "reports", "alerts")]
    return ModelSpec(name=check_model_name(cfg.name, path), config_file=str(path),
                     training_schedule=cfg.lifecycle.training_schedule, owns=tuple(owns),
                     promotion=cfg.promotion.mode,
                     approval_timeout_hours=cfg.promotion.approval_timeout_hours,
                     approvers=tuple(cfg.promotion.approvers))


def discover(project_root: str | Path | None = None
             ) -> tuple[list[ModelSpec], list[BrokenConfig]]:
    """The models to serve, and the config files that could not be used.

    ``ML_LIFECYCLE_CONFIG`` (one file) wins over the folder. A broken file is reported, not
    raised, so the other models keep their DAGs. Two files with the same ``name``, or sharing
    their registry or an output folder, are both refused: each would read and overwrite the
    other's champion, policy state or reports.

    Raises:
        ConfigError: the configs folder itself is unusable (missing, unreadable, empty).
    """
    from ml_lifecycle.errors import MLLifecycleError

    single = os.environ.get(CONFIG_ENV, "").strip()
    if single:
        path = Path(os.path.expanduser(single))
        if not path.is_absolute() and project_root is not None:
            path = Path(project_root) / path
        files = [path]
    else:
        files = config_files(configs_dir(project_root))
    specs: list[ModelSpec] = []
    broken: list[BrokenConfig] = []
    for file in files:
        try:
            specs.append(read_spec(file))
        except (MLLifecycleError, OSError) as exc:
            broken.append(BrokenConfig(str(Path(file).absolute()), str(exc)))
    return _refuse_clashes(specs, broken)


def _refuse_clashes(specs: list[ModelSpec], broken: list[BrokenConfig]
                    ) -> tuple[list[ModelSpec], list[BrokenConfig]]:
    owners: dict[tuple[str, str], ModelSpec] = {}
    clashes: dict[str, str] = {}
    for spec in specs:
        for key, value in spec.owns:
            other = owners.setdefault((key, value), spec)
            if other is not spec:
                for mine, theirs in ((spec, other), (other, spec)):
                    clashes.setdefault(mine.config_file, (
                        f"{mine.config_file}: {key} '{value}' is also used by "
                        f"{theirs.config_file}; every model needs its own {key} (two models "
                        "would overwrite each other's champion, state or reports)"))
    kept = [s for s in specs if s.config_file not in clashes]
    return kept, [*broken, *(BrokenConfig(f, e) for f, e in clashes.items())]


def base_dir(config_file: str | Path) -> Path:
    """Folder that the relative paths of ``config_file`` resolve against."""
    from ml_lifecycle.config import base_dir as core_base_dir

    return core_base_dir(config_file)


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


SIGNING_CONN_ENV = "ML_LIFECYCLE_SIGNING_CONN_ID"
DEFAULT_SIGNING_CONN = "ml_lifecycle_signing"
_signing_looked_up: set[str] = set()  # connection ids already looked up by this process


def export_signing_keys() -> bool:
    """Make the model-signing keys of an Airflow Connection visible to the core.

    Unless ``ML_LIFECYCLE_SIGNING_KEY`` is already set, the Connection
    ``ML_LIFECYCLE_SIGNING_CONN_ID`` (default ``ml_lifecycle_signing``) is read, from the
    metadata database or any secrets backend: its login is the key id, its password the
    secret, and ``extra.old_keys`` lists the ``<id>:<secret>`` keys that still verify. It is
    exported to this process's environment for :mod:`ml_lifecycle.signing` (never logged).
    Returns whether keys were exported.

    Raises:
        ConfigError: ``ML_LIFECYCLE_SIGNING_CONN_ID`` names a connection that does not exist.
    """
    from ml_lifecycle.errors import ConfigError
    from ml_lifecycle.signing import KEY_ENV, OLD_KEYS_ENV

    if os.environ.get(KEY_ENV, "").strip():
        return False
    named = os.environ.get(SIGNING_CONN_ENV, "").strip()
    if (named or DEFAULT_SIGNING_CONN) in _signing_looked_up:
        return False  # looked up already (a task process is short-lived: one lookup)
    _signing_looked_up.add(named or DEFAULT_SIGNING_CONN)
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(named or DEFAULT_SIGNING_CONN)
    except Exception as exc:  # AirflowNotFoundException and friends
        if named:
            raise ConfigError(f"{SIGNING_CONN_ENV}={named}: the signing connection cannot be "
                              f"read ({type(exc).__name__}); create it or unset the "
                              "variable") from None
        return False
    if not conn.password:
        raise ConfigError(f"signing connection '{conn.conn_id}' has no password (the secret)")
    os.environ[KEY_ENV] = f"{conn.login or 'airflow'}:{conn.password}"
    old = (conn.extra_dejson or {}).get("old_keys") or []
    if old:
        os.environ[OLD_KEYS_ENV] = ",".join(str(k) for k in old)
    return True


MLFLOW_CONN_ENV = "ML_LIFECYCLE_MLFLOW_CONN_ID"


def export_mlflow_credentials() -> bool:
    """Make an MLflow tracking server's address and credentials in an Airflow Connection
    visible to MLflow's client (``tracking.mlflow``).

    ``ML_LIFECYCLE_MLFLOW_CONN_ID`` names the Connection (metadata database or any secrets
    backend): its URI (``http(s)://host:port/path``) becomes ``MLFLOW_TRACKING_URI`` unless
    that is set, its login/password ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``, or a password
    without a login ``MLFLOW_TRACKING_TOKEN``. Nothing is logged. Returns whether a Connection
    was read.

    Raises:
        ConfigError: the variable names a connection that does not exist.
    """
    from ml_lifecycle.errors import ConfigError

    named = os.environ.get(MLFLOW_CONN_ENV, "").strip()
    if not named:
        return False
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(named)
    except Exception as exc:  # AirflowNotFoundException and friends
        raise ConfigError(f"{MLFLOW_CONN_ENV}={named}: the MLflow connection cannot be read "
                          f"({type(exc).__name__})") from None
    if not os.environ.get("MLFLOW_TRACKING_URI") and conn.host:
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        host = conn.host if "://" in conn.host else f"{scheme}://{conn.host}"
        os.environ["MLFLOW_TRACKING_URI"] = host + (f":{conn.port}" if conn.port else "")
    if conn.login and conn.password:
        os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
        os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password
    elif conn.password:
        os.environ["MLFLOW_TRACKING_TOKEN"] = conn.password
    return True


def load_lifecycle_config(config_file: str | Path, overrides: list[str] | None = None
                          ) -> Config:
    """Load and validate a model's config (with trigger-form overrides) for a task.

    An override may not touch :data:`PROTECTED_KEYS` (the registry, the output folders, the data
    roots, the promotion policy): refused before anything is read. A data path it changes
    (:data:`PATH_KEYS`) must stay inside the data roots of the unmodified config, symlinks
    resolved.

    Raises:
        ConfigError: invalid file or override (names the key and the value).
        PathNotAllowedError: an overridden path points outside the allowed folders.
    """
    from ml_lifecycle.config import load_config, parse_override

    export_signing_keys()  # signed versions: the key from an Airflow Connection, if any
    export_mlflow_credentials()  # tracking.mlflow: the server and its credentials, if named
    from ml_lifecycle.data import ensure_inside_roots
    from ml_lifecycle.errors import ConfigError, PathNotAllowedError

    for item in overrides or []:
        key = ".".join(parse_override(item)[0])
        protected = next((p for p in PROTECTED_KEYS if key == p or key.startswith(p + ".")
                          or p.startswith(key + ".")), None)
        if protected:
            raise ConfigError(
                f"config override {key}: {protected} cannot be changed from run input (it "
                "decides where artifacts are written and read, how a candidate is promoted, "
                "or which code is imported); change it in the config file")
    cfg = load_config(config_file, overrides or [])
    if not overrides:
        return cfg
    original = load_config(config_file, [])
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
