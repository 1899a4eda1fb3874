"""Bearer tokens: every `/v1` route acts as the person whose token it is, and only as them.

Two kinds of bearer token are accepted:

- a local token (`fey_…`, issued by `foureyes staff token`, stored hashed);
- when an `[oidc]` provider is configured, a JWT it signed (see `foureyes.auth.oidc`), whose
  identity claim names a login of the staff directory.

A missing, malformed, unknown, revoked or expired token, or the token of someone who may no
longer act (terminated, suspended, outside their contract), is a 401 problem with a
``WWW-Authenticate: Bearer`` challenge; an identity provider that cannot be reached (and whose
keys foureyes does not hold) is a 503 problem. There is no way to name another person: the
actor is whoever the token belongs to. A known person's token (or identity) that no longer
works gets the same 401, and raises an alert with its audit event, at most one per credential
per hour (`foureyes.auth.dead_credentials`); garbage is only counted.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

from foureyes.core.services import Actor, Services
from foureyes.errors import Unauthenticated
from foureyes.web.deps import ServicesDep, app_services, oidc_provider
from foureyes.workflow import operations

__all__ = [
    "ActorDep",
    "BearerDep",
    "TokenFirst",
    "actor_of",
    "bearer_token",
    "current_actor",
]


class _Bearer(HTTPBearer):
    """FastAPI's bearer scheme (it puts `token` in the OpenAPI document), answering the token
    itself: one dependency where a scheme and a check of its result were two (each dependency
    costs every request a few tens of microseconds to solve)."""

    async def __call__(self, request: Request) -> str:  # type: ignore[override]
        # What HTTPBearer(auto_error=False) accepts, without the credentials model it builds.
        authorization = request.headers.get("Authorization")
        scheme, credentials = get_authorization_scheme_param(authorization)
        if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
            raise Unauthenticated("this needs your token: Authorization: Bearer <token>")
        return credentials


bearer_token = _Bearer(
    auto_error=False,
    scheme_name="token",
    description=(
        "A foureyes token (`fey_…`), issued with `foureyes staff token`, or, when an OpenID "
        "provider is configured, a JWT it signed for foureyes' audience."
    ),
)
"""The request's bearer token, not yet checked (401 if there is none). For a route that
checks it with `actor_of` in the same thread-pool call as its own work."""

BearerDep = Annotated[str, Depends(bearer_token)]


def current_actor(request: Request, services: ServicesDep, token: BearerDep) -> Actor:
    """The person behind the request's bearer token (401 unless it verifies)."""
    return actor_of(request, services, token)


def actor_of(request: Request, services: Services, token: str) -> Actor:
    """The person behind `token` (401 unless it verifies), read from the store now: blocking,
    so called from the thread pool."""
    client = request.client.host if request.client is not None else ""
    return operations.authenticate_bearer(
        services, token, oidc_provider(request), where="api", client=client
    )


ActorDep = Annotated[Actor, Depends(current_actor)]


class TokenFirst(APIRoute):
    """The route of a hot call that checks its caller with `actor_of` itself, in the one
    thread-pool call that does its work (a blocking `ActorDep` is a trip of its own), and
    still answers as if it took `ActorDep`: FastAPI runs a dependency before it reports the
    input's validation errors, so a token that does not verify is 401 even when the input is
    also bad. The route takes `BearerDep` (a missing token is 401 before anything else); when
    FastAPI finds the input bad, the token is checked here first, then the 422 goes on. A body
    that is not JSON at all is reported before any dependency runs (`json_invalid`), so
    that one is let through unchecked, as before."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def token_first(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as exc:
                if any(error.get("type") == "json_invalid" for error in exc.errors()):
                    raise
                token = await bearer_token(request)
                services = app_services(request)
                await run_in_threadpool(actor_of, request, services, token)
                raise

        return token_first
