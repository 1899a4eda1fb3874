"""Errors on console routes as HTML pages; everywhere else the API's problem+json stays.

`install_console_errors` wraps the app's handlers for foureyes errors, schema failures and HTTP
errors: on a path under `/console` a foureyes error renders `error.html` with the problem's
title, detail and status (a missing session is a 303 to the login page instead); other paths
go to the original handler unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from foureyes.console.sessions import SignInRequired, login_url
from foureyes.console.templating import render
from foureyes.errors import FoureyesError, OutcomeUnknown

__all__ = ["install_console_errors", "is_console"]

Handler = Callable[[Request, Exception], Awaitable[Response]]
PREFIX = "/console"


def is_console(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_page(
    request: Request, status: int, detail: str, *, slug: str = "", request_id: str | None = None
) -> Response:
    """The error page; `request_id` (an outcome-unknown's request) is linked."""
    return render(
        request,
        "error.html",
        {
            "status": status,
            "title": _title(status),
            "detail": detail,
            "slug": slug,
            "request_id": request_id,
        },
        status_code=status,
    )


def _foureyes(original: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not is_console(request):
            return await original(request, exc)
        if isinstance(exc, SignInRequired):
            return RedirectResponse(login_url(exc.next_url), status_code=303)
        assert isinstance(exc, FoureyesError)
        # The request an outcome-unknown is about is linked: look there before trying again.
        request_id = exc.details.get("request_id") if isinstance(exc, OutcomeUnknown) else None
        response = error_page(
            request,
            exc.status,
            exc.message,
            slug=exc.slug,
            request_id=request_id if isinstance(request_id, str) else None,
        )
        retry = exc.details.get("retry_after")
        if isinstance(retry, int):
            response.headers["Retry-After"] = str(retry)
        return response

    return handle


def _validation(original: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not is_console(request):
            return await original(request, exc)
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'form'}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        return error_page(request, 422, "; ".join(problems) or "the form is not valid")

    return handle


def _http(original: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not is_console(request):
            return await original(request, exc)
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
        if exc.status_code == 404 and detail == _title(404):
            detail = f"there is no page at {request.url.path}"
        response = error_page(request, exc.status_code, detail)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    return handle


def install_console_errors(app: FastAPI) -> None:
    """Wrap the handlers `install_problem_handlers` registered (call after it)."""
    for kind, wrap in (
        (FoureyesError, _foureyes),
        (RequestValidationError, _validation),
        (StarletteHTTPException, _http),
    ):
        original = app.exception_handlers[kind]
        app.add_exception_handler(kind, wrap(original))  # type: ignore[arg-type]
