"""The console's home: what waits for me, and my open requests."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render

router = APIRouter()


@router.get("/console")
def bare() -> Response:
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/")
def home(request: Request, actor: ConsoleActorDep) -> Response:
    return render(request, "home.html", {})
