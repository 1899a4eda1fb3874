"""Login throttling: failed console sign-ins counted per client address and per identity.

The counts live in the database (`console_login_failures`), so several servers behind a load
balancer share them. Within `WINDOW`, an address may fail `ADDRESS_LIMIT` times and an identity
`IDENTITY_LIMIT` times; after that every attempt from there (even one with a good credential) is
refused with `TooManyAttempts` until the oldest failure leaves the window. The identity limit is
lower because it is what protects one person from guessing spread over many addresses; the
address limit stops one client guessing at many people.

Failed sign-ins are not audit events (an unauthenticated stranger must not be able to grow the
append-only log at will); they are counted here and, when a limit is reached, raise an alert
(detector ``console.sign-in``) that the security group sees and is notified of.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from math import ceil

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Services
from foureyes.errors import FoureyesError
from foureyes.store.tables import LoginFailureRow

__all__ = [
    "ADDRESS_LIMIT",
    "IDENTITY_LIMIT",
    "WINDOW",
    "TooManyAttempts",
    "check",
    "clear",
    "record_failure",
]

log = logging.getLogger(__name__)

WINDOW = timedelta(minutes=15)
ADDRESS_LIMIT = 20
IDENTITY_LIMIT = 5
ALERT_DETECTOR = "console.sign-in"


class TooManyAttempts(FoureyesError):
    """Too many failed sign-ins from this address or for this identity: wait and retry."""

    status = 429
    slug = "too-many-attempts"


def _keys(address: str | None, identity: str | None) -> list[tuple[str, int]]:
    keys: list[tuple[str, int]] = []
    if address:
        keys.append((f"address:{address}", ADDRESS_LIMIT))
    if identity:
        keys.append((f"identity:{identity.strip().lower()[:250]}", IDENTITY_LIMIT))
    return keys


def _wait(session: Session, key: str, limit: int, now: datetime) -> timedelta | None:
    """How long until `key` may try again; None if it is under its limit."""
    since = now - WINDOW
    count = session.scalar(
        select(func.count()).where(LoginFailureRow.key == key, LoginFailureRow.at > since)
    )
    if not count or count < limit:
        return None
    # The attempt that brings the count below the limit again: the (count-limit+1)-th oldest.
    oldest = session.scalars(
        select(LoginFailureRow.at)
        .where(LoginFailureRow.key == key, LoginFailureRow.at > since)
        .order_by(LoginFailureRow.at)
        .offset(count - limit)
        .limit(1)
    ).first()
    assert oldest is not None
    return max(oldest + WINDOW - now, timedelta(seconds=1))


def describe(wait: timedelta) -> str:
    """'3 minutes', '40 seconds': a wait as a person reads it (rounded up)."""
    seconds = ceil(wait.total_seconds())
    if seconds >= 90:
        minutes = ceil(seconds / 60)
        return f"{minutes} minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def check(services: Services, *, address: str | None, identity: str | None = None) -> None:
    """Raise TooManyAttempts (with `retry_after` seconds) if the address or identity is over
    its limit. Call before looking at the credential."""
    keys = _keys(address, identity)
    if not keys:
        return
    with services.database.transaction() as session:
        now = services.clock()
        waits = [w for key, limit in keys if (w := _wait(session, key, limit, now)) is not None]
    if waits:
        wait = max(waits)
        raise TooManyAttempts(
            f"too many failed sign-in attempts: try again in {describe(wait)}",
            retry_after=ceil(wait.total_seconds()),
        )


def record_failure(
    services: Services, *, address: str | None, identity: str | None = None, reason: str = ""
) -> None:
    """Count one failed sign-in; when that reaches a limit, raise an alert (deduplicated over
    the window). Old failures are swept out here, so the table stays small."""
    keys = _keys(address, identity)
    if not keys:
        return
    # Never the credential itself: the address, the identity tried and why it failed.
    log.info("console sign-in failed from %s (%s): %s", address, identity, reason[:200])
    with services.database.transaction() as session:
        now = services.clock()
        session.execute(delete(LoginFailureRow).where(LoginFailureRow.at <= now - WINDOW))
        for key, _ in keys:
            session.add(LoginFailureRow(key=key, at=now))
        session.flush()
        reached = [key for key, limit in keys if _wait(session, key, limit, now) is not None]
        if reached:
            log.warning("console sign-in throttled: %s", ", ".join(reached))
            raise_alert(
                services,
                session,
                NewAlert(
                    detector=ALERT_DETECTOR,
                    severity="medium",
                    summary=f"repeated failed console sign-ins ({', '.join(reached)})",
                    staff=None,
                    details={"throttled": reached, "last_reason": reason[:200]},
                ),
                now=now,
                dedupe=WINDOW,
            )


def clear(services: Services, *, identities: Iterable[str]) -> None:
    """Forget an identity's failures after it signed in successfully (not the address's: one
    success must not reset a client that guesses at many people)."""
    keys = [key for identity in identities for key, _ in _keys(None, identity)]
    if not keys:
        return
    with services.database.transaction() as session:
        session.execute(delete(LoginFailureRow).where(LoginFailureRow.key.in_(keys)))
