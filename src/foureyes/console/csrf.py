"""CSRF protection for every state-changing console route.

A signed-in browser's token is derived from its session secret (`sessions.csrf_for`); before
sign-in (the login form) it is a random token kept in the signed login-state cookie. A POST
must carry it back, as the form field `csrf` or the header `X-CSRF-Token` (for `fetch`); it is
compared in constant time, and a mismatch is a 403 before the route runs, so nothing changes.
SameSite=Lax cookies are a second line, not the defence.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request

from foureyes.console.sessions import current_session
from foureyes.core.services import Services
from foureyes.errors import Forbidden
from foureyes.web.deps import ServicesDep

__all__ = ["CsrfDep", "CsrfFailed", "csrf_token", "require_csrf"]

FIELD = "csrf"
HEADER = "x-csrf-token"
_LOGIN_KEY = "csrf"


class CsrfFailed(Forbidden):
    """The CSRF token was missing or wrong."""

    slug = "csrf-failed"


def csrf_token(request: Request, services: Services) -> str:
    """The token this browser must send back: its session's, or (signed out) the login
    state's, made on first use."""
    found = current_session(request, services)
    if found is not None:
        return found.csrf
    token = request.session.get(_LOGIN_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[_LOGIN_KEY] = token
    return token


async def require_csrf(request: Request, services: ServicesDep) -> None:
    """Refuse (403, nothing done) a request without the right CSRF token."""
    given = request.headers.get(HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(FIELD)
            given = value if isinstance(value, str) else None
    found = current_session(request, services)
    if found is not None:
        expected: str | None = found.csrf
    else:
        stored = request.session.get(_LOGIN_KEY)
        expected = stored if isinstance(stored, str) and stored else None
    if not given or expected is None or not hmac.compare_digest(given, expected):
        raise CsrfFailed(
            "this form has expired or did not come from this console: reload the page and try again"
        )


CsrfDep = Annotated[None, Depends(require_csrf)]
