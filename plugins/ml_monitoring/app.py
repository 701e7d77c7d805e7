"""The FastAPI app of the monitoring pages, mounted by the api-server at ``/ml-monitoring``.

Routes (all ``GET``, all behind Airflow's login, none writes anything); ``{model}`` is a
model's ``name`` (an unknown name is a 404):

==========================================  ================================================
``/``                                       All models: champion, last check, last retrain,
                                            open alert; configs that cannot be used
``/models/{model}/``                        Versions, champion, gate outcome, promotions
``/models/{model}/versions/{version}``      one version: card, curves, importances, quality
``/models/{model}/drift``                   Drift history: days, effect sizes, performance
``/models/{model}/drift/reports/{day}``     the stored HTML report of one checked day
``/api/models``                             JSON: the model list (as on ``/``)
``/api/models/{model}/versions``            JSON: versions (summaries), champion, history
``/api/models/{model}/versions/{version}``  JSON: one version's card, quality, promotions
``/api/models/{model}/champion``            JSON: the champion (null without one)
``/api/models/{model}/drift``               JSON: drift history + per-feature effect sizes
``/api/models/{model}/drift/{day}``         JSON: the stored result of one checked day
==========================================  ================================================

Access: the app-level dependency :data:`authenticated` is Airflow's
``requires_authenticated()``: a JWT from the ``Authorization: Bearer`` header or the UI's
``_token`` cookie, validated by the auth manager of the api-server; anonymous -> 401, invalid
-> 403. Each model is then authorized like its DAGs: a model's pages and API answer only a user
whom the auth manager allows to read (``GET``) all three of the model's DAGs (403 otherwise),
and the model list shows only those models (:func:`dag_reader`). Errors answer a generic
message with a reference id; the detail (paths, exception text) goes to the api-server's log.
The OpenAPI/docs routes are switched off (FastAPI would serve them without the dependency).
HTML answers carry a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import get_user, requires_authenticated
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response

from . import NAV_NAME, pages, source

# The dependency object itself: tests override it with app.dependency_overrides[authenticated].
authenticated = requires_authenticated()

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# The day reports come from the core's renderer (no script either); sandboxing them as well
# gives them an opaque origin, so even an injection there could not read the UI's cookie.
REPORT_HEADERS = {**HEADERS, "Content-Security-Policy": CSP + "; sandbox"}
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_VERSION = re.compile(r"^v?0*([1-9][0-9]{0,8})$")


log = logging.getLogger(__name__)
#: may this user read every one of these DAG ids? (overridden in tests)
DagReader = Callable[[Iterable[str]], bool]


class NotFound(Exception):
    """The requested model, version or day does not exist."""


class Forbidden(Exception):
    """The user may not read this model's DAGs."""


def dag_reader(user: Annotated[Any, Depends(get_user)]) -> DagReader:
    """FastAPI dependency: a predicate saying whether the request's user may read (``GET``)
    every DAG of a list, asked of Airflow's auth manager exactly as Airflow's own API asks it
    (``batch_is_authorized_dag`` with each DAG's team)."""

    def may_read(dag_ids: Iterable[str]) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
        from airflow.models.dag import DagModel

        requests: list[Any] = [
            {"method": "GET", "details": DagDetails(id=dag_id,
                                                     team_name=DagModel.get_team_name(dag_id))}
            for dag_id in dag_ids]
        return bool(requests) and get_auth_manager().batch_is_authorized_dag(requests,
                                                                               user=user)

    return may_read


def reference() -> str:
    """A short id that ties a generic error answer to its detail in the log."""
    return uuid.uuid4().hex[:12]


def _errors() -> tuple[type[BaseException], ...]:
    from ml_lifecycle.errors import MLLifecycleError

    return (MLLifecycleError, OSError, ValueError)


def parse_version(text: str) -> int:
    """``2``, ``v2`` or ``v0002`` -> 2; anything else is not found."""
    match = _VERSION.match(text.strip())
    if not match:
        raise NotFound(f"'{text}' is not a version number (expected e.g. 2 or v0002)")
    return int(match.group(1))


def _load(project_root: str | Path | None, model: str, may_read: DagReader) -> source.Source:
    """Step: find ``model`` among the configs (404) and authorize its DAGs (403), then load it."""
    specs, _ = source.discover(project_root)
    if not any(spec.name == model for spec in specs):
        raise NotFound(f"no model named '{model}'")
    if not may_read(source.dag_ids(model).values()):
        raise Forbidden(f"you may not read the DAGs of model '{model}'")
    return source.load_source(model, project_root)


def _failure(exc: BaseException, what: str) -> str:
    """Step: log an error's detail under a reference id; return the generic message."""
    ref = reference()
    log.error("ml-monitoring %s failed (reference %s): %s: %s", what, ref,
              type(exc).__name__, exc, exc_info=exc)
    return f"{what}: the lifecycle data could not be read (reference {ref}; see the log)"


def _html_page(project_root: str | Path | None, model: str, may_read: DagReader,
               render: Callable[[source.Source], str], *, base: str, title: str,
               headers: dict[str, str] = HEADERS) -> Response:
    """Step: one model's HTML page, with the 404/403/500 error pages."""
    try:
        return HTMLResponse(render(_load(project_root, model, may_read)), headers=headers)
    except NotFound as exc:
        return HTMLResponse(pages.error_page("Not found", str(exc), base=base),
                            status_code=404, headers=HEADERS)
    except Forbidden as exc:
        return HTMLResponse(pages.error_page("Forbidden", str(exc), base=base),
                            status_code=403, headers=HEADERS)
    except _errors() as exc:
        return HTMLResponse(pages.error_page(title, _failure(exc, title), base=base),
                            status_code=500, headers=HEADERS)


def _json_answer(project_root: str | Path | None, model: str | None, may_read: DagReader,
                 produce: Callable[[Any], Any]) -> Response:
    """Step: one JSON answer (of a model, or of none), with the 404/403/500 error bodies."""
    try:
        subject = _load(project_root, model, may_read) if model is not None else None
        return JSONResponse(source.jsonable(produce(subject)), headers=JSON_HEADERS)
    except NotFound as exc:
        return JSONResponse({"detail": str(exc)}, status_code=404, headers=JSON_HEADERS)
    except Forbidden as exc:
        return JSONResponse({"detail": str(exc)}, status_code=403, headers=JSON_HEADERS)
    except _errors() as exc:
        return JSONResponse({"detail": _failure(exc, "API")}, status_code=500,
                            headers=JSON_HEADERS)


def _version_of(src: source.Source, text: str) -> dict[str, Any]:
    """Step: the view of one complete version (anything else is not found)."""
    from ml_lifecycle.errors import RegistryError

    number = parse_version(text)
    try:
        src.registry.get_card(number)  # RegistryError: not a complete version
    except RegistryError as exc:
        raise NotFound(str(exc)) from None
    return source.version_view(src, number)


def _checked_day(day: str) -> str:
    """Step: a valid day (``YYYY-MM-DD``) or not found."""
    from ml_lifecycle.drift.store import validate_day
    from ml_lifecycle.errors import DataError

    try:
        return validate_day(day)
    except DataError as exc:
        raise NotFound(str(exc)) from None


def create_app(project_root: str | Path | None = None) -> FastAPI:
    """Build the app. ``project_root`` (default: the folder above ``plugins/``) is the project
    whose ``configs/`` folder lists the models when ``ML_LIFECYCLE_CONFIGS`` is not set."""
    app = FastAPI(
        title=NAV_NAME,
        description="Read-only monitoring pages and JSON API of the ML lifecycle.",
        docs_url=None, redoc_url=None, openapi_url=None,
        dependencies=[Depends(authenticated)],
    )
    _add_page_routes(app, project_root)
    _add_api_routes(app, project_root)
    return app


def _add_page_routes(app: FastAPI, project_root: str | Path | None) -> None:
    """Step: register the HTML pages (each model authorized by :func:`dag_reader`)."""
    Reader = Depends(dag_reader)

    def html_page(model: str, may_read: DagReader, render: Callable[[source.Source], str], *,
                  base: str, title: str, headers: dict[str, str] = HEADERS) -> Response:
        return _html_page(project_root, model, may_read, render, base=base, title=title,
                          headers=headers)

    @app.get("/", response_class=HTMLResponse, summary="All models")
    def model_list_page(may_read: DagReader = Reader) -> Response:
        try:
            view = source.models_list_view(project_root, may_read)
            return HTMLResponse(pages.model_list_page(view), headers=HEADERS)
        except _errors() as exc:
            return HTMLResponse(pages.error_page("Models", _failure(exc, "Models"), base=None),
                                status_code=500, headers=HEADERS)

    @app.get("/models/{model}/", response_class=HTMLResponse, summary="One model's versions")
    def models_page(model: str, may_read: DagReader = Reader) -> Response:
        return html_page(model, may_read,
                         lambda src: pages.models_page(source.models_view(src), base=""),
                         base="", title="Models")

    @app.get("/models/{model}/versions/{version}", response_class=HTMLResponse,
             summary="One model version")
    def version_page(model: str, version: str, may_read: DagReader = Reader) -> Response:
        return html_page(model, may_read,
                         lambda src: pages.version_page(_version_of(src, version), base="../"),
                         base="../", title="Version")

    @app.get("/models/{model}/drift", response_class=HTMLResponse, summary="Drift history")
    def drift_page(model: str, may_read: DagReader = Reader) -> Response:
        return html_page(model, may_read,
                         lambda src: pages.drift_page(source.drift_view(src), base=""),
                         base="", title="Drift history")

    @app.get("/models/{model}/drift/reports/{day}", response_class=HTMLResponse,
             summary="The stored HTML report of one checked day")
    def day_report(model: str, day: str, may_read: DagReader = Reader) -> Response:
        def render(src: source.Source) -> str:
            path = source.day_report(src, _checked_day(day))
            if path is None:
                raise NotFound(f"no drift report stored for {day}")
            return path.read_text(encoding="utf-8")

        return html_page(model, may_read, render, base="../../", title="Drift report",
                         headers=REPORT_HEADERS)


def _add_api_routes(app: FastAPI, project_root: str | Path | None) -> None:
    """Step: register the JSON API (each model authorized by :func:`dag_reader`)."""
    Reader = Depends(dag_reader)

    def json_answer(model: str | None, may_read: DagReader,
                    produce: Callable[[Any], Any]) -> Response:
        return _json_answer(project_root, model, may_read, produce)

    @app.get("/api/models", summary="The models you may read: champion, last check, alert")
    def api_models(may_read: DagReader = Reader) -> Response:
        return json_answer(None, may_read,
                           lambda _: source.models_list_view(project_root, may_read))

    @app.get("/api/models/{model}/versions", summary="Versions, champion and promotion history")
    def api_versions(model: str, may_read: DagReader = Reader) -> Response:
        return json_answer(model, may_read, source.models_view)

    @app.get("/api/models/{model}/versions/{version}",
             summary="One version: card, quality report, promotions")
    def api_version(model: str, version: str, may_read: DagReader = Reader) -> Response:
        return json_answer(model, may_read, lambda src: _version_of(src, version))

    @app.get("/api/models/{model}/champion", summary="The champion (null without one)")
    def api_champion(model: str, may_read: DagReader = Reader) -> Response:
        return json_answer(model, may_read, source.champion_view)

    @app.get("/api/models/{model}/drift", summary="Drift history with per-feature effect sizes")
    def api_drift(model: str, may_read: DagReader = Reader) -> Response:
        return json_answer(model, may_read, source.drift_view)

    @app.get("/api/models/{model}/drift/{day}", summary="The stored result of one checked day")
    def api_drift_day(model: str, day: str, may_read: DagReader = Reader) -> Response:
        def produce(src: source.Source) -> Any:
            result = source.day_result(src, _checked_day(day))
            if result is None:
                raise NotFound(f"day {day} was not checked")
            return result

        return json_answer(model, may_read, produce)
