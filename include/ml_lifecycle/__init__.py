"""ml_lifecycle: the train -> monitor -> retrain lifecycle of a tabular model, as plain Python.

This package knows nothing of Airflow; the DAGs in ``dags/`` are thin callers of it.
"""

from __future__ import annotations

__version__ = "0.1.0"
