"""The interactive API docs at `/docs`, served whole from this server (offline too).

FastAPI's own `/docs` page loads Swagger UI from a CDN, so it is blank on a machine without the
internet and tells a third party whenever someone opens it. Here the page is FastAPI's
(`get_swagger_ui_html`, its documented way of self-hosting the assets), pointed at the Swagger UI
files the `fastapi-offline` package ships (installed from PyPI with the rest, pinned in uv.lock),
mounted at `/docs/assets/`. Nothing is fetched from anywhere else at run time: no validator
badge (`validatorUrl: null`), and the icon is the server's own `/favicon.ico`.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "DOCS", "add_docs"]

DOCS = "/docs"
ASSETS = f"{DOCS}/assets"
# The Swagger UI 5 bundle and stylesheet (OpenAPI 3.1, which FastAPI writes, needs version 5).
_FILES = Path(fastapi_offline.__file__).parent / "static"


def add_docs(app: FastAPI, *, title: str) -> None:
    """Serve Swagger UI for `app.openapi_url` at `/docs`, its assets under `/docs/assets/`
    (create `app` with `docs_url=None`, so that FastAPI's CDN page is not there too)."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS, StaticFiles(directory=_FILES), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} — API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
            swagger_ui_parameters={"validatorUrl": None},
        )
