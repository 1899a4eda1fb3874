"""Console sessions: server-side, one row per signed-in browser.

The browser holds a random secret in the cookie `foureyes_session` (HttpOnly, Secure,
SameSite=Lax, path /); the store keeps only its SHA-256, the person, the identity and how they
signed in. Every request re-checks that the session is known, not expired (idle for
`IDLE_TIMEOUT` or older than `MAX_AGE`), that the person may still act today (terminated,
suspended or outside their contract ends it), that the login it signed in as is still theirs
(an HR import that moves or removes a login ends its sessions at once, and this catches one
opened meanwhile) and, for a token sign-in, that the token is still valid; otherwise the session
row is deleted and the browser is sent to sign in again. A session ended because its person may
no longer act, its login is no longer theirs or its token was revoked is a dead credential in
use: in the same transaction it raises an alert with its audit event, at most once per
credential per hour (`foureyes.auth.dead_credentials`). Expiry and idleness do not: they
are a browser left open, not evidence.

Signing in and out are audit events (`console.signed_in`, `console.signed_out`): the log says who
acted, and a session is how they acted. Failed sign-ins are counted by `throttle` instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.orm import Session

from foureyes.auth import dead_credentials
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.errors import DeadCredential, FoureyesError, NotFound, RecordAltered
from foureyes.store import seals
from foureyes.store.tables import ConsoleSessionRow, TokenRow
from foureyes.web.deps import ServicesDep

__all__ = [
    "COOKIE",
    "IDLE_TIMEOUT",
    "MAX_AGE",
    "ConsoleActorDep",
    "MaybeActorDep",
    "SignInRequired",
    "client_address",
    "console_actor",
    "csrf_for",
    "current_session",
    "login_url",
    "maybe_actor",
    "safe_next",
    "sign_in",
    "sign_out",
]

COOKIE = "foureyes_session"
IDLE_TIMEOUT = timedelta(minutes=30)
MAX_AGE = timedelta(hours=12)
# last_seen_at is written at most this often, so reading pages does not write on every click.
TOUCH_EVERY = timedelta(minutes=1)
METHODS = frozenset({"token", "oidc"})


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


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


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
    """The session of this request's cookie if it is still good; None (and the row deleted
    when it exists but is no longer good) otherwise."""
    cached: ConsoleSession | None = getattr(request.state, "console_session", None)
    if cached is not None:
        return cached
    secret = request.cookies.get(COOKIE)
    if not secret or len(secret) > 200:
        return None
    with services.database.transaction() as session:
        now = services.clock()
        read = session.execute(_SESSION, {"id": _sha256(secret)}).one_or_none()
        if read is None:
            return None
        row = read[0]
        try:
            actor, dead = _still_valid(services, session, read, now)
        except RecordAltered:  # the session, its person or its token: not as the log sealed
            actor, dead = None, None  # (reported by `services.checked`: an alert follows)
        if actor is None:
            session.delete(row)
            if dead is not None:
                where, client = "console session", client_address(request)
                dead_credentials.note_in(
                    services, session, dead, now=now, where=where, client=client
                )
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
    found = ConsoleSession(actor=actor, csrf=csrf_for(request, secret), method=row.method)
    request.state.console_session = found
    return found


# A session with its latest seal, and a token with its own (`foureyes.store.seals`): each
# read in one statement, so one snapshot on PostgreSQL too.
_SESSION = select(ConsoleSessionRow, seals.session_seal(ConsoleSessionRow.id).label("seal")).where(
    ConsoleSessionRow.id == bindparam("id")
)
_TOKEN = select(TokenRow, seals.token_seal(TokenRow.id).label("seal")).where(
    TokenRow.id == bindparam("id")
)


def _still_valid(
    services: Services, session: Session, found: Row[Any], now: datetime
) -> tuple[Actor | None, DeadCredential | None]:
    """The session's person if it is still good; else None, with the dead credential when the
    reason is evidence (its person may not act, its token was revoked). RecordAltered when the
    session, its person's record or its token is not what the audit log last sealed."""
    row: ConsoleSessionRow = found[0]
    services.checked(
        seals.ref(seals.SESSION, row.id),
        seals.session_digest(row),
        found.seal,
        staff=row.staff_id,
        what="this console session",
    )
    if row.expires_at <= now or now - row.last_seen_at >= IDLE_TIMEOUT:
        return None, None
    try:
        person = services.staff(session, row.staff_id)
    except NotFound:
        return None, None
    # The credential the session stands for: the token it was opened with, else the login.
    credential = f"token:{row.token_id}" if row.token_id else f"{row.method}:{row.identity}"
    problem = person.floor_problem(now.date())
    if problem is not None:
        return None, DeadCredential(problem, staff=person.id, credential=credential, reason=problem)
    if row.identity not in person.identities:
        # The login it signed in as was moved or removed (the import ended the session; this
        # holds for one opened while the import ran, or a login row changed behind its back).
        reason = "login no longer theirs"
        return None, DeadCredential(reason, staff=person.id, credential=credential, reason=reason)
    if row.token_id is not None:
        token = _sealed_token(services, session, row.token_id)
        if token is not None and token.revoked_at is not None:
            dead = DeadCredential(
                "revoked", staff=person.id, credential=credential, reason="revoked"
            )
            return None, dead
        if token is None or (token.expires_at is not None and token.expires_at <= now):
            return None, None
    return Actor(staff=person, identity=row.identity, credential=credential), None


def _sealed_token(services: Services, session: Session, token_id: str) -> TokenRow | None:
    """The token a session was opened with, checked against its seal (None if it is gone)."""
    found = session.execute(_TOKEN, {"id": token_id}).one_or_none()
    if found is None:
        return None
    token: TokenRow = found[0]
    services.checked(
        seals.ref(seals.TOKEN, token.id),
        seals.token_digest(
            token.id,
            staff=token.staff_id,
            identity=token.identity,
            secret_sha256=token.secret_sha256,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
        ),
        found.seal,
        staff=token.staff_id,
        what=f"token {token.id}",
    )
    return token


def console_actor(request: Request, services: ServicesDep) -> Actor:
    """The signed-in person; SignInRequired (a redirect to the login page) without a session."""
    found = current_session(request, services)
    if found is None:
        raise SignInRequired("please sign in", next_url=_here(request))
    return found.actor


def maybe_actor(request: Request, services: ServicesDep) -> Actor | None:
    """The signed-in person, or None (for pages anyone may see, like the login page)."""
    found = current_session(request, services)
    return None if found is None else found.actor


ConsoleActorDep = Annotated[Actor, Depends(console_actor)]
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
    if method not in METHODS:
        raise ValueError(f"unknown sign-in method {method!r}")
    secret = secrets.token_urlsafe(32)
    old = request.cookies.get(COOKIE)
    with services.database.transaction() as session:
        now = services.clock()
        if old:
            session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.id == _sha256(old)))
        # Sessions that can no longer be used go now (nothing else would delete them).
        session.execute(
            delete(ConsoleSessionRow).where(
                (ConsoleSessionRow.expires_at <= now)
                | (ConsoleSessionRow.last_seen_at <= now - IDLE_TIMEOUT)
            )
        )
        session.add(
            ConsoleSessionRow(
                id=_sha256(secret),
                staff_id=actor.id,
                identity=actor.identity,
                method=method,
                token_id=token_id,
                client=client_address(request)[:100],
                created_at=now,
                last_seen_at=now,
                expires_at=now + MAX_AGE,
            )
        )
        record(
            services,
            session,
            kind="console.signed_in",
            actor=actor.id,
            row=None,
            payload={
                "staff": actor.id,
                "identity": actor.identity,
                "method": method,
                "client": client_address(request),
            },
            now=now,
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
        with services.database.transaction() as session:
            deleted = session.execute(
                delete(ConsoleSessionRow).where(ConsoleSessionRow.id == _sha256(secret))
            )
            if found is not None and int(getattr(deleted, "rowcount", 0) or 0) > 0:
                record(
                    services,
                    session,
                    kind="console.signed_out",
                    actor=found.actor.id,
                    row=None,
                    payload={"staff": found.actor.id, "identity": found.actor.identity},
                    now=services.clock(),
                )
    request.session.clear()
    response = RedirectResponse("/console/login?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def login_url(next_url: str) -> str:
    """The login page, sending the browser on to `next_url` (if safe) afterwards."""
    return f"/console/login?next={quote(safe_next(next_url), safe='/')}"
