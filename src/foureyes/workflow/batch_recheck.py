"""Re-deciding a batch as of now, for its reviews and its execution: the items' accounts as
their platforms answer now (with their pins), the policy in force, the requester's and the
reviewers' current records; `foureyes.policy.batches` decides (never this module)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.auth.credentials import withdrawn
from foureyes.connectors.base import has_lookup_many
from foureyes.core.services import Services, with_pins
from foureyes.errors import ConnectorError, FoureyesError, NotFound
from foureyes.model import Account, Review, ReviewDecision
from foureyes.policy.batches import BatchPlan, BatchStatus, batch_satisfied, plan_batch
from foureyes.store.tables import BatchItemRow, BatchReviewRow, BatchRow


@dataclass(frozen=True)
class Looked:
    """The items' accounts as their platforms answer now, by ref; and the refs that could
    not be looked up, with why."""

    accounts: dict[str, Account]
    missing: dict[str, str]


def look_up(services: Services, refs: Sequence[str]) -> Looked:
    """Each account as its platform answers now (outside our transactions)."""
    found: dict[str, Account] = {}
    missing: dict[str, str] = {}
    for ref, answer in resolve_many(services, refs).items():
        if isinstance(answer, Account):
            found[ref] = answer
        elif isinstance(answer, NotFound):
            missing[ref] = "the platform no longer knows the account"
        else:
            missing[ref] = f"the platform did not answer: {answer}"
    return Looked(found, missing)


def resolve_many(services: Services, refs: Sequence[str]) -> dict[str, Account | FoureyesError]:
    """Each account as `Services.resolve_account` answers it, or the error it raised. A
    platform that reads many accounts in one go (`Connector.lookup_many`: the demo, one
    statement per 1,000) is asked so, once per platform; any other is asked one by one, so
    that each account gets its own answer or error."""
    answers: dict[str, Account | FoureyesError] = {}
    by_platform: dict[str, list[str]] = {}
    for ref in refs:
        platform, _, account_id = ref.partition(":")
        if platform in services.connectors and has_lookup_many(services.connector(platform)):
            by_platform.setdefault(platform, []).append(account_id)
    for platform, ids in by_platform.items():
        try:
            found: Mapping[str, Account] | FoureyesError = services.connector(platform).lookup_many(
                ids
            )
        except (ConnectorError, FoureyesError) as exc:
            found = exc
        for account_id in ids:
            ref = f"{platform}:{account_id}"
            if isinstance(found, FoureyesError):
                answers[ref] = found
            else:
                account = found.get(account_id)
                answers[ref] = (
                    NotFound(f"no account {ref!r} on {platform}") if account is None else account
                )
    for ref in refs:
        if ref in answers:
            continue
        try:
            answers[ref] = services.resolve_account(ref)
        except (ConnectorError, FoureyesError) as exc:
            answers[ref] = exc
    return answers


def item_refs(services: Services, batch_id: str) -> list[str]:
    with services.database.read() as session:
        return list(
            session.scalars(
                select(BatchItemRow.account_ref)
                .where(BatchItemRow.batch_id == batch_id)
                .order_by(BatchItemRow.position)
            )
        )


def replan(
    services: Services,
    session: Session,
    batch: BatchRow,
    looked: Looked,
    now: datetime,
) -> BatchPlan:
    """The batch's plan as of now: its items that could be looked up, under the policy in
    force, for its requester's current record (BatchRefused if the requester may no longer
    ask for it: gone, suspended, past their contract's end)."""
    requester = services.staff(session, batch.requester_id)
    _, policy = services.policy_in_force(session)
    pins = services.pins_many(session, list(looked.accounts))
    accounts = [with_pins(account, pins[ref]) for ref, account in looked.accounts.items()]
    return plan_batch(
        policy,
        requester,
        batch.action,
        accounts,
        batch.params,
        now,
        justification=batch.justification,
        client=batch.client,
    )


def engine_reviews(
    services: Services, session: Session, rows: Sequence[BatchReviewRow]
) -> tuple[list[Review], list[str]]:
    """The reviews with each reviewer's current record, leaving out approvals confirmed
    with a step-up credential revoked since; and why each of those no longer counts."""
    reviews: list[Review] = []
    taken_back: list[str] = []
    for row in rows:
        if row.decision == ReviewDecision.APPROVE.value:
            why = withdrawn(session, row.reviewer_id, row.step_up)
            if why is not None:
                taken_back.append(why)
                continue
        reviews.append(
            Review(
                reviewer=services.staff(session, row.reviewer_id),
                decision=ReviewDecision(row.decision),
                identity=row.identity,
                comment=row.comment,
                at=row.created_at,
            )
        )
    return reviews, taken_back


def status(plan: BatchPlan, reviews: Sequence[Review], now: datetime) -> BatchStatus:
    return batch_satisfied(plan, reviews, today=now.date())
