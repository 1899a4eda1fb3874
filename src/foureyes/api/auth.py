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

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from foureyes.core.services import Actor, Services
from foureyes.errors import Unauthenticated
from foureyes.web.deps import ServicesDep, oidc_provider
from foureyes.workflow import operations

__all__ = ["ActorDep", "BearerDep", "actor_of", "bearer_token", "current_actor"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description=(
        "A foureyes token (`fey_…`), issued with `foureyes staff token`, or, when an OpenID "
        "provider is configured, a JWT it signed for foureyes' audience."
    ),
)


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The request's bearer token, not yet checked (401 if there is none). For a route that
    checks it with `actor_of` in the same thread-pool call as its own work."""
    if credentials is None:
        raise Unauthenticated("this needs your token: Authorization: Bearer <token>")
    return credentials.credentials


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
