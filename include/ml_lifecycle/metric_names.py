"""The names and directions of the metrics, without numpy (config validation needs them while
Airflow parses DAG files; the computations live in :mod:`ml_lifecycle.metrics`)."""

from __future__ import annotations

LOWER_IS_BETTER = frozenset({"mae", "rmse", "brier", "log_loss"})
CLASSIFICATION_METRICS = (
    "roc_auc", "pr_auc", "precision", "recall", "f1", "balanced_accuracy", "brier", "accuracy",
)
REGRESSION_METRICS = ("mae", "rmse", "r2")
#: Multiclass: F1 averaged over classes (macro) and by support (weighted) of the most probable
#: class, accuracy, balanced accuracy (mean recall), one-vs-rest ROC-AUC (macro) and log loss.
MULTICLASS_METRICS = (
    "macro_f1", "weighted_f1", "accuracy", "balanced_accuracy", "roc_auc_ovr", "log_loss",
)
TASKS = ("classification", "multiclass", "regression")
DEFAULT_PRIMARY = {"classification": "pr_auc", "multiclass": "macro_f1", "regression": "rmse"}


def higher_is_better(metric: str) -> bool:
    """Direction of a metric (error metrics are lower-is-better)."""
    return metric not in LOWER_IS_BETTER


def metric_names(task: str) -> tuple[str, ...]:
    """The metrics reported for a task."""
    if task == "multiclass":
        return MULTICLASS_METRICS
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
