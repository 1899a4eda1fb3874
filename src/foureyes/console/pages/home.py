"""The console's home: what waits for me, and my open requests."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.store import page_memo
from foureyes.web.deps import ServicesDep
from foureyes.workflow import operations

router = APIRouter()


@router.get("/console")
def bare() -> Response:
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/")
def home(request: Request, services: ServicesDep, actor: ConsoleActorDep) -> Response:
    """One page of reads (`page_memo`): the count of what waits and the navigation's badge
    decide each pending request once between them, not once each."""
    with page_memo.page():
        waiting, more = operations.list_requests(
            services, actor, operations.ListFilter(reviewable=True, limit=20)
        )
        mine = [
            item
            for state in ("pending", "scheduled")
            for item in operations.list_requests(
                services, actor, operations.ListFilter(state=state, mine=True, limit=20)
            )[0]
        ]
        return render(
            request,
            "home.html",
            {"waiting": len(waiting), "more": more is not None, "open_requests": mine},
        )
