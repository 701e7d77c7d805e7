"""Gating: the candidate is promoted only if every rule passes.

Rules: a floor per configured metric; beat the naive baseline by a margin on the primary metric;
and, when a champion exists, be *not worse than the champion by more than a tolerance*, judged by a
paired bootstrap over the very same evaluation rows (a non-inferiority test: the lower end of the
interval of ``candidate - champion`` must stay above ``-tolerance``). Comparing two point
estimates measured on different rows would promote on noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import compute_metric, higher_is_better, paired_bootstrap

if TYPE_CHECKING:
    from .config import Config


@dataclass
class GateRule:
    name: str
    metric: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str
    low: float | None = None  # the paired comparison's lower bound (None for other rules)


@dataclass
class GateDecision:
    passed: bool
    rules: list[GateRule] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [r.detail for r in self.rules if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "rules": [asdict(r) for r in self.rules],
                "reasons": self.reasons}


def _floor_rule(metric: str, value: float, floor: float) -> GateRule:
    if higher_is_better(metric):
        ok = bool(np.isfinite(value) and value >= floor)
        detail = f"{metric} = {value:.4f} {'>=' if ok else '<'} floor {floor}"
    else:
        ok = bool(np.isfinite(value) and value <= floor)
        detail = f"{metric} = {value:.4f} {'<=' if ok else '>'} ceiling {floor}"
    return GateRule("floor", metric, float(value), float(floor), ok, detail)


def paired_bootstrap_diff(task: str, metric: str, y: np.ndarray, cand: np.ndarray,
                          champ: np.ndarray, threshold_cand: float, threshold_champ: float,
                          n_boot: int, confidence: float, seed: int) -> dict[str, float]:
    """Bootstrap the difference ``candidate - champion`` (sign-adjusted so > 0 means better)."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    point = sign * (compute_metric(task, metric, y, cand, threshold_cand)
                    - compute_metric(task, metric, y, champ, threshold_champ))
    # the same resampled rows for both models (paired), all replicates in a few matrix passes
    diffs = sign * paired_bootstrap(metric, np.asarray(y, dtype=float), cand, champ,
                                    n_boot=n_boot, seed=seed, threshold_first=threshold_cand,
                                    threshold_second=threshold_champ)
    diffs = diffs[np.isfinite(diffs)]
    alpha = 1 - confidence
    return {
        "diff": float(point),
        "low": float(np.quantile(diffs, alpha)) if diffs.size else float("nan"),
        "high": float(np.quantile(diffs, 1 - alpha)) if diffs.size else float("nan"),
        "n_boot": int(diffs.size),
        "one_sided_confidence": confidence,
    }


def decide(cfg: Config, *, y_test: np.ndarray, candidate_scores: np.ndarray,
           candidate_threshold: float, candidate_metrics: dict[str, dict[str, float]],
           baseline_metrics: dict[str, float], champion_scores: np.ndarray | None = None,
           champion_threshold: float = 0.5, champion_version: int | None = None) -> GateDecision:
    """Apply every gate rule and return the decision with each rule's value and outcome."""
    rules: list[GateRule] = []
    for metric, floor in sorted(cfg.gate.floors.items()):
        if metric not in candidate_metrics:
            rules.append(GateRule("floor", metric, None, floor, False,
                                  f"gate.floors names metric '{metric}', which is not computed "
                                  f"for task {cfg.task}"))
            continue
        rules.append(_floor_rule(metric, candidate_metrics[metric]["value"], floor))
    primary = cfg.primary_metric
    cand = candidate_metrics[primary]["value"]
    base = baseline_metrics[primary]
    margin = cfg.gate.baseline_margin
    if higher_is_better(primary):
        needed = base + margin
        ok = bool(np.isfinite(cand) and cand >= needed)
    else:
        needed = base * (1 - margin)  # error metrics: a relative improvement
        ok = bool(np.isfinite(cand) and cand <= needed)
    rules.append(GateRule(
        "beats_baseline", primary, float(cand), float(needed), ok,
        f"{primary} = {cand:.4f} vs naive baseline {base:.4f} (needed "
        f"{'>=' if higher_is_better(primary) else '<='} {needed:.4f})",
    ))
    if champion_scores is not None:
        tol = cfg.gate.champion_tolerance
        comp = paired_bootstrap_diff(
            cfg.task, primary, np.asarray(y_test, dtype=float), candidate_scores, champion_scores,
            candidate_threshold, champion_threshold, cfg.gate.bootstrap, cfg.gate.confidence,
            cfg.gate.seed,
        )
        ok = bool(np.isfinite(comp["low"]) and comp["low"] >= -tol)
        rules.append(GateRule(
            "not_worse_than_champion", primary, comp["diff"], -tol, ok, low=comp["low"],
            detail=f"{primary} candidate - champion v{champion_version} = {comp['diff']:+.4f} "
            f"(paired bootstrap, {comp['one_sided_confidence']:.0%} lower bound "
            f"{comp['low']:+.4f} {'>=' if ok else '<'} -{tol})",
        ))
    return GateDecision(passed=all(r.passed for r in rules), rules=rules)
