"""Alerts for oversight staff: listing them, showing one and acknowledging one (an audit event).
Raising one is `foureyes.core.alerts`.

Who sees alerts: oversight staff (`Services.oversight_groups`, by default `security` and
`leads`; alerts name colleagues). Nobody acknowledges an alert about themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any, Literal

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from foureyes.core import alert_ledger, alert_log
from foureyes.core.alert_ledger import Seen
from foureyes.core.alerts import about, report_forged, report_missing
from foureyes.core.services import Actor, Services, json_safe
from foureyes.errors import BadInput, Conflict, Forbidden, NotFound
from foureyes.notify.card import ON_CARDS  # the request-describing detectors (one list)
from foureyes.store import page_memo
from foureyes.store.bulk import one_of
from foureyes.store.tables import AlertRow, RequestRow, ReviewRow, StaffRow
from foureyes.text import refuse_unseen
from foureyes.workflow.access import (
    require_oversight,
    reviewable_in_page,
    stored,
    visible_request,
)

log = logging.getLogger(__name__)

MAX_PAGE = 200
State = Literal["open", "acknowledged", "all"]


def alert_view(row: AlertRow, problem: str | None = None) -> dict[str, Any]:
    """An alert as oversight reads it. `problem`: what the audit log does not vouch for in its
    row (`core.alert_log.problems`): then it is shown open, whatever acknowledgement the row
    claims, with `tampered` saying why (the claimed acknowledgement stays visible as claimed)."""
    acknowledged = row.acknowledged_at is not None and problem is None
    return {
        "id": row.id,
        "detector": row.detector,
        "severity": row.severity,
        "staff": row.staff_id,
        "account": row.account_ref,
        "request": row.request_id,
        "summary": row.summary,
        "details": row.details,
        "state": "acknowledged" if acknowledged else "open",
        "created_at": row.created_at.isoformat(),
        "acknowledged_by": row.acknowledged_by if acknowledged else None,
        "acknowledged_at": row.acknowledged_at.isoformat()
        if acknowledged and row.acknowledged_at is not None
        else None,
        "note": row.acknowledgement_note if acknowledged else None,
        "tampered": problem,
        "claimed_acknowledgement": None
        if acknowledged or row.acknowledged_at is None
        else {
            "by": row.acknowledged_by,
            "at": row.acknowledged_at.isoformat(),
            "note": row.acknowledgement_note,
        },
    }


def _checked(
    services: Services,
    session: Session,
    rows: list[AlertRow],
    state: State = "all",
    seen: Seen | None = None,
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The views of `rows`, each checked against the log (one statement), and what it does not
    vouch for (to report once the read is over: `_report`). A row no raise vouches for whose
    alert's raise no row shows (`seen.replaced`) is shown as that event says, open. A row the
    log holds no acknowledgement of that counts (`seen.open_raises`: given before it was raised,
    for another raise of its id, or by the person it is about) is open, flagged. For the open
    list, rows the log shows acknowledged are left out (two rows naming one acknowledgement are
    both open to the query; only the one it is about is acknowledged); for the acknowledged
    list, those it does not."""
    found = alert_log.problems(session, rows)
    if seen is not None:
        for row in rows:
            problem = _not_counted(row, seen)
            if row.id not in found and problem is not None:
                found[row.id] = problem
    replaced = {} if seen is None else seen.replaced
    repointed = {replaced[row.id]: row.id for row in rows if row.id in replaced}
    rebuilt = {view["id"]: view for view in alert_ledger.missing_view(session, repointed)}
    views = [rebuilt.get(row.id) or alert_view(row, found.get(row.id)) for row in rows]
    if state != "all":
        views = [view for view in views if view["state"] == state]
    return views, found


def _not_counted(row: AlertRow, seen: Seen) -> str | None:
    """Why the acknowledgement `row` shows does not count, by the log (None: it shows none,
    the ledger had not read its events yet, or the log holds one that counts)."""
    if row.acknowledged_at is None or row.raised_seq not in seen.open_raises:
        return None
    if row.acknowledged_seq is not None and row.acknowledged_seq >= seen.through:
        return None  # given since the ledger read the log: `alert_log.problems` judges it
    return (
        "the audit log holds no acknowledgement of it that counts (one recorded before it was "
        "raised, for another alert of its id, or by the person it is about)"
    )


def _absent(
    session: Session, seen: Seen, detector: str | None, state: State
) -> list[dict[str, Any]]:
    """The alerts the log holds that no row shows (rebuilt from their events, open), for the
    first page of the open and the full list."""
    if state == "acknowledged" or not seen.absent:
        return []
    views = alert_ledger.missing_view(session, {s: seen.missing[s] for s in seen.absent})
    return [view for view in views if detector is None or view["detector"] == detector]


def _report(services: Services, found: dict[int, str], missing: dict[int, int]) -> None:
    """The `alert_tampered` alert about each row the log does not vouch for and each alert
    whose row is gone (`missing`), in a transaction of its own after the read (deduplicated:
    once an hour per alert). Never raises: the alerts are shown flagged whatever happens here
    (a log that refuses appends must not blind the alerts page); a failure is logged as an
    error."""
    if not found and not missing:
        return
    try:
        with services.database.transaction() as session:
            now = services.clock()
            report_missing(services, session, missing, now=now)
            report_forged(services, session, found, now=now)
    except Exception:  # the view answers, flagged, whatever this is
        log.exception("could not raise the alert about alerts %s", sorted({*found, *missing}))


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
    if detector is not None:
        query = query.where(AlertRow.detector == detector)
    if before is not None:
        query = query.where(AlertRow.id < before)
    with services.database.transaction() as session:
        seen = alert_ledger.ledger_of(services).check(session)
        rows = list(session.scalars(_in_state(session, query, state, seen)))
        more = len(rows) > limit
        rows = rows[:limit]
        views, found = _checked(services, session, rows, state, seen)
        if before is None:  # the alerts without a row come first, on the first page
            views = _absent(session, seen, detector, state) + views
    _report(services, found, dict(seen.missing))
    return views, (rows[-1].id if more else None)


def _in_state(
    session: Session, query: Select[AlertRow], state: State, seen: Seen
) -> Select[AlertRow]:
    """Open: the rows showing no acknowledgement, those the log holds none for (judged by the
    events' bodies, never by columns a DBA can edit: `alert_ledger.open_rows`) and the rows no
    event vouches for; acknowledged: the rows showing one. Each row shown is then checked
    against the log's bodies (`_checked`)."""
    if state == "open":
        return query.where(alert_ledger.open_rows(session, seen))
    if state == "acknowledged":
        return query.where(AlertRow.acknowledged_at.is_not(None))
    return query


def show_alert(services: Services, actor: Actor, alert_id: int) -> dict[str, Any]:
    """One alert. Where the log holds a raise of its id that no row shows (deleted, or the id
    given again), that raise, as its event says (what `acknowledge` acknowledges first)."""
    _may_see(services, actor)
    with services.database.transaction() as session:
        seen = alert_ledger.ledger_of(services).check(session)
        row = session.get(AlertRow, alert_id)
        apart = [seq for seq in seen.missing_of(alert_id) if seq in seen.absent]
        found: dict[int, str] = {}
        if apart:
            (view,) = alert_ledger.missing_view(session, {apart[0]: alert_id})
        elif row is None:
            raise NotFound(f"no alert {alert_id}")
        else:
            (view,), found = _checked(services, session, [row], "all", seen)
    _report(services, found, dict.fromkeys(seen.missing_of(alert_id), alert_id))
    return view


def _took_part(session: Any, request_id: str | None, staff_id: str) -> bool:
    """Whether `staff_id` asked for or reviewed `request_id`, or manages whoever asked: an alert
    on a request is about everyone who took part in it (its approvers too) and about the
    requester's manager (whom rules exclude from approving their reports), whoever it names."""
    if request_id is None:
        return False
    asked = select(RequestRow.id).where(
        RequestRow.id == request_id,
        (RequestRow.requester_id == staff_id)
        | RequestRow.requester_id.in_(select(StaffRow.id).where(StaffRow.manager == staff_id)),
    )
    reviewed = select(ReviewRow.id).where(
        ReviewRow.request_id == request_id, ReviewRow.reviewer_id == staff_id
    )
    return (
        session.scalar(asked.limit(1)) is not None or session.scalar(reviewed.limit(1)) is not None
    )


def acknowledge(
    services: Services, actor: Actor, alert_id: int, comment: str = ""
) -> dict[str, Any]:
    """Mark an alert as seen and handled, with an `alert.acknowledged` audit event (naming the
    `alert.raised` event it acknowledges) in the same transaction.

    What is acknowledged is a raise the log holds: first the oldest raise of the id that no
    row shows (its row deleted: written back as its event says; its id's row showing another
    raise, a repeated id: acknowledged in the log alone), else the row's. Every decision is
    taken from that raise's event body, never from the row's columns (a DBA edits those):
    Forbidden for an alert about you or on a request you took part in; Conflict for a row
    that differs from its event (written or changed outside foureyes: put it back first) and
    for a raise the log already holds an acknowledgement of. A `comment` holding what a
    reader cannot see (`foureyes.text.refuse_unseen`): BadInput, nothing looked at."""
    refuse_unseen(comment, "comment")
    _may_see(services, actor)
    with services.database.transaction() as session:
        seen = alert_ledger.ledger_of(services).check(session)
        row = session.scalar(select(AlertRow).where(AlertRow.id == alert_id).with_for_update())
        lost = seen.missing_of(alert_id)
        apart = bool(lost) and row is not None and alert_id not in seen.replaced
        if lost:
            report_missing(services, session, dict.fromkeys(lost, alert_id), now=services.clock())
        if lost and not apart:
            # Its row is gone or shows no raise of it: written back as its (oldest missing)
            # `alert.raised` event says, so what is acknowledged is what was raised.
            row = alert_ledger.restored(session, alert_id, lost[0], row)
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        raised_seq = lost[0] if lost else row.raised_seq
        body = alert_log.bodies(session, [raised_seq]).get(raised_seq or -1)
        if body is None or body.get("kind") != alert_log.RAISED or body.get("alert") != alert_id:
            raise Conflict(
                f"alert {alert_id}: the audit log holds no alert.raised event for its row (it "
                "was written or changed outside foureyes); it cannot be acknowledged as it is",
                alert_id=alert_id,
            )
        assert raised_seq is not None  # a body was found at it
        _may_acknowledge(session, actor, body)
        now = services.clock()
        if apart:
            return _acknowledge_raise(services, session, actor, alert_id, raised_seq, body, comment)
        differs = alert_log.raised_problem(row, body, shown=True)
        if differs is not None:
            raise Conflict(
                f"alert {alert_id} differs from the audit log ({differs}): it was changed outside "
                "foureyes; it is acknowledged once its row says what its alert.raised event does",
                alert_id=alert_id,
            )
        found = alert_log.problems(session, [row])
        problem = found.get(row.id) or _not_counted(row, seen)
        if problem is not None:
            found[row.id] = problem
        if row.acknowledged_at is not None and problem is None:
            raise Conflict(
                f"alert {alert_id} was acknowledged by {row.acknowledged_by}",
                alert_id=alert_id,
            )
        row.acknowledged_by = actor.id
        row.acknowledged_at = now
        row.acknowledgement_note = comment or None
        # Appended at once (not grouped): the row names its event (`acknowledged_seq`).
        event = services.audit.append(
            session,
            kind=alert_log.ACKNOWLEDGED,
            actor=actor.id,
            account_ref=None,
            request_id=None,
            payload=json_safe(
                {
                    **about(row),
                    "raised_seq": raised_seq,
                    "comment": comment,
                    "identity": actor.identity,
                }
            ),
            at=now,
        )
        row.acknowledged_seq = event.seq
        if row.id in found:
            # What the row claimed before is reported; the acknowledgement now given stands.
            report_forged(services, session, found, now=now)
        return alert_view(row)


def _may_acknowledge(session: Session, actor: Actor, body: Mapping[str, Any]) -> None:
    """Forbidden unless `actor` may acknowledge the alert its `alert.raised` body describes:
    not about them (nor, for `alert_tampered`, the alert it is about), not on a request they
    took part in."""
    if actor.id in alert_log.subjects(body):
        raise Forbidden("an alert about you is acknowledged by someone else")
    if any(_took_part(session, request, actor.id) for request in sorted(alert_log.requests(body))):
        raise Forbidden(
            "you took part in this alert's request (or manage its requester): someone else "
            "acknowledges its alerts"
        )


def _acknowledge_raise(
    services: Services,
    session: Session,
    actor: Actor,
    alert_id: int,
    raised_seq: int,
    body: Mapping[str, Any],
    comment: str,
) -> dict[str, Any]:
    """Acknowledge a raise whose id's row shows another raise (a repeated id): in the log
    alone (its event names the raise), for it can have no row of its own; the view as its
    event says, acknowledged."""
    now = services.clock()
    payload = {
        "alert": alert_id,
        "detector": body.get("detector"),
        "severity": body.get("severity"),
        "staff": body.get("staff"),
        "alert_account": body.get("alert_account"),
        "summary": body.get("summary"),
        "raised_seq": raised_seq,
        "comment": comment,
        "identity": actor.identity,
    }
    services.audit.append(
        session,
        kind=alert_log.ACKNOWLEDGED,
        actor=actor.id,
        account_ref=None,
        request_id=None,
        payload=json_safe(payload),
        at=now,
    )
    view = alert_ledger.raised_view(alert_id, raised_seq, body)
    return {
        **view,
        "state": "acknowledged",
        "acknowledged_by": actor.id,
        "acknowledged_at": now.isoformat(),
        "note": comment or None,
    }


# --- what the console shows -------------------------------------------------------------------

# Most severe first; a severity foureyes does not know sorts last (never hidden).
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}
severity_rank = case(SEVERITY_RANK, value=AlertRow.severity, else_=0)


def alerts_by_severity(
    services: Services,
    actor: Actor,
    *,
    state: State = "open",
    after: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """Alerts, most severe first and newest first within a severity; and the cursor of the
    next page ("rank.id" of the last one shown), or None. For oversight staff only. A cursor
    that cannot be read is BadInput."""
    _may_see(services, actor)
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE}")
    query = select(AlertRow).order_by(severity_rank.desc(), AlertRow.id.desc()).limit(limit + 1)
    if after:
        seen_rank, _, last = after.partition(".")
        if not (seen_rank.isdigit() and last.isdigit() and len(after) <= 40):
            raise BadInput(f"{after!r} is not a page of alerts")
        query = query.where(
            (severity_rank < int(seen_rank))
            | ((severity_rank == int(seen_rank)) & (AlertRow.id < int(last)))
        )
    with services.database.transaction() as session:
        seen = alert_ledger.ledger_of(services).check(session)
        rows = list(session.scalars(_in_state(session, query, state, seen)))
        more = len(rows) > limit
        rows = rows[:limit]
        views, found = _checked(services, session, rows, state, seen)
        if not after:  # the alerts without a row come first, on the first page
            absent = _absent(session, seen, None, state)
            absent.sort(key=lambda v: (SEVERITY_RANK.get(v["severity"], 0), v["id"]), reverse=True)
            views = absent + views
    _report(services, found, dict(seen.missing))
    cursor = f"{SEVERITY_RANK.get(rows[-1].severity, 0)}.{rows[-1].id}" if more else None
    return views, cursor


def open_count(services: Services, actor: Actor) -> int | None:
    """How many alerts are open, for the alerts badge; None for someone who does not oversee
    (they have no alerts page: the badge is not shown, and nothing is counted)."""
    if not services.oversees(actor.staff):
        return None
    with services.database.read() as session:
        seen = alert_ledger.ledger_of(services).check(session)
        found = session.scalar(
            select(func.count()).select_from(AlertRow).where(alert_ledger.open_rows(session, seen))
        )
    # Open as the list shows them: by the events' bodies, and the alerts whose row is gone.
    return int(found or 0) + len(seen.absent)


def prefetch_on_requests(services: Services, actor: Actor, request_ids: Collection[str]) -> None:
    """Inside a page (`page_memo`), the alerts `on_request` would read for these requests, in
    one statement (who may see each is still checked request by request when asked)."""
    if not page_memo.active() or not request_ids:
        return
    oversees = services.oversees(actor.staff)
    with services.database.read() as session:
        found = _on(session, request_ids, oversees)
    for request_id in request_ids:
        page_memo.remember(
            "alerts", (request_id, oversees), {request_id: found.get(request_id, [])}
        )


def _on(
    session: Session, request_ids: Collection[str], oversees: bool
) -> dict[str, list[tuple[AlertRow, str | None]]]:
    """The alerts on each request, most severe first, at most MAX_PAGE each, with what the log
    does not vouch for in each (`core.alert_log.problems`; None: nothing)."""
    query = select(AlertRow).where(one_of(session, AlertRow.request_id, list(request_ids)))
    if not oversees:
        query = query.where(AlertRow.detector.in_(ON_CARDS))
    found: dict[str, list[AlertRow]] = {}
    for row in session.scalars(query.order_by(severity_rank.desc(), AlertRow.id.desc())):
        kept = found.setdefault(str(row.request_id), [])
        if len(kept) < MAX_PAGE:
            kept.append(row)
    problems = alert_log.problems(session, [row for rows in found.values() for row in rows])
    return {
        request: [(row, problems.get(row.id)) for row in rows] for request, rows in found.items()
    }


def on_request(services: Services, actor: Actor, request_id: str) -> list[dict[str, Any]]:
    """The alerts raised on one request, most severe first, for its review card: to anyone who
    may see the request (`access.visible_request`: NotFound, as for an unknown id, otherwise).
    What approvers must weigh (`protected_touched`, `fast_approval`, `off_hours`, ...) without
    the alerts page: each alert's detector, severity, summary, time and whether it is
    acknowledged; its details (which may name colleagues' other activity) stay with oversight.
    Outside oversight, only the request-describing detectors (`ON_CARDS`), and nothing to the
    requester."""
    oversees = services.oversees(actor.staff)
    held = page_memo.peek("alerts", (request_id, oversees))
    if held is not None and reviewable_in_page(request_id, actor) is not None:
        # The page found they may review it (so see it, and did not ask for it): no transaction.
        return _shown(held.get(request_id, []))
    with services.database.read() as session:
        row = visible_request(services, session, stored(session, request_id), request_id, actor)
        if not oversees and row.requester_id == actor.id:
            return []  # what security weighs about a request is not its requester's to read
        rows = page_memo.recall(
            "alerts", (request_id, oversees), lambda: _on(session, [request_id], oversees)
        ).get(request_id, [])
    return _shown(rows)


def _shown(rows: list[tuple[AlertRow, str | None]]) -> list[dict[str, Any]]:
    """What a review card shows of each alert: acknowledged only where the log says so, and
    whether its row differs from the log (`tampered`)."""
    return [
        {
            "id": row.id,
            "detector": row.detector,
            "severity": row.severity,
            "summary": row.summary,
            "created_at": row.created_at.isoformat(),
            "state": "open" if row.acknowledged_at is None or problem else "acknowledged",
            "tampered": problem is not None,
        }
        for row, problem in rows
    ]
