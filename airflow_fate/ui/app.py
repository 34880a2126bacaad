"""The FastAPI app the plugin mounts under ``/fate``: JSON API, pages, static files.

Errors on pages are pages too: a 401/403/404 under ``/ui`` renders a short HTML notice
(with a sign-in link for 401) instead of JSON, inside the tab where it happened, and it
carries no data. The API keeps FastAPI's JSON errors, as Airflow's REST API does.
Static files (one stylesheet, one script) hold no data and are served to anyone.
"""

from __future__ import annotations

from importlib.resources import files

from airflow.api_fastapi.app import get_auth_manager
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from airflow_fate.ui import api, pages

PAGE_MESSAGES = {
    401: "Sign in to Airflow to see FATE placements.",
    403: "Your Airflow role may not see this.",
    404: "Not found.",
}


def create_app() -> FastAPI:
    """A new monitor app (the plugin builds one per API server process)."""
    app = FastAPI(
        title="FATE monitor",
        description="GPU placements, residency and decisions of the FATE executor.",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(api.router)
    app.include_router(pages.router)
    static = files("airflow_fate.ui").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    return app


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if not request.url.path.removeprefix(str(request.scope.get("root_path", ""))).startswith(
        "/ui/"
    ):
        return await http_exception_handler(request, exc)
    login = None
    if exc.status_code == 401:
        login = get_auth_manager().get_url_login(next_url=str(request.url))
    return pages.render(
        request,
        "error.html",
        "FATE monitor",
        status=exc.status_code,
        message=PAGE_MESSAGES.get(exc.status_code, str(exc.detail)),
        login_url=login,
    )
