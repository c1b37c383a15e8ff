"""``/docs``: Swagger UI served from a Python package, so it works without internet.

FastAPI's default page loads Swagger UI from a CDN and is blank offline (and
on any locked-down network). The ``fastapi-offline`` package ships the
Swagger UI bundle and stylesheet as package data; they are served here under
``/docs/assets``. Nothing is fetched at run time.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"


def swagger_assets_dir() -> Path:
    """The directory holding ``swagger-ui-bundle.js`` and ``swagger-ui.css``."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).with_name("static")


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (the app must be built with ``docs_url=None``)."""
    assets = swagger_assets_dir()
    app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")
    redirect_url = f"{DOCS_URL}/oauth2-redirect"

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=f"{root}{redirect_url}",
            # the key typed into Authorize survives a reload of the page
            swagger_ui_parameters={"persistAuthorization": True, "tryItOutEnabled": True},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
