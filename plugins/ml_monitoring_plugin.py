"""Airflow plugin: an "ML monitoring" page inside the Airflow UI.

It shows what the lifecycle stored, read through the core package: the model versions with their
metrics, gate decisions and promotion history, one page per version (model card, validation
curve, importances, confusion matrix or residuals, quality report), and the drift history (one
row per checked day, effect sizes over time, performance once labels arrive, each day's report).

* ``fastapi_apps`` mounts the app on the api-server at ``/ml-monitoring``; every route requires
  a user logged in to Airflow (``requires_authenticated()``, as Airflow's own API routes).
* ``external_views`` adds the sidebar entry "ML monitoring", shown in the UI at
  ``/plugin/ml-monitoring`` (the app's URL needs its trailing slash).

This file stays cheap to import (Airflow imports it in every component): the app itself is
built on the first request (:class:`ml_monitoring.LazyApp`). See ``docs/how-to/ui.md``.
"""

from __future__ import annotations

import os
import sys

from airflow.plugins_manager import AirflowPlugin

# Airflow puts the plugins folder on sys.path in most processes; do it here for the others.
_PLUGINS_DIR = os.path.dirname(os.path.abspath(__file__))
if _PLUGINS_DIR not in sys.path:
    sys.path.append(_PLUGINS_DIR)

from ml_monitoring import NAV_NAME, URL_PREFIX, URL_ROUTE, LazyApp  # noqa: E402


class MLMonitoringPlugin(AirflowPlugin):
    """Models, gate decisions and drift history, as pages inside the Airflow UI."""

    name = "ml_monitoring"
    fastapi_apps = [  # noqa: RUF012 (Airflow's plugin interface: class attributes)
        {"app": LazyApp(), "url_prefix": URL_PREFIX, "name": NAV_NAME},
    ]
    external_views = [  # noqa: RUF012
        {
            "name": NAV_NAME,
            "href": URL_PREFIX.lstrip("/") + "/",  # relative to the UI's base URL; the slash counts
            "url_route": URL_ROUTE,
            "destination": "nav",
            "nav_top_level": True,  # its own sidebar button, not inside a "Plugins" menu
        },
    ]
