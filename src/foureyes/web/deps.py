"""What every route of the API and the console reads off the app: the running foureyes and its
OpenID provider."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from foureyes.auth.oidc import OidcProvider
from foureyes.config import Settings
from foureyes.core.services import Services

__all__ = ["ServicesDep", "app_services", "oidc_provider", "services_of"]

_provider_lock = threading.Lock()


def app_services(request: Request) -> Services:
    """The running foureyes the app was created with, for a hot route that reads it itself
    rather than through `ServicesDep` (a dependency costs every request its solving)."""
    services: Services = request.app.state.services
    return services


async def services_of(request: Request) -> Services:
    """The running foureyes the app was created with. (`async`: FastAPI runs a plain `def`
    dependency in its thread pool, a hop per request for one attribute read.)"""
    return app_services(request)


ServicesDep = Annotated[Services, Depends(services_of)]


def oidc_provider(request: Request) -> OidcProvider | None:
    """The app's OpenID provider (made once, on first use, from `settings.oidc`); None when
    none is configured."""
    state = request.app.state
    with _provider_lock:
        provider: OidcProvider | None = getattr(state, "oidc_provider", None)
        if provider is None:
            settings: Settings = state.settings
            if settings.oidc is None:
                return None
            services: Services = state.services
            provider = OidcProvider(settings.oidc, clock=services.clock)
            state.oidc_provider = provider
        return provider
