"""The names and directions of the metrics, without numpy (config validation needs them while
Airflow parses DAG files; the computations live in :mod:`ml_lifecycle.metrics`)."""

from __future__ import annotations

LOWER_IS_BETTER = frozenset({"mae", "rmse", "brier", "log_loss"})
CLASSIFICATION_METRICS = (
    "roc_auc", "pr_auc", "precision", "recall", "f1", "balanced_accuracy", "brier", "accuracy",
)
REGRESSION_METRICS = ("mae", "rmse", "r2")


def higher_is_better(metric: str) -> bool:
    """Direction of a metric (error metrics are lower-is-better)."""
    return metric not in LOWER_IS_BETTER


def metric_names(task: str) -> tuple[str, ...]:
    """The metrics reported for a task."""
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
