"""From test results to decisions: per-feature drift, the dataset verdict, prediction drift.

The rule that holds on large samples (docs/concepts/drift.md explains why):

* a feature is **drifted** only when its significance test (KS / chi-squared) is significant after
  the Benjamini-Hochberg correction across the features of the batch at ``drift.fdr_q`` AND its
  effect size (default: Wasserstein distance in reference standard deviations for numeric
  features, PSI for categorical ones) reaches the test's threshold;
* with ``drift.missing_share_test`` (default on) each feature's **missing share** is tested too
  (:func:`missing_share_test`: the batch's missing rows vs the reference's, a 2 x 2 table); its
  p-value joins the same BH family as the value tests, and the feature is also drifted when
  that test is significant AND the absolute change of the missing share reaches
  ``drift.missing_share_effect``. Missing values are dropped before the value tests, so without
  this a feature going from 0 % to 90 % missing would pass unnoticed;
* features with fewer than ``drift.min_rows`` usable values get no value test and leave that part
  of the BH family; they are ``insufficient_data`` unless their missing share drifted (a feature
  that went 100 % missing is ``drift``, not silently insufficient);
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

MISSING_TEST = "fisher_exact"  # the missing-share test (see :func:`missing_share_test`)
# effect sizes are differences of shares: 0.12 - 0.02 must reach a threshold of 0.1
_EFFECT_TOL = 1e-12


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


def missing_share_test(
    ref_missing: int, ref_rows: int, cur_missing: int, cur_rows: int
) -> tuple[str | None, float | None, float]:
    """Two-sided test that the batch's missing share equals the reference's (a 2 x 2 table).

    Both shares are estimates (the reference is a sample too), so this is a two-sample test of
    proportions: Fisher's exact test (``scipy.stats.fisher_exact``, two-sided), conditional on
    the table's margins. It is exact for any counts: no large-sample approximation and no
    continuity correction, so a 2,000-row batch next to a 200,000-row reference is as valid as
    two equal samples, and it costs about a millisecond even at 10 million rows. Its
    p-values are uniform under the null once the expected missing count of the batch is ~10 or
    more, and conservative (never anti-conservative) below that, where the counts are too
    discrete for any test to be uniform (there the N-1 chi-squared / pooled z-test rejects 2-5
    times too often at a level of 0.001, the kind of level BH uses). A table with no missing
    row at all, or no present row at all (batch and reference together), carries no
    information: its p-value is 1 and it stays out of the BH family (it could never be
    significant; Tarone's rule for discrete tests).

    Args:
        ref_missing: missing (or non-finite) reference rows.
        ref_rows: reference rows (> 0).
        cur_missing: missing (or non-finite) batch rows.
        cur_rows: batch rows (> 0).

    Returns:
        (test name, or None for an uninformative table; the sample odds ratio when finite, else
        None; the p-value).

    Raises:
        ValueError: a count is negative or exceeds its row count.
    """
    table = np.array([[cur_missing, cur_rows - cur_missing],
                      [ref_missing, ref_rows - ref_missing]], dtype=np.int64)
    if table.min() < 0:
        raise ValueError(f"missing share test: counts {table.tolist()} are not a 2 x 2 table "
                         "(missing rows must lie between 0 and the row count)")
    if table.sum(axis=0).min() == 0:
        return None, None, 1.0
    res = stats.fisher_exact(table, alternative="two-sided")
    odds = float(res.statistic)  # inf / nan with a zero cell: not JSON, reported as None
    return MISSING_TEST, odds if np.isfinite(odds) else None, float(min(1.0, res.pvalue))


def _missing_count(column: Reference | Current) -> int:
    """Rows of a reference summary / prepared column that count as missing (NaN and +-inf)."""
    return int(column.n_missing) + int(getattr(column, "n_nonfinite", 0))


def _missing_share(ref: Reference, cur: Current, cfg: DriftConfig) -> dict[str, Any]:
    """The feature's ``missing_share`` sub-dict: shares, raw p-value, effect (BH comes later).

    Not tested (``test`` and ``p_value`` None, never drifted) when the batch has fewer than
    ``drift.min_rows`` rows or the reference has no rows.
    """
    effect = abs(cur.missing_rate - ref.missing_rate)
    out: dict[str, Any] = {
        "reference": ref.missing_rate, "current": cur.missing_rate,
        "n_reference": int(ref.n_rows), "n_current": int(cur.n_rows),
        "test": None, "statistic": None, "p_value": None, "p_value_adjusted": None,
        "effect": effect, "threshold": cfg.missing_share_effect,
        "effect_exceeded": bool(effect >= cfg.missing_share_effect - _EFFECT_TOL),
        "significant": None, "drifted": False,
    }
    if cur.n_rows < cfg.min_rows or ref.n_rows == 0:
        return out
    test, stat, p = missing_share_test(_missing_count(ref), int(ref.n_rows),
                                       _missing_count(cur), int(cur.n_rows))
    out.update(test=test, statistic=stat, p_value=p)
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
        :func:`decide_dataset` applies the correction). With ``drift.missing_share_test`` it
        also holds ``missing_share``: ``reference``, ``current`` (shares), ``n_reference``,
        ``n_current`` (rows), ``test``, ``statistic``, ``p_value``, ``p_value_adjusted``,
        ``effect`` (absolute change), ``threshold``, ``effect_exceeded``, ``significant``,
        ``drifted``.
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
    if cfg.missing_share_test:
        result["missing_share"] = _missing_share(ref, cur, cfg)
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

    One BH family: the value test of every feature with enough usable values plus the
    missing-share test of every feature whose table is informative. A feature is drifted when
    its value test is significant and its effect exceeded, or its missing-share test is
    significant and the change reaches ``drift.missing_share_effect``. ``tested`` (the
    denominator of ``drifted_share``) holds the features with a value test plus those drifted by
    their missing share alone; a feature without a value test whose missing share did not move
    stays ``insufficient_data`` (its values could not be judged).

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
    _share_and_size_gate(features, weights, total_weight, n_rows=n_rows, cfg=cfg)
    _adjust_p_values(features, cfg)
    _missing_share_drift(features, cfg)
    tested = [f for f in features if f["status"] != INSUFFICIENT]
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


def _share_and_size_gate(features: list[dict[str, Any]], weights: dict[str, float],
                         total_weight: float, *, n_rows: int, cfg: DriftConfig) -> None:
    """Step: each feature's importance share; a batch below ``drift.min_rows`` tests nothing."""
    for res in features:
        name = res["feature"]
        if total_weight > 0:
            res["importance_share"] = weights[name] / total_weight
        if n_rows < cfg.min_rows and res["status"] != INSUFFICIENT:
            res["status"] = INSUFFICIENT
            res["reason"] = f"batch of {n_rows} rows (< drift.min_rows={cfg.min_rows})"
            res["p_value"] = None
        missing = res.get("missing_share")
        if n_rows < cfg.min_rows and missing is not None:
            missing.update(test=None, statistic=None, p_value=None)


def _adjust_p_values(features: list[dict[str, Any]], cfg: DriftConfig) -> None:
    """Step: one BH family (value tests, then informative missing-share tests); value verdicts."""
    valued = [f for f in features if f["status"] != INSUFFICIENT]
    informative = [f["missing_share"] for f in features
                   if f.get("missing_share") is not None and f["missing_share"]["test"]]
    adjusted = benjamini_hochberg([f["p_value"] for f in valued]
                                  + [m["p_value"] for m in informative]).tolist()
    for f, adj in zip(valued, adjusted[:len(valued)], strict=True):
        f["p_value_adjusted"] = adj
        f["significant"] = bool(adj <= cfg.fdr_q)
        f["drifted"] = bool(f["significant"] and f["effect_exceeded"])
        f["status"] = DRIFT if f["drifted"] else NO_DRIFT
        f["reason"] = _feature_reason(f, cfg.fdr_q)
    for m, adj in zip(informative, adjusted[len(valued):], strict=True):
        m["p_value_adjusted"] = adj
        m["significant"] = bool(adj <= cfg.fdr_q)


def _missing_share_drift(features: list[dict[str, Any]], cfg: DriftConfig) -> None:
    """Step: a feature whose missing share moved significantly and enough is drifted."""
    for f in features:
        missing = f.get("missing_share")
        if missing is None or missing["p_value"] is None:
            continue
        if not missing["test"]:  # uninformative table: p = 1 whatever the family
            missing.update(p_value_adjusted=1.0, significant=False)
        missing["drifted"] = bool(missing["significant"] and missing["effect_exceeded"])
        if missing["drifted"]:
            f["reason"] = f"{_missing_reason(missing, cfg.fdr_q)}; " + (
                f"values: {f['reason']}" if f["status"] != INSUFFICIENT
                else f"values not tested: {f['reason']}")
            f["drifted"] = True
            f["status"] = DRIFT


def _fmt_p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _feature_reason(f: dict[str, Any], q: float) -> str:
    sig = (f"{f['significance_test']} adjusted p={_fmt_p(f['p_value_adjusted'])}"
           f" {'<=' if f['significant'] else '>'} q={q}")
    eff = f["effect_size"]
    eff_txt = (f"{f['effect_test']} effect={eff:.3g} {'>=' if f['effect_exceeded'] else '<'} "
               f"{f['effect_threshold']}") if eff is not None else f"{f['effect_test']} effect n/a"
    return f"{sig}; {eff_txt}"


def _missing_reason(m: dict[str, Any], q: float) -> str:
    return (f"missing share {m['reference']:.1%} -> {m['current']:.1%} ({m['test']} adjusted "
            f"p={_fmt_p(m['p_value_adjusted'])} {'<=' if m['significant'] else '>'} q={q}; "
            f"change {m['effect']:.3g} {'>=' if m['effect_exceeded'] else '<'} "
            f"{m['threshold']})")


def _dataset_reasons(out: dict[str, Any]) -> list[str]:
    reasons = [
        f"{out['n_drifted']} of {out['n_tested']} tested features drifted "
        f"({out['drifted_share']:.0%} {'>=' if out['drift_by_share'] else '<'} "
        f"{out['share_threshold']:.0%})"
    ]
    by_missing = [f["feature"] for f in out["features"]
                  if (f.get("missing_share") or {}).get("drifted")]
    if by_missing:
        reasons.append(f"{len(by_missing)} of them in their missing share: "
                       f"{', '.join(by_missing)}")
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


def prediction_drift_multiclass(
    references: dict[str, NumericReference],
    probs: np.ndarray | None,
    cfg: DriftConfig,
    *,
    class_shares: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Per-class prediction drift of a multiclass model: each class's probability on the batch
    against the validation split (the numeric tests of :func:`prediction_drift`), the p-values
    corrected across the classes (Benjamini-Hochberg at ``drift.fdr_q``), and the share of rows
    predicted as each class.

    The top-level fields (``status``, ``p_value``, ``effect_size``, ``plot`` ...) are those of
    the class whose probability moved most (the largest effect), so reports and the UI show it
    like a binary model's score; ``per_class`` holds every class, ``predicted_shares`` the
    predicted-class shares (reference: validation).
    """
    if not references:
        return prediction_drift(None, probs, cfg, task="multiclass")
    if probs is None:
        return prediction_drift(next(iter(references.values())), None, cfg, task="multiclass")
    p = np.asarray(probs, dtype=float)
    names = list(references)
    per = {name: prediction_drift(references[name], p[:, k], cfg, task="multiclass")
           for k, name in enumerate(names)}
    tested = [n for n in names if per[n]["p_value"] is not None]
    adjusted = benjamini_hochberg([per[n]["p_value"] for n in tested]) if tested else []
    for name, q in zip(tested, adjusted, strict=True):
        exceeded = bool(per[name]["tests"][cfg.numeric_effect_test]["exceeded"])
        per[name]["p_value_adjusted"] = float(q)
        per[name]["drifted"] = bool(q <= cfg.fdr_q and exceeded)
        per[name]["status"] = DRIFT if per[name]["drifted"] else NO_DRIFT
    ranked = sorted(names, key=lambda n: (not per[n]["drifted"],
                                          -(per[n]["effect_size"] or 0.0)))
    top = ranked[0]
    out = dict(per[top])
    drifted = [n for n in names if per[n]["drifted"]]
    out["drifted"] = bool(drifted)
    if tested:
        out["status"] = DRIFT if drifted else NO_DRIFT
        out["reason"] = (f"class(es) {drifted} drifted (BH-adjusted across {len(tested)} "
                         f"classes at q={cfg.fdr_q}); largest: {top!r}: {per[top]['reason']}"
                         if drifted else
                         f"no class probability drifted (BH across {len(tested)} classes at "
                         f"q={cfg.fdr_q}); largest effect: {top!r}: {per[top]['reason']}")
    out["class"] = top
    out["per_class"] = {n: {k: per[n].get(k) for k in (
        "status", "drifted", "p_value", "p_value_adjusted", "effect_size", "effect_threshold",
        "reference_mean", "current_mean", "n_current")} for n in names}
    counts = np.bincount(p.argmax(axis=1), minlength=len(names)) if len(p) else None
    out["predicted_shares"] = {
        "reference": dict(class_shares or {}),
        "current": ({n: float(counts[k] / len(p)) for k, n in enumerate(names)}
                    if counts is not None else {}),
    }
    return out


__all__ = [
    "DRIFT", "INSUFFICIENT", "MISSING_TEST", "NO_DRIFT", "RARE", "UNAVAILABLE", "UNSEEN",
    "benjamini_hochberg", "data_drift", "decide_dataset", "evaluate_feature", "importance_of",
    "map_features", "missing_share_test", "prediction_drift", "prediction_drift_multiclass",
    "prepare_batch", "prepare_feature",
]
