"""Approving or declining a batch, with the rules of a single request's review
(`foureyes.workflow.review`): bound to the digest the reviewer was shown (the Merkle root of the
manifest), never by the requester, once per person, by someone eligible under the batch's bar,
with step-up where the bar asks for it, and re-decided as of now (`batch_recheck`).

Refused, nothing recorded: a batch the reviewer may not see (NotFound, as an unknown id), a
batch that is not pending (Conflict), expired (Conflict), a
digest other than the batch's (Conflict), the requester (Forbidden), a second review by the
same person (Conflict), a reviewer the floor stops or whose review would not count (Forbidden),
a missing or failing step-up (Forbidden). A batch found altered in the store, or not where
its audit events say it is (`batch_ledger`: state, expiry, delay), or whose items
the policy in force no longer includes as submitted, is cancelled (committed) and the review
refused (Conflict) saying why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.auth import step_up_failures
from foureyes.core import logstate
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict, Forbidden, FoureyesError, StepUpFailed
from foureyes.model import Review, ReviewDecision
from foureyes.policy.batches import BatchPlan
from foureyes.store.tables import BatchReviewRow, BatchRow
from foureyes.text import refuse_unseen
from foureyes.workflow import (
    batch_events,
    batch_integrity,
    batch_ledger,
    batch_recheck,
    batch_views,
)

MAX_COMMENT = 2000


@dataclass(frozen=True)
class BatchReviewInput:
    """A batch review as given: refused at once (BadInput) if its comment is unfit
    (`foureyes.text.refuse_unseen`, as a request's review comment)."""

    decision: ReviewDecision
    digest: str
    comment: str = ""
    step_up: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        refuse_unseen(self.comment, "comment")


def review_batch(services: Services, actor: Actor, batch_id: str, given: BatchReviewInput) -> str:
    """Record one approve or decline (the module's docstring); the batch's new state.

    Every refusal that needs no plan comes first, in a short read (`_refuse_early`): a batch
    the actor may not see is NotFound as an unknown id. The costly part (looking up every
    account and re-planning) then runs outside any lock; the locked transaction only re-checks
    the rows against the log and records."""
    if len(given.comment) > MAX_COMMENT:
        raise BadInput(f"the comment is longer than {MAX_COMMENT} characters")
    logstate.refuse(services)
    with services.database.read() as session:
        batch = batch_views.visible(services, session, batch_id, actor)
        _refuse_early(services, session, batch, actor, given, services.clock())
    looked = batch_recheck.look_up(services, batch_recheck.item_refs(services, batch_id))
    planned = _plan(services, batch_id, looked)
    try:
        return _review(services, actor, batch_id, given, looked, planned)
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


@dataclass(frozen=True)
class _Planned:
    """The re-plan made before the lock: the plan (or why there is none) and the policy
    version it was made under."""

    plan: BatchPlan | None
    refused: str | None
    version: str


def _plan(services: Services, batch_id: str, looked: batch_recheck.Looked) -> _Planned:
    with services.database.read() as session:
        batch = session.get(BatchRow, batch_id)
        if batch is None:
            raise batch_views.unknown(batch_id)
        version, _ = services.policy_in_force(session)
        try:
            plan = batch_recheck.replan(services, session, batch, looked, services.clock())
        except (BadInput, Forbidden) as exc:
            return _Planned(None, exc.message, str(version))
        return _Planned(plan, None, str(version))


def _refuse_early(
    services: Services,
    session: Session,
    batch: BatchRow,
    actor: Actor,
    given: BatchReviewInput,
    now: datetime,
) -> None:
    """The refusals that need no plan (nothing recorded); run again under the lock."""
    if batch.state != "pending":
        raise Conflict(f"batch {batch.id} is {batch.state}, not pending", batch_id=batch.id)
    if batch.expires_at is not None and batch.expires_at <= now:
        raise Conflict(f"batch {batch.id} expired at {batch.expires_at.isoformat()}")
    if given.digest != batch.digest:
        raise Conflict(
            "the batch you reviewed is not this one (digest mismatch): reload it",
            batch_id=batch.id,
        )
    if actor.id == batch.requester_id:
        raise Forbidden("the requester cannot review their own batch")
    reviewed = session.scalar(
        select(BatchReviewRow.id).where(
            BatchReviewRow.batch_id == batch.id, BatchReviewRow.reviewer_id == actor.id
        )
    )
    if reviewed is not None:
        raise Conflict(f"{actor.id} has already reviewed this batch", batch_id=batch.id)
    floor = actor.staff.floor_problem(now.date())
    if floor is not None:
        raise Forbidden(floor)
    if not batch_views.may_review(services, session, batch, actor):
        raise Forbidden(
            "your review would not count: you are not an approver of this batch's batch rule"
        )


def _review(
    services: Services,
    actor: Actor,
    batch_id: str,
    given: BatchReviewInput,
    looked: batch_recheck.Looked,
    planned: _Planned,
) -> str:
    stopped: str | None = None
    with services.database.transaction() as session:
        now = services.clock()
        batch = batch_events.lock(session, batch_id)
        assert batch is not None
        items = batch_integrity.items_of(session, batch.id)
        reviews = batch_integrity.reviews_of(session, batch.id)
        found = batch_ledger.ledger(session, batch.id)
        altered = batch_integrity.problem(session, batch, items, reviews)
        lifecycle = found.problem(batch, items)
        if lifecycle is not None:
            stopped = batch_ledger.refuse(
                services, session, batch, found, lifecycle, now, during="review"
            )
        elif altered is not None:
            stopped = batch_integrity.refuse(
                services, session, batch, altered, now, during="review"
            )
        else:
            _refuse_early(services, session, batch, actor, given, now)
            if str(services.policy_in_force(session)[0]) != planned.version:
                raise Conflict(
                    "the policy changed while your review was being checked: try again",
                    batch_id=batch.id,
                )
            stopped = _moved_out(
                services, session, batch, looked, planned, [i.account_ref for i in items], now
            )
        if stopped is None:
            assert planned.plan is not None
            return _record(services, session, batch, reviews, actor, given, planned.plan, now)
    raise Conflict(f"your review was not recorded: {stopped}", batch_id=batch_id)


def _moved_out(
    services: Services,
    session: Session,
    batch: BatchRow,
    looked: batch_recheck.Looked,
    planned: _Planned,
    refs: list[str],
    now: datetime,
) -> str | None:
    """Cancel the batch (its reason returned) when the policy in force would no longer carry
    exactly its items: a reviewer must never approve a set the policy would now split."""
    why: str | None = None
    if looked.missing:
        ref, reason = next(iter(looked.missing.items()))
        why = f"{ref}: {reason}"
    elif planned.plan is None:
        why = planned.refused
    else:
        plan = planned.plan
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
    plan: BatchPlan,
    now: datetime,
) -> str:
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
