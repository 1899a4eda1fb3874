"""Finding an account by handle (or the first letters of it, with a typeahead), and its page:
attributes, tier, pins, requests and history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from foureyes.console.pages.briefing import names
from foureyes.console.pages.context import safe_account
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.web.deps import ServicesDep
from foureyes.workflow import account_search, operations, views

router = APIRouter()

HISTORY = 50


@router.get("/console/accounts")
def find_account(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    q: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    found = account_search.find_accounts(services, actor, q)
    typed = q.strip().removeprefix("@")
    if len(found) == 1 and found[0].partition(":")[2] == typed.rpartition(":")[2]:
        return RedirectResponse(f"/console/accounts/{found[0]}", status_code=303)
    return render(
        request,
        "accounts.html",
        {"q": q, "found": found, "min_prefix": account_search.MIN_PREFIX},
    )


@router.get("/console/account-suggestions")
def suggest(
    services: ServicesDep,
    actor: ConsoleActorDep,
    q: Annotated[str, Query(max_length=300)] = "",
) -> JSONResponse:
    """The typeahead's answer: {"items": [account refs]} (what the search page would list)."""
    found = account_search.find_accounts(services, actor, q)
    return JSONResponse({"items": found}, headers={"Cache-Control": "no-store"})


@router.get("/console/accounts/{ref:path}")
def show_account(
    request: Request,
    ref: Annotated[str, Path(min_length=3, max_length=300)],
    services: ServicesDep,
    actor: ConsoleActorDep,
) -> Response:
    account = safe_account(services, ref)
    if "error" in account:
        # A miss counts as a search: a word list tried name by name is throttled like one.
        account_search.count_lookup(services, actor)
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
    people = names(
        services,
        sorted({v["requester"] for v in requests} | {h["actor"] for h in history if h["actor"]}),
    )
    return render(
        request,
        "account.html",
        {
            "account": account,
            "requests": requests,
            "history": history,
            "oversight_groups": " or ".join(sorted(services.oversight_groups)),
            "people": people,
        },
    )
