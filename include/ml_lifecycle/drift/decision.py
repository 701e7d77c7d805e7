"""From test results to decisions: per-feature drift, the dataset verdict, prediction drift.

The rule that holds on large samples (docs/monitoring.md explains why):

* a feature is **drifted** only when its significance test (KS / chi-squared) is significant after
  the Benjamini-Hochberg correction across the features of the batch at ``drift.fdr_q`` AND its
  effect size (default: Wasserstein distance in reference standard deviations for numeric
  features, PSI for categorical ones) reaches the test's threshold;
* features with fewer than ``drift.min_rows`` usable values are ``insufficient_data``, never
  drifted, and leave the BH family;
* the **batch** drifted when the share of drifted features reaches ``drift.dataset_drift_share``
  OR the drifted features carry ``drift.importance_drift_share`` of the model's permutation
  importance. Both numbers are reported so that drift confined to features the model ignores is
  visible as such (the retrain policy treats it as low severity).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .profile import ReferenceProfile
from .reference import (
    RARE,
    UNSEEN,
    CategoricalCurrent,
    CategoricalReference,
    NumericCurrent,
    NumericReference,
    bin_counts_sorted,
    prepare_categorical,
    prepare_numeric,
)
from .settings import DriftConfig
from .stattests import get_test, threshold_for

Current = NumericCurrent | CategoricalCurrent
Reference = NumericReference | CategoricalReference

DRIFT = "drift"
NO_DRIFT = "no_drift"
INSUFFICIENT = "insufficient_data"
UNAVAILABLE = "unavailable"


def benjamini_hochberg(p_values: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``).

    Args:
        p_values: raw p-values (NaN entries are kept as NaN and left out of the family).

    Returns:
        Adjusted p-values; a feature is significant at FDR q when its adjusted p-value <= q.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def prepare_batch(
    profile: ReferenceProfile, frame: pd.DataFrame, cfg: DriftConfig
) -> dict[str, Current]:
    """Prepare every profiled feature column of a batch once (sort / count).

    Args:
        profile: the reference profile.
        frame: the batch (must hold every feature column; see ``batch_quality.check_schema``).
        cfg: drift settings (``rare_min_expected``, ``n_jobs``).

    Returns:
        Feature name -> prepared column.
    """
    names = profile.features
    prepared = map_features(lambda name: prepare_feature(profile, frame, name, cfg), names,
                            cfg.n_jobs)
    return dict(zip(names, prepared, strict=True))


def prepare_feature(
    profile: ReferenceProfile, frame: pd.DataFrame, name: str, cfg: DriftConfig
) -> Current:
    """Prepare one feature column of a batch (numeric: sorted finite values; categorical:
    counts aligned with the reference)."""
    if name in profile.numeric:
        return prepare_numeric(frame[name], name)
    return prepare_categorical(frame[name], profile.categorical[name],
                               rare_min_expected=cfg.rare_min_expected, name=name)


def map_features(func: Any, items: list[str], n_jobs: int) -> list[Any]:
    """``[func(x) for x in items]``, on ``n_jobs`` threads when > 1 (order kept).

    numpy's sort and searchsorted release the GIL, so the threads do run in parallel.
    """
    if n_jobs > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            return list(pool.map(func, items))
    return [func(x) for x in items]


def _kind(ref: Reference) -> str:
    return "numeric" if isinstance(ref, NumericReference) else "categorical"


def _plot_numeric(ref: NumericReference, cur: NumericCurrent | None) -> dict[str, Any]:
    total_ref = max(int(ref.hist_counts.sum()), 1)
    ref_share = (ref.hist_counts / total_ref).tolist()
    cur_share = None
    if cur is not None and cur.n:
        cur_share = (bin_counts_sorted(cur.sorted, ref.hist_cuts) / cur.n).tolist()
    return {"type": "hist", "cuts": ref.hist_cuts.tolist(), "reference": ref_share,
            "current": cur_share}


def _plot_categorical(ref: CategoricalReference, cur: CategoricalCurrent | None,
                      top: int) -> dict[str, Any]:
    n_ref = max(ref.n_nonmissing, 1)
    ref_share = {c: int(v) / n_ref for c, v in zip(ref.categories, ref.counts.tolist(),
                                                   strict=True)}
    cur_counts = cur.counts if cur is not None else {}
    n_cur = max(sum(cur_counts.values()), 1)
    cur_share = {c: v / n_cur for c, v in cur_counts.items()}
    keys = sorted(set(ref_share) | set(cur_share),
                  key=lambda c: (-max(ref_share.get(c, 0.0), cur_share.get(c, 0.0)), c))
    shown = keys[:top]
    labels = list(shown)
    ref_vals = [ref_share.get(c, 0.0) for c in shown]
    cur_vals = [cur_share.get(c, 0.0) for c in shown]
    if len(keys) > top or ref.n_other:
        labels.append("(other)")
        ref_vals.append(max(0.0, 1.0 - sum(ref_vals)))
        cur_vals.append(max(0.0, 1.0 - sum(cur_vals)) if cur_counts else 0.0)
    return {"type": "bar", "labels": labels, "reference": ref_vals,
            "current": cur_vals if cur_counts else None,
            "unseen": [c for c in shown if c not in ref_share]}


def evaluate_feature(
    ref: Reference,
    cur: Current,
    cfg: DriftConfig,
    *,
    importance: float | None = None,
) -> dict[str, Any]:
    """Run the configured tests on one feature (the BH step comes later, across features).

    Args:
        ref: the feature's reference summary.
        cur: the prepared batch column.
        cfg: drift settings (tests, thresholds, ``min_rows``).
        importance: the model's permutation importance of the feature.

    Returns:
        A JSON-able dict with stable keys (``status`` is provisional until
        :func:`data_drift` applies the correction).
    """
    kind = _kind(ref)
    names = cfg.numeric_tests if kind == "numeric" else cfg.categorical_tests
    sig_name = cfg.numeric_significance_test if kind == "numeric" else \
        cfg.categorical_significance_test
    eff_name = cfg.numeric_effect_test if kind == "numeric" else cfg.categorical_effect_test
    n_ref = ref.sample_size if isinstance(ref, NumericReference) else ref.n_nonmissing
    result: dict[str, Any] = {
        "feature": ref.name, "kind": kind, "status": NO_DRIFT, "drifted": False,
        "n_reference": n_ref, "n_current": cur.n,
        "missing_rate_reference": ref.missing_rate, "missing_rate_current": cur.missing_rate,
        "significance_test": sig_name, "p_value": None, "p_value_adjusted": None,
        "significant": None, "effect_test": eff_name, "effect_size": None,
        "effect_threshold": threshold_for(eff_name, cfg.thresholds), "effect_exceeded": None,
        "importance": importance, "importance_share": None, "tests": {}, "reason": "",
    }
    result["plot"] = (_plot_numeric(ref, cur) if isinstance(ref, NumericReference)
                      else _plot_categorical(ref, cur, cfg.report_top_categories))
    if cur.n < cfg.min_rows or n_ref == 0:
        result["status"] = INSUFFICIENT
        result["reason"] = (f"{cur.n} usable values in the batch (< drift.min_rows={cfg.min_rows})"
                            if n_ref else "no usable reference values")
        return result
    for name in names:
        test = get_test(name, kind, setting=f"drift.{kind}_tests")
        res = test.func(ref, cur, threshold_for(name, cfg.thresholds))
        result["tests"][name] = res.to_dict()
    sig = result["tests"][sig_name]
    eff = result["tests"][eff_name]
    if sig["p_value"] is None:
        raise ValueError(f"drift.{kind}_significance_test '{sig_name}' gives no p-value")
    result["p_value"] = sig["p_value"]
    effect = eff["effect_size"]
    result["effect_size"] = effect if effect is not None and np.isfinite(effect) else None
    result["effect_exceeded"] = bool(eff["exceeded"])
    return result


def data_drift(
    profile: ReferenceProfile,
    currents: dict[str, Current],
    cfg: DriftConfig,
    *,
    n_rows: int,
) -> dict[str, Any]:
    """Per-feature results, BH correction and the dataset verdict.

    Args:
        profile: the reference profile (importances included).
        currents: prepared batch columns (:func:`prepare_batch`).
        cfg: drift settings.
        n_rows: rows in the batch.

    Returns:
        A JSON-able dict: ``verdict`` (``drift`` / ``no_drift`` / ``insufficient_data``),
        ``drifted_share``, ``weighted_drift``, ``drifted_features``, ``reasons`` and
        ``features`` (one dict per feature, profile order).
    """

    def evaluate(name: str) -> dict[str, Any]:
        return evaluate_feature(profile.reference(name), currents[name], cfg,
                                importance=importance_of(profile, name))

    features = map_features(evaluate, profile.features, cfg.n_jobs)
    return decide_dataset(profile, features, cfg, n_rows=n_rows)


def importance_of(profile: ReferenceProfile, name: str) -> float | None:
    """The model's permutation importance of a feature (None when the profile has none)."""
    return float(profile.importances.get(name, 0.0)) if profile.importances else None


def decide_dataset(
    profile: ReferenceProfile,
    features: list[dict[str, Any]],
    cfg: DriftConfig,
    *,
    n_rows: int,
) -> dict[str, Any]:
    """BH correction across the features' p-values, per-feature decisions, dataset verdict.

    Args:
        profile: the reference profile (importances).
        features: :func:`evaluate_feature` results, profile order (updated in place).
        cfg: drift settings.
        n_rows: rows in the batch.

    Returns:
        The dataset-level dict described in :func:`data_drift`.
    """
    weights = {f: max(float(profile.importances.get(f, 0.0)), 0.0) for f in profile.features}
    total_weight = sum(weights.values())
    for res in features:
        name = res["feature"]
        if total_weight > 0:
            res["importance_share"] = weights[name] / total_weight
        if n_rows < cfg.min_rows and res["status"] != INSUFFICIENT:
            res["status"] = INSUFFICIENT
            res["reason"] = f"batch of {n_rows} rows (< drift.min_rows={cfg.min_rows})"
            res["p_value"] = None
    tested = [f for f in features if f["status"] != INSUFFICIENT]
    adjusted = benjamini_hochberg([f["p_value"] for f in tested])
    for f, adj in zip(tested, adjusted.tolist(), strict=True):
        f["p_value_adjusted"] = adj
        f["significant"] = bool(adj <= cfg.fdr_q)
        f["drifted"] = bool(f["significant"] and f["effect_exceeded"])
        f["status"] = DRIFT if f["drifted"] else NO_DRIFT
        f["reason"] = _feature_reason(f, cfg.fdr_q)
    drifted = [f["feature"] for f in features if f["drifted"]]
    out: dict[str, Any] = {
        "verdict": NO_DRIFT, "n_rows": n_rows, "n_features": len(features),
        "n_tested": len(tested), "n_drifted": len(drifted), "drifted_features": drifted,
        "drifted_share": None, "weighted_drift": None, "share_threshold": cfg.dataset_drift_share,
        "weighted_threshold": cfg.importance_drift_share, "fdr_q": cfg.fdr_q,
        "drift_by_share": False, "drift_by_importance": False, "reasons": [],
        "features": features,
    }
    if n_rows < cfg.min_rows or not tested:
        out["verdict"] = INSUFFICIENT
        out["reasons"].append(
            f"batch of {n_rows} rows (< drift.min_rows={cfg.min_rows})" if n_rows < cfg.min_rows
            else "no feature has enough usable values to be tested")
        return out
    share = len(drifted) / len(tested)
    out["drifted_share"] = share
    out["drift_by_share"] = share >= cfg.dataset_drift_share
    if total_weight > 0:
        weighted = sum(weights[f] for f in drifted) / total_weight
        out["weighted_drift"] = weighted
        out["drift_by_importance"] = weighted >= cfg.importance_drift_share
    if out["drift_by_share"] or out["drift_by_importance"]:
        out["verdict"] = DRIFT
    out["reasons"] = _dataset_reasons(out)
    return out


def _fmt_p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _feature_reason(f: dict[str, Any], q: float) -> str:
    sig = (f"{f['significance_test']} adjusted p={_fmt_p(f['p_value_adjusted'])}"
           f" {'<=' if f['significant'] else '>'} q={q}")
    eff = f["effect_size"]
    eff_txt = (f"{f['effect_test']} effect={eff:.3g} {'>=' if f['effect_exceeded'] else '<'} "
               f"{f['effect_threshold']}") if eff is not None else f"{f['effect_test']} effect n/a"
    return f"{sig}; {eff_txt}"


def _dataset_reasons(out: dict[str, Any]) -> list[str]:
    reasons = [
        f"{out['n_drifted']} of {out['n_tested']} tested features drifted "
        f"({out['drifted_share']:.0%} {'>=' if out['drift_by_share'] else '<'} "
        f"{out['share_threshold']:.0%})"
    ]
    if out["weighted_drift"] is not None:
        reasons.append(
            f"drifted features carry {out['weighted_drift']:.0%} of the model's importance "
            f"({'>=' if out['drift_by_importance'] else '<'} {out['weighted_threshold']:.0%})"
        )
        if out["drift_by_share"] and not out["drift_by_importance"]:
            reasons.append("the drift is confined to features the model barely uses")
    return reasons


def prediction_drift(
    reference: NumericReference | None,
    scores: np.ndarray | None,
    cfg: DriftConfig,
    *,
    task: str = "classification",
    threshold: float | None = None,
) -> dict[str, Any]:
    """Drift of the model's scores on the batch vs its scores on the validation split.

    Same rule as for a feature (one test, so no multiple-testing correction): KS p-value <=
    ``drift.fdr_q`` AND the numeric effect size past its threshold.

    Args:
        reference: the profile's validation-score summary (None: not stored).
        scores: the model's scores on the batch.
        cfg: drift settings.
        task: ``classification`` (scores are P(positive)) or ``regression``.
        threshold: the model's decision threshold (classification: positive rates reported).

    Returns:
        A JSON-able dict with ``status`` (``drift`` / ``no_drift`` / ``insufficient_data`` /
        ``unavailable``), p-value, effect size, means and positive rates, and plot data.
    """
    out: dict[str, Any] = {
        "status": UNAVAILABLE, "drifted": False, "significance_test": cfg.numeric_significance_test,
        "p_value": None, "effect_test": cfg.numeric_effect_test, "effect_size": None,
        "effect_threshold": threshold_for(cfg.numeric_effect_test, cfg.thresholds),
        "n_reference": None, "n_current": None, "reference_mean": None, "current_mean": None,
        "reference_positive_rate": None, "current_positive_rate": None, "tests": {},
        "reason": "", "plot": None,
    }
    if not cfg.prediction_drift:
        out["reason"] = "disabled (drift.prediction_drift = false)"
        return out
    if reference is None or scores is None:
        out["reason"] = "no validation scores in the reference profile" if reference is None \
            else "no scores for the batch"
        return out
    cur = prepare_numeric(np.asarray(scores, dtype=float), "__score__")
    out.update(n_reference=reference.sample_size, n_current=cur.n,
               reference_mean=reference.mean,
               current_mean=float(np.mean(cur.sorted)) if cur.n else None,
               plot=_plot_numeric(reference, cur))
    if task == "classification" and threshold is not None and cur.n and reference.sample_size:
        below = np.searchsorted(reference.values, threshold, side="left")
        out["reference_positive_rate"] = float(1.0 - reference.counts[:below].sum()
                                               / reference.sample_size)
        out["current_positive_rate"] = float(
            1.0 - np.searchsorted(cur.sorted, threshold, side="left") / cur.n)
    if cur.n < cfg.min_rows or reference.sample_size == 0:
        out["status"] = INSUFFICIENT
        out["reason"] = f"{cur.n} scores (< drift.min_rows={cfg.min_rows})"
        return out
    for name in dict.fromkeys([cfg.numeric_significance_test, cfg.numeric_effect_test]):
        test = get_test(name, "numeric")
        res = test.func(reference, cur, threshold_for(name, cfg.thresholds))
        out["tests"][name] = res.to_dict()
    sig = out["tests"][cfg.numeric_significance_test]
    eff = out["tests"][cfg.numeric_effect_test]
    out["p_value"] = sig["p_value"]
    out["effect_size"] = eff["effect_size"]
    significant = sig["p_value"] is not None and sig["p_value"] <= cfg.fdr_q
    out["drifted"] = bool(significant and eff["exceeded"])
    out["status"] = DRIFT if out["drifted"] else NO_DRIFT
    out["reason"] = (f"{sig['test']} p={_fmt_p(sig['p_value'])} "
                     f"{'<=' if significant else '>'} {cfg.fdr_q}; {eff['test']} effect="
                     f"{eff['effect_size']:.3g} {'>=' if eff['exceeded'] else '<'} "
                     f"{eff['threshold']}")
    return out


__all__ = [
    "DRIFT", "INSUFFICIENT", "NO_DRIFT", "RARE", "UNAVAILABLE", "UNSEEN", "benjamini_hochberg",
    "data_drift", "decide_dataset", "evaluate_feature", "importance_of", "map_features",
    "prediction_drift",
    "prepare_batch", "prepare_feature",
]
