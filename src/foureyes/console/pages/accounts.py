"""Finding an account by handle, and its page: attributes, tier, pins, requests and history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.console.pages.context import safe_account
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.core.services import Services
from foureyes.errors import FoureyesError
from foureyes.policy.catalog import FOUREYES_PLATFORM
from foureyes.web.deps import ServicesDep
from foureyes.workflow import operations, views

router = APIRouter()

HISTORY = 50


def _candidates(services: Services, query: str) -> list[str]:
    """Account refs the query may mean: itself if it is `platform:id`, else the handle on
    every connected platform where such an account exists."""
    query = query.strip().removeprefix("@")
    if not query:
        return []
    if ":" in query:
        return [query]
    found = []
    for platform in sorted(services.connectors):
        if platform == FOUREYES_PLATFORM:
            continue
        try:
            services.resolve_account(f"{platform}:{query}")
        except FoureyesError:
            continue
        found.append(f"{platform}:{query}")
    return found


@router.get("/console/accounts")
def find_account(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    q: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    del actor
    found = _candidates(services, q)
    if len(found) == 1 and q:
        return RedirectResponse(f"/console/accounts/{found[0]}", status_code=303)
    return render(request, "accounts.html", {"q": q, "found": found})


@router.get("/console/accounts/{ref:path}")
def show_account(
    request: Request,
    ref: Annotated[str, Path(min_length=3, max_length=300)],
    services: ServicesDep,
    actor: ConsoleActorDep,
) -> Response:
    account = safe_account(services, ref)
    if "error" in account:
        return render(
            request,
            "accounts.html",
            {"q": ref, "found": [], "error": account["error"]},
            status_code=404,
        )
    requests, _ = operations.list_requests(
        services, actor, operations.ListFilter(account=ref, limit=20)
    )
    history = views.account_history(services, actor, ref, HISTORY)
    return render(
        request,
        "account.html",
        {
            "account": account,
            "requests": requests,
            "history": history,
            "oversight_groups": " or ".join(sorted(services.oversight_groups)),
        },
    )
