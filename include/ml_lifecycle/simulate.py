"""Seeded, deterministic demo data: "late delivery" prediction with a scheduled drift story.

``simulate(out_dir)`` writes a realistic tabular binary-classification problem (target ``late``,
about 13% positive in the reference period) in the layout the lifecycle consumes:

```
out_dir/
  train.csv                 initial training table (60 days before start_date, with labels)
  batches/<YYYY-MM-DD>.csv  one unlabeled batch per simulated day
  labels/<YYYY-MM-DD>.csv   that day's labels (order_id, late), available label_delay_days later
  manifest.json             the schedule: files, label arrival dates, columns
  ground_truth.json         what changes when (for demos and tests, never read by the lifecycle)
```

The story:

* days ``< shift_day`` are drawn from exactly the distribution of ``train.csv`` (but see the
  optional harmless shift below);
* from ``shift_day`` on (covariate shift, "winter + suburban expansion"): longer distances
  (+30%), the ``suburbs`` region grows from 6% to 30% of orders, rain/snow/storm become common,
  it is colder, a quarter of the orders come from new merchants and ``prep_time_min`` is unknown
  (sentinel 0) more often. The feature -> label relation is unchanged (but more orders are late);
* from ``concept_day`` on (concept change, "low-emission zone + new dispatch rule"): vans in the
  ``suburbs`` and ``center`` regions become very late, heavy packages no longer slow bikes, rain no
  longer matters, experienced couriers get the hardest orders (experience stops protecting) and
  late-night orders become late. A model trained before the change loses ROC-AUC clearly; a
  model retrained on post-change labels recovers.

Optionally (``harmless_day``), the days ``harmless_day <= day < min(shift_day, concept_day)`` carry
a **harmless shift** ("harbor hub + afternoon dispatch + cool dry spell"): ``region``,
``hour_of_day`` and ``temperature_c`` move clearly, every value stays inside the range and
categories of ``train.csv``, and the label is drawn from the same feature -> label relation. Each
move is chosen so that an order's true probability of being late barely changes (see
:data:`HARMLESS_DESCRIPTION`), so a data-drift check flags the moved features while a model
trained on ``train.csv`` keeps its ROC-AUC (within 0.01 of the same days without the shift,
tests/test_simulate.py) and its mean score moves by about 0.01 at most: retraining on these days
is wasted. The moved features carry a small share of the model's permutation importance (8-12 %
for demo-config models, next to the default ``drift.importance_drift_share`` of 0.1), so whether
the batch as a whole is called drifted depends on the trained model.

All randomness comes from ``numpy.random.default_rng`` seeded with ``[seed, stream, index]``, so
the same arguments give byte-identical files, and day ``k``'s rows do not depend on ``days``. The
harmless shift draws its own randomness from a separate stream and otherwise transforms the day's
draws, so ``harmless_day=None`` (the default) writes exactly the files of a simulator without it,
and a harmless day has the same rows as the clean day it replaces except for the moved features
(and the label of the odd re-zoned order, whose probability moved by 0.05 logit).
The core package never imports Airflow; the CLI entry point is :func:`cli_main`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .io import atomic_write_json, atomic_write_text

# --------------------------------------------------------------------------- schema

TARGET = "late"
ID_COLUMN = "order_id"
TIME_COLUMN = "order_date"
NUMERIC_FEATURES = [
    "distance_km",
    "package_weight_kg",
    "courier_experience_months",
    "items_count",
    "prep_time_min",
    "temperature_c",
    "hour_of_day",
]
CATEGORICAL_FEATURES = ["region", "vehicle", "weather", "merchant_id"]
FEATURES = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
SENTINELS: dict[str, list[int]] = {"prep_time_min": [0]}

REGIONS = ["center", "north", "south", "east", "west", "harbor", "airport", "suburbs"]
REGION_P_BASE = np.array([0.24, 0.16, 0.15, 0.13, 0.12, 0.08, 0.06, 0.06])
REGION_P_SHIFT = np.array([0.17, 0.11, 0.10, 0.09, 0.09, 0.08, 0.06, 0.30])
REGION_EFFECT = np.array([0.35, 0.0, -0.1, 0.05, -0.15, 0.3, 0.2, 0.25])

VEHICLES = ["bike", "scooter", "car", "van"]
VEHICLE_P = np.array([0.30, 0.32, 0.25, 0.13])
VEHICLE_DISTANCE = np.array([0.70, 1.00, 1.35, 1.50])  # distance multiplier per vehicle

WEATHERS = ["clear", "cloudy", "rain", "storm", "snow"]
WEATHER_P_BASE = np.array([0.50, 0.27, 0.15, 0.04, 0.04])
WEATHER_P_SHIFT = np.array([0.30, 0.26, 0.28, 0.06, 0.10])
WEATHER_TEMP = np.array([3.0, 0.0, -2.0, -3.0, -12.0])  # temperature offset per weather

N_MERCHANTS = 400
N_NEW_MERCHANTS = 80
MERCHANT_ZIPF = 0.9
PREP_UNKNOWN_SHARE = 0.08  # prep_time_min recorded as the sentinel 0 ("unknown")

TRAIN_HISTORY_DAYS = 60
SHIFT_DISTANCE_FACTOR = 1.30
SHIFT_TEMPERATURE_DELTA = -4.0
SHIFT_NEW_MERCHANT_SHARE = 0.25
SHIFT_PREP_UNKNOWN_SHARE = 0.25  # new merchants' tills do not report preparation time
CONCEPT_FEATURES = [
    "vehicle",
    "region",
    "package_weight_kg",
    "weather",
    "courier_experience_months",
    "hour_of_day",
    "distance_km",
]
SHIFTED_FEATURES = [
    "distance_km",
    "region",
    "weather",
    "temperature_c",
    "merchant_id",
    "prep_time_min",
]

# The harmless shift (days harmless_day .. min(shift_day, concept_day) - 1). Each move keeps an
# order's true logit unchanged (hour, temperature) or changes it by 0.05 (region) under the
# reference relation, the only one in force on these days (the concept-change relation has a
# 'center' low-emission zone for vans, which re-zoning would dodge).
# Re-zoning: share of the orders of region key that are now booked under region value ('harbor'
# is 0.05 logit less risky than 'center'; neither acts through distance or an interaction).
HARMLESS_REZONING: dict[str, tuple[str, float]] = {"center": ("harbor", 0.60)}
# Afternoon dispatch: hours without any rush/late-night effect (in either relation) move to other
# such hours (night 3-7h, morning 8-10h and 21h orders are dispatched at 14-16h).
HARMLESS_HOUR_MAP: dict[int, int] = {
    3: 14,
    4: 14,
    5: 15,
    6: 15,
    7: 16,
    8: 14,
    9: 15,
    10: 15,
    21: 16,
}
# Cool dry spell: temperatures above the label's neutral point are mirrored below it (the label
# depends on temperature only through (temperature - 14)^2; weather is unchanged).
HARMLESS_TEMPERATURE_PIVOT = 14.0
HARMLESS_FEATURES = ["region", "hour_of_day", "temperature_c"]
HARMLESS_DESCRIPTION = (
    "Harmless shift ('harbor hub + afternoon dispatch + cool dry spell') from harmless_shift_day "
    "until harmless_shift_end_day (the covariate shift or the concept change, whichever comes "
    "first): 60% of the 'center' orders are booked under the new 'harbor' hub (the two regions "
    "differ by 0.05 logit), orders of the 3-10h and 21h slots are dispatched at 14-16h (no rush "
    "or late-night effect in any of these hours) and temperatures above 14 C are mirrored below "
    "it (the label depends on (temperature_c - 14)^2 only; weather is unchanged). Every value "
    "stays inside the range/categories of train.csv, the feature->label relation is that of the "
    "reference period, and each order's true probability of being late is (almost) unchanged: "
    "the inputs drift, the model is not hurt."
)

# RNG streams: default_rng([seed, stream, index]).
_STREAM_WORLD = 0
_STREAM_TRAIN = 1
_STREAM_DAY = 2
_STREAM_HARMLESS = 3  # only drawn from on harmless days

_DATE_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.csv$")

# Intercepts tuned for a positive rate of ~13% in the reference period, ~25% during the covariate
# shift (longer distances and worse weather really make orders later) and back to ~14% after the
# concept change (with the shift still in place), so PR-AUC before/after the change is comparable.
_INTERCEPT_BASE = -3.55
_INTERCEPT_CONCEPT = -4.45

DESCRIPTION = (
    "Covariate shift ('winter + suburban expansion') from covariate_shift_day: distance_km "
    "x1.3, region 'suburbs' grows from 6% to 30% of orders, rain/storm/snow become common, "
    "temperature_c drops by ~5 C, 25% of orders come from 80 merchants never seen before and "
    "prep_time_min is unknown (sentinel 0) for 25% of orders instead of 8%. The feature->label "
    "relation is unchanged, but the positive rate rises (~13% -> ~25%) and a model trained on "
    "the reference data loses a little against a refreshed one (unseen merchants, less "
    "information, more orders in sparsely trained regions such as bikes in snow). Concept change "
    "('low-emission zone + new dispatch rule') from concept_change_day: vans in 'suburbs' and "
    "'center' become very late, heavy packages no longer slow bikes/scooters, rain no longer "
    "matters, distance matters much less, courier experience no longer protects (experienced "
    "couriers get the hardest orders) and late-night orders (22h-2h) become late; the positive "
    "rate falls back to ~14%."
)


@dataclass(frozen=True)
class _World:
    """Fixed properties of the simulated city, shared by every day (merchant popularity/speed)."""

    merchant_ids: np.ndarray  # N_MERCHANTS established + N_NEW_MERCHANTS opening at the shift
    merchant_p: np.ndarray  # popularity of the established merchants
    new_merchant_p: np.ndarray  # popularity of the new merchants
    merchant_effect: np.ndarray  # logit offset of each merchant (how slow it prepares orders)


def _make_world(seed: int) -> _World:
    rng = np.random.default_rng([seed, _STREAM_WORLD, 0])

    def zipf(count: int) -> np.ndarray:
        weights = np.arange(1, count + 1, dtype=float) ** -MERCHANT_ZIPF
        # Popularity rank is shuffled so that merchant ids do not reveal it.
        return (weights / weights.sum())[rng.permutation(count)]

    merchant_p = zipf(N_MERCHANTS)
    new_merchant_p = zipf(N_NEW_MERCHANTS)
    total = N_MERCHANTS + N_NEW_MERCHANTS
    merchant_effect = rng.normal(0.0, 0.6, size=total)
    merchant_ids = np.array([f"M{i:04d}" for i in range(1, total + 1)], dtype=object)
    return _World(merchant_ids, merchant_p, new_merchant_p, merchant_effect)


@dataclass(frozen=True)
class _HarmlessShift:
    """What a harmless day needs besides the day's generator: its own randomness and the
    training support the moved values must stay in."""

    rng: np.random.Generator  # separate stream: the day's own draws stay those of a clean day
    low: dict[str, float]  # training minimum of each moved numeric feature
    high: dict[str, float]  # training maximum of each moved numeric feature
    regions: frozenset[str]  # regions present in the training table


def _training_support(
    train: pd.DataFrame,
) -> tuple[dict[str, float], dict[str, float], frozenset[str]]:
    """Range of the moved numeric features and the regions of the training table."""
    numeric = [f for f in HARMLESS_FEATURES if f in NUMERIC_FEATURES]
    low = {f: float(train[f].min()) for f in numeric}
    high = {f: float(train[f].max()) for f in numeric}
    return low, high, frozenset(train["region"].dropna().unique())


def _apply_harmless_shift(
    shift: _HarmlessShift,
    region: np.ndarray,
    temperature: np.ndarray,
    hour: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move the harmless features of a day's draws (before its labels are drawn).

    Args:
        shift: the harmless day's generator and the training support.
        region: region indices.
        temperature: the rounded temperatures the data records.
        hour: integer hours.

    Returns:
        ``(region, temperature, hour)`` after the move: every moved value lies inside the
        training support; the others are those of the clean day.
    """
    # Re-zoning (the only random move: which orders of a zone are re-booked).
    moved_region = region.copy()
    draw = shift.rng.random(len(region))
    for source, (target, share) in HARMLESS_REZONING.items():
        if target in shift.regions:
            moved_region[(region == REGIONS.index(source)) & (draw < share)] = REGIONS.index(target)
    # Cool dry spell: mirror what lies above the pivot, unless the mirror would leave the
    # training range (values are moved, never clipped: (temperature - 14)^2 stays exact).
    pivot = HARMLESS_TEMPERATURE_PIVOT
    mirrored = np.round(2 * pivot - temperature, 1)
    mirror = (temperature > pivot) & (mirrored >= shift.low["temperature_c"])
    moved_temp = np.where(mirror, mirrored, temperature)
    # Afternoon dispatch (to hours inside the training range).
    moved_hour = hour.copy()
    for source_hour, target_hour in HARMLESS_HOUR_MAP.items():
        if shift.low["hour_of_day"] <= target_hour <= shift.high["hour_of_day"]:
            moved_hour[hour == source_hour] = target_hour
    return moved_region, moved_temp, moved_hour


# --------------------------------------------------------------------------- generation


def _draw_inputs(rng: np.random.Generator, n: int, world: _World, *, shifted: bool,
                 harmless: _HarmlessShift | None) -> dict[str, np.ndarray]:
    """The true inputs of ``n`` orders (before anything is recorded or missing)."""
    region = rng.choice(len(REGIONS), size=n, p=REGION_P_SHIFT if shifted else REGION_P_BASE)
    vehicle = rng.choice(len(VEHICLES), size=n, p=VEHICLE_P)
    weather = rng.choice(len(WEATHERS), size=n, p=WEATHER_P_SHIFT if shifted else WEATHER_P_BASE)
    merchant = rng.choice(N_MERCHANTS, size=n, p=world.merchant_p)
    if shifted:
        # Suburban expansion: a share of the orders now comes from merchants never seen before.
        new = rng.random(n) < SHIFT_NEW_MERCHANT_SHARE
        newcomers = rng.choice(N_NEW_MERCHANTS, size=n, p=world.new_merchant_p)
        merchant[new] = N_MERCHANTS + newcomers[new]

    distance = rng.lognormal(mean=np.log(3.2), sigma=0.55, size=n) * VEHICLE_DISTANCE[vehicle]
    distance = distance + 0.4 * (region == REGIONS.index("airport"))
    if shifted:
        distance = distance * SHIFT_DISTANCE_FACTOR
    distance = np.round(np.clip(distance, 0.2, 60.0), 2)

    weight = rng.gamma(shape=2.0, scale=1.4, size=n) + 0.8 * (vehicle >= 2) * rng.random(n) * 4
    weight = np.round(np.clip(weight, 0.1, 40.0), 2)

    experience = np.clip(np.round(rng.gamma(shape=1.6, scale=15.0, size=n)), 0, 180)
    items = 1 + rng.poisson(1.8, size=n)
    prep_true = np.clip(np.round(rng.normal(14.0 + 1.5 * items, 6.0, size=n)), 1, 90)

    temperature = rng.normal(14.0, 5.0, size=n) + WEATHER_TEMP[weather]
    if shifted:
        temperature = temperature + SHIFT_TEMPERATURE_DELTA
    temperature = np.round(temperature, 1)

    peak = rng.random(n)
    hour = np.where(
        peak < 0.45,
        rng.normal(12.5, 1.4, size=n),
        np.where(peak < 0.9, rng.normal(19.5, 1.6, size=n), rng.uniform(0, 24, size=n)),
    )
    hour = np.mod(np.floor(hour), 24).astype(int)
    if harmless is not None:
        region, temperature, hour = _apply_harmless_shift(harmless, region, temperature, hour)
    return {"region": region, "vehicle": vehicle, "weather": weather, "merchant": merchant,
            "distance": distance, "weight": weight, "experience": experience, "items": items,
            "prep_true": prep_true, "temperature": temperature, "hour": hour}


def _late_probability(v: dict[str, np.ndarray], world: _World, *, concept: bool) -> np.ndarray:
    """P(late | inputs): a logistic model with nonlinearities and interactions (the reference
    relation, or the changed one after the concept change). Draws nothing."""
    region, vehicle, weather, hour = v["region"], v["vehicle"], v["weather"], v["hour"]
    log_dist = np.log(v["distance"] / 4.0)
    two_wheels = vehicle <= 1
    rush = ((hour >= 18) & (hour <= 20)) * 0.9 + ((hour >= 11) & (hour <= 13)) * 0.4
    late_night = (hour >= 22) | (hour <= 2)
    cold_hot = 0.004 * (v["temperature"] - 14.0) ** 2
    exp_term = np.log1p(v["experience"] / 6.0) - 1.4
    # Rare in the reference period, common after the covariate shift: a model trained on the
    # reference data has seen few such orders, so the shift costs it some accuracy.
    rare = 1.6 * (weather == WEATHERS.index("snow")) * two_wheels + 0.9 * log_dist * (
        region == REGIONS.index("suburbs")
    )
    common = (
        rare
        + 0.40 * (v["items"] - 2.8)
        + 0.10 * (v["prep_true"] - 18.0)
        + rush
        + cold_hot
        + REGION_EFFECT[region]
        + world.merchant_effect[v["merchant"]]
    )
    if not concept:
        z = (
            _INTERCEPT_BASE
            + common
            + 1.7 * log_dist
            + 0.8 * log_dist * (vehicle == 0)
            + 0.45 * np.maximum(v["weight"] - 3.0, 0.0) * two_wheels
            - 1.1 * exp_term
            + np.array([0.0, 0.15, 0.9, 1.8, 1.4])[weather]
        )
    else:
        lez = (vehicle == 3) & np.isin(region, [REGIONS.index("suburbs"), REGIONS.index("center")])
        z = (
            _INTERCEPT_CONCEPT
            + common
            + 0.6 * log_dist
            + 0.8 * log_dist * (vehicle == 0)
            + 0.6 * exp_term
            + np.array([0.0, 0.15, 0.0, 1.0, 1.4])[weather]
            + 2.0 * late_night
            + 3.5 * lez
            + 0.6 * (vehicle == 3)
        )
    return 1.0 / (1.0 + np.exp(-z))


def _recorded(rng: np.random.Generator, n: int, v: dict[str, np.ndarray], world: _World, *,
              shifted: bool) -> pd.DataFrame:
    """What the data pipeline actually records: sentinels and missing values."""
    unknown_share = SHIFT_PREP_UNKNOWN_SHARE if shifted else PREP_UNKNOWN_SHARE
    prep_recorded = np.where(rng.random(n) < unknown_share, 0, v["prep_true"]).astype(int)
    experience_recorded = pd.array(v["experience"].astype(int), dtype="Int64")
    experience_recorded[rng.random(n) < 0.03] = pd.NA
    weather_names = np.array(WEATHERS, dtype=object)[v["weather"]]
    weather_names[rng.random(n) < 0.02] = None
    return pd.DataFrame(
        {
            "distance_km": v["distance"],
            "package_weight_kg": v["weight"],
            "courier_experience_months": experience_recorded,
            "items_count": v["items"].astype(int),
            "prep_time_min": prep_recorded,
            "temperature_c": v["temperature"],
            "hour_of_day": v["hour"],
            "region": np.array(REGIONS, dtype=object)[v["region"]],
            "vehicle": np.array(VEHICLES, dtype=object)[v["vehicle"]],
            "weather": weather_names,
            "merchant_id": world.merchant_ids[v["merchant"]],
        }
    )


def _generate(
    rng: np.random.Generator,
    n: int,
    world: _World,
    *,
    shifted: bool,
    concept: bool,
    harmless: _HarmlessShift | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Draw ``n`` orders (features, with missing values/sentinels) and their labels.

    Args:
        rng: the generator of this table/day (consumed in a fixed order: inputs, labels,
            recording).
        n: number of rows.
        world: shared merchant properties.
        shifted: apply the covariate shift to the input distributions.
        concept: use the changed feature -> label relation.
        harmless: apply the harmless shift (after the features are drawn, before the labels;
            ``rng`` is consumed exactly as without it).

    Returns:
        ``(features frame, late labels as int array, true probability of being late)``.
    """
    inputs = _draw_inputs(rng, n, world, shifted=shifted, harmless=harmless)
    prob = _late_probability(inputs, world, concept=concept)
    late = (rng.random(n) < prob).astype(int)
    return _recorded(rng, n, inputs, world, shifted=shifted), late, prob


def _to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def _parse_date(value: str | dt.date, what: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{what}: '{value}' is not a date in YYYY-MM-DD form") from None


def _validate(
    days: int,
    initial_rows: int,
    rows_per_day: int,
    label_delay_days: int,
    shift_day: int,
    concept_day: int,
    seed: int,
    harmless_day: int | None = None,
) -> None:
    checks = [
        ("days", days, 1),
        ("initial_rows", initial_rows, 1),
        ("rows_per_day", rows_per_day, 1),
        ("label_delay_days", label_delay_days, 0),
        ("shift_day", shift_day, 0),
        ("concept_day", concept_day, 0),
        ("seed", seed, 0),
    ]
    if harmless_day is not None:
        checks.append(("harmless_day", harmless_day, 0))
    for name, value, minimum in checks:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"simulate: {name} must be an integer, found {value!r}")
        if value < minimum:
            raise ConfigError(f"simulate: {name} must be >= {minimum}, found {value}")
    if harmless_day is not None:
        # The harmless period ends at the first real change; starting it at or after that change
        # would describe an empty period (most likely swapped arguments), so it is refused even
        # when that change lies after the simulated window.
        for name, value in (("shift_day", shift_day), ("concept_day", concept_day)):
            if harmless_day >= value:
                raise ConfigError(
                    f"simulate: harmless_day must be < {name} (the harmless period ends where "
                    f"the {'covariate shift' if name == 'shift_day' else 'concept change'} "
                    f"starts), found harmless_day={harmless_day} and {name}={value}"
                )


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete date-named CSV files of an earlier run that this run does not write."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and _DATE_FILE.match(path.name) and path.name not in keep:
            path.unlink()


def simulate(
    out_dir: str | os.PathLike[str],
    *,
    days: int = 30,
    seed: int = 7,
    start_date: str | dt.date = "2026-01-01",
    initial_rows: int = 12000,
    rows_per_day: int = 2000,
    label_delay_days: int = 3,
    shift_day: int = 10,
    concept_day: int = 20,
    harmless_day: int | None = None,
) -> dict[str, Any]:
    """Write the demo data set (train table, daily batches, delayed labels, manifest, truth).

    Args:
        out_dir: output folder (created if needed). Date-named CSVs of an earlier run in
            ``batches/`` and ``labels/`` that this run does not produce are removed, so a folder
            glob sees exactly the files of the manifest.
        days: number of simulated days from ``start_date`` (>= 1).
        seed: master seed (>= 0); same arguments -> byte-identical files.
        start_date: first simulated day (``YYYY-MM-DD``); ``train.csv`` covers the 60 days before.
        initial_rows: rows of ``train.csv``.
        rows_per_day: rows of each daily batch.
        label_delay_days: a day's labels become available this many days later.
        shift_day: 0-based day offset where the covariate shift starts (may be >= days: none).
        concept_day: 0-based day offset where the concept change starts (may be >= days: none).
        harmless_day: 0-based day offset where a harmless shift starts (see the module
            docstring); it lasts until ``min(shift_day, concept_day)`` (exclusive) or the end of
            the window, and must be smaller than both. ``None`` (default): no harmless period,
            and the files are byte-identical to those written without this argument.

    Returns:
        A summary dict: ``out_dir``, ``train``, ``manifest``, ``ground_truth`` paths, ``days``,
        ``rows`` (train + batches), ``covariate_shift_day``, ``concept_change_day`` (dates),
        ``shift_in_window``/``concept_in_window`` flags, ``train_positive_rate``,
        ``harmless_shift_day`` (date, None without a harmless period), ``harmless_shift_end_day``
        (first date after it, None without one), ``harmless_in_window`` and
        ``harmless_days`` (number of simulated harmless days).

    Raises:
        ConfigError: an argument is out of range (``harmless_day`` not before ``shift_day`` and
            ``concept_day``) or the start date is malformed.
        DataError: ``out_dir`` exists and is not a folder.
    """
    _validate(days, initial_rows, rows_per_day, label_delay_days, shift_day, concept_day, seed,
              harmless_day)
    start = _parse_date(start_date, "simulate: start_date")
    out = _output_folder(out_dir)
    world = _make_world(seed)
    train_path, train_rate, support = _write_training_table(out, world, seed, start,
                                                            initial_rows)
    harmless_end = min(shift_day, concept_day)
    files, rates = _write_days(
        out, world, seed, start, days=days, rows_per_day=rows_per_day,
        label_delay_days=label_delay_days, shift_day=shift_day, concept_day=concept_day,
        harmless=(harmless_day, harmless_end, support) if harmless_day is not None else None,
        first_id=100_001 + initial_rows)
    manifest = _manifest(seed, start, days, label_delay_days, initial_rows, rows_per_day, files)
    truth = _ground_truth(start, days, shift_day, concept_day, train_rate, rates)
    harmless = _harmless_period(truth, start, days, harmless_day, harmless_end)
    manifest_path = atomic_write_json(out / "manifest.json", manifest)
    truth_path = atomic_write_json(out / "ground_truth.json", truth)
    return _summary(out, (train_path, manifest_path, truth_path), truth, harmless, days=days,
                    rows=initial_rows + days * rows_per_day, shift_day=shift_day,
                    concept_day=concept_day, train_rate=train_rate)


def _output_folder(out_dir: str | os.PathLike[str]) -> Path:
    """Step: the output folder, created if needed (a path that is not a folder: DataError)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"simulate: output path '{out}' exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _harmless_period(truth: dict[str, Any], start: dt.date, days: int, harmless_day: int | None,
                     harmless_end: int) -> dict[str, Any]:
    """Step: the harmless period's keys of the ground truth (added to ``truth`` only when there
    is one) and of the summary (returned)."""
    harmless_date = harmless_end_date = None
    harmless_count = 0
    if harmless_day is not None:
        # Only written when asked for, so that the default output stays byte-identical.
        harmless_date = (start + dt.timedelta(days=harmless_day)).isoformat()
        harmless_end_date = (start + dt.timedelta(days=harmless_end)).isoformat()
        harmless_count = max(0, min(days, harmless_end) - harmless_day)
        truth.update(
            {
                "harmless_shift_day": harmless_date,
                "harmless_shift_end_day": harmless_end_date,
                "harmless_shift_offset": harmless_day,
                "harmless_shift_end_offset": harmless_end,
                "harmless_in_window": harmless_count > 0,
                "harmless_shift_features": HARMLESS_FEATURES,
                "harmless_shift_description": HARMLESS_DESCRIPTION,
            }
        )
    return {
        "harmless_shift_day": harmless_date,
        "harmless_shift_end_day": harmless_end_date,
        "harmless_in_window": harmless_count > 0,
        "harmless_days": harmless_count,
    }


def _summary(out: Path, paths: tuple[Path, Path, Path], truth: dict[str, Any],
             harmless: dict[str, Any], *, days: int, rows: int, shift_day: int,
             concept_day: int, train_rate: float) -> dict[str, Any]:
    """Step: the summary :func:`simulate` returns (the written paths, the schedule, the
    harmless period)."""
    train_path, manifest_path, truth_path = paths
    return {
        "out_dir": str(out),
        "train": str(train_path),
        "manifest": str(manifest_path),
        "ground_truth": str(truth_path),
        "days": days,
        "rows": rows,
        "covariate_shift_day": truth["covariate_shift_day"],
        "concept_change_day": truth["concept_change_day"],
        "shift_in_window": shift_day < days,
        "concept_in_window": concept_day < days,
        "train_positive_rate": round(train_rate, 6),
        **harmless,
    }


def _write_training_table(out: Path, world: _World, seed: int, start: dt.date,
                          rows: int) -> tuple[Path, float, tuple[Any, ...]]:
    """``train.csv``: the reference regime spread over the history window before ``start``.

    Returns:
        (its path, its positive rate, the training support the harmless shift stays inside).
    """
    rng = np.random.default_rng([seed, _STREAM_TRAIN, 0])
    frame, late, _ = _generate(rng, rows, world, shifted=False, concept=False)
    offsets = np.sort(rng.integers(1, TRAIN_HISTORY_DAYS + 1, size=rows))[::-1]
    frame[TIME_COLUMN] = [(start - dt.timedelta(days=int(k))).isoformat() for k in offsets]
    frame[ID_COLUMN] = np.arange(100_001, 100_001 + rows)
    frame[TARGET] = late
    path = out / "train.csv"
    atomic_write_text(path, _to_csv(frame[[ID_COLUMN, TIME_COLUMN, *FEATURES, TARGET]]))
    return path, float(late.mean()), _training_support(frame)


def _write_days(out: Path, world: _World, seed: int, start: dt.date, *, days: int,
                rows_per_day: int, label_delay_days: int, shift_day: int, concept_day: int,
                harmless: tuple[int, int, tuple[Any, ...]] | None,
                first_id: int) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The daily batches and their delayed labels (stale date-named files of an earlier run
    removed). ``harmless``: (first day, end day, training support) of the harmless period.

    Returns:
        (the manifest's file entries, the ground truth's positive rate per day).
    """
    files: list[dict[str, str]] = []
    rates: list[dict[str, Any]] = []
    written: set[str] = set()
    next_id = first_id
    for day in range(days):
        date = start + dt.timedelta(days=day)
        stamp = date.isoformat()
        shifted, concept = day >= shift_day, day >= concept_day
        shift = None
        if harmless is not None and harmless[0] <= day < harmless[1]:
            shift = _HarmlessShift(np.random.default_rng([seed, _STREAM_HARMLESS, day]),
                                   *harmless[2])
        rng = np.random.default_rng([seed, _STREAM_DAY, day])
        frame, late, _ = _generate(
            rng, rows_per_day, world, shifted=shifted, concept=concept, harmless=shift
        )
        frame[ID_COLUMN] = np.arange(next_id, next_id + rows_per_day)
        next_id += rows_per_day
        frame[TIME_COLUMN] = stamp
        batch_rel, labels_rel = f"batches/{stamp}.csv", f"labels/{stamp}.csv"
        atomic_write_text(out / batch_rel, _to_csv(frame[[ID_COLUMN, TIME_COLUMN, *FEATURES]]))
        labels = pd.DataFrame({ID_COLUMN: frame[ID_COLUMN], TARGET: late})
        atomic_write_text(out / labels_rel, _to_csv(labels))
        written.add(f"{stamp}.csv")
        files.append({"date": stamp, "batch": batch_rel, "labels": labels_rel,
                      "labels_available_on":
                          (date + dt.timedelta(days=label_delay_days)).isoformat()})
        regime = "concept_change" if concept else ("covariate_shift" if shifted else "reference")
        rates.append({"date": stamp, "rows": rows_per_day,
                      "positive_rate": round(float(late.mean()), 6),
                      "regime": "harmless_shift" if shift is not None else regime})
    _remove_stale(out / "batches", written)
    _remove_stale(out / "labels", written)
    return files, rates


def _manifest(seed: int, start: dt.date, days: int, label_delay_days: int, initial_rows: int,
              rows_per_day: int, files: list[dict[str, str]]) -> dict[str, Any]:
    """``manifest.json``: the schedule and the columns (what the backtest and demo read)."""
    return {
        "seed": seed,
        "start_date": start.isoformat(),
        "days": days,
        "label_delay_days": label_delay_days,
        "initial_rows": initial_rows,
        "rows_per_day": rows_per_day,
        "train": "train.csv",
        "files": files,
        "columns": {
            "id": ID_COLUMN,
            "time": TIME_COLUMN,
            "target": TARGET,
            "numeric": NUMERIC_FEATURES,
            "categorical": CATEGORICAL_FEATURES,
            "sentinels": SENTINELS,
        },
        "target": TARGET,
        "positive_label": 1,
        "id_column": ID_COLUMN,
        "time_column": TIME_COLUMN,
    }


def _ground_truth(start: dt.date, days: int, shift_day: int, concept_day: int,
                  train_rate: float, rates: list[dict[str, Any]]) -> dict[str, Any]:
    """``ground_truth.json``: when the changes happen and the positive rate per day."""
    return {
        "covariate_shift_day": (start + dt.timedelta(days=shift_day)).isoformat(),
        "concept_change_day": (start + dt.timedelta(days=concept_day)).isoformat(),
        "covariate_shift_offset": shift_day,
        "concept_change_offset": concept_day,
        "shift_in_window": shift_day < days,
        "concept_in_window": concept_day < days,
        "description": DESCRIPTION,
        "shifted_features": SHIFTED_FEATURES,
        "concept_features": CONCEPT_FEATURES,
        "train_positive_rate": round(train_rate, 6),
        "positive_rate_per_day": rates,
    }


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``simulate``."""
    parser = argparse.ArgumentParser(
        prog="python -m ml_lifecycle simulate",
        description="Write the seeded 'late delivery' demo data set (train table, daily batches, "
        "delayed labels, manifest, ground truth of the drift schedule).",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="master seed (default 7)")
    parser.add_argument("--start-date", default="2026-01-01", help="first day, YYYY-MM-DD")
    parser.add_argument("--initial-rows", type=int, default=12000, help="rows of train.csv")
    parser.add_argument("--rows-per-day", type=int, default=2000, help="rows per daily batch")
    parser.add_argument(
        "--label-delay", type=int, default=3, help="days until a day's labels arrive (default 3)"
    )
    parser.add_argument(
        "--shift-day", type=int, default=10, help="0-based day of the covariate shift (default 10)"
    )
    parser.add_argument(
        "--concept-day", type=int, default=20, help="0-based day of the concept change (default 20)"
    )
    parser.add_argument(
        "--harmless-day",
        type=int,
        default=None,
        help="0-based day where a harmless shift starts (inputs drift, the model is not hurt); it "
        "lasts until the covariate shift or concept change (default: none)",
    )
    return parser


def cli_main(argv: list[str]) -> int:
    """``simulate`` sub-command: parse arguments, write the data set, print a summary.

    Args:
        argv: the arguments after the word ``simulate``.

    Returns:
        0 on success.

    Raises:
        ConfigError: an argument is out of range (argparse exits with code 2 on syntax errors).
    """
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    summary = simulate(
        args.out,
        days=args.days,
        seed=args.seed,
        start_date=args.start_date,
        initial_rows=args.initial_rows,
        rows_per_day=args.rows_per_day,
        label_delay_days=args.label_delay,
        shift_day=args.shift_day,
        concept_day=args.concept_day,
        harmless_day=args.harmless_day,
    )
    elapsed = time.perf_counter() - started
    notes = []
    if summary["harmless_shift_day"] is not None:
        span = (
            f"harmless shift on {summary['harmless_shift_day']} until "
            f"{summary['harmless_shift_end_day']} (exclusive)"
        )
        if summary["harmless_in_window"]:
            notes.append(f"{span}, {summary['harmless_days']} day(s)")
        else:
            notes.append(f"{span} (after the last simulated day: it does not occur)")
    for flag, what, date in (
        ("shift_in_window", "covariate shift", summary["covariate_shift_day"]),
        ("concept_in_window", "concept change", summary["concept_change_day"]),
    ):
        if summary[flag]:
            notes.append(f"{what} on {date}")
        else:
            notes.append(f"{what} on {date} (after the last simulated day: it does not occur)")
    print(
        f"Simulated {summary['days']} day(s) with seed {args.seed} into {summary['out_dir']} "
        f"in {elapsed:.1f}s: training table {summary['train']} ({args.initial_rows} rows, "
        f"positive rate {summary['train_positive_rate']:.1%}), daily batches in "
        f"{Path(summary['out_dir']) / 'batches'} ({args.rows_per_day} rows each) with labels in "
        f"{Path(summary['out_dir']) / 'labels'} arriving {args.label_delay} day(s) later; "
        f"{'; '.join(notes)}. Schedule: {summary['manifest']}; ground truth: "
        f"{summary['ground_truth']}."
    )
    return 0
