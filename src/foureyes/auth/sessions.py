"""Console sessions, the store side: one row per signed-in browser, keyed by the SHA-256 of a
random secret that only the browser holds (the console's cookie: `foureyes.console.sessions`).

`session_actor` re-checks a session on every use: known, not expired (idle for `IDLE_TIMEOUT`
or older than `MAX_AGE`), its person may still act today, the login it signed in as is still
theirs, its token (for a token sign-in) still valid, and the session, the person and the token
as the audit log last sealed them. A session that fails is deleted; one ended because its
person may no longer act, its login is no longer theirs or its token was revoked or has expired
is a dead credential in use, noted in the same transaction (`dead_credentials`), as the API
notes the token itself. Opening and ending one are audit events (`console.signed_in`,
`console.signed_out`); revoking a token ends its sessions at once (`end_token_sessions`,
`console.session_ended`), so a routine revocation raises no alert at its holder's next click.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from foureyes.auth import dead_credentials
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.errors import DeadCredential, NotFound, RecordAltered
from foureyes.store import seals
from foureyes.store.tables import ConsoleSessionRow, TokenRow

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_AGE",
    "METHODS",
    "SessionUse",
    "end_session",
    "end_token_sessions",
    "open_session",
    "session_actor",
]

IDLE_TIMEOUT = timedelta(minutes=30)
MAX_AGE = timedelta(hours=12)
# last_seen_at is written at most this often, so reading pages does not write on every click.
TOUCH_EVERY = timedelta(minutes=1)
METHODS = frozenset({"token", "oidc"})


@dataclass(frozen=True)
class SessionUse:
    """A session that is still good: who it is for, how they signed in, and its id in the
    store (what server-side state of the session is kept under)."""

    actor: Actor
    method: str
    session_id: str


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def session_actor(services: Services, secret: str, *, client: str) -> SessionUse | None:
    """The session whose browser holds `secret` if it is still good; None (and the row deleted
    when it exists but is no longer good) otherwise. `client` is where the browser is, for the
    note of a dead credential."""
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
                dead_credentials.note_in(
                    services, session, dead, now=now, where="console session", client=client
                )
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
        return SessionUse(actor=actor, method=row.method, session_id=row.id)


def open_session(
    services: Services,
    actor: Actor,
    *,
    method: str,
    client: str,
    token_id: str | None = None,
    replacing: str | None = None,
) -> str:
    """Open a session for `actor` (who has just proved who they are by `method`, "token" or
    "oidc") and answer its secret, for the browser alone. The session whose secret is
    `replacing` (this browser's last) ends first; so do sessions nobody can use any more. An
    audit event records the sign-in."""
    if method not in METHODS:
        raise ValueError(f"unknown sign-in method {method!r}")
    secret = secrets.token_urlsafe(32)
    with services.database.transaction() as session:
        now = services.clock()
        if replacing:
            session.execute(
                delete(ConsoleSessionRow).where(ConsoleSessionRow.id == _sha256(replacing))
            )
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
                client=client[:100],
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
                "client": client,
            },
            now=now,
        )
    return secret


def end_token_sessions(
    services: Services, session: Session, token_id: str, now: datetime, reason: str
) -> int:
    """End every console session opened with token `token_id`, each with a
    `console.session_ended` event (`reason`), in the caller's transaction (the token's
    revocation): its holder's next click finds no session and signs in again, rather than
    raising a dead credential alert for a routine rotation. Answers how many ended."""
    return end_sessions_where(
        services, session, ConsoleSessionRow.token_id == token_id, now, reason
    )


def end_person_sessions(
    services: Services, session: Session, staff_id: str, now: datetime, reason: str
) -> int:
    """End every console session of `staff_id` (by token or identity provider), as
    `end_token_sessions` does: for a person who may no longer act."""
    return end_sessions_where(
        services, session, ConsoleSessionRow.staff_id == staff_id, now, reason
    )


def end_sessions_where(
    services: Services, session: Session, which: ColumnElement[bool], now: datetime, reason: str
) -> int:
    """End every console session `which` selects, each with a `console.session_ended` event
    (`reason`), in the caller's transaction; answers how many ended."""
    ended = 0
    for found in session.scalars(
        select(ConsoleSessionRow)
        .where(which)
        .order_by(ConsoleSessionRow.created_at, ConsoleSessionRow.id)
        .with_for_update()
    ):
        session.delete(found)
        ended += 1
        record(
            services,
            session,
            kind="console.session_ended",
            actor=None,
            row=None,
            payload={
                "staff": found.staff_id,
                "identity": found.identity,
                "method": found.method,
                "token_id": found.token_id,
                "reason": reason,
            },
            now=now,
        )
    return ended


def end_session(services: Services, secret: str, actor: Actor | None) -> None:
    """End the session whose secret is `secret`; a `console.signed_out` event when it was the
    good session of `actor`."""
    with services.database.transaction() as session:
        deleted = session.execute(
            delete(ConsoleSessionRow).where(ConsoleSessionRow.id == _sha256(secret))
        )
        if actor is not None and int(getattr(deleted, "rowcount", 0) or 0) > 0:
            record(
                services,
                session,
                kind="console.signed_out",
                actor=actor.id,
                row=None,
                payload={"staff": actor.id, "identity": actor.identity},
                now=services.clock(),
            )


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
    reason is evidence (its person may not act, its login is no longer theirs, its token was
    revoked or has expired). RecordAltered when the session, its person's record or its token
    is not what the audit log last sealed."""
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
        if token is None:
            return None, None
        # As the API answers the token itself (`tokens.actor_from_record`): revoked, then
        # expired, each a dead credential in use.
        why: str | None = None
        if token.revoked_at is not None:
            why = "revoked"
        elif token.expires_at is not None and token.expires_at <= now:
            why = "expired"
        if why is not None:
            return None, DeadCredential(why, staff=person.id, credential=credential, reason=why)
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
