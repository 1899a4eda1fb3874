"""`/v1/me`: who the bearer token belongs to; `/v1/me/away`: your own away dates.

An API client needs the person's staff id for what it computes itself: the device-key step-up
signs `foureyes.auth.stepup.challenge(...)`, which names the reviewer. It tells the caller
only about themselves.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses
from foureyes.web.deps import ServicesDep
from foureyes.workflow.away import clear_away, my_away, set_away

router = APIRouter(prefix="/v1/me", tags=["staff"], responses=problem_responses(401, 503))


@router.get("", summary="Who you are")
def show_me(actor: ActorDep) -> dict[str, Any]:
    """`{"id", "identity", "name", "groups"}`: your staff id, the login your token was issued
    for (or your identity provider named), your name and groups."""
    return {
        "id": actor.id,
        "identity": actor.identity,
        "name": actor.staff.name,
        "groups": list(actor.staff.groups),
    }


class AwayBody(BaseModel):
    """Your away dates (inclusive) and, optionally, who gets your review notifications."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    starts: date = Field(alias="from", description="first day away")
    ends: date = Field(alias="until", description="last day away")
    delegate: str | None = Field(
        default=None,
        max_length=100,
        description="a colleague who gets your notifications about a request, only where they "
        "may approve it anyway; gives them no power",
    )
    staff: str | None = Field(
        default=None,
        max_length=100,
        description="whose away: only your own (anyone else's is refused)",
    )


@router.get("/away", summary="Your away dates")
def show_away(services: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """`{"away": {"staff", "from", "until", "delegate"} | null}`."""
    away = my_away(services, actor)
    return {"away": None if away is None else away.to_dict()}


@router.put("/away", summary="Mark yourself away", responses=problem_responses(403, 404, 422))
def put_away(services: ServicesDep, actor: ActorDep, body: AwayBody) -> dict[str, Any]:
    """While away you are not notified nor counted as reachable; `delegate` gets your
    notifications about a request only where they may approve it anyway. An audit event.
    Someone else's away (`staff`): 403."""
    away = set_away(services, actor, body.starts, body.ends, body.delegate, staff_id=body.staff)
    return {"away": away.to_dict()}


@router.delete("/away", summary="You are back")
def delete_away(services: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    """`{"cleared": true}` when you were marked away (an audit event), false otherwise."""
    return {"cleared": clear_away(services, actor)}
