"""Reviews, cancellation and break-glass post-reviews."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from foureyes.auth import step_up_failures
from foureyes.auth.credentials import refuse_holder_approval
from foureyes.connectors.tickets import Ticket
from foureyes.core import logstate, redaction
from foureyes.core.events import POST_REVIEW, REVIEW, expect_state, lock_request, move, record
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict, Forbidden, FoureyesError, StepUpFailed
from foureyes.model import Outcome, RequestState, Review, ReviewDecision
from foureyes.notify import hooks as notify_hooks
from foureyes.policy.decision import Decision, FactorStatus
from foureyes.policy.engine import satisfied
from foureyes.store.tables import RequestRow, ReviewRow
from foureyes.text import refuse_unseen
from foureyes.workflow import expiry, holds, integrity, routing, tickets, views
from foureyes.workflow.access import eligible_approver, visible_request
from foureyes.workflow.approvals import engine_reviews, review_rows
from foureyes.workflow.execute import ExecutionOutcome, carry_out_at_once
from foureyes.workflow.subject import redecide

MAX_COMMENT = 2000


@dataclass(frozen=True)
class ReviewInput:
    """A review as given: refused at once (BadInput) if its comment holds what a reader cannot
    see (`foureyes.text.refuse_unseen`): other people read it in the console, the CLI and the
    log."""

    decision: ReviewDecision
    digest: str
    comment: str = ""
    step_up: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        refuse_unseen(self.comment, "comment")


@dataclass(frozen=True)
class Reviewed:
    """What `review_and_carry_out` did: the request's state once the review committed; what
    was carried out in the review's own transaction (`carried_out`); and whether the request
    this review approved is to be carried out now, after that COMMIT, by the reviewer's call
    (`run_after`: not carried out in it, and not waiting for its requester or a delay)."""

    state: str
    carried_out: ExecutionOutcome | None = None
    run_after: bool = False
    # With `carried_out`, when the caller asked for it (`answer`): the request as its reviewer
    # sees it once the transaction's events are in (`views.reviewed_view`), read in it.
    view: dict[str, Any] | None = None


def review(services: Services, actor: Actor, request_id: str, given: ReviewInput) -> str:
    """`review_and_carry_out` without the carrying out: what the review approves is left
    approved (or scheduled) for the worker, or whoever may execute it. Returns the request's
    new state."""
    return _reviewed(services, actor, request_id, _Asked(given, at_once=False)).state


def review_and_carry_out(
    services: Services,
    actor: Actor,
    request_id: str,
    given: ReviewInput,
    *,
    answer: bool = False,
) -> Reviewed:
    """Record one approve/deny on a pending request and move it on when that settles it.

    Refused (nothing changes): a request the actor may not see (NotFound, as for an unknown
    id: `access.may_see`), a request that is not pending (Conflict), a digest other than
    the request's (Conflict: the reviewer saw something else), the requester reviewing their own
    request, the person a credential enrolment names approving it, a second review by the
    same person, a reviewer eligible for no factor, a missing or
    failing step-up where a rule asks for it (Forbidden), a reviewer who failed too many
    step-ups lately (TooManyAttempts). A step-up that was presented and failed is counted and
    flagged (`step_up_failures`: a `step_up_failed` alert at most once an hour per person and
    credential) after the refusal rolled back. A request past its `expires_at` is refused too
    (Conflict), and moved to `expired` with its event (committed) as the worker's expiry pass
    would: nobody decides it between its deadline and that pass.

    The deciding approval (every factor satisfied, no delay) carries its request out in the
    review's own transaction where its platform is kept in foureyes' database
    (`execute.carry_out_at_once`: the review, the approval, the claim, the re-checks at
    execution, the platform's change, the outcome and all their events, one COMMIT). Where it
    cannot (another platform: a remote call never runs inside our transactions; a ticket to
    ask again; a re-check at execution that does not let it go ahead at once), the request is
    committed `approved` and `Reviewed.run_after` says the caller should carry it out now, with
    `execute` (which cancels it, saying why, if the re-check fails). Never a request whose
    answer is for its requester alone (a read, a login_as: theirs to ask for, with `execute`),
    nor a scheduled one (its delay runs first). With `answer`, a request carried out in the
    review's transaction comes back with its view read there (`Reviewed.view`).
    """
    return _reviewed(services, actor, request_id, _Asked(given, at_once=True, answer=answer))


@dataclass(frozen=True)
class _Asked:
    """A review as asked: what was given; whether to carry out here what it approves
    (`review_and_carry_out`); whether to read its view there (`answer`)."""

    given: ReviewInput
    at_once: bool
    answer: bool = False


def _reviewed(services: Services, actor: Actor, request_id: str, asked: _Asked) -> Reviewed:
    given = asked.given
    if len(given.comment) > MAX_COMMENT:
        raise BadInput(f"the comment is longer than {MAX_COMMENT} characters")
    logstate.refuse(services)  # nothing is decided on a log rolled back or with a moved head
    try:
        # Most requests need no ticket: the review's transaction is tried first, with no
        # ticket checked; one that needs a ticket check comes back (having written nothing)
        # before anything is recorded, and is tried again with the checks made for it.
        answer = _review(services, actor, request_id, asked, ())
        if isinstance(answer, _TicketsFirst):
            checked = _recheck_tickets(services, actor, request_id, given)
            answer = _review(services, actor, request_id, asked, checked)
    except StepUpFailed as exc:
        _flag_failed_step_up(services, actor, request_id, exc)
        raise
    if isinstance(answer, _TicketsFirst):
        raise Conflict(
            f"your approval was not recorded: its {', '.join(answer.missing)} ticket was not "
            "checked for it; approve again",
            request_id=request_id,
        )
    return answer


@dataclass(frozen=True)
class _TicketsFirst:
    """The review's transaction found that the approval needs the tickets of `missing`
    checked first (`tickets.unchecked`), and wrote nothing."""

    missing: tuple[str, ...]


def _flag_failed_step_up(
    services: Services, actor: Actor, request_id: str, exc: StepUpFailed
) -> None:
    """A failed step-up is a sign that someone holds a reviewer's session but not their key,
    or a copy of the key (a counter that went backwards): counted against them, and security
    hears of it (at most once an hour per person and credential: `step_up_failures`)."""
    account = None
    # The refusal stands whatever happens here; the alert names what it can.
    with contextlib.suppress(FoureyesError), services.database.read() as session:
        row = session.get(RequestRow, request_id)
        account = row.account_ref if row is not None else None
    step_up_failures.note(
        services,
        actor,
        exc,
        summary=f"{actor.id} ({actor.identity}) presented a step-up that failed",
        details={"identity": actor.identity, "where": "review"},
        account=account,
        request=request_id,
    )


def _recheck_tickets(
    services: Services, actor: Actor, request_id: str, given: ReviewInput
) -> tuple[Ticket, ...]:
    """An approval needs the tickets the request's rules require still open and naming the
    account (`workflow.tickets`): Conflict if one no longer is, TicketSystemUnavailable if its
    system cannot say; the passed checks, recorded only with the review. Asked outside the
    review's transaction (a network call: a slow system holds no lock), once that transaction
    found the approval needs them (`_TicketsFirst`), and only once every refusal that does not
    need the step-up has been checked again here (`_refusal`, and again under the lock):
    nobody who may not see the request, nor one whose review would be refused anyway, gets the
    ticket system asked on their behalf."""
    with services.database.read() as session:
        row = visible_request(
            services, session, session.get(RequestRow, request_id), request_id, actor
        )
        expect_state(row, RequestState.PENDING)
        reviews = review_rows(session, row.id)
        if integrity.trail(session, row.id).problem(row, reviews) is not None:
            return ()  # refused (and the request cancelled) under the lock: `_review`
        if expiry.overdue(row, services.clock()):
            return ()  # refused (and the request expired) under the lock: `_review`
        _refusal(services, session, row, reviews, actor, given, services.clock())
    rechecked = tickets.recheck(services, request_id, (RequestState.PENDING.value,))
    if rechecked.problem is not None:
        raise Conflict(
            f"your approval was not recorded: {rechecked.problem}", request_id=request_id
        )
    return rechecked.tickets


def _review(
    services: Services,
    actor: Actor,
    request_id: str,
    asked: _Asked,
    checked: tuple[Ticket, ...],
) -> Reviewed | _TicketsFirst:
    def unit(session: Session) -> Reviewed | _TicketsFirst | str:
        # Re-runnable (`Database.together`); a refusal's reason once what it did is committed.
        now = services.clock()
        row = visible_request(
            services, session, lock_request(session, request_id), request_id, actor
        )
        expect_state(row, RequestState.PENDING)
        # Nothing is recorded on a request the store altered: it is cancelled (committed
        # here), and the review refused below.
        found = integrity.trail(session, row.id)
        reviews = review_rows(session, row.id)
        altered = found.problem(row, reviews)
        if altered is not None:
            reason = integrity.refuse(
                services, session, row, found, altered, now, actor=actor.id, during="review"
            )
        elif expiry.overdue(row, now):
            # Past its deadline nobody decides it, whether or not the worker's expiry pass
            # came by yet: it is expired here, as that pass would (committed), and refused.
            expiry.expire(services, session, row, now)
            reason = f"the request expired at {row.expires_at}"
        else:
            return _record_review(services, session, (row, reviews), actor, asked, checked, now)
        return reason

    answer = services.database.together(unit)
    if isinstance(answer, str):
        raise Conflict(f"your review was not recorded: {answer}", request_id=request_id)
    return answer


def _record_review(
    services: Services,
    session: Session,
    found: tuple[RequestRow, list[ReviewRow]],
    actor: Actor,
    asked: _Asked,
    checked: tuple[Ticket, ...],
    now: datetime,
) -> Reviewed | _TicketsFirst:
    """The checks and the recording of one review on a pending request that is intact
    (`found`: it and its reviews so far, checked against the log under its lock), with the
    ticket checks made for it (`checked`); `asked`: the review, whether to carry out here
    what it approves (`review_and_carry_out`) and to read its view then. An approval whose
    tickets `checked` does not cover is `_TicketsFirst`, with nothing written, once every other
    refusal short of the step-up has been checked."""
    row, reviews = found
    given = asked.given
    decision, trial = _refusal(services, session, row, reviews, actor, given, now)
    # The tickets required at submission and those this very decision requires: never an
    # approval whose tickets were not asked for it (the pre-check skipped the lookup for a
    # request it found altered, which the lock no longer does; the policy changed between).
    missing = tickets.unchecked(row, decision, checked)
    if given.decision == ReviewDecision.APPROVE and missing:
        return _TicketsFirst(missing)
    evidence = None
    if decision.options.step_up:
        # Someone who failed too many step-ups waits before the next is even looked at.
        step_up_failures.refuse_if_throttled(session, actor.id, now)
        evidence = services.step_up.verify(
            session,
            request_id=row.id,
            reviewer_id=actor.id,
            digest=row.digest,
            decision=given.decision.value,
            assertion=given.step_up,
        )
    # The review's events and the move it settles are appended together at the end (nothing
    # below reads the log back): the log's head lock is taken once, just before the COMMIT.
    with services.audit.group(session):
        _store_review(services, session, row, actor, given, REVIEW, evidence, now)
        tickets.record_check(
            services, session, row, tickets.APPROVE, checked, actor=actor.id, now=now
        )
        settle(services, session, row, decision, trial, now, actor=actor.id)
        reviewed = Reviewed(row.state)
        if asked.at_once and row.state == RequestState.APPROVED.value:
            reviewed = _carry_out(services, session, row, actor, now)
    if asked.answer and reviewed.carried_out is not None:
        # Its events are in (the group above appended them): what the reviewer is answered.
        reviewed = replace(reviewed, view=views.reviewed_view(services, session, row, actor))
    return reviewed


def _carry_out(
    services: Services, session: Session, row: RequestRow, actor: Actor, now: datetime
) -> Reviewed:
    """The request this review approved just now (`review_and_carry_out`): carried out here,
    in the review's transaction, or left to the caller after its COMMIT (`run_after`) unless
    it waits for its requester."""
    done = carry_out_at_once(services, session, row, actor, None, now)
    if done is not None:
        return Reviewed(row.state, carried_out=done)
    spec = services.connector(row.account_ref.partition(":")[0]).action(row.action)
    return Reviewed(row.state, run_after=not spec.for_requester_only)


def _refusal(
    services: Services,
    session: Session,
    row: RequestRow,
    reviews: list[ReviewRow],
    actor: Actor,
    given: ReviewInput,
    now: datetime,
) -> tuple[Decision, FactorStatus]:
    """Every refusal of a review short of the step-up (raised), else the decision in force
    and the factors' status with this review."""
    if given.digest != row.digest:
        raise Conflict(
            "the request you reviewed is not this one (digest mismatch): reload it",
            request_id=row.id,
        )
    if actor.id == row.requester_id:
        raise Forbidden("the requester cannot review their own request")
    if given.decision == ReviewDecision.APPROVE:
        refuse_holder_approval(row.action, row.params, actor.id)
        # One pending request per account (policy option): a later one waits for the first.
        routing.refuse_while_held(services, session, row, actor)
    if any(r.reviewer_id == actor.id for r in reviews):
        raise Conflict(f"{actor.id} has already reviewed this request", request_id=row.id)
    floor = actor.staff.floor_problem(now.date())
    if floor is not None:
        raise Forbidden(floor)
    decision = redecide(services, session, row, now)
    trial = satisfied(
        decision,
        [
            # Where the decision asks for step-up, an approval given without it (before a
            # policy update added it) does not count; this review's is verified below.
            *engine_reviews(services, session, reviews, step_up=decision.options.step_up),
            _as_review(actor, given),
        ],
        today=now.date(),
        submitted=holds.escalation_start(services, session, row),
        now=now,
    )
    if any(who == actor.id for who, _ in trial.ignored):
        reason = next(why for who, why in trial.ignored if who == actor.id)
        raise Forbidden(f"your review would not count: {reason}")
    return decision, trial


def _store_review(
    services: Services,
    session: Session,
    row: RequestRow,
    actor: Actor,
    given: ReviewInput,
    kind: str,
    evidence: dict[str, Any] | None,
    now: datetime,
) -> None:
    """The review row and its audit event, in the caller's transaction."""
    session.add(
        ReviewRow(
            request_id=row.id,
            reviewer_id=actor.id,
            identity=actor.identity,
            kind=kind,
            decision=given.decision.value,
            comment=given.comment,
            digest=given.digest,
            step_up=evidence,
            created_at=now,
        )
    )
    record(
        services,
        session,
        kind="review.recorded" if kind == REVIEW else "break_glass.post_review",
        actor=actor.id,
        row=row,
        payload={
            "identity": actor.identity,
            # Which credential decided (`token:<id>`, `oidc:<login>`; never a secret).
            "credential": actor.credential,
            "decision": given.decision.value,
            "comment": given.comment,
            "step_up": evidence,
        },
        now=now,
    )


def _as_review(actor: Actor, given: ReviewInput) -> Review:
    return Review(reviewer=actor.staff, decision=given.decision, identity=actor.identity)


def settle(
    services: Services,
    session: Session,
    row: RequestRow,
    decision: Decision,
    status: FactorStatus,
    now: datetime,
    *,
    actor: str | None,
) -> None:
    """Move a pending request on if the reviews (or a changed policy) decide it: vetoed or now
    denied by the policy → denied; every factor satisfied → approved (or scheduled while the
    delay runs)."""
    if decision.outcome == Outcome.DENIED:
        move(
            services,
            session,
            row,
            RequestState.DENIED,
            actor=actor,
            kind="request.denied",
            now=now,
            reason="the policy in force now denies it: " + "; ".join(decision.reasons),
        )
    elif status.vetoed:
        move(
            services,
            session,
            row,
            RequestState.DENIED,
            actor=actor,
            kind="request.vetoed",
            now=now,
            reason=f"vetoed by {', '.join(status.vetoed_by)}",
        )
    elif not status.satisfied:
        return
    else:
        _approve(services, session, row, decision, status, now, actor=actor)
    # Notifications: the requester (and the policy's `notify` channels) hear that it was
    # decided, through the outbox, in this same transaction (delivered later by the worker).
    notify_hooks.request_settled(
        session, row, decision, now, params=redaction.notified_params(services, session, row)
    )


def _approve(
    services: Services,
    session: Session,
    row: RequestRow,
    decision: Decision,
    status: FactorStatus,
    now: datetime,
    *,
    actor: str | None,
) -> None:
    details = {"approved_by": [list(f.approved_by) for f in status.factors]}
    delay = services.delay_for(decision.options.delay)  # shorter on `serve --demo` alone
    if delay:
        row.not_before = now + delay
        # A delay stops the clock: a request that waits for its requester once the delay has
        # run (a read, a login_as: `ActionSpec.for_requester_only`) keeps the time it had left
        # to be carried out, instead of expiring during, or right after, the delay.
        if row.expires_at is not None:
            row.expires_at = row.expires_at + delay
        move(
            services,
            session,
            row,
            RequestState.SCHEDULED,
            actor=actor,
            kind="request.approved",
            now=now,
            details={
                **details,
                "not_before": row.not_before,
                # The log says so when the demo, not the policy, set the wait.
                **({"delay_from": "serve --demo"} if delay != decision.options.delay else {}),
            },
        )
    else:
        move(
            services,
            session,
            row,
            RequestState.APPROVED,
            actor=actor,
            kind="request.approved",
            now=now,
            details=details,
        )


def cancel(services: Services, actor: Actor, request_id: str, reason: str = "") -> str:
    """Cancel a request that has not started executing.

    The requester may cancel their own pending, approved or scheduled request; while a delay
    runs (scheduled), anyone eligible to review it may cancel it too (DESIGN item 8). To
    anyone who may not see the request (`access.may_see`) it is NotFound, as an unknown id.
    A `reason` holding what a reader cannot see is BadInput before anything is looked at
    (`foureyes.text.refuse_unseen`): the requester, oversight and the log read it. A request
    that is not what the log recorded is not cancelled by `actor` but refused as altered
    (`integrity.refuse`, committed) and the cancel is Conflict saying so.
    """
    refuse_unseen(reason, "reason")
    refused = ""
    with services.database.transaction() as session:
        now = services.clock()
        row = visible_request(
            services, session, lock_request(session, request_id), request_id, actor
        )
        state = expect_state(
            row, RequestState.PENDING, RequestState.APPROVED, RequestState.SCHEDULED
        )
        # A request the store altered (or one the log never recorded: a row written in, attack
        # F3 of session h2) is refused as tampered, as review refuses it: cancelled with the
        # reason and the high alert, committed, never an ordinary cancel by its "requester".
        found = integrity.trail(session, row.id)
        altered = found.problem(row, review_rows(session, row.id))
        if altered is not None:
            refused = integrity.refuse(
                services, session, row, found, altered, now, actor=actor.id, during="cancel"
            )
        elif actor.id != row.requester_id:
            if state != RequestState.SCHEDULED:
                raise Forbidden("only the requester may cancel a request that is not scheduled")
            # Eligible under a rule that requires approvals now: an allow rule's delay, or a
            # request the policy now denies, has no eligible reviewers (access.eligible_approver).
            current = redecide(services, session, row, now)
            start = holds.escalation_start(services, session, row)
            if not eligible_approver(current, actor, submitted=start):
                raise Forbidden("only the requester or an eligible reviewer may cancel it")
        if altered is None:
            move(
                services,
                session,
                row,
                RequestState.CANCELLED,
                actor=actor.id,
                kind="request.cancelled",
                now=now,
                reason=reason or f"cancelled by {actor.id}",
            )
            return row.state
    raise Conflict(f"your cancel was not recorded: {refused}", request_id=request_id)


def post_review(services: Services, actor: Actor, request_id: str, given: ReviewInput) -> int:
    """Sign off (or object to) a break-glass execution; returns how many sign-offs it has.

    Post-reviewers must be eligible approvers under the rules the break-glass skipped, and
    not the requester. To anyone who may not see the request (`access.may_see`: eligible
    post-reviewers may) it is NotFound, as an unknown id.
    """
    logstate.refuse(services)
    with services.database.transaction() as session:
        now = services.clock()
        row = visible_request(
            services, session, lock_request(session, request_id), request_id, actor
        )
        existing = review_rows(session, row.id, POST_REVIEW)
        found = integrity.trail(session, row.id)
        altered = found.problem(row, existing, POST_REVIEW)
        if altered is None:
            return _record_post_review(services, session, row, existing, actor, given, now)
        reason = integrity.refuse(
            services, session, row, found, altered, now, actor=actor.id, during="post-review"
        )
    raise Conflict(f"your post-review was not recorded: {reason}", request_id=request_id)


def _record_post_review(
    services: Services,
    session: Session,
    row: RequestRow,
    existing: list[ReviewRow],
    actor: Actor,
    given: ReviewInput,
    now: datetime,
) -> int:
    """The checks and the recording of one post-review of an intact request."""
    if not row.break_glass:
        raise Conflict("this request was not a break-glass request", request_id=row.id)
    if given.digest != row.digest:
        raise Conflict("digest mismatch: reload the request", request_id=row.id)
    if actor.id == row.requester_id:
        raise Forbidden("the requester cannot post-review their own break-glass")
    if any(r.reviewer_id == actor.id for r in existing):
        raise Conflict(f"{actor.id} has already post-reviewed this request")
    # Eligible under the rules the break-glass skipped, as they are now: when none requires
    # approvals any more (allowed, or denied now), nobody is (access.eligible_approver).
    normal = redecide(services, session, row, now, break_glass=False)
    start = holds.escalation_start(services, session, row)
    if not eligible_approver(normal, actor, submitted=start):
        raise Forbidden("you are not an eligible reviewer for this action")
    _store_review(services, session, row, actor, given, POST_REVIEW, None, now)
    return len(existing) + 1
