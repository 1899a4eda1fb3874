"""Alerts: the list (security and leads only, as the API), most severe first and newest first
within a severity, and acknowledging one with a note (an `alert.acknowledged` audit event in
the same transaction: `workflow.alerts.acknowledge`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.console.csrf import CsrfDep
from foureyes.console.pages.briefing import names
from foureyes.console.pages.forms import FormDep
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.model import MAX_SQL_INT
from foureyes.web.deps import ServicesDep
from foureyes.workflow import alerts as alert_ops

router = APIRouter()

NOTE_LIMIT = 2000


@router.get("/console/alerts")
def alerts(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    state: Annotated[Literal["open", "acknowledged", "all"], Query()] = "open",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    items, cursor = alert_ops.alerts_by_severity(
        services, actor, state=state, after=after or None, limit=50
    )
    people = names(
        services,
        sorted({i for a in items for i in (a["staff"], a["acknowledged_by"]) if i}),
    )
    return render(
        request,
        "alerts.html",
        {"items": items, "state": state, "cursor": cursor, "paged": bool(after), "people": people},
    )


@router.post("/console/alerts/{alert_id}/ack")
def acknowledge(
    alert_id: Annotated[int, Path(ge=1, le=MAX_SQL_INT)],
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
    form: FormDep,
) -> Response:
    note = form.get("comment", "").strip()[:NOTE_LIMIT]
    alert_ops.acknowledge(services, actor, alert_id, note)
    return RedirectResponse("/console/alerts?acknowledged=1", status_code=303)
