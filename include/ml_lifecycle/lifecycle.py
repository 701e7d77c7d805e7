"""The running lifecycle's daily files: paths, label arrival, training windows, batch scoring.

Pure helpers (no Airflow) used by the DAGs, the demo and the tests. One simulated or real day is
a ``YYYY-MM-DD`` string. The layout comes from the config's ``lifecycle`` section::

    <batches>/<day><suffix>       that day's unlabelled batch
    <labels>/<day><suffix>        that day's labels (id + target), usable from
                                  day + label_delay_days
    <predictions>/<day>.csv       written by ``score_batch``: id, score, prediction, model_version

Label arrival is decided by the calendar, not by the clock: labels of day ``D`` count as
arrived on day ``X`` when their file exists and ``D + label_delay_days <= X``. Replaying history
(catch-up runs, the demo) therefore never uses a label "from the future".
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError, RegistryError
from .model_format import pickles_allowed
from .storage import as_path, is_file, list_folder

if TYPE_CHECKING:
    from .config import Config
    from .registry import Registry

DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PREDICTION_COLUMNS = ("score", "prediction", "model_version")


# --------------------------------------------------------------------------- days and paths


def as_day(value: str | dt.date | dt.datetime) -> str:
    """Normalise a date, a datetime (its UTC date) or a ``YYYY-MM-DD...`` string to ``YYYY-MM-DD``.

    Raises:
        DataError: the value is not a date.
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        raise DataError(f"day '{value}' is not a date in YYYY-MM-DD form") from None


def shift_day(day: str, days: int) -> str:
    """``day`` plus ``days`` (negative to go back)."""
    return (dt.date.fromisoformat(as_day(day)) + dt.timedelta(days=days)).isoformat()


def batch_path(cfg: Config, day: str) -> Path:
    return as_path(cfg.lifecycle.batches) / f"{as_day(day)}{cfg.lifecycle.file_suffix}"


def labels_path(cfg: Config, day: str) -> Path:
    return as_path(cfg.lifecycle.labels) / f"{as_day(day)}{cfg.lifecycle.file_suffix}"


def predictions_path(cfg: Config, day: str) -> Path:
    return as_path(cfg.lifecycle.predictions) / f"{as_day(day)}.csv"


def dated_files(folder: str | Path, suffix: str) -> dict[str, Path]:
    """``{day: path}`` of the ``<YYYY-MM-DD><suffix>`` files of a folder (missing folder: empty)."""
    found = {}
    for path in list_folder(folder):
        stem = path.name[: -len(suffix)] if path.name.endswith(suffix) else None
        if stem and DAY_RE.match(stem):
            found[stem] = path
    return dict(sorted(found.items()))


def label_arrival_day(cfg: Config, day: str) -> str:
    """The first day on which the labels of ``day`` may be used."""
    return shift_day(day, cfg.lifecycle.label_delay_days)


def arrived_labels(cfg: Config, as_of: str) -> dict[str, Path]:
    """``{day: labels file}`` of every day whose labels have arrived by ``as_of`` (inclusive)."""
    as_of = as_day(as_of)
    return {
        day: path
        for day, path in dated_files(cfg.lifecycle.labels, cfg.lifecycle.file_suffix).items()
        if label_arrival_day(cfg, day) <= as_of
    }


# --------------------------------------------------------------------------- training window


def training_window(
    cfg: Config,
    as_of: str,
    *,
    window_days: int | None = None,
    include_original: bool | None = None,
) -> dict[str, Any]:
    """The training window of a retrain on ``as_of``: labelled batches of the last N days.

    Args:
        cfg: validated config (``lifecycle`` section).
        as_of: the day the retrain happens; only labels arrived by then are used.
        window_days: look back this many days (default ``lifecycle.training_window_days``);
            0 uses no batch.
        include_original: also train on ``data.path`` (default ``lifecycle.include_original``).

    Returns:
        ``{"include_original": bool, "pairs": [[batch, labels], ...], "days": [...],
        "as_of": day, "window_days": N}`` -- the ``window`` argument of ``run_training`` plus
        what was decided (JSON-able, small).
    """
    as_of = as_day(as_of)
    n_days = cfg.lifecycle.training_window_days if window_days is None else int(window_days)
    if n_days < 0:
        raise DataError(f"training window: window_days must be >= 0, found {n_days}")
    original = cfg.lifecycle.include_original if include_original is None else include_original
    first = shift_day(as_of, -n_days)
    batches = dated_files(cfg.lifecycle.batches, cfg.lifecycle.file_suffix)
    pairs, days = [], []
    for day, labels in arrived_labels(cfg, as_of).items():
        if first <= day < as_of and day in batches:
            pairs.append([str(batches[day]), str(labels)])
            days.append(day)
    return {
        "include_original": bool(original),
        "pairs": pairs,
        "days": days,
        "as_of": as_of,
        "window_days": n_days,
    }


def training_cutoff(card: dict[str, Any] | None) -> str | None:
    """The last day of data a model was trained on (from its card), or None when unknown.

    Uses the latest of the card's ``data.time_max`` (time column) and the days of its training
    window's batch files.
    """
    if not card:
        return None
    data = card.get("data") or {}
    candidates = []
    if data.get("time_max"):
        try:
            candidates.append(as_day(str(data["time_max"])))
        except DataError:
            pass
    window = data.get("window") or {}
    for pair in window.get("pairs") or []:
        stem = Path(str(pair[0])).name[:10]
        if DAY_RE.match(stem):
            candidates.append(stem)
    return max(candidates) if candidates else None


def count_labelled_rows(cfg: Config, path: Path) -> int:
    """Rows of a labels file whose target is not missing."""
    from .data import read_file

    frame = read_file(path, cfg.data)
    if cfg.data.target not in frame.columns:
        raise DataError(
            f"labels file '{path}' lacks the target column '{cfg.data.target}'; "
            f"it has {list(frame.columns)[:20]}"
        )
    return int(frame[cfg.data.target].notna().sum())


def new_labels_since(cfg: Config, as_of: str, cutoff: str | None) -> dict[str, Any]:
    """Labelled rows that arrived by ``as_of`` for days after ``cutoff`` (None: every day).

    Returns:
        ``{"as_of", "cutoff", "rows", "days": {day: rows}}``.
    """
    per_day = {
        day: count_labelled_rows(cfg, path)
        for day, path in arrived_labels(cfg, as_of).items()
        if cutoff is None or day > cutoff
    }
    return {"as_of": as_day(as_of), "cutoff": cutoff, "rows": sum(per_day.values()),
            "days": per_day}


def new_labels_for_champion(
    cfg: Config, as_of: str, registry: Registry | None = None
) -> dict[str, Any]:
    """``new_labels_since`` the champion's training cut-off, plus ``champion`` (None if none)."""
    from .registry import open_registry

    registry = registry or open_registry(cfg.registry.root)
    champion = registry.champion()
    card = registry.get_card(champion) if champion is not None else None
    result = new_labels_since(cfg, as_of, training_cutoff(card))
    result["champion"] = champion
    return result


# --------------------------------------------------------------------------- drift-check inputs


def concept_pairs(cfg: Config, day: str, champion: int | None = None) -> list[tuple[str, str]]:
    """``(labels, predictions)`` file pairs the drift check of ``day`` may judge the model on.

    Past days (``drift.performance_window_days`` back at most) whose labels have arrived by
    ``day`` and whose predictions exist; with ``champion`` given, only days that model scored
    (after a promotion, the old model's errors are no evidence against the new one).
    """
    import pandas as pd

    from .drift.concept import judged_days

    day = as_day(day)
    candidates: dict[str, list[int] | None] = {}
    files: dict[str, tuple[str, str]] = {}
    for past, labels in arrived_labels(cfg, day).items():
        preds = predictions_path(cfg, past)
        if past > day or not is_file(preds):
            continue
        versions = None
        if champion is not None:
            column = pd.read_csv(str(preds), usecols=["model_version"])["model_version"]
            versions = [int(v) for v in column.dropna().unique()] if len(column) else []
        candidates[past] = versions
        files[past] = (str(labels), str(preds))
    chosen = judged_days(candidates, day=day, window_days=cfg.drift.performance_window_days,
                         recent_days=cfg.drift.performance_recent_days,
                         champion=champion)
    return [files[past] for past in chosen]


def model_data_time(card: dict[str, Any]) -> str | None:
    """When a model became available on the *data* clock: the end of its training as-of day.

    The training DAG records ``trigger.as_of`` (the day whose labels it trained on); a replay of
    history retrains days or months after that day, so the wall-clock ``created_at`` would put
    every model after every replayed check. Falls back to the training cut-off, then to
    ``created_at``.
    """
    trigger = card.get("trigger") or {}
    day = trigger.get("as_of") or training_cutoff(card)
    if day:
        return f"{shift_day(day, 1)}T00:00:00+00:00"
    return card.get("created_at")


class DataClockRegistry:
    """Read-only view of a :class:`Registry` whose cards report ``created_at`` on the data clock.

    The drift check's retrain policy compares the champion's creation time with its decision
    time (cooldown, "a newer champion resolved the pending trigger"). The DAGs decide on the
    data clock (the end of the checked day), so that re-running or replaying a day gives the
    same decision; this view makes the champion's time comparable (see ``model_data_time``).
    The wall-clock time stays in each card as ``registered_at``.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    @staticmethod
    def _on_data_clock(card: dict[str, Any]) -> dict[str, Any]:
        return {**card, "registered_at": card.get("created_at"),
                "created_at": model_data_time(card)}

    def get_card(self, version: int) -> dict[str, Any]:
        return self._on_data_clock(self._registry.get_card(version))

    def champion_card(self) -> dict[str, Any] | None:
        card = self._registry.champion_card()
        return None if card is None else self._on_data_clock(card)

    def list_versions(self) -> list[dict[str, Any]]:
        return [self._on_data_clock(c) for c in self._registry.list_versions()]


def day_end(day: str) -> dt.datetime:
    """Midnight UTC after ``day``: when the day's data is complete (the check's decision time)."""
    end = dt.date.fromisoformat(shift_day(day, 1))
    return dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC)


# --------------------------------------------------------------------------- batch scoring


def score_batch(cfg: Config, day: str, registry: Registry | None = None) -> dict[str, Any]:
    """Score ``day``'s batch with the champion; write ``<predictions>/<day>.csv`` atomically
    (:func:`score_file`; running it again for the same day rewrites the same file with the
    then champion).

    Returns:
        ``{"day", "path", "rows", "model_version", "mean_score", "positive_rate"}``.

    Raises:
        DataError: the batch file is missing or violates the schema (names the column).
        RegistryError: there is no champion yet.
    """
    day = as_day(day)
    path = batch_path(cfg, day)
    if not is_file(path):
        raise DataError(f"batch file '{path}' for {day} does not exist")
    return {"day": day, **score_file(cfg, path, predictions_path(cfg, day), registry=registry,
                                     what=f"score {day}", explain=cfg.lifecycle.explain_top_k)}


def score_file(cfg: Config, batch: Any, out: Any, *, registry: Registry | None = None,
               what: str = "score this batch", version: int | None = None,
               explain: int = 0) -> dict[str, Any]:
    """Score a batch (file, folder or glob) with the champion and write its predictions.

    The one scoring path of the package: the scoring DAG (:func:`score_batch`) and
    ``ml-lifecycle score`` both come here. The output CSV holds the id column (or ``row`` when
    the config has none), ``score`` (probability of the positive class, or the regression
    prediction), ``prediction`` (0/1 with the champion's validation-chosen threshold, or the
    prediction) and ``model_version``; it is written atomically. ``explain`` = K > 0 adds each
    row's K largest SHAP contributions (:func:`~ml_lifecycle.shap_explain.explain_columns`).

    Returns:
        ``{"path", "rows", "model_version", "mean_score", "positive_rate"}``.

    Raises:
        DataError: the batch is missing or violates the schema (names the column).
        RegistryError: there is no champion yet.
    """
    import pandas as pd

    from .data import load_table
    from .io import atomic_write_text
    from .registry import open_registry
    from .scoring import multiclass_predictions, predict_labels, predict_scores

    registry = registry or open_registry(cfg.registry.root)
    version = registry.champion() if version is None else version  # a shadow: an earlier one
    if version is None:
        raise RegistryError(
            f"registry {cfg.registry.root}: there is no champion to {what} with; "
            "run the training DAG (or `python -m ml_lifecycle train`) first"
        )
    card = registry.get_card(version)
    n_features = len(cfg.data.features.all)
    if explain and not 0 < explain <= n_features:
        raise DataError(f"--explain {explain}: the model has {n_features} input features; "
                        f"ask for 1 to {n_features} (or 0: no explanations)")
    model = registry.load_model(version, allow_pickle=pickles_allowed(cfg))
    frame = load_table(cfg.data, str(batch), require_target=False)
    scores = predict_scores(model, frame[cfg.data.features.all], cfg.task)
    id_name = cfg.data.id_column or "row"
    ids = frame[cfg.data.id_column] if cfg.data.id_column else range(len(frame))
    extra = _explanations(cfg, registry, version, model, frame, explain) if explain else {}
    if cfg.task == "multiclass":
        table = multiclass_predictions(card, scores, id_name, ids, version)
        table = table.assign(**extra) if extra else table
        atomic_write_text(out, table.to_csv(index=False, lineterminator="\n"))
        return {"path": str(out), "rows": len(table), "model_version": version,
                "mean_score": round(float(table["score"].mean()), 6) if len(table) else None,
                "positive_rate": None,
                "predicted_shares": {str(k): round(float(v), 6) for k, v in
                                     table["prediction"].value_counts(normalize=True).items()}}
    if cfg.task == "classification":
        predictions = predict_labels(scores, float(card.get("threshold") or 0.5))
    else:
        predictions = scores
    table = pd.DataFrame({id_name: ids, "score": scores, "prediction": predictions,
                          "model_version": version, **extra})
    atomic_write_text(out, table.to_csv(index=False, lineterminator="\n"))
    return {
        "path": str(out),
        "rows": len(table),
        "model_version": version,
        "mean_score": round(float(scores.mean()), 6) if len(table) else None,
        "positive_rate": (round(float(predictions.mean()), 6)
                          if cfg.task == "classification" and len(table) else None),
    }


def _explanations(cfg: Config, registry: Any, version: int, model: Any, frame: Any,
                  k: int) -> dict[str, Any]:
    """The ``explain_<r>_*`` columns of the ``k`` largest SHAP contributions per row."""
    import io

    import pandas as pd

    from .errors import RegistryError
    from .shap_explain import BACKGROUND_FILE, ShapExplainer, explain_columns

    try:  # checked against the card's sha256, like every artifact
        background = pd.read_parquet(io.BytesIO(registry.read_artifact(version,
                                                                       BACKGROUND_FILE)))
    except RegistryError:
        background = None  # a version stored before explanations: tree models still work
    try:
        explainer = ShapExplainer(cfg, model, background).fit()
    except ValueError as exc:
        raise DataError(f"--explain: model v{version} cannot be explained ({exc})") from None
    explanation = explainer.explain(frame.reset_index(drop=True))
    return explain_columns(explanation, frame.reset_index(drop=True), k)


def live_metric(cfg: Config, day: str, as_of: str | None = None) -> dict[str, Any] | None:
    """The deployed model's metric on ``day`` once its labels have arrived (by ``as_of``).

    Joins ``<predictions>/<day>.csv`` with the day's labels on the id column. The metric is
    ``drift.performance_metric`` (default ROC-AUC for classification, RMSE for regression).

    Returns:
        ``{"day", "metric", "value", "rows", "model_version"}``, or None when the predictions or
        the labels are not there (yet).
    """
    import numpy as np
    import pandas as pd

    from .data import attach_labels, read_file
    from .metrics import compute_metric
    from .train import encode_target

    day = as_day(day)
    if as_of is not None and label_arrival_day(cfg, day) > as_day(as_of):
        return None
    preds_file, labels_file = predictions_path(cfg, day), labels_path(cfg, day)
    if not is_file(preds_file) or not is_file(labels_file) or not cfg.data.id_column:
        return None
    preds = pd.read_csv(str(preds_file))
    labels = read_file(labels_file, cfg.data)
    joined = attach_labels(preds, labels, id_column=cfg.data.id_column, target=cfg.data.target,
                           source=f"labels file '{labels_file}'")
    joined = joined[joined[cfg.data.target].notna()]
    if joined.empty:
        return None
    from .drift.concept import DEFAULT_METRIC, multiclass_rows, probability_columns

    metric = cfg.drift.performance_metric or DEFAULT_METRIC[cfg.task]
    if cfg.task == "multiclass":
        y, scores = multiclass_rows(joined, cfg, probability_columns(joined))
        known = np.isfinite(y)
        y, scores, joined = y[known], scores[known], joined[known]
        if len(set(y.tolist())) < 2:
            return None
    else:
        y, _ = encode_target(joined, cfg)
        scores = joined["score"].to_numpy(dtype=float)
        if cfg.task == "classification" and len(set(y.tolist())) < 2:
            return None
    versions = sorted({int(v) for v in joined["model_version"].dropna()})
    value = compute_metric(cfg.task, metric, y, scores, 0.5)
    return {"day": day, "metric": metric, "value": round(float(value), 6), "rows": len(joined),
            "model_version": versions[0] if len(versions) == 1 else versions}
