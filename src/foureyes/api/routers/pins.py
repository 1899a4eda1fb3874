"""`/v1/pins`: the accounts foureyes pins (`watchlist`, `protected`, …) and their pins.

Setting or clearing a pin is the governed action `foureyes.account.pin` (`POST /v1/requests`
on the account `foureyes:pins`); this lists what those actions made. The list is the list of
the accounts foureyes protects and watches, so only staff who govern pins read it
(`foureyes.workflow.pin_list`: oversight staff, and those the policy lets ask for a pin
change); anyone else gets 403. Paged like the other lists (`limit`, `cursor` = the previous
page's `next`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses
from foureyes.web.deps import ServicesDep
from foureyes.workflow.pin_list import pins_page

router = APIRouter(
    prefix="/v1/pins", tags=["accounts"], responses=problem_responses(401, 403, 422, 503)
)


@router.get("", summary="Pinned accounts and their pins")
def list_pins(
    services: ServicesDep,
    actor: ActorDep,
    pin: Annotated[
        str | None,
        Query(pattern="^[a-z][a-z0-9_-]{0,49}$", description="Only accounts with this pin."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next` of the previous page.")
    ] = None,
) -> dict[str, Any]:
    """`{"items": [{"account", "pins"}], "next": cursor}`, sorted by account; `next` is null on
    the last page. 403 for staff who do not govern pins."""
    items, following = pins_page(services, actor, pin, cursor, limit)
    return {"items": items, "next": following}
