"""An end-user account as staff are shown it: what the API's `GET /v1/accounts/{ref}` answers
and the console's account page shows.

Its platform's attributes as the platform reports them now, the private ones redacted
(`foureyes.core.redaction.shown_attributes`: by what the connector declares, undeclared
ones private), its pins, and its tier under the policy in force. Any member of staff may look an
account up; seeing its private values in the clear is the action `account.view_private`, which
goes through the policy like any other.
"""

from __future__ import annotations

from typing import Any

from foureyes.core.redaction import shown_attributes
from foureyes.core.services import Services, json_safe
from foureyes.policy.engine import tier_of

__all__ = ["account_view"]


def account_view(services: Services, ref: str) -> dict[str, Any]:
    """The account's redacted attributes, pins, and tier (with any condition error). The
    platform is asked outside any transaction; NotFound for an unknown account or platform."""
    account = services.resolve_account(ref)
    with services.database.transaction() as session:
        pins = services.pins(session, account.ref)
        version, policy = services.policy_in_force(session)
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
