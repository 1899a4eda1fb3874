"""Lists of requests: the inbox (what waits for my review, each with its full context and a
review form) and the requests list, mine by default, everyone's for oversight staff, filtered
by state, action, tier, requester and account, the filters kept in the URL.

Every list comes from `operations.list_requests`, which shows a reader only the requests they
may see (`foureyes.workflow.access`): a filter narrows what they may see, never widens it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from foureyes.console.pages.briefing import names
from foureyes.console.pages.context import request_context
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.core.services import Actor
from foureyes.store import page_memo
from foureyes.web.deps import ServicesDep
from foureyes.workflow import accounts as account_ops
from foureyes.workflow import alerts as alert_ops
from foureyes.workflow import inbox as inbox_ops
from foureyes.workflow import operations

router = APIRouter()

OPEN_STATES = ("pending", "approved", "scheduled")
STATES = (
    "pending",
    "approved",
    "scheduled",
    "executed",
    "failed",
    "denied",
    "expired",
    "cancelled",
    "reverted",
)
PAGE = 25


def may_sign_off(view: dict[str, Any], actor: Actor) -> bool:
    """A break-glass that ran and still wants sign-offs, not asked by me nor signed by me
    (whether I am eligible the operation decides)."""
    return (
        bool(view["break_glass"])
        and view["post_review_due"] is not None
        and view["state"] in ("executed", "failed", "reverted")
        and view["requester"] != actor.id
        and not any(r["reviewer"] == actor.id and r["kind"] != "review" for r in view["reviews"])
    )


@router.get("/console/requests")
def list_page(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    state: Annotated[str, Query(max_length=20)] = "",
    action: Annotated[str, Query(max_length=200)] = "",
    tier: Annotated[str, Query(max_length=100)] = "",
    requester: Annotated[str, Query(max_length=100)] = "",
    account: Annotated[str, Query(max_length=300)] = "",
    mine: Annotated[str, Query(max_length=1)] = "1",
    before: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Mine (`mine=1`, the default) or every request I may see (`mine=0`: for oversight staff,
    all of them), newest first, a page at a time."""
    filters = {
        "state": state.strip() if state.strip() in STATES else "",
        "action": action.strip(),
        "tier": tier.strip(),
        "requester": requester.strip(),
        "account": account.strip().removeprefix("@"),
        "mine": "0" if mine == "0" else "1",
    }
    items, cursor = operations.list_requests(
        services,
        actor,
        operations.ListFilter(
            state=filters["state"] or None,
            mine=filters["mine"] == "1",
            action=filters["action"] or None,
            tier=filters["tier"] or None,
            requester=filters["requester"] or None,
            account=filters["account"] or None,
            limit=PAGE,
            before=before or None,
        ),
    )
    return render(
        request,
        "requests.html",
        {
            "items": items,
            "cursor": cursor,
            "filters": filters,
            "query": {k: v for k, v in filters.items() if v},
            "states": STATES,
            "open_states": OPEN_STATES,
            "names": names(services, sorted({v["requester"] for v in items})),
            "paged": bool(before),
        },
    )


@router.get("/console/inbox")
def inbox(request: Request, services: ServicesDep, actor: ConsoleActorDep) -> Response:
    """What waits for my review, each with its full context and a review form; when nothing
    does and requests by people I manage are kept from me, why. One page of reads
    (`page_memo`): what every card needs is read once, in bulk, not once per card."""
    with page_memo.page():
        items, cursor = operations.list_requests(
            services, actor, operations.ListFilter(reviewable=True, limit=20)
        )
        alert_ops.prefetch_on_requests(services, actor, [item["id"] for item in items])
        account_ops.prefetch_accounts(services, [item["account"] for item in items])
        cards = [request_context(services, actor, item) for item in items]
        recent, _ = operations.list_requests(
            services, actor, operations.ListFilter(state="executed", limit=50)
        )
        sign_offs = [item for item in recent if may_sign_off(item, actor)]
        return render(
            request,
            "inbox.html",
            {
                "cards": cards,
                "more": cursor is not None,
                "sign_offs": sign_offs,
                "manager_note": inbox_ops.manager_note(services, actor),
                "names": names(services, sorted({v["requester"] for v in sign_offs})),
            },
        )
