"""Answers of the API are private: no cache (a browser's, a proxy's) keeps them.

Every `/v1` answer may carry a request, an account's attributes or who someone is; the console
already answers `no-store` on its pages. `/healthz`, `/docs` and `/openapi.json` are left as
they are (public, and nothing in them is anyone's).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PrivateAnswers"]

_PRIVATE_PREFIX = "/v1/"
_NO_STORE = (b"cache-control", b"no-store")


class PrivateAnswers:
    """Adds `Cache-Control: no-store` to every answer under `/v1/` that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(_PRIVATE_PREFIX):
            await self.app(scope, receive, send)
            return

        async def no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, no_store)
