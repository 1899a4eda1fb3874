"""The web console: server-rendered pages under `/console` over the same operations as the API.

`mount_console(app, services, settings)` adds it to an app made by `foureyes.api.create_app`:
the console's key (signing the login-state cookie, deriving CSRF tokens), the login-state
session middleware, static files at `/console/static/`, HTML error pages on console paths, and
the routers: sign-in (local token; OIDC in `oidc_routes`), security keys (`webauthn_routes`),
and the pages; on a demo server alone, the demo's step-up (`demo_routes`). `/favicon.ico`
answers the console's icon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from foureyes.config import Settings
from foureyes.core.services import Services

__all__ = ["LOGIN_STATE_COOKIE", "mount_console"]

LOGIN_STATE_COOKIE = "foureyes_login"
LOGIN_STATE_MAX_AGE = 600  # seconds: long enough to sign in at the identity provider
STATIC = Path(__file__).parent / "static"
FAVICON = STATIC / "favicon.svg"


class _ConsoleOnly:
    """Starlette's SessionMiddleware (the signed login-state cookie), for console paths only:
    the API's hot paths pass straight through."""

    def __init__(self, app: ASGIApp, /, **options: Any) -> None:
        self.app = app
        self.sessions = SessionMiddleware(app, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/console" or path.startswith("/console/")):
            await self.sessions(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _favicon() -> FileResponse:
    """The icon browsers ask for at `/favicon.ico` on a first visit (the console's pages and
    /docs link it too): the console's SVG, so that the first load shows no 404."""
    return FileResponse(
        FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


def mount_console(app: FastAPI, services: Services, settings: Settings) -> None:
    """Add the console to `app` (after the problem handlers are installed)."""
    # Imported here, not at the top: the routes import foureyes.api, whose app imports this
    # package, and `foureyes.auth.keyfile` must stay importable by `foureyes init` alone.
    from foureyes.auth.keyfile import console_key  # noqa: PLC0415
    from foureyes.console import (  # noqa: PLC0415
        auth_routes,
        oidc_routes,
        pages,
        webauthn_routes,
    )
    from foureyes.console.errors import install_console_errors  # noqa: PLC0415

    key = console_key(settings.console_key_file)
    app.state.console_key = key
    app.add_middleware(
        _ConsoleOnly,
        secret_key=key.hex(),
        session_cookie=LOGIN_STATE_COOKIE,
        max_age=LOGIN_STATE_MAX_AGE,
        path="/console",
        same_site="lax",
        https_only=True,
    )
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_api_route("/favicon.ico", _favicon, methods=["GET", "HEAD"], include_in_schema=False)
    install_console_errors(app)
    # The console is for browsers: its routes stay out of the API's OpenAPI document.
    for module in (auth_routes, oidc_routes, webauthn_routes, pages):
        app.include_router(module.router, include_in_schema=False)
    if services.demo is not None:  # `serve --demo` alone (foureyes.core.demo)
        from foureyes.console import demo_routes  # noqa: PLC0415

        app.include_router(demo_routes.router, include_in_schema=False)
