"""Bearer tokens: every `/v1` route acts as the person whose token it is, and only as them.

A missing, malformed, unknown, revoked or expired token, or the token of someone who may no
longer act (terminated, suspended, outside their contract), is a 401 problem with a
``WWW-Authenticate: Bearer`` challenge. There is no way to name another person: the actor is
whoever the token belongs to.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from foureyes.errors import Unauthenticated
from foureyes.workflow import operations
from foureyes.workflow.services import Actor, Services

__all__ = ["ActorDep", "ServicesDep", "current_actor", "services_of"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A foureyes token (`fey_…`), issued with `foureyes staff token`.",
)


def services_of(request: Request) -> Services:
    """The running foureyes the app was created with."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(services_of)]


def current_actor(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The person behind the request's bearer token (401 unless it verifies)."""
    if credentials is None:
        raise Unauthenticated("this needs your token: Authorization: Bearer <token>")
    return operations.authenticate(services, credentials.credentials)


ActorDep = Annotated[Actor, Depends(current_actor)]
