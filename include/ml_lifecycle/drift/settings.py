"""Drift-monitoring and retrain-policy settings (the ``drift`` and ``policy`` config sections).

Every threshold the drift check and the retrain policy use lives here, with a default that is
sensible for daily batches of a few thousand rows and still right on batches of a million rows
(significance AND effect size, see ``docs/concepts/drift.md``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Severity = Literal["none", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("none", "low", "medium", "high", "critical")


#: Upper bound of day counts: dates this far back or ahead overflow datetime arithmetic.
MAX_DAYS = 36_500

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DriftConfig(_Strict):
    """Settings of the data, prediction and concept drift checks and of batch quality."""

    # -- when a batch can be judged at all
    min_rows: int = Field(
        default=100, ge=1,
        description="batches (or a feature's non-missing values) below this give "
                    "'insufficient_data', never 'drift'",
    )
    # -- the decision rule: significant after Benjamini-Hochberg AND a large enough effect
    fdr_q: float = Field(
        default=0.05, gt=0.0, lt=1.0,
        description="Benjamini-Hochberg false discovery rate across the features of a batch",
    )
    numeric_tests: list[str] = Field(
        default_factory=lambda: ["ks", "psi", "wasserstein", "jensen_shannon"],
        description="tests run on numeric features (names from the stat-test registry)",
    )
    categorical_tests: list[str] = Field(
        default_factory=lambda: ["chi2", "psi", "jensen_shannon"],
        description="tests run on categorical features",
    )
    numeric_significance_test: str = Field(
        default="ks", description="numeric test whose p-value enters the BH correction"
    )
    categorical_significance_test: str = Field(
        default="chi2", description="categorical test whose p-value enters the BH correction"
    )
    numeric_effect_test: str = Field(
        default="wasserstein",
        description="numeric test whose effect size must reach its threshold "
                    "(wasserstein: distance in reference standard deviations)",
    )
    categorical_effect_test: str = Field(
        default="psi", description="categorical test whose effect size must reach its threshold"
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="minimum effect size per test name, overriding the registry defaults "
                    "(ks 0.1, chi2 0.1, psi 0.1, wasserstein 0.1, jensen_shannon 0.1)",
    )
    # -- dataset verdict
    dataset_drift_share: float = Field(
        default=0.5, gt=0.0, le=1.0,
        description="the batch is drifted when this share of its tested features drifted ...",
    )
    importance_drift_share: float = Field(
        default=0.1, gt=0.0, le=1.0,
        description="... or when drifted features carry this share of the model's importance",
    )
    # -- reference profile (built at training time)
    reference_sample_size: int = Field(
        default=100_000, ge=1000,
        description="numeric values kept (sorted) per feature in the reference profile",
    )
    psi_bins: int = Field(default=10, ge=2, le=100, description="reference-quantile bins of PSI")
    hist_bins: int = Field(
        default=20, ge=2, le=200,
        description="reference-quantile bins of the Jensen-Shannon test and the report plots",
    )
    wasserstein_quantiles: int = Field(
        default=1000, ge=50, le=100_000,
        description="quantiles per side on which the Wasserstein distance is integrated",
    )
    rare_min_expected: float = Field(
        default=5.0, ge=0.0,
        description="chi-squared: categories with an expected count below this are pooled",
    )
    max_profile_categories: int = Field(
        default=5000, ge=10,
        description="categories kept per feature in the profile (the rest are pooled)",
    )
    seed: int = Field(default=42, ge=0, le=2**32 - 1, description="seed of samples and bootstraps")
    n_jobs: int = Field(
        default=1, ge=1, le=64, description="threads used to test features in parallel"
    )
    # -- prediction drift (the model's scores on the batch vs on validation)
    prediction_drift: bool = Field(
        default=True,
        description="test the model's scores on the batch against its scores on the "
                    "validation split (same rule as a feature: p-value <= fdr_q and effect size)",
    )
    # -- concept drift (delayed labels of past batches)
    performance_metric: str | None = Field(
        default=None,
        description="metric watched on labelled batches (default roc_auc / rmse); must be in "
                    "the model card's test metrics",
    )
    performance_tolerance: float = Field(
        default=0.05, ge=0.0,
        description="allowed drop of the metric vs the model's test value before it is flagged",
    )
    performance_tolerance_mode: Literal["relative", "absolute"] = Field(
        default="relative",
        description="relative: a share of the test value; absolute: in metric units",
    )
    performance_min_labelled: int = Field(
        default=200, ge=10, description="labelled rows needed in the window to judge"
    )
    performance_window_days: int | None = Field(
        default=30, ge=1, le=MAX_DAYS,
        description="labelled days older than this (days before the checked day) are never "
                    "judged; None: no age limit",
    )
    performance_recent_days: int | None = Field(
        default=1, ge=1, le=MAX_DAYS,
        description="the realized metric is judged on the most recent N labelled days the "
                    "champion scored (a chunk, as NannyML judges realized performance per "
                    "chunk); None pools every day of the window. Pooling dilutes a recent "
                    "change with the days before it, and pooling days whose base rates differ "
                    "inflates a ranking metric: on the demo a 30-day pool showed ROC-AUC "
                    "0.82-0.84 while the concept-change days were at 0.70-0.76",
    )
    performance_max_rows: int = Field(
        default=50_000, ge=100, description="most recent labelled rows kept in the window"
    )
    calibration_tolerance: float | None = Field(
        default=0.10, gt=0.0, le=1.0,
        description="realized calibration on the labelled chunk (classification): flagged "
                    "when the whole interval of observed / expected positives lies outside "
                    "1/(1+t) .. 1+t (the model is wrong about how often the positive class "
                    "happens, even if its ranking holds); None: not checked",
    )
    performance_bootstrap: int = Field(
        default=300, ge=50, le=10_000,
        description="bootstrap replicates of the interval of the realized metric's drop (and "
                    "of the realized calibration)",
    )
    performance_confidence: float = Field(
        default=0.95, gt=0.5, lt=1.0,
        description="level of the intervals of the realized drop, the realized calibration and "
                    "the label-free estimate",
    )
    # -- label-free performance estimation (calibrated scores / direct loss estimation)
    estimate_performance: bool = Field(
        default=True,
        description="estimate the watched metric without labels on every check (CBPE for "
                    "classification, direct loss estimation for regression)",
    )
    estimate_simulations: int = Field(
        default=200, ge=50, le=5000,
        description="simulated label draws behind the estimate's interval (classification)",
    )
    estimate_max_rows: int = Field(
        default=20_000, ge=1000,
        description="rows drawn for the interval's simulation; a larger batch's interval is "
                    "scaled to its size",
    )
    missing_share_test: bool = Field(
        default=True,
        description="also test each feature's missing share (Fisher's exact test on the 2 x 2 "
                    "table, in the BH family, + effect size drift.missing_share_effect)",
    )
    missing_share_effect: float = Field(
        default=0.1, gt=0.0, le=1.0,
        description="minimum absolute change of a feature's missing share to call it drift",
    )
    score_column: str = Field(
        default="score", description="column of the model's score in predictions files"
    )
    # -- batch data quality (compared with the reference profile)
    max_missing_increase: float = Field(
        default=0.1, ge=0.0, le=1.0,
        description="flag a feature whose missing rate rose by more than this (absolute)",
    )
    critical_missing_rate: float = Field(
        default=0.95, gt=0.0, le=1.0,
        description="a feature at least this missing (and not so in the reference) is critical",
    )
    max_unseen_share: float = Field(
        default=0.05, ge=0.0, le=1.0, description="flag this share of never-seen categories"
    )
    max_out_of_range_share: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="flag this share of numeric values outside the reference [min, max]",
    )
    spike_min_share: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="a single numeric value holding this share of the batch ...",
    )
    spike_ratio: float = Field(
        default=5.0, gt=1.0,
        description="... and this many times its reference share ...",
    )
    spike_max_reference_share: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="... while holding at most this share of the reference is a sentinel spike "
                    "(a common value that grows, like month=1 in a January batch, is drift)",
    )
    # -- reports
    report_top_categories: int = Field(
        default=15, ge=3, le=100,
        description="categories shown per categorical feature in the report plots (the most "
                    "frequent in the reference or the batch)",
    )

    @model_validator(mode="after")
    def _check(self) -> DriftConfig:
        if not self.numeric_tests or not self.categorical_tests:
            raise ValueError("drift.numeric_tests and drift.categorical_tests must not be empty")
        for key, tests in (
            ("numeric_significance_test", self.numeric_tests),
            ("numeric_effect_test", self.numeric_tests),
            ("categorical_significance_test", self.categorical_tests),
            ("categorical_effect_test", self.categorical_tests),
        ):
            name = getattr(self, key)
            if name not in tests:
                kind = key.split("_", 1)[0]
                raise ValueError(f"drift.{key} '{name}' is not in drift.{kind}_tests {tests}")
        return self


class PolicyConfig(_Strict):
    """Settings of the retrain policy (drift/performance/quality -> retrain or not)."""

    shadow_days: int = Field(
        default=14, ge=0, le=3650,
        description="after a promotion, the replaced champion keeps scoring this many daily "
                    "batches (shadow predictions beside the champion's); 0: off",
    )
    auto_rollback: bool = Field(
        default=False,
        description="roll back to the replaced champion when the labels of the shadow days "
                    "show the new champion worse (paired comparison on the same rows)",
    )
    rollback_min_rows: int = Field(
        default=200, ge=1,
        description="labelled rows scored by both models needed before a rollback is decided",
    )
    rollback_tolerance: float | None = Field(
        default=None, ge=0,
        description="how much worse (metric units) the new champion must be to roll back; "
                    "unset: gate.champion_tolerance",
    )

    min_severity: Literal["low", "medium", "high", "critical"] = Field(
        default="medium", description="retrain when the batch's severity reaches this"
    )
    cooldown_days: float = Field(
        default=3, ge=0, le=MAX_DAYS,
        description="no retrain within this many days of the last one ...",
    )
    critical_overrides_cooldown: bool = Field(
        default=True, description="... unless the severity is critical"
    )
    budget_max_retrains: int = Field(
        default=4, ge=0, description="at most this many retrains triggered per budget period"
    )
    budget_period_days: float = Field(
        default=30, gt=0, le=MAX_DAYS,
        description="the budget period: the last this many days before the check",
    )
    critical_overrides_budget: bool = Field(
        default=False, description="a critical severity retrains even when the budget is spent"
    )
    pending_timeout_hours: float = Field(
        default=48, gt=0, le=24 * MAX_DAYS,
        description="a triggered retrain not finished after this long no longer blocks",
    )
    high_weighted_drift: float = Field(
        default=0.5, gt=0.0, le=1.0,
        description="importance-weighted drift from which data drift alone is 'high'",
    )
    critical_drop_factor: float = Field(
        default=2.0, ge=1.0,
        description="a performance drop this many times the tolerance is 'critical'",
    )
    block_on_critical_quality: bool = Field(
        default=True,
        description="never retrain on a batch whose data quality is critical (fix data first)",
    )
    retrain_on_prediction_drift: bool = Field(
        default=True,
        description="trigger 'drift' only: prediction drift alone counts as 'medium'",
    )
    trigger: Literal["performance", "drift"] = Field(
        default="performance",
        description="what drives the retrain severity. performance: the realized metric on "
                    "arrived labels, the label-free estimate of the metric, and critical data "
                    "quality; data and prediction drift only explain (at most 'low', unless "
                    "the estimate is unreliable and policy.escalate_unreliable is on). drift: "
                    "the earlier rule, data and prediction drift grade the severity on their own",
    )
    min_reliability: float = Field(
        default=0.9, ge=0.0, le=1.0,
        description="the label-free estimate is reliable while at least this share of the "
                    "batch (weighted by feature importance) lies inside the reference's range "
                    "and categories",
    )
    escalate_unreliable: bool = Field(
        default=False,
        description="trigger 'performance': data drift in important features while the "
                    "estimate is unreliable counts as 'medium' (a retrain at the default "
                    "min_severity) instead of 'low'",
    )
    alert_min_severity: Literal["low", "medium", "high", "critical"] = Field(
        default="medium",
        description="a check at or above this severity opens an alert episode",
    )
    alert_reminder_days: float = Field(
        default=7, gt=0, le=MAX_DAYS,
        description="an episode still open this many days after its last alert alerts again "
                    "(one alert per episode otherwise, and a 'resolved' alert when it closes)",
    )
