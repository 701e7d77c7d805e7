"""Airflow-specific pieces of the lifecycle: settings, trigger-form params, sensors, notifier.

The DAG files in ``dags/`` only wire these and the pure core (``ml_lifecycle``) together.
Nothing here imports pandas, scikit-learn or scipy at module level, so DAG files stay cheap to
parse; the heavy imports happen inside task callables.
"""
