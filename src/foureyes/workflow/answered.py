"""Operations that change something and then answer: carrying out at once what the policy
allows at once, and the review, cancel and execute calls whose answer, after their change
committed, must say the outcome is unknown rather than that nothing changed (`outcome`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from foureyes.auth.webauthn import (
    assertion_options,
)
from foureyes.core import sealing
from foureyes.core.services import Actor, Services
from foureyes.errors import Conflict
from foureyes.model import RequestState
from foureyes.store.tables import RequestRow
from foureyes.workflow import outcome
from foureyes.workflow import review as reviews
from foureyes.workflow.access import visible_request
from foureyes.workflow.execute import ExecutionOutcome
from foureyes.workflow.execute import execute as execute_once
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import (
    Submission,
    Submitted,
    submit_or_replay,
)
from foureyes.workflow.undo import undo_or_replay
from foureyes.workflow.views import request_view, visible_view


def seal_records(services: Services) -> int | None:
    """Seal the records of a store that has never been sealed (a store upgraded from before
    seals), as they are found, once: `serve` and `worker` call it at start. How many records
    were sealed; None when the store was sealed already (`sealing.baseline`)."""
    return sealing.baseline(services.database, services.audit, services.clock())


def submit_and_run(
    services: Services, actor: Actor, submission: Submission
) -> tuple[str, ExecutionOutcome | None]:
    """Submit, and carry out at once what the policy allows at once (DESIGN: "allowed:
    executed at once"): approved writes, break-glass, and the requester's own approved reads
    and actions that reveal private data (`ActionSpec.for_requester_only`, e.g. a `login_as`
    session token), whose data comes back here once. Scheduled and pending requests wait. With an
    idempotency key, as `submit_run_or_replay` (a replay answers the earlier id)."""
    submitted, outcome = submit_run_or_replay(services, actor, submission)
    return submitted.request_id, outcome


def submit_run_or_replay(
    services: Services, actor: Actor, submission: Submission
) -> tuple[Submitted, ExecutionOutcome | None]:
    """`submit_and_run`, telling a replay apart: a submission whose idempotency key names an
    earlier request asking for the same (`submit_or_replay`) changes nothing and carries
    nothing out — that request is answered as it is now (`replayed`), and the outcome is None.
    (An approved write is the worker's to carry out; an approved read, or an action that
    reveals private data, its requester's, with `execute`; data that was returned once is not
    returned again.)

    Once the request is recorded, a failure of what follows (carrying it out: further
    transactions, and a platform call) is OutcomeUnknown naming it (`outcome.after`), never
    an error that says nothing changed."""
    submitted = submit_or_replay(services, actor, submission, at_once=True)
    return submitted, _run_unless_replayed(services, actor, submitted)


def undo_run_or_replay(
    services: Services,
    actor: Actor,
    request_id: str,
    justification: str | None,
    params: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> tuple[Submitted, ExecutionOutcome | None]:
    """Undo request `request_id` (`undo_or_replay`), and carry out at once what the policy
    allows at once, as `submit_run_or_replay` does (a replay carries nothing out; a failure
    after the undo is recorded is OutcomeUnknown naming it)."""
    submitted = undo_or_replay(
        services, actor, request_id, justification, params, idempotency_key=idempotency_key
    )
    return submitted, _run_unless_replayed(services, actor, submitted)


def _run_unless_replayed(
    services: Services, actor: Actor, submitted: Submitted
) -> ExecutionOutcome | None:
    if submitted.replayed:
        return None
    if submitted.carried_out is not None:
        return submitted.carried_out  # in the submit's own transaction
    with outcome.after(submitted.request_id, f"request {submitted.request_id} was recorded"):
        return run_if_allowed(services, actor, submitted.request_id)


def run_if_allowed(services: Services, actor: Actor, request_id: str) -> ExecutionOutcome | None:
    """Carry out a request the policy allowed at once (state `approved`); None otherwise, and
    None when the worker (another process, or this one's thread) claimed it first: then it is
    the worker's to carry out, and the request was made all the same."""
    # Only its state: the whole view (with its timeline) cost a tenth of a submit's CPU.
    with services.database.read() as session:
        state = session.scalar(select(RequestRow.state).where(RequestRow.id == request_id))
    if state != RequestState.APPROVED.value:
        return None
    try:
        return execute_once(services, request_id, actor=actor)
    except Conflict as exc:
        # Between the look above and our claim, someone else moved it on (the several-servers
        # test caught a submit answered 409 for a request the worker was already executing).
        if exc.details.get("state", RequestState.APPROVED.value) != RequestState.APPROVED.value:
            return None
        raise


def show(services: Services, request_id: str) -> dict[str, Any]:
    """The request as the system sees it, unchecked: for the worker, the operator's tools and
    tests. What a person reads goes through `show_to`."""
    return request_view(services, request_id)


def show_to(services: Services, actor: Actor, request_id: str) -> dict[str, Any]:
    """The request as `actor` may see it: NotFound, exactly as for an unknown id, unless they
    oversee, asked for it, took part in it or may act on it now (`foureyes.workflow.access`)."""
    return visible_view(services, actor, request_id)


def show_after(services: Services, actor: Actor, request_id: str, done: str) -> dict[str, Any]:
    """`show_to`, as the answer of a call that has just changed something (`done` says what,
    e.g. "your review of request X was recorded"): if the request cannot be read back, the
    answer is OutcomeUnknown naming it and saying what was done, not an error that says
    nothing changed."""
    with outcome.after(request_id, done):
        return visible_view(services, actor, request_id)


def show_submitted(services: Services, actor: Actor, submitted: Submitted) -> dict[str, Any]:
    """The request a submit (or an undo) recorded or replayed, as `actor` may see it, as the
    answer of that call (`show_after`). A request carried out in the submit's own transaction
    is answered from the view that transaction built (`Submitted.view`: its requester's, the
    same `show_to` reads right after the COMMIT), reading nothing again."""
    if submitted.view is not None and submitted.view["requester"] == actor.id:
        return dict(submitted.view)
    request_id = submitted.request_id
    done = f"request {request_id} was {'found' if submitted.replayed else 'recorded'}"
    return show_after(services, actor, request_id, done)


def review(services: Services, actor: Actor, request_id: str, given: ReviewInput) -> str:
    """`review.review` (what it approves is left for the worker, or whoever executes it: the
    API, the console and the guard use `review_and_run`); a COMMIT whose answer is lost is
    OutcomeUnknown naming the request."""
    with outcome.naming(request_id, f"your review of request {request_id}"):
        return reviews.review(services, actor, request_id, given)


def review_and_run(
    services: Services, actor: Actor, request_id: str, given: ReviewInput
) -> ExecutionOutcome | None:
    """`review.review_and_carry_out`: the review, and the deciding approval's request carried
    out in the same call (the answer shows it `executed`, or why not), as a submit carries out
    what the policy allows at once. On a platform kept in foureyes' database it was carried
    out in the review's own transaction; on any other (and where that transaction could not:
    a ticket to ask again, a re-check that did not let it go ahead), it is carried out after
    the COMMIT, as `run_if_allowed` does for a submit: the platform is called outside our
    transactions, with a lease and reconciliation. What runs for its requester alone, and what
    waits for a delay, waits. A COMMIT whose answer is lost, and any failure once the review
    committed, is OutcomeUnknown naming the request. The outcome, if anything was carried out
    (its `data` is for nobody here: only what is not for its requester alone is run)."""
    return _reviewed_and_run(services, actor, request_id, given, answer=False)[0]


def _reviewed_and_run(
    services: Services, actor: Actor, request_id: str, given: ReviewInput, *, answer: bool
) -> tuple[ExecutionOutcome | None, reviews.Reviewed]:
    with outcome.naming(request_id, f"your review of request {request_id}"):
        reviewed = reviews.review_and_carry_out(services, actor, request_id, given, answer=answer)
    if not reviewed.run_after:
        return reviewed.carried_out, reviewed
    with outcome.after(request_id, f"your review of request {request_id} was recorded"):
        return run_if_allowed(services, actor, request_id), reviewed


def review_and_show(
    services: Services, actor: Actor, request_id: str, given: ReviewInput
) -> dict[str, Any]:
    """`review_and_run`, answered with the request as the reviewer sees it after it
    (`show_after`): on SQLite a deciding review carried out in its own transaction is answered
    from the view that transaction read once its events were in (`Reviewed.view`), reading
    nothing again."""
    # On SQLite the review's transaction holds the write lock from its first write, and a read
    # transaction of its own after it costs more than the reads made under that lock. On
    # PostgreSQL the log's head lock is held from the append to the COMMIT: reads made there
    # held every other review's append back (measured: 46 -> 39 reviews/s), so it reads after.
    answer = services.database.is_sqlite
    _, reviewed = _reviewed_and_run(services, actor, request_id, given, answer=answer)
    if reviewed.view is not None:
        return reviewed.view
    return show_after(
        services, actor, request_id, f"your review of request {request_id} was recorded"
    )


def post_review(services: Services, actor: Actor, request_id: str, given: ReviewInput) -> int:
    """`review.post_review`; a COMMIT whose answer is lost is OutcomeUnknown naming the
    request."""
    with outcome.naming(request_id, f"your post-review of request {request_id}"):
        return reviews.post_review(services, actor, request_id, given)


def cancel(services: Services, actor: Actor, request_id: str, reason: str = "") -> str:
    """`review.cancel`; a COMMIT whose answer is lost is OutcomeUnknown naming the request."""
    with outcome.naming(request_id, f"the cancellation of request {request_id}"):
        return reviews.cancel(services, actor, request_id, reason)


def execute(
    services: Services,
    request_id: str,
    *,
    actor: Actor | None = None,
    worker: str = "inline",
    skip_locked: bool = False,
) -> ExecutionOutcome | None:
    """`execute.execute` (a claim, the platform call, the result: three steps), answering a
    database failure or a bug in any of them as OutcomeUnknown naming the request
    (`outcome.carrying_out`): the claim may have committed, or the platform acted. Refusals
    (not approved, not yours, scheduled for later) are raised as they are."""
    with outcome.carrying_out(request_id):
        return execute_once(
            services, request_id, actor=actor, worker=worker, skip_locked=skip_locked
        )


def step_up_options(
    services: Services, actor: Actor, request_id: str, decision: str
) -> dict[str, Any]:
    """WebAuthn options to confirm `actor`'s review (`webauthn.assertion_options`); NotFound
    for a request they may not see, as for an unknown id."""
    with services.database.transaction() as session:
        visible_request(services, session, session.get(RequestRow, request_id), request_id, actor)
    return assertion_options(services, actor, request_id, decision)
