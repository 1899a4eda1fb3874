"""Console sign-in through the company's OpenID provider (authorization-code flow with PKCE).

`GET /console/login/oidc` sends the browser to the provider; Authlib's Starlette client makes
the `state`, the `nonce` and the PKCE verifier and keeps them in the signed login-state cookie
(`request.session`, installed by the console). `GET /console/auth/callback` takes the browser
back: the `state` must be one this browser was given, the code is exchanged (with the PKCE
verifier) at the provider's token endpoint, and the ID token is verified by foureyes itself
(`foureyes.auth.oidc`: signature against the provider's JWKS, issuer, audience = our client,
nonce, expiry by foureyes' clock); its identity claim names the person, who must be able to act
now, exactly as for an API bearer token. Only then is a console session opened
(`sessions.sign_in(..., method="oidc")`).

Every failure (the provider's `error`, a state this browser does not hold, a token that does
not verify, an identity nobody on the staff has, a person who may not act) shows the sign-in
page with the reason and opens no session. It counts as a failed sign-in from the client's
address for the console's login throttle only when it answers a sign-in this browser started
(the `state` is one its login-state cookie holds, now spent): a callback anyone can make a
browser fetch (an image on another site, `?error=access_denied`) tried no credential, and
counting it would let any page lock its visitors' address out of the console.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import threading
from typing import Any

import httpx
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from foureyes.auth.oidc import OidcProvider
from foureyes.config import Settings
from foureyes.config.oidc import OidcSettings
from foureyes.console import throttle
from foureyes.console.auth_routes import _login_page
from foureyes.console.sessions import client_address, safe_next, sign_in
from foureyes.core.services import Services
from foureyes.errors import BadInput, NotFound, Unauthenticated, Unavailable
from foureyes.web.deps import ServicesDep, oidc_provider
from foureyes.workflow import operations

__all__ = ["CALLBACK", "LOGIN", "router"]

router = APIRouter()
log = logging.getLogger(__name__)

LOGIN = "/console/login/oidc"
CALLBACK = "/console/auth/callback"
_CLIENT = "foureyes"  # Authlib's name for the client: its keys in the session start with it
_NEXT = "oidc_next"
_client_lock = threading.Lock()


def _network_errors() -> tuple[type[Exception], ...]:
    """What Authlib's client raises when the provider cannot be reached: it speaks httpx2 when
    that is installed (the test dependencies bring it), else httpx."""
    errors: list[type[Exception]] = [httpx.HTTPError]
    with contextlib.suppress(ImportError):
        errors.append(importlib.import_module("httpx2").HTTPError)
    return tuple(errors)


_NETWORK_ERRORS = _network_errors()


def _settings(request: Request) -> OidcSettings:
    settings: Settings = request.app.state.settings
    if settings.oidc is None:
        raise NotFound("sign-in with an identity provider is not configured here")
    return settings.oidc


def _client(request: Request, oidc: OidcSettings) -> Any:
    """The app's Authlib client for the provider (made on first use; it reads the discovery
    document itself, once)."""
    state = request.app.state
    with _client_lock:
        client = getattr(state, "oidc_client", None)
        if client is None:
            try:
                secret = oidc.client_secret()
            except BadInput as exc:
                # The reason names files and variables: for the operator's log, not a visitor.
                log.error("console sign-in with the identity provider: %s", exc.message)
                raise Unavailable(
                    f"sign-in with {oidc.provider_name} is not set up correctly here; "
                    "the operator will find why in foureyes' log"
                ) from None
            oauth = OAuth()
            oauth.register(
                name=_CLIENT,
                client_id=oidc.client_id,
                client_secret=secret,
                server_metadata_url=f"{oidc.issuer}/.well-known/openid-configuration",
                client_kwargs={
                    "scope": " ".join(oidc.scopes),
                    "code_challenge_method": "S256",
                    "timeout": oidc.timeout,
                    # A public client (no secret) proves itself with PKCE alone.
                    "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
                },
            )
            client = oauth.create_client(_CLIENT)
            state.oidc_client = client
        return client


def _provider(request: Request) -> OidcProvider:
    provider = oidc_provider(request)
    assert provider is not None  # _settings checked that OIDC is configured
    return provider


async def _failed(
    request: Request,
    services: Services,
    reason: str,
    *,
    counted: bool = True,
    status_code: int = 401,
) -> Response:
    """The sign-in page with `reason` and no session; one failure counted for the address if
    `counted` (the answer to a sign-in this browser started), else nothing but a log line."""
    address = client_address(request)
    if counted:
        await run_in_threadpool(
            throttle.record_failure, services, address=address, reason=f"oidc: {reason}"
        )
        next_url = request.session.pop(_NEXT, "/console/")
    else:
        log.info(
            "console sign-in callback from %s answers no sign-in started in this browser "
            "(not counted): %s",
            address,
            reason[:200],
        )
        next_url = request.session.get(_NEXT, "/console/")  # a sign-in under way stays so
    return await run_in_threadpool(
        _login_page,
        request,
        next_url=next_url if isinstance(next_url, str) else "/console/",
        error=f"Signing in with your identity provider did not work: {reason}",
        status_code=status_code,
    )


@router.get(LOGIN)
async def login_oidc(request: Request, services: ServicesDep, next: str = "/console/") -> Response:
    """Send the browser to the provider's authorization endpoint."""
    oidc = _settings(request)
    await run_in_threadpool(throttle.check, services, address=client_address(request))
    client = _client(request, oidc)
    redirect_uri = oidc.callback_url(str(request.base_url))
    request.session[_NEXT] = safe_next(next) if len(next) <= 2000 else "/console/"
    try:
        response: Response = await client.authorize_redirect(request, redirect_uri)
    except (*_NETWORK_ERRORS, OAuthError, ValueError, KeyError) as exc:
        raise Unavailable(
            f"{oidc.provider_name} cannot be reached to sign in ({type(exc).__name__})"
        ) from exc
    return response


@router.get(CALLBACK)
async def oidc_callback(request: Request, services: ServicesDep) -> Response:
    """Finish the sign-in the provider sent the browser back from."""
    oidc = _settings(request)
    await run_in_threadpool(throttle.check, services, address=client_address(request))
    params = request.query_params
    client = _client(request, oidc)
    state = params.get("state")
    data: dict[str, Any] = {}
    if state:
        found = await client.framework.get_state_data(request.session, state)
        data = found if isinstance(found, dict) else {}
    # The answer to a sign-in this browser started: its state, nonce and PKCE verifier are in
    # the browser's login-state cookie.
    started = bool(data.get("nonce") and data.get("code_verifier"))
    if started:
        await client.framework.clear_state_data(request.session, state)  # used once
    if params.get("error"):
        # Only the error code, and only if it is one: the description is free text anyone can
        # put in a link to this page, and the page must not repeat it as if foureyes said it.
        error = params["error"]
        shown = error if re.fullmatch(r"[a-z_]{1,40}", error) else "an error"
        return await _failed(
            request, services, f"{oidc.provider_name} answered {shown}", counted=started
        )
    if not started:
        return await _failed(
            request,
            services,
            "this sign-in was not started in this browser, or it took too long (state "
            "mismatch); please start again",
            counted=False,
        )
    code = params.get("code")
    if not code:
        return await _failed(request, services, "the answer carries no code")
    try:
        token = await client.fetch_access_token(
            code=code, redirect_uri=data["redirect_uri"], code_verifier=data["code_verifier"]
        )
    except (*_NETWORK_ERRORS, OAuthError) as exc:
        return await _failed(
            request,
            services,
            f"{oidc.provider_name} did not exchange the code ({type(exc).__name__})",
            status_code=502,
        )
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str):
        return await _failed(request, services, "the provider sent no ID token", status_code=502)
    try:
        actor = await run_in_threadpool(
            operations.authenticate_oidc,
            services,
            _provider(request),
            id_token,
            audience=oidc.client_id,
            nonce=data["nonce"],
            where="console sign-in",
            client=client_address(request),
        )
    except Unauthenticated as exc:
        return await _failed(request, services, exc.message)
    except Unavailable as exc:
        return await _failed(request, services, exc.message, status_code=503)
    next_url = request.session.pop(_NEXT, "/console/")
    return await run_in_threadpool(
        sign_in,
        request,
        services,
        actor,
        method="oidc",
        next_url=next_url if isinstance(next_url, str) else "/console/",
    )
