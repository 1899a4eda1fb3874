"""Deciding a stored request again: under the policy in force, with the requester's current
record, the account's pins as they are now, and the current time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from foureyes.core.services import Services
from foureyes.model import Account, DecisionRequest, RequestContext
from foureyes.policy.decision import Decision
from foureyes.policy.engine import decide
from foureyes.store import page_memo
from foureyes.store.tables import RequestRow


def stored_account(services: Services, session: Session, row: RequestRow) -> Account:
    platform, account_id = Account.split_ref(row.account_ref)
    return Account(
        platform, account_id, dict(row.account_snapshot), services.pins(session, row.account_ref)
    )


def redecide(
    services: Services,
    session: Session,
    row: RequestRow,
    now: datetime,
    *,
    break_glass: bool | None = None,
    account: Account | None = None,
) -> Decision:
    """The decision for `row` as of `now` (DESIGN: re-checked when the action executes).
    Inside a page (`page_memo`) the stored request is decided once, at the page's moment."""
    if account is None:
        return page_memo.recall(
            "redecide",
            (row.id, break_glass),
            lambda: _redecide(services, session, row, now, break_glass, None),
        )
    return _redecide(services, session, row, now, break_glass, account)


def _redecide(
    services: Services,
    session: Session,
    row: RequestRow,
    now: datetime,
    break_glass: bool | None,
    account: Account | None,
) -> Decision:
    _, policy = services.policy_in_force(session)
    if account is None:
        account = stored_account(services, session, row)
    else:
        account = Account(
            account.platform,
            account.id,
            account.attributes,
            account.pins | services.pins(session, row.account_ref),
        )
    request = DecisionRequest(
        staff=services.staff(session, row.requester_id),
        action=row.action,
        account=account,
        context=RequestContext(now=now, client=row.client),
        params=dict(row.params),
        justification=row.justification,
        break_glass=row.break_glass if break_glass is None else break_glass,
    )
    return decide(policy, request)
