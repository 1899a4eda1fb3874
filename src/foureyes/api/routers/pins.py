"""`/v1/pins`: the accounts foureyes pins (`watchlist`, `protected`, …) and their pins.

Setting or clearing a pin is the governed action `foureyes.account.pin` (`POST /v1/requests`
on the account `foureyes:pins`); this lists what those actions made. Any member of staff may
read it, as any may look an account up (`GET /v1/accounts/{ref}` shows its pins too).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses
from foureyes.web.deps import ServicesDep
from foureyes.workflow.accounts import pinned_accounts

router = APIRouter(prefix="/v1/pins", tags=["accounts"], responses=problem_responses(401, 422, 503))


@router.get("", summary="Pinned accounts and their pins")
def list_pins(
    services: ServicesDep,
    actor: ActorDep,
    pin: Annotated[
        str | None,
        Query(pattern="^[a-z][a-z0-9_-]{0,49}$", description="Only accounts with this pin."),
    ] = None,
) -> dict[str, Any]:
    """`{"items": [{"account", "pins"}], "next": null}`, sorted by account."""
    del actor  # any member of staff
    return {"items": pinned_accounts(services, pin), "next": None}
