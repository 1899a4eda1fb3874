"""Errors as RFC 9457 problem details (`application/problem+json`): the one place they are made.

Every error the API answers is a problem object with `type`, `title`, `status` and `detail`,
plus extension members:

- a `FoureyesError` answers its class's `status`; `type` is ``urn:foureyes:problem:<slug>``,
  `detail` its one-line message (written to be safe to show to the caller), and its `details`
  become extension members (e.g. `request_id` and `decision` of a policy denial);
- a request that fails its schema (FastAPI's `RequestValidationError`) is 422 ``bad-input``
  with `errors`: one `{"location", "message", "type"}` per problem, never the input itself;
- an unknown route is 404 ``not-found``, a wrong method 405 (with `Allow`), a body over the
  limit 413 (see `BodyLimit`);
- anything else is 500 ``internal-error`` with a fixed detail: the exception is logged with its
  traceback, and nothing of it reaches the caller.

A 401 carries ``WWW-Authenticate: Bearer realm="foureyes"`` (RFC 6750), with
``error="invalid_token"`` when a token was given and did not verify. An error that repeats the
answer to an earlier call (`FoureyesError.replayed`: a submit retried with the idempotency key
of one the policy denied) carries ``Idempotent-Replayed: true``, as a replayed success does. A
throttle's 429 (`TooManyAttempts`) carries ``Retry-After`` (its `retry_after`, in seconds).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foureyes.core.services import json_safe
from foureyes.errors import FoureyesError, Unauthenticated

__all__ = [
    "IDEMPOTENT_REPLAYED",
    "MAX_BODY_BYTES",
    "PROBLEM_JSON",
    "TYPE_PREFIX",
    "BodyLimit",
    "CatchAll",
    "install_problem_handlers",
    "problem",
    "problem_type",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# The header of an answer that repeats an earlier one (an idempotent submit's replay).
IDEMPOTENT_REPLAYED = "Idempotent-Replayed"
TYPE_PREFIX = "urn:foureyes:problem:"
MAX_BODY_BYTES = 64 * 1024
# Members a problem object defines itself; an error's details never overwrite them.
_RESERVED = frozenset({"type", "title", "status", "detail", "instance"})
_HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def problem_type(slug: str) -> str:
    """The `type` URI of a problem slug."""
    return f"{TYPE_PREFIX}{slug}"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    slug: str,
    detail: str,
    *,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem+json response. `extensions` are added unless they clash with the standard
    members; values are made JSON-safe (times as ISO strings)."""
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    for key, value in (extensions or {}).items():
        if key not in _RESERVED:
            body[key] = json_safe(value)
    return Response(
        content=json.dumps(body, ensure_ascii=False, default=str),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _www_authenticate(request: Request, exc: FoureyesError) -> dict[str, str]:
    challenge = 'Bearer realm="foureyes"'
    if request.headers.get("authorization"):
        # RFC 6750 allows only printable ASCII without '"' and '\\' here; anything else (a
        # name taken from a token, a newline) would be a 500 or a header injection.
        message = "".join(
            ch if " " <= ch <= "~" else "?"
            for ch in exc.message.replace("\\", "").replace('"', "'")
        )
        challenge += f', error="invalid_token", error_description="{message}"'
    return {"WWW-Authenticate": challenge}


async def _foureyes_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FoureyesError)
    headers = _www_authenticate(request, exc) if isinstance(exc, Unauthenticated) else {}
    if exc.replayed:
        headers[IDEMPOTENT_REPLAYED] = "true"
    retry = exc.details.get("retry_after")
    if isinstance(retry, int):  # a throttle's answer (TooManyAttempts): when to try again
        headers["Retry-After"] = str(retry)
    if exc.status >= 500:
        log.error("%s %s: %s (%s)", request.method, request.url.path, exc.message, exc.slug)
    return problem(exc.status, exc.slug, exc.message, extensions=exc.details, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "location": _location(error.get("loc", ())),
            "message": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    first = errors[0] if errors else {"location": "request", "message": "is not valid"}
    detail = f"{first['location']}: {first['message']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return problem(422, "bad-input", detail, extensions={"errors": errors})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    slug = _HTTP_SLUGS.get(status, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else _title(status)
    if status == 404 and detail == _title(404):
        detail = f"no such resource: {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    return problem(status, slug, detail, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers above on `app` (the catch-all is the `CatchAll` middleware)."""
    app.add_exception_handler(FoureyesError, _foureyes_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class CatchAll:
    """Any exception no handler took becomes a 500 problem without internals, and is logged.

    Starlette's own server-error middleware would answer too, but then re-raise the exception
    into the server; this answers and stops it here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # the response is on its way; the server closes the connection
            response = problem(
                500, "internal-error", "an internal error occurred; it has been logged"
            )
            await response(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, by Content-Length up front and by
    counting what arrives (for chunked bodies)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int = MAX_BODY_BYTES,
        larger: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        # Exact paths allowed a larger body (a batch's manifest: up to 10,000 accounts).
        self.larger = dict(larger or {})

    def _too_large(self) -> Response:
        return problem(
            413, "payload-too-large", f"the request body is larger than {self.limit} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.limit)
        if limit != self.limit:
            await BodyLimit(self.app, limit)(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    response = problem(400, "bad-request", "Content-Length is not a number")
                    await response(scope, receive, send)
                    return
                if declared > self.limit:
                    await self._too_large()(scope, receive, send)
                    return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise StarletteHTTPException(
                        413, f"the request body is larger than {self.limit} bytes"
                    )
            return message

        await self.app(scope, counted, send)
