"""A dead credential in use is evidence: someone holds a known person's token, identity or
console session that no longer works (revoked, expired, or its owner terminated, suspended or
outside their contract) and is trying it.

The caller gets the same 401 as before, nothing more. Oversight gets a high `dead_credential`
alert about the person, and with it its `alert.raised` audit event (same transaction), at most
once per credential per `WINDOW` across processes (`foureyes.auth.evidence`), so a script
retrying a dead token cannot grow the log without bound. Every path that notes one says where
it was tried and from which client address (`client` is required), so that the first alert of
the hour, the one that silences the rest, names the address.

Garbage never gets here (an unknown token id, a wrong secret, a malformed token, a name no one
has): it is counted (throttle, metrics) and not logged, as before, so strangers cannot write to
the log either.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from foureyes.auth import evidence
from foureyes.core.services import Services
from foureyes.errors import DeadCredential, FoureyesError

__all__ = ["DETECTOR", "WINDOW", "note", "note_in"]

log = logging.getLogger(__name__)

DETECTOR = "dead_credential"
WINDOW = evidence.WINDOW


def _evidence(dead: DeadCredential, *, where: str, client: str) -> evidence.Evidence:
    return evidence.Evidence(
        DETECTOR,
        dead.staff,
        limited_per=dead.credential,
        summary=(
            f"{dead.staff}'s credential {dead.credential} was tried after it stopped working "
            f"({dead.reason}), at {where}"
        ),
        details={
            "credential": dead.credential,
            "reason": dead.reason,
            "where": where,
            "client": client,
        },
    )


def note(services: Services, dead: DeadCredential, *, where: str, client: str) -> None:
    """Raise the alert for `dead` (tried at `where`, from `client`) unless this credential
    raised one within `WINDOW`. Never raises: the caller answers 401 whatever happens here, and
    a failure to write the alert is logged as an error."""
    now = services.clock()
    found = _evidence(dead, where=where, client=client)
    if evidence.seen(services, found, now):
        return
    try:
        with services.database.read() as session:
            raised = evidence.latest(session, found, now)
        if not evidence.fresh(raised, now):
            with services.database.transaction() as session:
                raised = evidence.note_in(services, session, found, now=now)
    except (FoureyesError, SQLAlchemyError):
        log.exception("could not record the use of a dead credential of %s", dead.staff)
        return
    if raised is not None:
        evidence.remember(services, found, raised)


def note_in(
    services: Services,
    session: Session,
    dead: DeadCredential,
    *,
    now: datetime,
    where: str,
    client: str,
) -> datetime | None:
    """`note` in the caller's transaction: the alert (and its audit event) unless one was
    raised for this credential within `WINDOW`. Returns when the credential's latest alert was
    raised (now, if by this call); None if the person is unknown (then nothing is written)."""
    return evidence.note_in(services, session, _evidence(dead, where=where, client=client), now=now)
