"""A test auth manager: Airflow's SimpleAuthManager, plus per-model DAG scopes.

Users named ``<model>-reader`` may read only the DAGs of that model (``<model>__*``); every
other user is the plain SimpleAuthManager user of its role. Airflow's own managers (FAB,
Keycloak) express the same thing with per-DAG permissions; SimpleAuthManager has none, so the
authorization tests plug this in with ``AIRFLOW__CORE__AUTH_MANAGER``.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

SUFFIX = "-reader"


class ModelScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None,
                          details: Any = None) -> bool:
        name = getattr(user, "username", "") or ""
        if name.endswith(SUFFIX):
            model = name.removesuffix(SUFFIX)
            if details is None or not str(details.id or "").startswith(f"{model}__"):
                return False
        return super().is_authorized_dag(method=method, user=user,
                                         access_entity=access_entity, details=details)
