"""Console sessions, the browser side: the cookie, CSRF tokens, and FastAPI dependencies for the
signed-in person.

The browser holds a random secret in the cookie `foureyes_session` (HttpOnly, Secure,
SameSite=Lax, path /); the store keeps only its SHA-256 and re-checks the session on every
request (`foureyes.auth.sessions`: expiry, the person may still act, the login is still theirs,
the token still valid, the records as the log sealed them). A session that fails sends the
browser to sign in again. Failed sign-ins are counted by `throttle`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.auth import sessions
from foureyes.auth.sessions import IDLE_TIMEOUT, MAX_AGE
from foureyes.core.services import Actor, Services
from foureyes.errors import FoureyesError
from foureyes.web.deps import ServicesDep

__all__ = [
    "COOKIE",
    "IDLE_TIMEOUT",
    "MAX_AGE",
    "ConsoleActorDep",
    "ConsoleSession",
    "ConsoleSessionDep",
    "MaybeActorDep",
    "SignInRequired",
    "client_address",
    "console_actor",
    "console_session",
    "csrf_for",
    "current_session",
    "login_url",
    "maybe_actor",
    "safe_next",
    "sign_in",
    "sign_out",
]

COOKIE = "foureyes_session"


class SignInRequired(FoureyesError):
    """No valid console session: the console answers with a redirect to the login page."""

    status = 401
    slug = "unauthenticated"

    def __init__(self, message: str, *, next_url: str = "/console/") -> None:
        super().__init__(message)
        self.next_url = next_url


@dataclass(frozen=True)
class ConsoleSession:
    actor: Actor
    csrf: str
    method: str
    session_id: str  # the session's id in the store (never the cookie's secret)


def _key(request: Request) -> bytes:
    key: bytes = request.app.state.console_key
    return key


def csrf_for(request: Request, secret: str) -> str:
    """The CSRF token of the session whose cookie secret is `secret` (an HMAC under the console
    key: stored nowhere, and useless without the cookie it belongs to)."""
    return hmac.new(_key(request), b"csrf:" + secret.encode(), hashlib.sha256).hexdigest()


def client_address(request: Request) -> str:
    """The peer's address as the server sees it (forwarded headers are not trusted)."""
    return request.client.host if request.client is not None else ""


def safe_next(next_url: str | None) -> str:
    """`next_url` if it is a path inside the console, else the console's home: never another
    host (no open redirect), never a scheme-relative `//host` or a backslash trick."""
    if not next_url:
        return "/console/"
    parts = urlsplit(next_url)
    if (
        parts.scheme
        or parts.netloc
        or not next_url.startswith("/console")
        or next_url.startswith("//")
        or "\\" in next_url
        or any(ord(ch) < 32 for ch in next_url)
    ):
        return "/console/"
    return next_url


def _here(request: Request) -> str:
    """Where to come back to after signing in: this page; for a form post (which cannot be
    replayed by a redirect), the page the form was on."""
    if request.method not in ("GET", "HEAD"):
        referer = urlsplit(request.headers.get("referer", ""))
        if referer.netloc == request.url.netloc:
            back = f"{referer.path}?{referer.query}" if referer.query else referer.path
            return safe_next(back)
        return "/console/"
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def current_session(request: Request, services: Services) -> ConsoleSession | None:
    """The session of this request's cookie if it is still good (`auth.sessions.session_actor`);
    None otherwise."""
    cached: ConsoleSession | None = getattr(request.state, "console_session", None)
    if cached is not None:
        return cached
    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    use = sessions.session_actor(services, secret, client=client_address(request))
    if use is None:
        return None
    found = ConsoleSession(
        actor=use.actor,
        csrf=csrf_for(request, secret),
        method=use.method,
        session_id=use.session_id,
    )
    request.state.console_session = found
    return found


def console_session(request: Request, services: ServicesDep) -> ConsoleSession:
    """The signed-in session; SignInRequired (a redirect to the login page) without one."""
    found = current_session(request, services)
    if found is None:
        raise SignInRequired("please sign in", next_url=_here(request))
    return found


def console_actor(request: Request, services: ServicesDep) -> Actor:
    """The signed-in person; SignInRequired (a redirect to the login page) without a session."""
    return console_session(request, services).actor


def maybe_actor(request: Request, services: ServicesDep) -> Actor | None:
    """The signed-in person, or None (for pages anyone may see, like the login page)."""
    found = current_session(request, services)
    return None if found is None else found.actor


ConsoleActorDep = Annotated[Actor, Depends(console_actor)]
ConsoleSessionDep = Annotated[ConsoleSession, Depends(console_session)]
MaybeActorDep = Annotated[Actor | None, Depends(maybe_actor)]


def sign_in(
    request: Request,
    services: Services,
    actor: Actor,
    *,
    method: str,
    next_url: str = "/console/",
    token_id: str | None = None,
) -> Response:
    """Open a session for `actor` (who has just proved who they are by `method`, "token" or
    "oidc"), set its cookie, and answer 303 to `next_url` if it is a console path (else the
    console's home). Any session this browser had is ended first. An audit event records it."""
    secret = sessions.open_session(
        services,
        actor,
        method=method,
        client=client_address(request),
        token_id=token_id,
        replacing=request.cookies.get(COOKIE),
    )
    # The login state (OIDC state/nonce, the anonymous CSRF token) is spent: start afresh.
    request.session.clear()
    response = RedirectResponse(safe_next(next_url), status_code=303)
    response.set_cookie(
        COOKIE,
        secret,
        max_age=int(MAX_AGE.total_seconds()),
        path="/",
        # Always Secure: browsers accept Secure cookies from http://localhost, and anywhere
        # else the console must be served over https.
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return response


def sign_out(request: Request, services: Services) -> Response:
    """End this browser's session (row deleted, cookie cleared, an audit event) and answer 303
    to the login page."""
    secret = request.cookies.get(COOKIE)
    found = current_session(request, services)
    if secret:
        sessions.end_session(services, secret, None if found is None else found.actor)
    request.session.clear()
    response = RedirectResponse("/console/login?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def login_url(next_url: str) -> str:
    """The login page, sending the browser on to `next_url` (if safe) afterwards."""
    return f"/console/login?next={quote(safe_next(next_url), safe='/')}"
