"""`/v1/accounts/{ref}`: an end-user account as foureyes decides about it — its platform
attributes, its pins, and its tier under the policy in force.

Private attributes (whatever their name: what the platform's connector declares private, and
any it does not declare) are shown redacted (`k***@mail.example`): seeing them in the clear is
the action `account.view_private`, which goes through the policy like any other. The view is
`foureyes.workflow.accounts.account_view`, which the console shows too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses
from foureyes.errors import NotFound
from foureyes.web.deps import ServicesDep
from foureyes.workflow.account_search import count_lookup, find_accounts
from foureyes.workflow.accounts import account_view

router = APIRouter(
    prefix="/v1/accounts",
    tags=["accounts"],
    responses=problem_responses(401, 404, 422, 503),
)


@router.get(
    "", summary="Find accounts by handle or its first letters", responses=problem_responses(429)
)
def search_accounts(
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=300,
            description="A handle, its first letters (from 2), or `platform:prefix`.",
        ),
    ],
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, list[str]]:
    """`{"items": [account refs]}`: exact handles first, then handles starting with `q`, at
    most 10 — the console's search. Rate-limited per person (429 with `Retry-After`; the
    first refusal in a window raises an `accounts.search` alert)."""
    return {"items": find_accounts(services, actor, q)}


@router.get("/{ref}", summary="An account, its tier and pins", responses=problem_responses(429))
def show_account(
    ref: Annotated[
        str, Path(min_length=3, max_length=300, description="`platform:id`, e.g. chirp:president")
    ],
    services: ServicesDep,
    actor: ActorDep,
) -> dict[str, Any]:
    """The account's attributes as its platform reports them now (private ones redacted), its
    pins (`watchlist`, `protected`, …) and its tier under the policy in force. Any member of
    staff may look an account up (acting on it is a request); a look-up that finds no account
    counts toward the person's search limit (429 past it), so a word list tried name by name is
    throttled while looking up accounts that exist is not."""
    try:
        return account_view(services, ref)
    except NotFound:
        count_lookup(services, actor)
        raise
