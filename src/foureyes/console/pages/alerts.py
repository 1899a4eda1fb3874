"""Alerts: the list (security and leads only, as the API) and acknowledging one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.console.csrf import CsrfDep
from foureyes.console.pages.forms import FormDep
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.model import MAX_SQL_INT
from foureyes.web.deps import ServicesDep
from foureyes.workflow import alerts as alert_ops

router = APIRouter()


@router.get("/console/alerts")
def alerts(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    state: Annotated[Literal["open", "acknowledged", "all"], Query()] = "open",
    before: Annotated[int | None, Query(ge=1, le=MAX_SQL_INT)] = None,
) -> Response:
    items, last = alert_ops.list_alerts(services, actor, state=state, before=before, limit=50)
    return render(request, "alerts.html", {"items": items, "state": state, "last": last})


@router.post("/console/alerts/{alert_id}/ack")
def acknowledge(
    alert_id: Annotated[int, Path(ge=1, le=MAX_SQL_INT)],
    services: ServicesDep,
    actor: ConsoleActorDep,
    _csrf: CsrfDep,
    form: FormDep,
) -> Response:
    alert_ops.acknowledge(services, actor, alert_id, form.get("comment", "").strip()[:2000])
    return RedirectResponse("/console/alerts?acknowledged=1", status_code=303)
