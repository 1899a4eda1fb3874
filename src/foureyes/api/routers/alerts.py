"""`/v1/alerts`: what the detectors flagged, and acknowledging it.

For staff in `security` or `leads` (others get 403). Acknowledging is an audit event; nobody
acknowledges an alert about themselves.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses
from foureyes.errors import BadInput
from foureyes.model import MAX_SQL_INT
from foureyes.web.deps import ServicesDep
from foureyes.workflow import alerts

router = APIRouter(
    prefix="/v1/alerts", tags=["alerts"], responses=problem_responses(401, 403, 422, 503)
)

AlertId = Annotated[int, Path(ge=1, le=MAX_SQL_INT, description="The alert's id.")]


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > MAX_SQL_INT:
        raise BadInput("the cursor is not one this server gave out")
    return int(cursor)


@router.get("", summary="Alerts, newest first")
def list_alerts(
    services: ServicesDep,
    actor: ActorDep,
    state: Annotated[
        Literal["open", "acknowledged", "all"], Query(description="Open (default) or acknowledged.")
    ] = "open",
    detector: Annotated[
        str | None, Query(max_length=50, description="Only this detector's alerts.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=20, description="`next` of the previous page.")
    ] = None,
) -> dict[str, Any]:
    """`{"items": [...], "next": cursor}`; `next` is null on the last page."""
    items, last = alerts.list_alerts(
        services,
        actor,
        state=state,
        detector=detector,
        before=_decode_cursor(cursor),
        limit=limit,
    )
    return {"items": items, "next": None if last is None else str(last)}


@router.get("/{alert_id}", summary="One alert", responses=problem_responses(404))
def show_alert(alert_id: AlertId, services: ServicesDep, actor: ActorDep) -> dict[str, Any]:
    return alerts.show_alert(services, actor, alert_id)


@router.post(
    "/{alert_id}/ack",
    summary="Acknowledge an alert",
    responses=problem_responses(404, 409),
)
def acknowledge_alert(
    alert_id: AlertId,
    services: ServicesDep,
    actor: ActorDep,
    comment: Annotated[str, Body(embed=True, max_length=2000)] = "",
) -> dict[str, Any]:
    """Mark the alert handled (an `alert.acknowledged` audit event). 409 if it already is; 403
    for an alert about yourself. Answers the alert."""
    return alerts.acknowledge(services, actor, alert_id, comment)
