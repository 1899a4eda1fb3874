"""An end-user account as staff are shown it: what the API's `GET /v1/accounts/{ref}` answers
and the console's account page shows.

Its platform's attributes as the platform reports them now, the private ones redacted
(`foureyes.core.redaction.shown_attributes`: by what the connector declares, undeclared
ones private), its pins, and its tier under the policy in force. Any member of staff may look an
account up; seeing its private values in the clear is the action `account.view_private`, which
goes through the policy like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from foureyes.connectors.base import has_lookup_many
from foureyes.core.redaction import shown_attributes
from foureyes.core.services import Services, json_safe
from foureyes.errors import FoureyesError
from foureyes.model import Account
from foureyes.policy.engine import tier_of
from foureyes.store import page_memo, seals
from foureyes.store.tables import EventRow, PinRow
from foureyes.store.tree import in_tree

__all__ = ["account_view", "pinned_accounts", "prefetch_accounts"]

MAX_PINNED = 10_000  # a list for people to read; past this, look accounts up one by one


def prefetch_accounts(services: Services, refs: Iterable[str]) -> None:
    """Inside a page (`page_memo`), the accounts of `refs` as their platforms report them now,
    in one call per platform that reads many at once (`has_lookup_many`), for `account_view`
    to answer from; outside any transaction. Any other account, one the platform does not
    have, and all of a platform whose call fails are looked up one by one when shown, as
    without a page (so that each shows its own answer or error)."""
    if not page_memo.active():
        return
    wanted: dict[str, dict[str, str]] = {}
    for ref in dict.fromkeys(refs):
        try:
            platform, account_id = Account.split_ref(ref)
        except ValueError:
            continue
        wanted.setdefault(platform, {})[account_id] = ref
    for platform, ids in wanted.items():
        connector = services.connectors.get(platform)
        if connector is None or not has_lookup_many(connector):
            continue
        try:
            found = connector.lookup_many(list(ids))
        except FoureyesError:
            continue
        for account_id, account in found.items():
            if account_id in ids:
                page_memo.remember("account", ids[account_id], account)


def pinned_accounts(services: Services, pin: str | None = None) -> list[dict[str, Any]]:
    """Every pinned account (or those with `pin`) and its pins, sorted by account: each
    account's pins read as the audit log sealed them (`Services.pins`: RecordAltered, and the
    alert, for a pin set or cleared behind foureyes' back)."""
    query = select(PinRow.account_ref).distinct().order_by(PinRow.account_ref)
    if pin is not None:
        query = query.where(PinRow.pin == pin)
    # ... and every account the log has sealed pins of: rows deleted behind foureyes' back must
    # not just drop out of the list (attack run); `Services.pins` then finds them altered.
    prefix = seals.ref(seals.PINS_KIND, "")
    sealed = (
        select(func.substr(EventRow.account_ref, len(prefix) + 1))
        .where(EventRow.kind == seals.SEALED, EventRow.account_ref.startswith(prefix), in_tree())
        .distinct()
    )
    with services.database.transaction() as session:
        refs = sorted(
            set(session.scalars(query.limit(MAX_PINNED)))
            | set(session.scalars(sealed.limit(MAX_PINNED)))
        )
        found = [(ref, sorted(services.pins(session, ref))) for ref in refs]
    return [
        {"account": ref, "pins": pins}
        for ref, pins in found
        if pins and (pin is None or pin in pins)
    ]


def account_view(services: Services, ref: str) -> dict[str, Any]:
    """The account's redacted attributes, pins, and tier (with any condition error). The
    platform is asked outside any transaction; NotFound for an unknown account or platform.
    Inside a page (`page_memo`) an account `prefetch_accounts` found is not asked again."""
    held = page_memo.peek("account", ref)
    account = held if isinstance(held, Account) else services.resolve_account(ref)
    if page_memo.known("pins", account.ref) and page_memo.known("policy", None):
        # The page has read both (`page_memo`): no transaction for them.
        pins = page_memo.peek("pins", account.ref)
        version, policy = page_memo.peek("policy", None)
    else:
        with services.database.read() as session:
            pins, version, policy = services.pins_and_policy(session, account.ref)
    subject = dict(account.attributes)
    subject.update(
        id=account.id,
        ref=account.ref,
        platform=account.platform,
        pins=sorted(account.pins | pins),
    )
    tier, failure = tier_of(policy.tiers, subject)
    return {
        "ref": account.ref,
        "platform": account.platform,
        "id": account.id,
        "attributes": json_safe(shown_attributes(services, account.platform, account.attributes)),
        "pins": sorted(account.pins | pins),
        "tier": tier,
        "tier_error": None
        if failure is None
        else {"where": failure.where, "error": failure.error, "consequence": failure.consequence},
        "policy_version": version,
    }
