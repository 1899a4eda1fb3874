"""A step-up that fails (a review's, or the proof vouching for a new credential) is a sign that
someone holds a person's sign-in but not their key, or a copy of the key: refused, counted, and
told to security, within limits that the person presenting it cannot push.

- Every failure is refused (403) and counted against the person (`foureyes.auth.attempts`,
  key ``step-up:<staff id>``). After `LIMIT` failures within `attempts.WINDOW`, every further
  step-up of theirs is refused before it is looked at (429 `too-many-attempts`, "too many
  failed step-ups: try again in N minutes", with `retry_after`) until the oldest failure
  leaves the window; a refusal while throttled is not counted.
- Security hears of it through a high `step_up_failed` alert and its `alert.raised` audit event,
  at most once per hour per person, and once per credential of theirs presented
  (`foureyes.auth.evidence`): a credential foureyes knows as theirs (a cloned key, a revoked
  one) is its own finding; anything else presented (made-up key ids, other people's keys)
  counts as the person's. A script retrying can neither grow the log nor silence a cloned key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from foureyes.auth import attempts, evidence
from foureyes.core.services import Actor, Services
from foureyes.errors import FoureyesError, StepUpFailed

__all__ = ["DETECTOR", "LIMIT", "note", "refuse_if_throttled"]

log = logging.getLogger(__name__)

DETECTOR = "step_up_failed"
LIMIT = 10  # failed step-ups per person within attempts.WINDOW


def _limits(staff_id: str) -> list[tuple[str, int]]:
    return [(f"step-up:{staff_id}", LIMIT)]


def refuse_if_throttled(session: Session, staff_id: str, now: datetime) -> None:
    """TooManyAttempts (429) if the person failed `LIMIT` step-ups within the window. Call
    before verifying a step-up they present, in the caller's transaction."""
    attempts.refuse_if_over(session, _limits(staff_id), now, what="step-ups")


def note(
    services: Services,
    actor: Actor,
    failed: StepUpFailed,
    *,
    summary: str,
    details: Mapping[str, Any],
    account: str | None = None,
    request: str | None = None,
) -> None:
    """Count `failed` against the actor and raise its alert unless one was raised for the same
    person and credential within the hour (`summary` and `details` describe it), in one
    transaction of its own: call after the refusal rolled back. Never raises: the caller
    refuses whatever happens here, and a failure to write is logged as an error."""
    found = evidence.Evidence(
        DETECTOR,
        actor.id,
        limited_per=f"key:{failed.key_id}" if failed.key_id else "person",
        summary=summary,
        details={**details, "reason": failed.message, "presented_key": failed.key_id},
        account=account,
        request=request,
        channels=(),
    )
    # Each failure is written anyway (its count), so the alerts table is asked in the same
    # transaction: no memory of this process is needed to keep the alerts to one an hour.
    try:
        with services.database.transaction() as session:
            now = services.clock()
            attempts.count(session, _limits(actor.id), now)
            evidence.note_in(services, session, found, now=now)
    except (FoureyesError, SQLAlchemyError):
        log.exception("could not record the failed step-up of %s", actor.id)
