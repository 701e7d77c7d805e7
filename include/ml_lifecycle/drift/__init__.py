"""Drift monitoring core (no Airflow)."""
