"""`/v1/accounts/{ref}`: an end-user account as foureyes decides about it — its platform
attributes, its pins, and its tier under the policy in force.

Private attributes (email, phone) are shown redacted (`k***@mail.example`): seeing them in the
clear is the action `account.view_private`, which goes through the policy like any other.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses
from foureyes.connectors.demo_catalog import redact_email, redact_phone
from foureyes.core.services import Services, json_safe
from foureyes.policy.engine import tier_of
from foureyes.web.deps import ServicesDep

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    responses=problem_responses(401, 404, 422, 503),
)

# Attribute names whose values are personal data, whatever the platform.
_REDACT = {"email": redact_email, "phone": redact_phone}


def _redacted(attributes: dict[str, Any]) -> dict[str, Any]:
    shown = {}
    for name, value in attributes.items():
        redact = _REDACT.get(name)
        shown[name] = redact(str(value)) if redact is not None and value is not None else value
    return shown


def account_view(services: Services, ref: str) -> dict[str, Any]:
    """The account's redacted attributes, pins, and tier (with any condition error)."""
    account = services.resolve_account(ref)  # the platform, outside any transaction
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
        "attributes": json_safe(_redacted(dict(account.attributes))),
        "pins": sorted(account.pins | pins),
        "tier": tier,
        "tier_error": None
        if failure is None
        else {"where": failure.where, "error": failure.error, "consequence": failure.consequence},
        "policy_version": version,
    }


@router.get("/{ref}", summary="An account, its tier and pins")
def show_account(
    ref: Annotated[
        str, Path(min_length=3, max_length=300, description="`platform:id`, e.g. chirp:president")
    ],
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    """The account's attributes as its platform reports them now (private ones redacted), its
    pins (`watchlist`, `protected`, …) and its tier under the policy in force."""
    del actor  # any member of staff may look an account up; acting on it is a request
    return account_view(services, ref)
