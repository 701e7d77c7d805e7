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
-> 403. The OpenAPI/docs routes are switched off (FastAPI would serve them without the
dependency). HTML answers carry a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.api_fastapi.core_api.security import requires_authenticated
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


class NotFound(Exception):
    """The requested version or day does not exist."""


def _errors() -> tuple[type[BaseException], ...]:
    from ml_lifecycle.errors import MLLifecycleError

    return (MLLifecycleError, OSError, ValueError)


def parse_version(text: str) -> int:
    """``2``, ``v2`` or ``v0002`` -> 2; anything else is not found."""
    match = _VERSION.match(text.strip())
    if not match:
        raise NotFound(f"'{text}' is not a version number (expected e.g. 2 or v0002)")
    return int(match.group(1))


def create_app(project_root: str | Path | None = None) -> FastAPI:
    """Build the app. ``project_root`` (default: the folder above ``plugins/``) is the project
    whose ``configs/`` folder lists the models when ``ML_LIFECYCLE_CONFIGS`` is not set."""
    app = FastAPI(
        title=NAV_NAME,
        description="Read-only monitoring pages and JSON API of the ML lifecycle.",
        docs_url=None, redoc_url=None, openapi_url=None,
        dependencies=[Depends(authenticated)],
    )

    def load(model: str) -> source.Source:
        try:
            return source.load_source(model, project_root)
        except source.UnknownModel as exc:
            raise NotFound(str(exc)) from None

    def html_page(model: str, render: Callable[[source.Source], str], *, base: str,
                  title: str) -> Response:
        try:
            return HTMLResponse(render(load(model)), headers=HEADERS)
        except NotFound as exc:
            return HTMLResponse(pages.error_page("Not found", str(exc), base=base),
                                status_code=404, headers=HEADERS)
        except _errors() as exc:
            return HTMLResponse(pages.error_page(f"{title}: cannot read the lifecycle data",
                                                 f"{type(exc).__name__}: {exc}", base=base),
                                status_code=500, headers=HEADERS)

    def json_answer(model: str | None, produce: Callable[[Any], Any]) -> Response:
        try:
            subject = load(model) if model is not None else None
            return JSONResponse(source.jsonable(produce(subject)), headers=JSON_HEADERS)
        except NotFound as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404, headers=JSON_HEADERS)
        except _errors() as exc:
            return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=500,
                                headers=JSON_HEADERS)

    def version_of(src: source.Source, text: str) -> dict[str, Any]:
        from ml_lifecycle.errors import RegistryError

        number = parse_version(text)
        try:
            src.registry.get_card(number)  # RegistryError: not a complete version
        except RegistryError as exc:
            raise NotFound(str(exc)) from None
        return source.version_view(src, number)

    def checked_day(day: str) -> str:
        from ml_lifecycle.drift.store import validate_day
        from ml_lifecycle.errors import DataError

        try:
            return validate_day(day)
        except DataError as exc:
            raise NotFound(str(exc)) from None

    # ---------------------------------------------------------------- pages

    @app.get("/", response_class=HTMLResponse, summary="All models")
    def model_list_page() -> Response:
        try:
            return HTMLResponse(pages.model_list_page(source.models_list_view(project_root)),
                                headers=HEADERS)
        except _errors() as exc:
            return HTMLResponse(pages.error_page("Models: cannot list the models",
                                                 f"{type(exc).__name__}: {exc}", base=None),
                                status_code=500, headers=HEADERS)

    @app.get("/models/{model}/", response_class=HTMLResponse, summary="One model's versions")
    def models_page(model: str) -> Response:
        return html_page(model, lambda src: pages.models_page(source.models_view(src), base=""),
                         base="", title="Models")

    @app.get("/models/{model}/versions/{version}", response_class=HTMLResponse,
             summary="One model version")
    def version_page(model: str, version: str) -> Response:
        return html_page(model, lambda src: pages.version_page(version_of(src, version),
                                                               base="../"),
                         base="../", title="Version")

    @app.get("/models/{model}/drift", response_class=HTMLResponse, summary="Drift history")
    def drift_page(model: str) -> Response:
        return html_page(model, lambda src: pages.drift_page(source.drift_view(src), base=""),
                         base="", title="Drift history")

    @app.get("/models/{model}/drift/reports/{day}", response_class=HTMLResponse,
             summary="The stored HTML report of one checked day")
    def day_report(model: str, day: str) -> Response:
        def render(src: source.Source) -> str:
            path = source.day_report(src, checked_day(day))
            if path is None:
                raise NotFound(f"no drift report stored for {day}")
            return path.read_text(encoding="utf-8")

        try:
            return HTMLResponse(render(load(model)), headers=REPORT_HEADERS)
        except NotFound as exc:
            return HTMLResponse(pages.error_page("Not found", str(exc), base="../../"),
                                status_code=404, headers=HEADERS)
        except _errors() as exc:
            return HTMLResponse(pages.error_page("Drift report", f"{type(exc).__name__}: {exc}",
                                                 base="../../"),
                                status_code=500, headers=HEADERS)

    # ---------------------------------------------------------------- JSON API

    @app.get("/api/models", summary="All models: champion, last check, last retrain, alert")
    def api_models() -> Response:
        return json_answer(None, lambda _: source.models_list_view(project_root))

    @app.get("/api/models/{model}/versions", summary="Versions, champion and promotion history")
    def api_versions(model: str) -> Response:
        return json_answer(model, source.models_view)

    @app.get("/api/models/{model}/versions/{version}",
             summary="One version: card, quality report, promotions")
    def api_version(model: str, version: str) -> Response:
        return json_answer(model, lambda src: version_of(src, version))

    @app.get("/api/models/{model}/champion", summary="The champion (null without one)")
    def api_champion(model: str) -> Response:
        return json_answer(model, source.champion_view)

    @app.get("/api/models/{model}/drift", summary="Drift history with per-feature effect sizes")
    def api_drift(model: str) -> Response:
        return json_answer(model, source.drift_view)

    @app.get("/api/models/{model}/drift/{day}", summary="The stored result of one checked day")
    def api_drift_day(model: str, day: str) -> Response:
        def produce(src: source.Source) -> Any:
            result = source.day_result(src, checked_day(day))
            if result is None:
                raise NotFound(f"day {day} was not checked")
            return result

        return json_answer(model, produce)

    return app
