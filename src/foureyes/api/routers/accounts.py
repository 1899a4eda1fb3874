"""`/v1/accounts/{ref}`: an end-user account as foureyes decides about it — its platform
attributes, its pins, and its tier under the policy in force.

Private attributes (whatever their name: what the platform's connector declares private, and
any it does not declare) are shown redacted (`k***@mail.example`): seeing them in the clear is
the action `account.view_private`, which goes through the policy like any other. The view is
`foureyes.workflow.accounts.account_view`, which the console shows too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses
from foureyes.web.deps import ServicesDep
from foureyes.workflow.accounts import account_view

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    responses=problem_responses(401, 404, 422, 503),
)


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
