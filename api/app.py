"""The HTTP API and the web page: the app, its error answers and its OpenAPI document.

``create_app`` is cheap: models load once, in the startup of the app's lifespan, and stay loaded.
``uvicorn api.app:app`` gets an app configured from TALKSEARCH_* variables. The routes are in
``api/routes`` (one module per area), who may do what in ``api/access.py`` (the key, the Host
and Origin rules, body limits), the shared state in ``api/state.py``.

/openapi.json states the access rules of the running configuration: an operation lists the key as a
security requirement only where this server enforces it.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from core.errors import ModelError, TalksearchError
from index.library import UnknownRecording
from index.writelock import LibraryBusyError

from .access import Guard, reader, writer
from .config import Settings
from .jobs import QueueFullError
from .routes import jobs, playback, recordings, search
from .routes import service as service_routes
from .routes.service import WEB_DIR
from .service import Talksearch
from .state import Backend

log = logging.getLogger(__name__)

_STATUS = {UnknownRecording: 404, QueueFullError: 429, LibraryBusyError: 503, ModelError: 503}

__all__ = ["create_app"]


AREAS = (service_routes, search, recordings, playback, jobs)


# The app's own routes (not FastAPI's /docs and /openapi.json, nor the static files).
_API_ROUTES: list[APIRoute] = [route for area in AREAS for route in area.router.routes]


def _talksearch_error(request: Request, exc: TalksearchError) -> JSONResponse:
    """A user error is 400 (404 for a recording that is not there); a busy or unready server says
    so, and when to come back."""
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers={"Retry-After": "30"} if status >= 429 else None)


def _allowed(scope: Scope) -> set[str]:
    """The methods of the path's own routes: those of its most literal template (/recordings/import is
    not a recording id), or none for FastAPI's own paths (/docs), whose single route names them already."""
    matched = [route for route in _API_ROUTES if route.matches(scope)[0] is not Match.NONE]
    own = min(matched, key=lambda route: len(route.param_convertors)).path_format if matched else None
    return {method for route in matched if route.path_format == own for method in route.methods}


async def _http_problem(request: Request, exc: StarletteHTTPException) -> Response:
    """The usual answer, except that a 405 allows every method the path takes, not only one route's."""
    allowed = exc.status_code == 405 and _allowed(request.scope)
    if allowed:
        exc.headers = {"Allow": ", ".join(sorted(allowed))}
    return await http_exception_handler(request, exc)


def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each field at fault and why, without the values sent: they may be huge, or private."""
    return JSONResponse({"detail": [{"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
                                    for error in exc.errors()]}, status_code=422)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error: {exc.__class__.__name__}"}, status_code=500)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    await run_in_threadpool(app.state.backend.start)
    yield
    await run_in_threadpool(app.state.backend.stop)


def _access(settings: Settings) -> str:
    if settings.http.api_key is None:
        return ("No API key is configured: this server answers only requests addressed to localhost, 127.0.0.1, [::1] "
                "or TALKSEARCH_ALLOWED_HOSTS, and takes changes only from clients on its machine, never from another "
                "site's page.")
    reads = "Reads need it too." if settings.http.protect_reads else "Reads are open."
    return f"Changes need the API key, as X-API-Key or Authorization: Bearer. {reads}"


def _document_access(schema: dict, settings: Settings) -> None:
    """Keep the key requirement, 401 and 403 only on the operations where this configuration has them."""
    schema["info"]["description"] += f" {_access(settings)}"
    for route in _API_ROUTES:
        if not route.include_in_schema:
            continue
        guards = {dependency.dependency for dependency in route.dependencies}
        refusable = writer in guards or (reader in guards and settings.http.protect_reads)
        for method in route.methods:
            operation = schema["paths"][route.path_format][method.lower()]
            if not refusable or settings.http.api_key is None:
                operation.pop("security", None)
                operation["responses"].pop("401", None)
            if not refusable:
                operation["responses"].pop("403", None)


def _openapi(app: FastAPI) -> Callable[[], dict]:
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            _document_access(generate(), app.state.backend.settings)
        return app.openapi_schema
    return openapi


def create_app(settings: Settings, service: Talksearch | None = None) -> FastAPI:
    """An app for one library; pass ``service`` to share already-loaded models."""
    app = FastAPI(title="talksearch", version=version("talksearch"), lifespan=_lifespan,
                  description="Search what was said in recorded talks, in any language, and play the exact clip.")
    app.state.backend = Backend(settings, service or Talksearch(settings))
    app.state.streamed = [route for route in recordings.router.routes if route.endpoint in recordings.STREAMED]
    for area in AREAS:
        app.include_router(area.router)
    app.openapi = _openapi(app)
    app.add_middleware(Guard)
    app.add_exception_handler(TalksearchError, _talksearch_error)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _unexpected)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def __getattr__(name: str):
    """``uvicorn api.app:app``: built on first access, from TALKSEARCH_* variables, so importing is free."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()["app"] = create_app(Settings.from_env())
    return globals()["app"]

