"""Configuration: one YAML file -> one validated pydantic model.

Every threshold, path and seed of the lifecycle lives here. ``load_config(path, overrides)``
reads the YAML, applies ``--set dotted.key=value`` overrides (values parsed as YAML, so lists and
numbers work), validates, and raises :class:`ConfigError` naming the key, the value found and what
was expected. Unknown keys are refused (a typo must not silently fall back to a default).

Relative paths (``data.path``, ``registry.root``, ...) in a config *file* resolve against the
folder of that file, so a command gives the same answer from any working directory;
``ML_LIFECYCLE_BASE_DIR``, when set, overrides that folder. A config built from a dict
(``config_from_dict``) resolves against ``ML_LIFECYCLE_BASE_DIR`` or the current directory.
The lifecycle folders that a config leaves unset default to ``var/<name>/<folder>``, so two
models never share their daily files by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .drift.settings import DriftConfig, PolicyConfig
from .errors import ConfigError

BASE_DIR_ENV = "ML_LIFECYCLE_BASE_DIR"
# scikit-learn and numpy accept seeds 0 .. 2**32 - 1 only (random_state)
MAX_SEED = 2**32 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FeaturesConfig(_Strict):
    """The declared feature columns; their types are enforced on every file read, and at least
    one feature is required (a column is either numeric or categorical, never both)."""

    numeric: list[str] = Field(
        default_factory=list,
        description="numeric feature columns (text that does not parse as a number is an error); "
                    "imputed, optionally with missing indicators, and scaled",
    )
    categorical: list[str] = Field(
        default_factory=list,
        description="categorical feature columns (read as text); imputed and one-hot encoded, "
                    "rare categories grouped",
    )

    @model_validator(mode="after")
    def _some_features(self) -> FeaturesConfig:
        if not self.numeric and not self.categorical:
            raise ValueError("at least one feature is required in numeric or categorical")
        both = set(self.numeric) & set(self.categorical)
        if both:
            raise ValueError(f"columns declared both numeric and categorical: {sorted(both)}")
        for name, cols in (("numeric", self.numeric), ("categorical", self.categorical)):
            if len(set(cols)) != len(cols):
                raise ValueError(f"duplicated column names in {name}: {cols}")
        return self

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class DataConfig(_Strict):
    """The training table: where it is, how to read it, and which columns play which role."""

    path: str = Field(description="CSV/Parquet file, a folder of batch files, or a glob; a local "
                                  "path (relative to the config file) or an s3:// URL")
    format: Literal["auto", "csv", "parquet"] = Field(
        default="auto",
        description="file format; auto: Parquet for a .parquet/.pq suffix, CSV otherwise",
    )
    columns: list[str] | None = Field(
        default=None, description="column names for a headerless file (like UCI Adult)"
    )
    target: str = Field(description="the target column (the label the model learns)")
    positive_label: str | int | None = Field(
        default=None, description="classification: the positive class (default: the minority class)"
    )
    label_map: dict[str, str] = Field(
        default_factory=dict, description="rewrite raw target values, e.g. {'>50K.': '>50K'}"
    )
    id_column: str | None = Field(
        default=None,
        description="row id column: joins delayed labels to predictions (needed for retraining "
                    "on labelled batches and for concept drift), names the rows of the split "
                    "assignment and of predictions files; not a feature",
    )
    time_column: str | None = Field(
        default=None,
        description="date/time column: needed by split.strategy time and "
                    "derived_time_features, gives the model card its time range; not a feature",
    )
    derived_time_features: list[Literal["hour", "day_of_week", "month", "day_of_year"]] = Field(
        default_factory=list,
        description="numeric features computed from time_column (list them in features.numeric)",
    )
    features: FeaturesConfig = Field(description="the declared feature columns")
    na_values: list[str] = Field(
        default_factory=lambda: ["", "NA", "NaN", "nan", "null"],
        description="strings read as missing in CSV files (pandas na_values)",
    )
    keep_default_na: bool = Field(
        default=True,
        description="also treat pandas' default NA strings ('None', 'N/A', ...) as missing",
    )
    sentinels: dict[str, list[float | int | str]] = Field(
        default_factory=dict, description="per column, values that mean 'missing'"
    )
    skip_rows: int = Field(default=0, ge=0, le=100_000,
                           description="lines to skip at the top of each file")
    comment: str | None = Field(
        default=None, description="a line starting with this character is ignored"
    )
    encoding: str = Field(
        default="utf-8", description="text encoding of CSV files (e.g. utf-8, latin-1)"
    )
    data_roots: list[str] = Field(
        default_factory=list,
        description="folders that paths from trigger forms/DAG conf must resolve inside",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r} (e.g. utf-8, latin-1)") from None
        return value

    @model_validator(mode="after")
    def _check_columns(self) -> DataConfig:
        features = set(self.features.all)
        if self.derived_time_features and not self.time_column:
            raise ValueError("derived_time_features need data.time_column")
        if self.target in features:
            raise ValueError(f"target '{self.target}' is also listed as a feature")
        for key in ("id_column", "time_column"):
            col = getattr(self, key)
            if col is not None and col == self.target:
                raise ValueError(f"{key} '{col}' is the target column")
        if self.columns is not None:
            if len(set(self.columns)) != len(self.columns):
                raise ValueError("data.columns contains duplicated names")
            needed = (features - set(self.derived_time_features)) | {self.target}
            missing = sorted(needed - set(self.columns))
            if missing:
                raise ValueError(f"features/target not in data.columns: {missing}")
        return self


class QualityConfig(_Strict):
    """The data quality gate run on the training table before any model is trained: an error
    stops training, a warning is recorded in ``quality_report.json``."""

    min_rows: int = Field(default=50, ge=1, description="fewer rows than this is an error")
    max_missing_rate: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="a feature (or the target) missing in more than this share of rows is an "
                    "error",
    )
    warn_missing_rate: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="a feature missing in more than this share of rows is a warning",
    )
    spike_ratio: float = Field(
        default=10.0, gt=1.0, description="a value holding this many times its neighbours' mass"
    )
    spike_min_share: float = Field(
        default=0.02, ge=0.0, le=1.0,
        description="... and at least this share of a numeric feature's finite values is a "
                    "spike (warning: an undeclared sentinel?)",
    )
    max_duplicate_rate: float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="exact duplicate rows are a warning, an error above this share",
    )
    min_class_rate: float = Field(
        default=0.005, ge=0.0, le=0.5,
        description="classification: a minority class below this share of rows is an error",
    )
    fail_on_constant: bool = Field(
        default=False,
        description="a feature with a single distinct value is an error (false: a warning)",
    )


class LeakScreenConfig(_Strict):
    """The target-leak screen: each feature alone predicts the target (bin/category means
    learned on train, scored on validation); a near-perfect one is a leak suspect."""

    threshold: float = Field(
        default=0.98, gt=0.5, le=1.0,
        description="single-feature ROC-AUC (or R^2) that flags a leak",
    )
    fail: bool = Field(
        default=False,
        description="stop training when a feature is a leak suspect (false: a warning in the "
                    "model card)",
    )


class SplitConfig(_Strict):
    """How the training table is cut into train, validation and test splits (before any
    fitting, so nothing is learned from validation or test rows)."""

    strategy: Literal["stratified", "time", "group", "random"] = Field(
        description="stratified: random, keeping the class rates (classification); time: the "
                    "oldest rows train, the newest test (needs data.time_column); group: whole "
                    "groups of split.group_column per split; random: plain random",
    )
    train: float = Field(default=0.6, gt=0.0, lt=1.0,
                         description="share of rows the model is fitted on")
    validation: float = Field(
        default=0.2, gt=0.0, lt=1.0,
        description="share of rows for early stopping, the search, the decision threshold and "
                    "the permutation importance",
    )
    test: float = Field(
        default=0.2, gt=0.0, lt=1.0,
        description="share of rows held out for the final metrics and the gate "
                    "(train + validation + test = 1)",
    )
    seed: int = Field(default=42, ge=0, le=MAX_SEED,
                      description="seed of the random and group splits")
    group_column: str | None = Field(
        default=None,
        description="strategy group: rows sharing a value of this column stay in one split",
    )
    leak_screen: LeakScreenConfig = Field(default_factory=LeakScreenConfig,
                                          description="the single-feature target-leak screen")

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split fractions train+validation+test must sum to 1, found {total:.4f}"
            )
        if self.strategy == "group" and not self.group_column:
            raise ValueError("split.strategy 'group' needs split.group_column")
        return self


class PreprocessConfig(_Strict):
    """The built-in preprocessing (model.preprocessing builtin), fitted on the training split
    only and stored with the model in one pipeline."""

    numeric_imputer: Literal["median", "mean"] = Field(
        default="median", description="value that replaces a missing numeric value"
    )
    add_missing_indicator: bool = Field(
        default=True,
        description="add a 0/1 column per numeric feature that had missing values in training",
    )
    scale: bool = Field(default=True,
                        description="standardise numeric features (zero mean, unit variance)")
    categorical_imputer: Literal["most_frequent", "constant"] = Field(
        default="constant",
        description="constant: a missing category becomes a category of its own; "
                    "most_frequent: the most frequent category",
    )
    min_frequency: float | int = Field(
        default=0.005, description="categories rarer than this are grouped as 'infrequent'"
    )
    max_categories: int | None = Field(
        default=30, ge=2,
        description="at most this many one-hot columns per categorical feature (the rarest "
                    "categories grouped as 'infrequent'); None: no limit",
    )

    @field_validator("min_frequency")
    @classmethod
    def _frequency(cls, value: float | int) -> float | int:
        # OneHotEncoder: a count >= 1, or a share strictly between 0 and 1
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("a count of rows must be >= 1")
        elif not 0.0 < value < 1.0:
            raise ValueError("a share of rows must lie strictly between 0 and 1 "
                             "(or give a count of rows >= 1)")
        return value


class SearchConfig(_Strict):
    """Hyper-parameter search: each candidate is fitted on train and scored on validation by
    the primary metric; the best one is kept."""

    method: Literal["none", "grid", "random"] = Field(
        default="none",
        description="none: model.params only; grid: every combination of search.space; random: "
                    "search.n_iter combinations drawn from it (seeded by model.seed)",
    )
    space: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="estimator parameter -> values to try, on top of model.params",
    )
    n_iter: int = Field(default=8, ge=1,
                        description="method random: the number of combinations tried")


class ThresholdConfig(_Strict):
    """The decision threshold of a binary classifier (a score at or above it predicts the
    positive class), chosen on the validation split."""

    strategy: Literal["max_f1", "cost", "fixed"] = Field(
        default="max_f1",
        description="max_f1: the threshold of the best validation F1; cost: of the lowest "
                    "validation cost (cost_false_negative x FN + cost_false_positive x FP); "
                    "fixed: threshold.fixed",
    )
    cost_false_negative: float = Field(default=1.0, gt=0,
                                       description="strategy cost: the cost of a missed positive")
    cost_false_positive: float = Field(default=1.0, gt=0,
                                       description="strategy cost: the cost of a false alarm")
    fixed: float = Field(default=0.5, gt=0.0, lt=1.0,
                         description="strategy fixed: the threshold")


ModelFamily = Literal[
    "hist_gradient_boosting", "logistic_regression", "ridge", "lasso", "sgd", "custom"
]


class ModelConfig(_Strict):
    """The estimator: a built-in family or any scikit-learn-API estimator, its parameters,
    early stopping, search and decision threshold."""

    family: ModelFamily = Field(
        default="hist_gradient_boosting",
        description="a built-in family, or custom: any scikit-learn-API estimator named by "
                    "model.estimator",
    )
    estimator: str | None = Field(
        default=None,
        description="family custom: import path of an estimator class or of a function "
                    "returning an estimator or Pipeline ('package.module.Name' or "
                    "'package.module:Name'), called with model.params; classification needs "
                    "predict_proba",
    )
    preprocessing: Literal["builtin", "own"] = Field(
        default="builtin",
        description="builtin: the package's leakage-safe preprocessing feeds the model "
                    "(imputation, scaling, one-hot); own: the estimator (a Pipeline) receives "
                    "the raw feature columns as a DataFrame and brings its own preprocessing, "
                    "still fitted on the training split only",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of the estimator (they override the package's choices)",
    )
    class_weight: Literal["balanced"] | None = Field(
        default="balanced",
        description="classification: balanced weighs classes inversely to their frequency (in "
                    "training and in the early-stopping loss); None: unweighted",
    )
    max_iter: int = Field(
        default=500, ge=1,
        description="most boosting iterations / epochs / solver iterations of the built-in "
                    "families",
    )
    patience: int = Field(default=20, ge=1, description="early-stopping patience on validation")
    search: SearchConfig = Field(default_factory=SearchConfig,
                                 description="the hyper-parameter search")
    threshold: ThresholdConfig = Field(default_factory=ThresholdConfig,
                                       description="binary classification: the decision threshold")
    seed: int = Field(
        default=42, ge=0, le=MAX_SEED,
        description="random_state of the estimator (and of a custom one's unset random_state "
                    "parameters) and seed of the random search",
    )


class EvaluationConfig(_Strict):
    """Evaluation of the chosen model, once, on the test split (and the permutation importance,
    on validation)."""

    primary_metric: str | None = Field(
        default=None,
        description="default: pr_auc (classification), macro_f1 (multiclass) or rmse "
                    "(regression)"
    )
    bootstrap: int = Field(
        default=200, ge=0, le=10000,
        description="bootstrap replicates of the test metrics' intervals; 0: point estimates only",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0,
                              description="two-sided level of the test metrics' intervals")
    slices: list[str] = Field(
        default_factory=list,
        description="columns whose most frequent values get metrics of their own (values with "
                    "at least 30 test rows)",
    )
    importance_repeats: int = Field(
        default=3, ge=1, le=1000,
        description="shuffles per feature of the permutation importance. 3 (was 5): the "
                    "importance's error comes from which validation rows are sampled, not from "
                    "the shuffles; on UCI Adult (20 seeds, against 20 shuffles of all 6,512 "
                    "validation rows) 3 shuffles of 2,500 rows gave a mean Spearman "
                    "correlation of the ranking of 0.976 (5 shuffles: 0.982) and a largest "
                    "error of 6.4 % of the top importance (6.6 %), at 60 % of the cost",
    )
    importance_max_rows: int = Field(
        default=2500, ge=100,
        description="validation rows the permutation importance shuffles (a random sample "
                    "above this); its cost is one model prediction of these rows per feature "
                    "and repeat. 2,500 (was 5,000) halves it; on UCI Adult the ranking of the "
                    "14 features kept a Spearman correlation of 0.99 with 5,000",
    )
    shap_rows: int = Field(
        default=500, ge=50, le=100_000,
        description="validation rows (a random sample above this) behind the card's mean "
                    "|SHAP| per feature; TreeSHAP costs about 0.6 ms a row on UCI Adult. 500 "
                    "(was 1,000): against all 6,512 validation rows (20 samples) the ranking's "
                    "mean Spearman correlation was 0.997 (1,000: 0.998) and the largest error "
                    "3.1 % of the top value (2.6 %)",
    )
    seed: int = Field(default=42, ge=0, le=MAX_SEED,
                      description="seed of the bootstrap, the importance and the SHAP samples")


class PromotionConfig(_Strict):
    """How a candidate that passed the gate becomes the champion (the training DAG)."""

    mode: Literal["auto", "approval"] = Field(
        default="auto",
        description="auto: promote as soon as the gate passes; approval: the training DAG "
                    "waits for a person to approve in Airflow (Required actions, or the REST "
                    "API); reject or no answer in time: not promoted",
    )
    approval_timeout_hours: float = Field(
        default=72.0, gt=0, le=24 * 90,
        description="approval mode: hours to wait for an answer; then the candidate is "
                    "rejected (an alert says so)",
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="approval mode: Airflow user ids allowed to answer (empty: any user who "
                    "may act on the DAG's task instances)",
    )


class MlflowConfig(_Strict):
    """Optional export of every training run, version and promotion to MLflow
    (``pip install ml-lifecycle[mlflow]``). The package's registry stays the source of truth:
    a failure to reach MLflow is a warning and an alert, never a failed or changed promotion."""

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI (http(s)://host:port, sqlite:///path, databricks); "
                    "unset: $MLFLOW_TRACKING_URI, else a SQLite store beside the model's "
                    "lifecycle folders (var/<name>/mlflow.db)",
    )
    experiment: str | None = Field(default=None,
                                   description="experiment name; unset: ml-lifecycle/<name>")
    registered_model: str | None = Field(
        default=None, description="registered model name in MLflow; unset: <name>")

    @field_validator("registered_model")
    @classmethod
    def _mlflow_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "/:")):
            raise ValueError("MLflow refuses a registered model name that is empty or holds "
                             f"'/' or ':' (found {value!r})")
        return value
    champion_alias: str = Field(
        default="champion",
        description="the alias a promotion (and a rollback) moves to the champion's version",
    )
    log_model: bool = Field(
        default=True,
        description="log the fitted pipeline (mlflow.sklearn, with its signature and an input "
                    "example; skops, as the registry stores it) and register it as a model version",
    )
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="timeout of each request to a tracking server")
    max_retries: int = Field(
        default=1, ge=0, le=10,
        description="retries of a failed request (MLflow's default, 7 with backoff, would hold "
                    "a training task for minutes when the server is down)")


class TrackingConfig(_Strict):
    """Export to experiment trackers (optional)."""

    mlflow: MlflowConfig | None = Field(
        default=None, description="set (even to {}) to export to MLflow; unset: off")


class GateConfig(_Strict):
    """The gate a trained candidate must pass to be promoted: every floor, the naive baseline
    beaten, and not worse than the champion (a paired bootstrap on the same test rows)."""

    floors: dict[str, float] = Field(
        default_factory=dict, description="minimum (or maximum for error metrics) per metric"
    )
    baseline_margin: float = Field(
        default=0.02, ge=0.0,
        description="the primary metric must beat the naive baseline's by this much (metric "
                    "units; error metrics: a relative improvement, candidate <= baseline x "
                    "(1 - margin))",
    )
    champion_tolerance: float = Field(
        default=0.01, ge=0.0,
        description="non-inferiority margin: the lower bound of candidate - champion on the "
                    "primary metric must stay above -tolerance",
    )
    bootstrap: int = Field(default=500, ge=50, le=20000,
                           description="paired bootstrap replicates of the champion comparison")
    confidence: float = Field(
        default=0.8, gt=0.5, lt=1.0,
        description="one-sided level of the champion comparison: the candidate is rejected "
                    "unless P(candidate worse than champion by > tolerance) < 1 - confidence",
    )
    seed: int = Field(default=42, ge=0, le=MAX_SEED,
                      description="seed of the paired bootstrap")


class RegistryConfig(_Strict):
    """The model registry: every version's model, card and artifacts, and the champion."""

    root: str = Field(description="registry folder (relative to the config file), or an "
                                  "s3://bucket/prefix URL")
    keep_split_assignment: bool = Field(
        default=True,
        description="store each version's split_assignment.parquet (row id -> split); a later "
                    "candidate is compared with the champion only on test rows the champion "
                    "was not trained or tuned on, which needs it",
    )
    model_format: Literal["skops", "joblib"] = Field(
        default="skops",
        description="skops: models load without running code (an allowlist of types); "
                    "joblib: pickles, for estimators skops cannot hold; loading them can run "
                    "code, so choose it only if everyone who can write the registry is trusted "
                    "(it also allows loading this registry's older joblib versions)",
    )

    @model_validator(mode="after")
    def _root_form(self) -> RegistryConfig:
        if self.root.startswith("file://"):
            object.__setattr__(self, "root", self.root.removeprefix("file://"))
        elif "://" in self.root:
            from .storage import check_url

            object.__setattr__(self, "root", check_url(self.root, "registry.root",
                                                       registry=True))
        return self


class LifecycleConfig(_Strict):
    """Where the running lifecycle keeps its daily files (used by the DAGs and the backtest).

    Batch files are ``<batches>/<YYYY-MM-DD>.<ext>``, their delayed labels
    ``<labels>/<YYYY-MM-DD>.<ext>``; scoring writes ``<predictions>/<YYYY-MM-DD>.csv``.
    """

    batches: str | None = Field(default=None, description="folder of the daily batch files; "
                                "unset: var/<name>/batches")
    labels: str | None = Field(default=None, description="folder of the daily label files; "
                               "unset: var/<name>/labels")
    predictions: str | None = Field(default=None, description="where the scoring DAG writes; "
                                    "unset: var/<name>/predictions")
    reports: str | None = Field(default=None, description="drift reports (JSON + HTML); "
                                "unset: var/<name>/reports")
    alerts: str | None = Field(default=None, description="JSON alert files; "
                               "unset: var/<name>/alerts")
    file_suffix: Literal[".csv", ".parquet"] = Field(
        default=".csv", description="suffix of the daily batch and label files"
    )
    label_delay_days: int = Field(
        default=3, ge=0, le=36_500,
        description="labels of day D may be used from day D + delay on",
    )
    training_window_days: int = Field(
        default=14, ge=0, le=36_500,
        description="retraining uses the labelled batches of the last N days",
    )
    include_original: bool = Field(
        default=True, description="retraining also uses the original training table"
    )
    min_new_labels: int = Field(
        default=1000, ge=0, description="sensor: labelled rows needed since the champion's cut-off"
    )
    training_schedule: str | None = Field(
        default=None, description="cron/preset for scheduled retraining; None = off"
    )
    explain_top_k: int = Field(
        default=0, ge=0, le=100,
        description="the scoring DAG (and `score` without --explain) adds each row's K largest "
                    "SHAP contributions: explain_<r>_feature/_value/_contribution; 0: none. "
                    "Costs time: see docs/operations/performance.md",
    )

    @model_validator(mode="after")
    def _url_form(self) -> LifecycleConfig:
        """Folders may be fsspec URLs (``s3://bucket/prefix``); check their shape early."""
        from .storage import check_url

        for key in ("batches", "labels", "predictions", "reports", "alerts"):
            value = getattr(self, key)
            if value is None:  # unset: var/<name>/<key>, filled in when paths are resolved
                continue
            if value.startswith("file://"):
                object.__setattr__(self, key, value.removeprefix("file://"))
            elif "://" in value:
                object.__setattr__(self, key, check_url(value, f"lifecycle.{key}"))
        return self


class BacktestConfig(_Strict):
    """Replaying past batches to compare retraining strategies (``ml_lifecycle backtest``).

    Batches come either from dated files (``lifecycle.batches``/``lifecycle.labels``) or, with
    ``period`` set, from cutting the training table ``data.path`` by ``data.time_column``.
    """

    period: Literal["day", "week", "month"] | None = Field(
        default=None, description="cut data.path into batches by this period (None: batch files)"
    )
    initial_periods: int = Field(
        default=1, ge=1, description="with period: the first N periods train the initial model"
    )
    label_delay_periods: int = Field(
        default=1, ge=0, description="with period: labels of a period arrive N periods later"
    )
    every_k: list[int] = Field(
        default_factory=lambda: [1, 7], description="periodic strategies: retrain every k batches"
    )
    metric: str | None = Field(
        default=None, description="live metric compared across strategies (default: primary)"
    )
    grid: dict[str, list[str | int | float | bool]] = Field(
        default_factory=dict,
        description="policy variants: dotted config key -> values (one strategy per combination)",
    )
    change_points: list[str] = Field(
        default_factory=list, description="known change days (YYYY-MM-DD) for detection delay"
    )
    max_batches: int | None = Field(
        default=None, ge=1, description="replay only the first N batches (quick looks, tests)"
    )


class Config(_Strict):
    """The whole configuration of one model (one YAML file). ``data``, ``split`` and
    ``registry`` are required sections; every other section has defaults."""

    task: Literal["classification", "multiclass", "regression"] = Field(
        description="classification: a binary target (scores are P(positive class)); "
                    "multiclass: three or more classes (class probabilities, the most "
                    "probable class predicted); regression: a numeric target",
    )
    name: str = Field(
        default="model",
        description="the model's name: its DAG ids (<name>__training, ...), its default "
                    "lifecycle folders (var/<name>/...) and its MLflow names",
    )
    seed: int = Field(
        default=42, ge=0, le=MAX_SEED,
        description="recorded with the resolved config; no step reads it: the seeds in effect "
                    "are split.seed, model.seed, evaluation.seed, gate.seed and drift.seed",
    )
    data: DataConfig = Field(description="the training table and its columns")
    quality: QualityConfig = Field(default_factory=QualityConfig,
                                   description="the data quality gate")
    split: SplitConfig = Field(description="the train/validation/test split")
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig,
                                         description="the built-in preprocessing")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the estimator")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig,
                                         description="test metrics, intervals and importance")
    gate: GateConfig = Field(default_factory=GateConfig, description="the promotion gate")
    promotion: PromotionConfig = Field(default_factory=PromotionConfig,
                                       description="how a passing candidate becomes champion")
    registry: RegistryConfig = Field(description="the model registry")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig,
                                     description="optional export to MLflow")
    drift: DriftConfig = Field(default_factory=DriftConfig,
                               description="the drift checks and batch quality")
    policy: PolicyConfig = Field(default_factory=PolicyConfig,
                                 description="the retrain policy, alerts, shadow and rollback")
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig,
                                       description="the daily files of the running lifecycle")
    backtest: BacktestConfig = Field(default_factory=BacktestConfig,
                                     description="replaying past batches (backtest command)")

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        family = self.model.family
        if family == "custom" and not self.model.estimator:
            raise ValueError("model.family 'custom' needs model.estimator, the import path of "
                             "a scikit-learn-API estimator (e.g. "
                             "sklearn.ensemble.RandomForestClassifier)")
        if family != "custom" and self.model.estimator:
            raise ValueError(f"model.estimator is set but model.family is '{family}'; set "
                             "model.family: custom to use it")
        if family != "custom" and self.model.preprocessing == "own":
            raise ValueError("model.preprocessing 'own' needs model.family 'custom' (a "
                             "built-in family uses the built-in preprocessing)")
        if self.task == "regression":
            if family == "logistic_regression":
                raise ValueError("model.family 'logistic_regression' needs task 'classification'")
            if self.split.strategy == "stratified":
                raise ValueError("split.strategy 'stratified' needs task 'classification'")
        if self.task != "regression" and family in ("ridge", "lasso"):
            raise ValueError(f"model.family '{family}' needs task 'regression'")
        if self.task == "multiclass" and self.data.positive_label is not None:
            raise ValueError("data.positive_label is for binary classification; a multiclass "
                             "model has no positive class (remove it)")
        if self.split.strategy == "time" and not self.data.time_column:
            raise ValueError("split.strategy 'time' needs data.time_column")
        from .metric_names import metric_names

        known = metric_names(self.task)
        if self.evaluation.primary_metric and self.evaluation.primary_metric not in known:
            raise ValueError(f"evaluation.primary_metric '{self.evaluation.primary_metric}' is "
                             f"not a {self.task} metric; expected one of {list(known)}")
        return self

    @property
    def primary_metric(self) -> str:
        from .metric_names import DEFAULT_PRIMARY

        if self.evaluation.primary_metric:
            return self.evaluation.primary_metric
        return DEFAULT_PRIMARY[self.task]

    @property
    def is_classifier(self) -> bool:
        """Binary or multiclass classification (class probabilities, class weights)."""
        return self.task in ("classification", "multiclass")

    def resolved(self) -> dict[str, Any]:
        """The full config as plain JSON-able data (stored in every model card)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- loading


LIFECYCLE_FOLDERS = ("batches", "labels", "predictions", "reports", "alerts")


def base_dir(config_file: str | os.PathLike[str] | None = None) -> Path:
    """Folder that relative config paths resolve against: ``ML_LIFECYCLE_BASE_DIR`` when set,
    else the folder of ``config_file``, else the current directory."""
    env = os.environ.get(BASE_DIR_ENV, "").strip()
    if env:
        return Path(os.path.expanduser(env))
    if config_file is not None:
        return Path(os.path.abspath(config_file)).parent
    return Path(os.getcwd())


def resolve_path(path: str, base: Path | None = None) -> str:
    """Resolve a config path against ``base`` (or ``base_dir()``); URLs (``s3://``) pass through."""
    if "://" in path:
        return path
    p = Path(os.path.expanduser(path))
    if not p.is_absolute():
        p = (base or base_dir()) / p
    return os.path.normpath(p)  # "configs/../var" -> "var" (lexically; symlinks stay)


#: A config holds a few hundred values; YAML aliases can make a small file expand to billions
#: ("billion laughs"): documents beyond these limits are refused before anything walks them.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 50


def check_size(value: Any, source: str) -> None:
    """Refuse a parsed document with more than ``MAX_CONFIG_VALUES`` values (aliases expanded)
    or nested deeper than ``MAX_CONFIG_DEPTH`` (iterative walk: stops at the first excess)."""
    budget = MAX_CONFIG_VALUES
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(f"{source}: more than {MAX_CONFIG_VALUES} values once YAML aliases "
                              "are expanded; refusing it (a config holds a few hundred)")
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{source}: nested more than {MAX_CONFIG_DEPTH} levels deep; "
                              "refusing it")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in (*node.keys(), *node.values()))
        elif isinstance(node, (list, tuple)):
            stack.extend((child, depth + 1) for child in node)


def _safe_load_yaml(text: str, source: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to be a config") from None
    check_size(value, source)
    return value


def _short_repr(value: Any, limit: int = 80) -> str:
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxstring, shortener.maxother = 3, limit, limit
    shown = shortener.repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``dotted.key=value``; the value is YAML (``[a, b]`` is a list, ``3`` an int)."""
    if "=" not in item:
        raise ConfigError(f"--set '{item}': expected dotted.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise ConfigError(f"--set '{item}': the key '{key}' is not a dotted key like data.path")
    value = _safe_load_yaml(raw, f"--set {key}: value '{_short_repr(raw)[1:-1]}'") \
        if raw.strip() else ""
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``dotted.key=value`` override applied."""
    import copy

    result = copy.deepcopy(raw)
    for item in overrides or []:
        parts, value = parse_override(item)
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
                node[part] = child
            elif not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"--set {'.'.join(parts)}: '{prefix}' is a value ({child!r}), not a section"
                )
            node = child
        node[parts[-1]] = value
    return result


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
        found = err.get("input")
        msg = err.get("msg", "invalid")
        if err.get("type") == "missing":
            lines.append(f"  - {loc}: required key is missing")
        elif err.get("type") == "extra_forbidden":
            lines.append(f"  - {loc}: unknown key (found value {_short_repr(found)}); check the "
                         "spelling")
        else:
            lines.append(f"  - {loc}: found {_short_repr(found)}; expected: {msg}")
    return "\n".join(lines)


def config_from_dict(raw: Any, source: str = "<dict>", base: Path | None = None) -> Config:
    """Validate a plain dict into a :class:`Config` and resolve its relative paths."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a YAML mapping at the top level, found {type(raw).__name__}"
        )
    check_size(raw, source)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    root = base or base_dir()
    cfg.data.path = resolve_path(cfg.data.path, root)
    cfg.registry.root = resolve_path(cfg.registry.root, root)
    cfg.data.data_roots = [resolve_path(p, root) for p in cfg.data.data_roots]
    for key in LIFECYCLE_FOLDERS:
        value = getattr(cfg.lifecycle, key) or f"var/{cfg.name}/{key}"
        setattr(cfg.lifecycle, key, resolve_path(value, root))
    return cfg


def load_raw(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file into a dict, with clear errors for missing/malformed files."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file '{p}' is not UTF-8 text ({exc.reason})") from None
    raw = _safe_load_yaml(text, f"config file '{p}'")
    if raw is None:
        raise ConfigError(f"config file '{p}' is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{p}': expected a mapping at the top level")
    return raw


def load_config(
    path: str | os.PathLike[str],
    overrides: list[str] | None = None,
    base: Path | None = None,
) -> Config:
    """Load, override and validate a config file.

    Args:
        path: YAML file.
        overrides: ``dotted.key=value`` strings, applied in order.
        base: folder that relative paths resolve against (default: ``ML_LIFECYCLE_BASE_DIR``,
            else the folder of ``path``).

    Returns:
        The validated :class:`Config` with absolute paths.

    Raises:
        ConfigError: naming the key, the value found and what was expected.
    """
    raw = apply_overrides(load_raw(path), overrides)
    return config_from_dict(raw, source=str(path), base=base or base_dir(path))
