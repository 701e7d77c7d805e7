"""ml-lifecycle: one training, scoring and drift-check DAG per model config in ``configs/``.

``ML_LIFECYCLE_CONFIGS`` names another configs folder; see ``ml_lifecycle_airflow.factory``.
"""

from ml_lifecycle_airflow.factory import build_dag_sets

globals().update(build_dag_sets(__file__))
