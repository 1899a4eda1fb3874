"""`/v1/me`: who the bearer token belongs to.

An API client needs the person's staff id for what it computes itself: the device-key step-up
signs `foureyes.auth.stepup.challenge(...)`, which names the reviewer. It tells the caller
only about themselves.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses

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
