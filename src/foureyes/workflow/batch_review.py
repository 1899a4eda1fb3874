"""Approving or declining a batch, with the rules of a single request's review
(`foureyes.workflow.review`): bound to the digest the reviewer was shown (the Merkle root of the
manifest), never by the requester, once per person, by someone eligible under the batch's bar,
with step-up where the bar asks for it, and re-decided as of now (`batch_recheck`).

Refused, nothing recorded: a batch that is not pending (Conflict), expired (Conflict), a
digest other than the batch's (Conflict), the requester (Forbidden), a second review by the
same person (Conflict), a reviewer the floor stops or whose review would not count (Forbidden),
a missing or failing step-up (Forbidden). A batch found altered in the store, or whose items
the policy in force no longer includes as submitted, is cancelled (committed) and the review
refused (Conflict) saying why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from foureyes.auth import step_up_failures
from foureyes.core import logstate
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict, Forbidden, FoureyesError, StepUpFailed
from foureyes.model import Review, ReviewDecision
from foureyes.policy.batches import BatchPlan
from foureyes.store.tables import BatchReviewRow, BatchRow
from foureyes.workflow import batch_events, batch_integrity, batch_recheck

MAX_COMMENT = 2000


@dataclass(frozen=True)
class BatchReviewInput:
    decision: ReviewDecision
    digest: str
    comment: str = ""
    step_up: Mapping[str, Any] | None = None


def review_batch(services: Services, actor: Actor, batch_id: str, given: BatchReviewInput) -> str:
    """Record one approve or decline (the module's docstring); the batch's new state."""
    if len(given.comment) > MAX_COMMENT:
        raise BadInput(f"the comment is longer than {MAX_COMMENT} characters")
    logstate.refuse(services)
    looked = batch_recheck.look_up(services, batch_recheck.item_refs(services, batch_id))
    try:
        return _review(services, actor, batch_id, given, looked)
    except StepUpFailed as exc:
        with contextlib.suppress(FoureyesError):
            step_up_failures.note(
                services,
                actor,
                exc,
                summary=f"{actor.id} ({actor.identity}) presented a step-up that failed",
                details={"identity": actor.identity, "where": "batch review"},
                account=None,
                request=batch_id,
            )
        raise


def _review(
    services: Services,
    actor: Actor,
    batch_id: str,
    given: BatchReviewInput,
    looked: batch_recheck.Looked,
) -> str:
    stopped: str | None = None
    with services.database.transaction() as session:
        now = services.clock()
        batch = batch_events.lock(session, batch_id)
        assert batch is not None
        if batch.state != "pending":
            raise Conflict(f"batch {batch.id} is {batch.state}, not pending", batch_id=batch.id)
        if batch.expires_at is not None and batch.expires_at <= now:
            raise Conflict(f"batch {batch.id} expired at {batch.expires_at.isoformat()}")
        items = batch_integrity.items_of(session, batch.id)
        reviews = batch_integrity.reviews_of(session, batch.id)
        altered = batch_integrity.problem(session, batch, items, reviews)
        if altered is not None:
            stopped = batch_integrity.refuse(
                services, session, batch, altered, now, during="review"
            )
        else:
            stopped = _moved_out(
                services, session, batch, looked, [i.account_ref for i in items], now
            )
        if stopped is None:
            return _record(services, session, batch, reviews, actor, given, looked, now)
    raise Conflict(f"your review was not recorded: {stopped}", batch_id=batch_id)


def _moved_out(
    services: Services,
    session: Session,
    batch: BatchRow,
    looked: batch_recheck.Looked,
    refs: list[str],
    now: datetime,
) -> str | None:
    """Cancel the batch (its reason returned) when the policy in force would no longer carry
    exactly its items: a reviewer must never approve a set the policy would now split."""
    why: str | None = None
    if looked.missing:
        ref, reason = next(iter(looked.missing.items()))
        why = f"{ref}: {reason}"
    else:
        try:
            plan = batch_recheck.replan(services, session, batch, looked, now)
        except (BadInput, Forbidden) as exc:
            why = exc.message
        else:
            if tuple(plan.included_refs()) != tuple(refs):
                gone = sorted(set(refs) - set(plan.included_refs()))
                why = f"the policy in force no longer includes {len(gone)} of its items" + (
                    f" (first: {gone[0]})" if gone else ""
                )
    if why is None:
        return None
    reason = f"{why}: submit the batch again"
    batch_events.move(
        services,
        session,
        batch,
        "cancelled",
        allowed=("pending",),
        actor=None,
        now=now,
        reason=reason,
    )
    return reason


def _record(
    services: Services,
    session: Session,
    batch: BatchRow,
    reviews: list[BatchReviewRow],
    actor: Actor,
    given: BatchReviewInput,
    looked: batch_recheck.Looked,
    now: datetime,
) -> str:
    if given.digest != batch.digest:
        raise Conflict(
            "the batch you reviewed is not this one (digest mismatch): reload it",
            batch_id=batch.id,
        )
    if actor.id == batch.requester_id:
        raise Forbidden("the requester cannot review their own batch")
    if any(r.reviewer_id == actor.id for r in reviews):
        raise Conflict(f"{actor.id} has already reviewed this batch", batch_id=batch.id)
    floor = actor.staff.floor_problem(now.date())
    if floor is not None:
        raise Forbidden(floor)
    plan = batch_recheck.replan(services, session, batch, looked, now)
    counted, _ = batch_recheck.engine_reviews(services, session, reviews)
    mine = Review(reviewer=actor.staff, decision=given.decision, identity=actor.identity)
    trial = batch_recheck.status(plan, [*counted, mine], now)
    _refuse_uncounted(plan, trial.batch.ignored, actor, given, trial.vetoed_by)
    evidence = None
    if plan.requirement.options.step_up:
        step_up_failures.refuse_if_throttled(session, actor.id, now)
        evidence = services.step_up.verify(
            session,
            request_id=batch.id,
            reviewer_id=actor.id,
            digest=batch.digest,
            decision=given.decision.value,
            assertion=given.step_up,
        )
    session.add(
        BatchReviewRow(
            batch_id=batch.id,
            reviewer_id=actor.id,
            identity=actor.identity,
            decision=given.decision.value,
            comment=given.comment,
            digest=given.digest,
            step_up=evidence,
            created_at=now,
        )
    )
    batch_events.record(
        services,
        session,
        batch,
        batch_integrity.REVIEWED,
        actor=actor.id,
        now=now,
        payload={
            "identity": actor.identity,
            "credential": actor.credential,
            "decision": given.decision.value,
            "reviewed_digest": given.digest,
            "comment": given.comment,
            "step_up": evidence,
        },
    )
    if trial.vetoed_by:
        batch_events.move(
            services,
            session,
            batch,
            "declined",
            allowed=("pending",),
            actor=actor.id,
            now=now,
            reason=f"declined by {', '.join(trial.vetoed_by)}",
        )
    elif trial.satisfied:
        delay = services.delay_for(plan.requirement.options.delay)
        batch.not_before = now + delay if delay else None
        batch_events.move(
            services,
            session,
            batch,
            "approved",
            allowed=("pending",),
            actor=actor.id,
            now=now,
            details={"not_before": batch.not_before, "status": trial.to_dict()},
        )
    return batch.state


def _refuse_uncounted(
    plan: BatchPlan,
    ignored: tuple[tuple[str, str], ...],
    actor: Actor,
    given: BatchReviewInput,
    vetoed_by: tuple[str, ...],
) -> None:
    """Forbidden when this review would not count (the reviewer is not eligible)."""
    for who, why in ignored:
        if who == actor.id:
            raise Forbidden(f"your review would not count: {why}")
    if given.decision == ReviewDecision.DENY and actor.id not in vetoed_by:
        raise Forbidden(
            f"your decline would not count: you are not an approver of batch rule "
            f"{plan.requirement.rule}"
        )
