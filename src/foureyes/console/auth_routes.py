"""Signing in to the console with a local token, and signing out.

`GET /console/login` shows the token form (and "Sign in with <provider>" when OIDC is
configured); `POST /console/login` checks the throttle, then the token, and opens a session;
`POST /console/logout` ends it. Every failure looks the same to the browser ("that token did not
work") apart from the throttle's answer, so the form tells a guesser nothing. The throttle counts
per client address only, never per token id (`throttle`: an id is no secret, so a count per id
would let anyone lock its holder out).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.auth.tokens import split_token
from foureyes.config import Settings
from foureyes.console import throttle
from foureyes.console.csrf import CsrfDep
from foureyes.console.sessions import MaybeActorDep, client_address, safe_next, sign_in, sign_out
from foureyes.console.templating import render
from foureyes.errors import Unauthenticated
from foureyes.web.deps import ServicesDep
from foureyes.workflow import operations

router = APIRouter()

MAX_TOKEN = 200


def _login_page(
    request: Request, *, next_url: str, error: str | None = None, status_code: int = 200
) -> Response:
    settings: Settings = request.app.state.settings
    oidc = settings.oidc
    provider = oidc.provider_name if oidc is not None else ""
    return render(
        request,
        "login.html",
        {
            "next": safe_next(next_url),
            "error": error,
            "oidc": oidc is not None,
            "provider": provider,
            "signed_out": request.query_params.get("signed_out") == "1",
        },
        status_code=status_code,
    )


@router.get("/console/login")
def login_page(request: Request, actor: MaybeActorDep, next: str = "/console/") -> Response:
    if actor is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_url=next)


@router.post("/console/login")
def login_with_token(
    request: Request,
    services: ServicesDep,
    _csrf: CsrfDep,
    token: Annotated[str, Form(max_length=MAX_TOKEN)],
    next: Annotated[str, Form(max_length=2000)] = "/console/",
) -> Response:
    address = client_address(request)
    throttle.check(services, address=address)
    try:
        actor = operations.authenticate(services, token, where="console sign-in", client=address)
    except Unauthenticated as exc:  # a dead credential is also noted (an alert): same answer
        throttle.record_failure(services, address=address, reason=exc.message)
        return _login_page(
            request,
            next_url=next,
            error="That token did not work: it is unknown, revoked or expired, or its owner "
            "may not act now.",
            status_code=401,
        )
    token_id, _ = split_token(token)  # authenticate accepted the token's form
    return sign_in(request, services, actor, method="token", next_url=next, token_id=token_id)


@router.post("/console/logout")
def logout(request: Request, services: ServicesDep, _csrf: CsrfDep) -> Response:
    return sign_out(request, services)
