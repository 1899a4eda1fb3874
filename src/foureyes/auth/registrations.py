"""Security key enrolments in progress, kept on the server (`webauthn_registrations`), one per
console session: the challenge the browser was given (`webauthn.registration_options`), for
whom, until when.

`start` keeps a new one (replacing the session's last); `pending` reads it (the proof options
need it, and leave it); `take` consumes it, in the statement that reads it, so a registration
response is checked against its challenge once whatever the outcome. The browser holds nothing
of it: replaying an earlier cookie or request brings no used challenge back. Signing out, or any
other end of the session, deletes it with the session (ON DELETE CASCADE).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from foureyes.auth.webauthn import PendingRegistration, registration_options
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput
from foureyes.store.tables import PendingRegistrationRow

__all__ = ["NONE_IN_PROGRESS", "pending", "start", "take"]

NONE_IN_PROGRESS = "no security key enrolment is in progress: start again"


def start(services: Services, actor: Actor, console_session: str) -> dict[str, Any]:
    """Creation options for a new key of the actor; its pending registration is kept for
    `console_session` (the session's id in the store), replacing any the session had. Expired
    ones of any session go at the same time. BadInput if the session is gone."""
    options, made = registration_options(services, actor)
    try:
        with services.database.transaction() as session:
            now = services.clock()
            session.execute(
                delete(PendingRegistrationRow).where(
                    (PendingRegistrationRow.session_id == console_session)
                    | (PendingRegistrationRow.expires_at <= now)
                )
            )
            session.add(
                PendingRegistrationRow(
                    session_id=console_session,
                    staff_id=made.staff_id,
                    challenge=made.challenge,
                    expires_at=made.expires_at,
                )
            )
    except IntegrityError as exc:  # the session ended meanwhile (signed out in another tab)
        raise BadInput("this console session has ended: sign in again") from exc
    return options


def pending(services: Services, console_session: str) -> PendingRegistration:
    """The session's enrolment in progress, left in place; BadInput if there is none.
    (Whether it is the actor's and still current is `webauthn.verified_registration`'s
    check.)"""
    with services.database.read() as session:
        row = session.get(PendingRegistrationRow, console_session)
        if row is None:
            raise BadInput(NONE_IN_PROGRESS)
        return PendingRegistration(row.staff_id, row.challenge, row.expires_at)


def take(services: Services, console_session: str) -> PendingRegistration:
    """The session's enrolment in progress, consumed: BadInput if there is none (never
    started, already used, or its session ended). Of two requests taking it at once, one
    gets it."""
    with services.database.transaction() as session:
        row = session.scalar(
            select(PendingRegistrationRow)
            .where(PendingRegistrationRow.session_id == console_session)
            .with_for_update()
        )
        if row is None:
            raise BadInput(NONE_IN_PROGRESS)
        found = PendingRegistration(row.staff_id, row.challenge, row.expires_at)
        session.delete(row)
    return found
