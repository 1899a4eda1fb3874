"""`/console/away`: mark yourself away (dates, an optional delegate), or back. Thin: the same
operations as `PUT`/`DELETE /v1/me/away` (`foureyes.workflow.away`), your own record only."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.console.csrf import CsrfDep
from foureyes.console.pages.forms import FormDep
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.errors import BadInput
from foureyes.web.deps import ServicesDep
from foureyes.workflow.away import clear_away, my_away, set_away

router = APIRouter()


def _date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"{what} is not a date (YYYY-MM-DD)") from None


@router.get("/console/away")
def show_away(request: Request, services: ServicesDep, actor: ConsoleActorDep) -> Response:
    return render(request, "away.html", {"away": my_away(services, actor)})


@router.post("/console/away")
def save_away(
    services: ServicesDep, actor: ConsoleActorDep, _csrf: CsrfDep, form: FormDep
) -> Response:
    if form.get("clear"):
        clear_away(services, actor)
    else:
        delegate = form.get("delegate", "").strip() or None
        starts = _date(form.get("from", ""), "from")
        ends = _date(form.get("until", ""), "until")
        set_away(services, actor, starts, ends, delegate)
    return RedirectResponse("/console/away", status_code=303)
