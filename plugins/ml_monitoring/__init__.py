"""The ML monitoring pages shown inside the Airflow UI (see ``plugins/ml_monitoring_plugin.py``).

Modules:

* ``source``  -- which models there are (the configs folder, discovered as the DAG factory does,
  read on every request) and the read-only views of each model's registry and monitoring
  store, through the core package (``ml_lifecycle``). Nothing is computed anew.
* ``svg``     -- small inline-SVG plots (line charts, bars, confusion matrix, histogram).
* ``pages``   -- server-rendered HTML (everything escaped, no script, no external asset).
* ``app``     -- the FastAPI app: pages + a read-only JSON API, every route behind Airflow's login.

This ``__init__`` stays import-cheap: the plugin file imports it in every Airflow process, and
the FastAPI app (with the core package, pandas ...) is only built on the first request.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["NAV_NAME", "URL_PREFIX", "URL_ROUTE", "LazyApp"]

URL_PREFIX = "/ml-monitoring"  # where the api-server mounts the app
URL_ROUTE = "ml-monitoring"  # the UI route of the navigation entry: /plugin/ml-monitoring
NAV_NAME = "ML monitoring"


class LazyApp:
    """An ASGI app that builds :func:`ml_monitoring.app.create_app` on its first request.

    Airflow imports plugin files in the scheduler, the dag-processor, the triggerer and task
    processes too; only the api-server ever serves the app, so only it pays for the imports.
    """

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def get_app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from ml_monitoring.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.get_app()(scope, receive, send)
