"""Reusable sensors: a day's batch file, and enough new labels for a retrain.

Both run in ``reschedule`` mode: between pokes they free their worker slot (the task shows
``up_for_reschedule``). Their timeout can be set per run from a param (minutes), and a timeout
ends with a message that names what was missing:

* ``BatchFileSensor`` fails (``AirflowSensorTimeout``, no retry): "no batch file <path> for
  <day> after N minutes"; the task-failure alert fires.
* ``NewLabelsSensor`` is ``soft_fail``: on timeout the task is **skipped** with "only N of M
  labelled rows ...", so training, gate and promotion are skipped and the champion stays as it
  is; the DAG run itself succeeds (nothing is broken, there was just not enough new truth).
  Attach an ``on_skipped_callback`` notifier to be told.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

SKIP_REASON_KEY = "skip_reason"


def _minutes_to_seconds(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value) * 60.0


class _TimeoutFromParams(BaseSensorOperator):
    """Sensor whose ``timeout`` may come from a templated ``timeout_minutes`` field."""

    def __init__(self, *, timeout_minutes: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.timeout_minutes = timeout_minutes

    def _apply_timeout(self) -> None:
        seconds = _minutes_to_seconds(self.timeout_minutes)
        if seconds is not None:
            self.timeout = seconds
            # A short wait (tests, replays) should still poke a few times before giving up.
            self.poke_interval = max(1.0, min(self.poke_interval, seconds / 5.0))


class BatchFileSensor(_TimeoutFromParams):
    """Wait for ``<lifecycle.batches>/<day><suffix>`` of the run's day.

    Args:
        config_file: used to find the config.
        timeout_minutes: templated; overrides ``timeout``
            (e.g. ``{{ params.batch_wait_minutes }}``).

    Returns (XCom): ``{"day", "path"}``.
    """

    template_fields = ("timeout_minutes",)
    ui_color = "#e8f4fd"

    def __init__(self, *, config_file: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_file = str(config_file)
        self._looked_for: tuple[str, str] | None = None

    def execute(self, context: Any) -> Any:
        self._apply_timeout()
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            day, path = self._looked_for or ("?", "?")
            raise AirflowSensorTimeout(
                f"no batch file {path} for {day} after {self.timeout / 60:g} minutes; "
                "expected the day's batch in lifecycle.batches (check the upstream export)"
            ) from None

    def poke(self, context: Any) -> PokeReturnValue:
        from ml_lifecycle.lifecycle import batch_path

        from .params import run_day
        from .settings import load_lifecycle_config

        cfg = load_lifecycle_config(self.config_file)
        day = run_day(context)
        path = batch_path(cfg, day)
        self._looked_for = (day, str(path))
        from ml_lifecycle.storage import is_file

        found = is_file(path)
        self.log.info("batch for %s at %s: %s", day, path, "found" if found else "not yet")
        return PokeReturnValue(found, {"day": day, "path": str(path)})


class NewLabelsSensor(_TimeoutFromParams):
    """Wait until enough labelled rows arrived since the champion's training cut-off.

    Counts the rows of the label files that are due by ``as_of`` (labels of day D are due from
    D + ``lifecycle.label_delay_days``) for days after the last day the champion was trained on.
    ``as_of`` stays the run's day for the whole wait (no wall-clock drift); what changes while
    it waits is which label files exist: the ones that arrive are counted here and trained on by
    ``train_candidate``, which picks the window after this sensor.
    Passes at once when ``force`` is true or there is no champion yet (first training).

    Args:
        config_file: used to find the config.
        as_of: templated day ``YYYY-MM-DD`` the retrain is for.
        force: templated bool; true skips the wait.
        config_overrides: templated list of ``dotted.key=value`` strings.
        min_new_labels: rows needed; None reads ``lifecycle.min_new_labels``.
        timeout_minutes: templated; overrides ``timeout``.

    Returns (XCom): ``{"rows", "needed", "cutoff", "champion", "as_of", "forced"}``.
    """

    template_fields = ("as_of", "force", "config_overrides", "timeout_minutes")
    ui_color = "#fdf5e8"

    def __init__(
        self,
        *,
        config_file: str | Path,
        as_of: Any,
        force: Any = False,
        config_overrides: Any = None,
        min_new_labels: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("soft_fail", True)
        super().__init__(**kwargs)
        self.config_file = str(config_file)
        self.as_of = as_of
        self.force = force
        self.config_overrides = config_overrides
        self.min_new_labels = min_new_labels
        self._last: dict[str, Any] | None = None

    def execute(self, context: Any) -> Any:
        self._apply_timeout()
        try:
            return super().execute(context)
        except (AirflowSkipException, AirflowSensorTimeout) as exc:
            last = self._last or {}
            if not last:
                raise
            message = (
                f"retrain skipped: only {last.get('rows')} of {last.get('needed')} labelled rows "
                f"arrived after the champion's cut-off {last.get('cutoff')} (as of "
                f"{last.get('as_of')}) within {self.timeout / 60:g} minutes; the champion is "
                "unchanged. Trigger with force=true to retrain anyway."
            )
            if isinstance(exc, AirflowSkipException):
                context["ti"].xcom_push(key=SKIP_REASON_KEY, value=message)
                raise AirflowSkipException(message) from None
            raise AirflowSensorTimeout(message) from None

    def _effective_as_of(self, context: Any) -> str:
        """The request's as-of day (the run's logical date or requested day): fixed for the
        whole wait, never moved by the wall clock, so a re-run counts the same days. Label files
        of those days that arrive during the wait are counted, and used by the training."""
        from ml_lifecycle.lifecycle import as_day

        return as_day(str(self.as_of))

    def poke(self, context: Any) -> PokeReturnValue:
        from ml_lifecycle.lifecycle import new_labels_for_champion

        from .settings import load_lifecycle_config

        cfg = load_lifecycle_config(self.config_file, list(self.config_overrides or []))
        needed = (cfg.lifecycle.min_new_labels if self.min_new_labels is None
                  else int(self.min_new_labels))
        as_of = self._effective_as_of(context)
        forced = self.force is True or str(self.force).lower() == "true"
        counted = new_labels_for_champion(cfg, as_of)
        result = {"rows": counted["rows"], "needed": needed, "cutoff": counted["cutoff"],
                  "champion": counted["champion"], "as_of": as_of, "forced": forced,
                  "days": len(counted["days"])}
        self._last = result
        done = forced or counted["champion"] is None or counted["rows"] >= needed
        self.log.info(
            "new labels since the champion's cut-off %s as of %s: %d rows in %d day(s), need "
            "%d%s -> %s", counted["cutoff"], as_of, counted["rows"], len(counted["days"]), needed,
            " (forced)" if forced else "", "go" if done else "wait")
        return PokeReturnValue(done, result)
