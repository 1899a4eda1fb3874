"""Deciding a stored request again: under the policy in force, with the requester's current
record, the account's pins as they are now, and the current time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from foureyes.core.services import Services
from foureyes.model import Account, DecisionRequest, RequestContext
from foureyes.policy.compiler import Policy
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
    current: tuple[Policy, Account] | None = None,
) -> Decision:
    """The decision for `row` as of `now` (DESIGN: re-checked when the action executes).
    Inside a page (`page_memo`) the stored request is decided once, at the page's moment.
    `account`: the account as its platform answered (its pins are read again and added).
    `current`: the policy in force and the account with its pins as `session`'s transaction
    has read them already (the submit that recorded `row` decided on them): not read again.
    The requester's record is read in `session` whichever is given."""
    if current is not None:
        return _redecide(services, session, row, now, break_glass, current)
    if account is None:
        return page_memo.recall(
            "redecide",
            (row.id, break_glass),
            lambda: _redecide(services, session, row, now, break_glass, None),
        )
    pinned, _, policy = services.pins_and_policy(session, row.account_ref)
    pins = account.pins | pinned
    fresh = Account(account.platform, account.id, account.attributes, pins)
    return _redecide(services, session, row, now, break_glass, (policy, fresh))


def _redecide(
    services: Services,
    session: Session,
    row: RequestRow,
    now: datetime,
    break_glass: bool | None,
    current: tuple[Policy, Account] | None,
) -> Decision:
    if current is None:
        _, policy = services.policy_in_force(session)
        account = stored_account(services, session, row)
    else:
        policy, account = current
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
