"""Alerts for oversight staff: listing them, showing one and acknowledging one (an audit event).
Raising one is `foureyes.core.alerts`.

Who sees alerts: oversight staff (`Services.oversight_groups`, by default `security` and
`leads`; alerts name colleagues). Nobody acknowledges an alert about themselves.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select

from foureyes.core.alerts import about
from foureyes.core.events import record
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, Conflict, Forbidden, NotFound
from foureyes.store.tables import AlertRow
from foureyes.workflow.access import require_oversight

MAX_PAGE = 200
State = Literal["open", "acknowledged", "all"]


def alert_view(row: AlertRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "detector": row.detector,
        "severity": row.severity,
        "staff": row.staff_id,
        "account": row.account_ref,
        "request": row.request_id,
        "summary": row.summary,
        "details": row.details,
        "state": "open" if row.acknowledged_at is None else "acknowledged",
        "created_at": row.created_at.isoformat(),
        "acknowledged_by": row.acknowledged_by,
        "acknowledged_at": None if row.acknowledged_at is None else row.acknowledged_at.isoformat(),
    }


def _may_see(services: Services, actor: Actor) -> None:
    require_oversight(services, actor, "alerts")


def list_alerts(
    services: Services,
    actor: Actor,
    *,
    state: State = "open",
    detector: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int | None]:
    """Alerts, newest first; and the id to pass as `before` for the next page (or None)."""
    _may_see(services, actor)
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE}")
    query = select(AlertRow).order_by(AlertRow.id.desc()).limit(limit + 1)
    if state == "open":
        query = query.where(AlertRow.acknowledged_at.is_(None))
    elif state == "acknowledged":
        query = query.where(AlertRow.acknowledged_at.is_not(None))
    if detector is not None:
        query = query.where(AlertRow.detector == detector)
    if before is not None:
        query = query.where(AlertRow.id < before)
    with services.database.transaction() as session:
        rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return [alert_view(r) for r in rows], (rows[-1].id if more else None)


def show_alert(services: Services, actor: Actor, alert_id: int) -> dict[str, Any]:
    _may_see(services, actor)
    with services.database.transaction() as session:
        row = session.get(AlertRow, alert_id)
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        return alert_view(row)


def acknowledge(
    services: Services, actor: Actor, alert_id: int, comment: str = ""
) -> dict[str, Any]:
    """Mark an alert as seen and handled, with an `alert.acknowledged` audit event in the same
    transaction. Conflict if it already is; Forbidden for an alert about yourself."""
    _may_see(services, actor)
    with services.database.transaction() as session:
        row = session.scalar(select(AlertRow).where(AlertRow.id == alert_id).with_for_update())
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        if row.staff_id == actor.id:
            raise Forbidden("an alert about you is acknowledged by someone else")
        if row.acknowledged_at is not None:
            raise Conflict(
                f"alert {alert_id} was acknowledged by {row.acknowledged_by}",
                alert_id=alert_id,
            )
        now = services.clock()
        row.acknowledged_by = actor.id
        row.acknowledged_at = now
        record(
            services,
            session,
            kind="alert.acknowledged",
            actor=actor.id,
            row=None,
            payload={**about(row), "comment": comment, "identity": actor.identity},
            now=now,
        )
        return alert_view(row)
