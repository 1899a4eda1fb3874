"""The reviews that count: a request's review rows, the approvals taken back because the step-up
credential that confirmed them was revoked since, and the reviews as the engine weighs them."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.auth.credentials import withdrawn
from foureyes.core.events import POST_REVIEW, REVIEW
from foureyes.core.services import Services
from foureyes.model import Review, ReviewDecision
from foureyes.store import page_memo, txn_memo
from foureyes.store.bulk import one_of
from foureyes.store.tables import ReviewRow


def review_rows(session: Session, request_id: str, kind: str = REVIEW) -> list[ReviewRow]:
    """The request's reviews of `kind`, in the order given: read once per page (`page_memo`)
    or, in a transaction, once until it writes to the reviews (`txn_memo`: a review's checks,
    its settle, the re-check before carrying it out and its answer each ask)."""

    def read() -> list[ReviewRow]:
        return list(
            session.scalars(
                select(ReviewRow)
                .where(ReviewRow.request_id == request_id, ReviewRow.kind == kind)
                .order_by(ReviewRow.id)
            )
        )

    key = (request_id, kind)
    if page_memo.active():
        return list(page_memo.recall("reviews", key, read))
    return list(txn_memo.recall_flushed(session, "reviews", key, ("reviews",), read))


def prefetch_reviews(session: Session, request_ids: Collection[str]) -> None:
    """Inside a page (`page_memo`), the review rows of these requests, every kind, in one
    statement: what `review_rows` then answers for them."""
    if not page_memo.active() or not request_ids:
        return
    found: dict[tuple[str, str], list[ReviewRow]] = {
        (i, kind): [] for i in request_ids for kind in (REVIEW, POST_REVIEW)
    }
    rows = session.scalars(
        select(ReviewRow)
        .where(one_of(session, ReviewRow.request_id, list(request_ids)))
        .order_by(ReviewRow.id)
    )
    for row in rows:
        found.setdefault((row.request_id, row.kind), []).append(row)
    for key, value in found.items():
        page_memo.remember("reviews", key, value)


def withdrawn_approvals(session: Session, rows: Iterable[ReviewRow]) -> dict[int, str]:
    """The approvals among `rows` that no longer count, by review id, with why: each was
    confirmed with a step-up credential revoked since (`credentials.withdrawn`). Revoking a
    stolen key also takes back what was approved with it."""
    found: dict[int, str] = {}
    for row in rows:
        if row.decision != ReviewDecision.APPROVE.value:
            continue  # a deny or veto stands (failing closed)
        why = withdrawn(session, row.reviewer_id, row.step_up)
        if why is not None:
            found[row.id] = why
    return found


def unstepped_approvals(rows: Iterable[ReviewRow]) -> dict[int, str]:
    """The approvals among `rows` given without step-up evidence, by review id, with why they
    do not count where the decision in force asks every review for step-up (a policy update
    that added it after they were given: a stolen sign-in's approval is not grandfathered)."""
    return {
        row.id: f"{row.reviewer_id}'s approval was given without the step-up the policy in "
        "force asks for"
        for row in rows
        if row.decision == ReviewDecision.APPROVE.value and not row.step_up
    }


def not_counted(session: Session, rows: Iterable[ReviewRow], *, step_up: bool) -> dict[int, str]:
    """The approvals among `rows` that do not count, by review id, with why: taken back with a
    revoked credential (`withdrawn_approvals`) and, where the decision in force asks for
    step-up (`step_up`), given without it (`unstepped_approvals`). A deny always counts."""
    rows = list(rows)
    found = unstepped_approvals(rows) if step_up else {}
    return {**found, **withdrawn_approvals(session, rows)}


def engine_reviews(
    services: Services, session: Session, rows: Iterable[ReviewRow], *, step_up: bool = False
) -> list[Review]:
    """Reviews with each reviewer's *current* record, so approvals are re-checked as of now;
    approvals that do not count under a decision asking for step-up (`step_up`) or not at all
    are left out (`not_counted`)."""
    rows = list(rows)
    withdrawn_ids = not_counted(session, rows, step_up=step_up)
    return [
        Review(
            reviewer=services.staff(session, row.reviewer_id),
            decision=ReviewDecision(row.decision),
            identity=row.identity,
            comment=row.comment,
            at=row.created_at,
        )
        for row in rows
        if row.id not in withdrawn_ids
    ]
