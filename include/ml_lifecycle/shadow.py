"""Shadow scoring of the previous champion, and automatic rollback on live evidence.

After a promotion, the champion it replaced keeps scoring each day's batch for
``policy.shadow_days`` days: its predictions go to
``<lifecycle.predictions>/shadow/v<new>_vs_v<previous>/<day>.csv`` beside the champion's own.
Once labels arrive for those days, :func:`compare_shadow` joins both models' scores with the labels
on the id column and measures ``metric(champion) - metric(previous)`` on the *same rows* with a
paired bootstrap (``metrics.paired_bootstrap``). The new champion is **worse** when at least
``policy.rollback_min_rows`` labelled rows were compared, the whole interval of the difference
lies on the wrong side of zero, and its point estimate is worse than the tolerance
(``policy.rollback_tolerance``, default ``gate.champion_tolerance``), in the metric's own direction.

With ``policy.auto_rollback: true``, :func:`maybe_rollback` then makes the previous champion the
champion again: a compare-and-swap ``rollback`` event in the promotion history, whose reason
holds the evidence. A rollback ends the shadow period (the latest champion move is no longer a
promotion), so it happens once. Pitfall avoided: comparing each model's metric on its own test
split (different rows) says little; the paired comparison on the same live rows is the evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Config
from .errors import RegistryError
from .lifecycle import (
    as_day,
    batch_path,
    dated_files,
    label_arrival_day,
    labels_path,
    predictions_path,
    score_file,
)
from .metric_names import higher_is_better
from .storage import as_path, is_file


def shadow_pair(registry: Any) -> tuple[int, int] | None:
    """``(champion, previous champion)`` when the latest champion move was a promotion over an
    earlier champion; None otherwise (first model, or the latest move was a rollback)."""
    history = registry.history()
    if not history:
        return None
    last = history[-1]
    if last.get("event") != "promote" or not isinstance(last.get("previous"), int):
        return None
    return int(last["version"]), int(last["previous"])


def shadow_folder(cfg: Config, pair: tuple[int, int]) -> Path:
    new, previous = pair
    return as_path(cfg.lifecycle.predictions) / "shadow" / f"v{new:04d}_vs_v{previous:04d}"


def score_shadow(cfg: Config, day: str, registry: Any) -> dict[str, Any] | None:
    """Score ``day``'s batch with the previous champion while the shadow period lasts.

    Returns:
        :func:`lifecycle.score_file`'s summary with ``day`` and ``pair``, or None (no shadow:
        ``policy.shadow_days`` is 0, no previous champion, or the period is over).
    """
    day = as_day(day)
    pair = shadow_pair(registry)
    if pair is None or cfg.policy.shadow_days <= 0:
        return None
    folder = shadow_folder(cfg, pair)
    scored = dated_files(folder, ".csv")
    if day not in scored and len(scored) >= cfg.policy.shadow_days:
        return None
    summary = score_file(cfg, batch_path(cfg, day), folder / f"{day}.csv", registry=registry,
                         version=pair[1], what=f"shadow-score {day}")
    return {"day": day, "pair": list(pair), **summary}


def _joined_rows(cfg: Config, pair: tuple[int, int], as_of: str) -> tuple[Any, list[str]]:
    """Labelled rows scored by both models (days whose labels arrived by ``as_of``)."""
    import pandas as pd

    from .data import attach_labels, read_file
    from .drift.concept import probability_columns

    frames, days = [], []
    id_col = cfg.data.id_column
    for day, shadow_file in sorted(dated_files(shadow_folder(cfg, pair), ".csv").items()):
        champion_file, labels_file = predictions_path(cfg, day), labels_path(cfg, day)
        if (label_arrival_day(cfg, day) > as_of or not is_file(champion_file)
                or not is_file(labels_file)):
            continue
        champion = pd.read_csv(str(champion_file))
        champion = champion[champion["model_version"] == pair[0]]
        shadow = pd.read_csv(str(shadow_file))
        # multiclass: the class probabilities (both models' classes, which may differ)
        columns = ["score", *probability_columns(champion)]
        previous = ["score", *probability_columns(shadow)]
        shadow = shadow[[id_col, *previous]].rename(
            columns={c: f"previous_{c}" for c in previous})
        both = champion[[id_col, *columns]].astype({id_col: str}).merge(
            shadow.astype({id_col: str}), on=id_col, how="inner")
        labelled = attach_labels(both, read_file(labels_file, cfg.data), id_column=id_col,
                                 target=cfg.data.target, source=f"labels file '{labels_file}'")
        labelled = labelled[labelled[cfg.data.target].notna()]
        if len(labelled):
            frames.append(labelled)
            days.append(day)
    return (pd.concat(frames, ignore_index=True) if frames else None), days


def compare_shadow(cfg: Config, as_of: str, registry: Any) -> dict[str, Any] | None:
    """The paired live comparison of the champion with the champion it replaced.

    Returns:
        None without a shadow pair; else ``{"pair", "metric", "days", "rows", "difference",
        "low", "high", "tolerance", "min_rows", "worse", "why"}`` (``difference`` =
        champion - previous, positive is better for higher-is-better metrics).
    """
    import numpy as np

    from .metrics import compute_metric, paired_bootstrap
    from .train import encode_target

    pair = shadow_pair(registry)
    if pair is None or not cfg.data.id_column:
        return None
    as_of = as_day(as_of)
    from .drift.concept import DEFAULT_METRIC, multiclass_rows, probability_columns

    metric = cfg.drift.performance_metric or DEFAULT_METRIC[cfg.task]
    tolerance = (cfg.policy.rollback_tolerance if cfg.policy.rollback_tolerance is not None
                 else cfg.gate.champion_tolerance)
    out: dict[str, Any] = {"pair": list(pair), "metric": metric, "days": [], "rows": 0,
                           "difference": None, "low": None, "high": None,
                           "tolerance": tolerance, "min_rows": cfg.policy.rollback_min_rows,
                           "worse": False}
    frame, days = _joined_rows(cfg, pair, as_of)
    out["days"] = days
    if frame is None:
        out["why"] = "no labelled day scored by both models yet"
        return out
    card = registry.get_card(pair[0])
    if cfg.task == "multiclass":
        columns = probability_columns(frame)
        previous = probability_columns(frame, "previous_proba_")
        if [c.removeprefix("proba_") for c in columns] != \
                [c.removeprefix("previous_proba_") for c in previous]:
            out["why"] = "the two models predict different classes: no paired comparison"
            return out
        y, new = multiclass_rows(frame, cfg, columns)
        old = frame[previous].to_numpy(dtype=float)
        known = np.isfinite(y)
        y, new, old = y[known], new[known], old[known]
    else:
        y, _ = encode_target(frame, cfg, positive_label=card.get("positive_label"))
        new = frame["score"].to_numpy(dtype=float)
        old = frame["previous_score"].to_numpy(dtype=float)
    out["rows"] = len(y)
    if cfg.is_classifier and len(np.unique(y)) < 2:
        out["why"] = "the labelled rows hold one class only"
        return out
    diff = (compute_metric(cfg.task, metric, y, new, 0.5)
            - compute_metric(cfg.task, metric, y, old, 0.5))
    reps = paired_bootstrap(metric, y, new, old, n_boot=cfg.gate.bootstrap, seed=cfg.gate.seed)
    low, high = (float(np.quantile(reps, 0.025)), float(np.quantile(reps, 0.975))) \
        if len(reps) else (float("nan"), float("nan"))
    out.update(difference=round(float(diff), 6), low=round(low, 6), high=round(high, 6))
    sign = 1.0 if higher_is_better(metric) else -1.0  # > 0: the champion is better
    worse = (len(y) >= cfg.policy.rollback_min_rows and sign * high < 0
             and sign * diff < -tolerance)
    out["worse"] = bool(worse)
    out["why"] = (
        f"on {len(y)} labelled rows of {len(days)} day(s) scored by both, {metric} of "
        f"v{pair[0]} minus v{pair[1]} = {diff:+.4f} [{low:+.4f}, {high:+.4f}] (paired "
        f"bootstrap, 95 %); rollback when worse than {tolerance:g} with the whole interval "
        f"below zero and at least {cfg.policy.rollback_min_rows} rows")
    return out


def maybe_rollback(cfg: Config, as_of: str, registry: Any, *, actor: str = "auto-rollback"
                   ) -> dict[str, Any] | None:
    """Compare, and roll back when the champion is worse and ``policy.auto_rollback`` is on.

    Returns:
        :func:`compare_shadow`'s dict plus ``rolled_back`` (and ``event``, the history event),
        or None without a shadow pair.

    Raises:
        RegistryError: the champion changed meanwhile (compare-and-swap); nothing is changed.
    """
    result = compare_shadow(cfg, as_of, registry)
    if result is None:
        return None
    result["rolled_back"] = False
    if result["worse"] and cfg.policy.auto_rollback:
        new, previous = result["pair"]
        if registry.champion() != new:
            raise RegistryError(f"registry {cfg.registry.root}: not rolling back v{new}: it is "
                                "no longer the champion")
        event = registry.rollback(previous,
                                  reason=f"automatic rollback ({as_day(as_of)}): {result['why']}",
                                  actor=actor, expected_champion=new)
        from .mlflow_export import sync_champion

        result.update(rolled_back=True, event=event, mlflow=sync_champion(cfg, registry))
    return result
