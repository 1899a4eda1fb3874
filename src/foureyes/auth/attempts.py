"""Failed attempts counted in the database, so that every server shares the count: console
sign-ins per client address (`foureyes.console.throttle`), step-ups per person
(`foureyes.auth.step_up_failures`).

One row per failure and key (`console_login_failures`: `key` is ``address:<ip>`` or
``step-up:<staff id>``). A key with `limit` failures within `WINDOW` is refused every attempt
(TooManyAttempts, 429, with `retry_after`) until its oldest counted failure leaves the window;
a refused attempt is not counted, so waiting always ends it. Rows older than the window are
deleted whenever a failure is counted, so the table stays small. Not audit events: counting
must not let anyone grow the append-only log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from math import ceil

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from foureyes.errors import TooManyAttempts
from foureyes.store.tables import LoginFailureRow

__all__ = ["WINDOW", "count", "describe", "refuse_if_over", "wait"]

WINDOW = timedelta(minutes=15)
MAX_KEY = 300  # the column's length

Limits = Sequence[tuple[str, int]]  # (key, how many failures within WINDOW it may have)


def wait(session: Session, key: str, limit: int, now: datetime) -> timedelta | None:
    """How long until `key` may try again; None while it is under its limit."""
    since = now - WINDOW
    counted = session.scalar(
        select(func.count()).where(LoginFailureRow.key == key, LoginFailureRow.at > since)
    )
    if not counted or counted < limit:
        return None
    # The failure whose leaving brings the count below the limit: the (count-limit+1)-th oldest.
    oldest = session.scalars(
        select(LoginFailureRow.at)
        .where(LoginFailureRow.key == key, LoginFailureRow.at > since)
        .order_by(LoginFailureRow.at)
        .offset(counted - limit)
        .limit(1)
    ).first()
    assert oldest is not None
    return max(oldest + WINDOW - now, timedelta(seconds=1))


def describe(waiting: timedelta) -> str:
    """'3 minutes', '40 seconds': a wait as a person reads it (rounded up)."""
    seconds = ceil(waiting.total_seconds())
    if seconds >= 90:
        return f"{ceil(seconds / 60)} minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def refuse_if_over(session: Session, limits: Limits, now: datetime, *, what: str) -> None:
    """TooManyAttempts ("too many failed `what`: try again in …", with `retry_after`) if any
    key is at its limit. Call before looking at what the attempt holds."""
    waits = [
        w for key, limit in limits if (w := wait(session, key[:MAX_KEY], limit, now)) is not None
    ]
    if waits:
        longest = max(waits)
        raise TooManyAttempts(
            f"too many failed {what}: try again in {describe(longest)}",
            retry_after=ceil(longest.total_seconds()),
        )


def count(session: Session, limits: Limits, now: datetime) -> list[str]:
    """Count one failure for each key, in the caller's transaction; answers the keys that
    this failure brought to their limit (or that were there already)."""
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.at <= now - WINDOW))
    for key, _ in limits:
        session.add(LoginFailureRow(key=key[:MAX_KEY], at=now))
    session.flush()
    return [key for key, limit in limits if wait(session, key[:MAX_KEY], limit, now) is not None]
