"""Read-only views of requests: one request with its timeline and what it still needs, and
filtered lists. These are what the API, the console and the CLI show.

A person reads only what `foureyes.workflow.access` lets them see (`visible_view`,
`list_requests`, `account_history`); `request_view` is the system's own unchecked view (the
worker, the operator's tools, tests) and is never answered to a person as such. Every view
shows the params an undo restores redacted, and what an action would change or answered with
the values of the platform's private attributes redacted (`foureyes.core.redaction`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, inspect, select
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value

from foureyes.audit.copies import body_at
from foureyes.audit.log import Event, stored_bytes
from foureyes.connectors.base import ExecutionOrder
from foureyes.core import found_events, request_index
from foureyes.core.events import POST_REVIEW
from foureyes.core.redaction import declarations, shown_fields, shown_params
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, NotFound
from foureyes.model import Account, Outcome, RequestState, Staff
from foureyes.policy.catalog import MASK
from foureyes.policy.engine import satisfied
from foureyes.store import page_memo
from foureyes.store.bulk import one_of
from foureyes.store.queries import everyone
from foureyes.store.tables import EventRow, RequestRow, ReviewRow
from foureyes.store.tree import in_tree
from foureyes.workflow import holds, integrity, routing, tickets
from foureyes.workflow.access import (
    may_review_now,
    may_see,
    prefetch,
    reviewable_in_page,
    stored,
    unknown_request,
    visible_clause,
    visible_request,
)
from foureyes.workflow.approvals import engine_reviews, review_rows
from foureyes.workflow.subject import redecide


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def request_view(services: Services, request_id: str) -> dict[str, Any]:
    """The request as the system sees it, unchecked: NotFound if it does not exist. A read
    transaction (`Database.read`: on SQLite no write lock, which a submit's answer fought the
    submits for)."""
    with services.database.read() as session:
        row = session.get(RequestRow, request_id)
        if row is None:
            raise unknown_request(request_id)
        return _view(services, session, row, timeline=True)


def visible_view(services: Services, actor: Actor, request_id: str) -> dict[str, Any]:
    """The request as `actor` may see it; NotFound, exactly as for an unknown id, when they
    may not see it (`access.may_see`). A read transaction, as `request_view`'s."""
    with services.database.read() as session:
        row = visible_request(services, session, stored(session, request_id), request_id, actor)
        return _view(services, session, row, timeline=True, reader=actor)


def reviewed_view(
    services: Services, session: Session, row: RequestRow, reader: Actor
) -> dict[str, Any]:
    """`visible_view` of a request that the caller's transaction has just reviewed, read in
    that transaction once its events are appended, for `reader`: the reviewer, whom the
    review's own checks let see it and whose review now makes them one who took part. What
    `visible_view` reads right after the COMMIT, without a transaction of its own, the row read
    again or the access check made again."""
    return _view(services, session, row, timeline=True, reader=reader)


def _view(
    services: Services,
    session: Session,
    row: RequestRow,
    *,
    timeline: bool,
    reader: Actor | None = None,
) -> dict[str, Any]:
    """The request's view; `reader`: who reads it (None: the system), for what `routing`
    may name of the other requests on its account."""
    factors = _factors_recorded(row)
    reviews = review_rows(session, row.id)
    approved = None if row.state == RequestState.PENDING.value else _approved_by(session, row.id)
    if approved is not None and len(approved) == len(factors):
        # Past its approval the progress is what approved it, as its `request.approved` event
        # recorded it: not re-counted now (an approver who left since still approved it then).
        factors = [
            dict(f, approved_by=people, missing=max(0, int(f["approvals"]) - len(people)))
            for f, people in zip(factors, approved, strict=True)
        ]
    elif row.state == RequestState.PENDING.value:
        now = services.clock()
        current = redecide(services, session, row, now)
        if current.outcome == Outcome.PENDING:
            candidates = everyone(session)
            status = satisfied(
                current,
                engine_reviews(services, session, reviews, step_up=current.options.step_up),
                candidates=candidates,
                today=now.date(),
                submitted=holds.escalation_start(services, session, row),
                now=now,
            )
            factors = [
                {**factor.to_dict(), **progress.to_dict()}
                for factor, progress in zip(current.factors, status.factors, strict=True)
            ]
    view = _assembled(
        services,
        row,
        factors,
        _shown_params(services, session, row),
        [*reviews, *review_rows(session, row.id, POST_REVIEW)],
    )
    checked = tickets.latest(session, row.id)
    if checked:
        # The tickets the rules required, as their system answered at the latest check.
        view["tickets"] = [dict(t, checked_at=_iso(t["checked_at"])) for t in checked]
    routed = routing.view(services, session, row, reader)
    if routed is not None:
        view["routing"] = routed  # reachable? held? the other pending requests on the account
    if timeline:
        view["timeline"] = _timeline(session, row.id)
    if reader is not None and row.state == RequestState.REVERTED.value:
        _unseen_undo_hidden(services, session, view, reader)
    return view


def _shown_params(services: Services, session: Session, row: RequestRow) -> dict[str, Any]:
    """`shown_params`, but an undo's params as they are when the undo params of the request
    it reverts are not the ones the log recorded (written in afterwards by the database role,
    so that a value typed in the clear turned `***`: attack G2, session 14). What runs is then
    shown; the undo is held at execution anyway (`undo_once.held`)."""
    shown = shown_params(services, session, row)
    if row.reverts_id is None or shown == row.params:
        return shown
    original = session.get(RequestRow, row.reverts_id)
    if original is None or integrity.trail(session, original.id).undo_params_problem(original):
        return dict(row.params)
    return shown


def _unseen_undo_hidden(
    services: Services, session: Session, view: dict[str, Any], reader: Actor
) -> None:
    """A reverted request's view names the undo that reverted it (its `reason`, its
    `request.reverted` event): to a reader who may not see that undo (`may_see`) it says
    "another request" instead, as a refused undo's 409 does (attack F3, session 14)."""
    reverted = [e for e in view.get("timeline") or () if e["kind"] == "request.reverted"]
    texts = [view.get("reason"), *(e["event"].get("reason") for e in reverted)]
    named = {e["event"].get("undo") for e in reverted}
    named.update(_REQUEST_ID.findall(" ".join(t for t in texts if isinstance(t, str))))
    for undo_id in (n for n in named if isinstance(n, str)):
        undo = session.get(RequestRow, undo_id)
        if undo is not None and may_see(services, session, undo, reader):
            continue
        if isinstance(view.get("reason"), str):
            view["reason"] = _unnamed(view["reason"], undo_id)
        for entry in reverted:
            event = dict(entry["event"])
            if event.get("undo") == undo_id:
                event["undo"] = None
            if isinstance(event.get("reason"), str):
                event["reason"] = _unnamed(event["reason"], undo_id)
            entry["event"] = event


def _unnamed(text: str, request_id: str) -> str:
    return text.replace(f"request {request_id}", _ANOTHER).replace(request_id, _ANOTHER)


_REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ANOTHER = "another request"


def recorded_view(
    services: Services, row: RequestRow, events: Sequence[Event]
) -> dict[str, Any] | None:
    """`request_view` of a request that the transaction which has just committed recorded and
    carried out (a submit allowed at once), built without reading from what it wrote: `row` as
    it committed and `events`, the events it appended (those of the request, in order, are its
    whole timeline). Such a request has no reviews, no approval event and no ticket check, and
    is not pending (no routing). None where the view must read: a pending request, an undo
    (its params are shown as the request it reverts restores them: `shown_params`)."""
    if row.state == RequestState.PENDING.value or row.reverts_id is not None:
        return None
    view = _assembled(services, row, _factors_recorded(row), dict(row.params), [])
    view["timeline"] = [
        _entry(event.seq, event.at, event.kind, event.actor, event.body, row.id)
        for event in events
        if event.request_id == row.id
    ]
    return view


def _factors_recorded(row: RequestRow) -> list[dict[str, Any]]:
    """The decision's factors as recorded, none of their approvals counted yet."""
    return [
        dict(f, approved_by=[], missing=f["approvals"]) for f in row.decision.get("factors", [])
    ]


def _assembled(
    services: Services,
    row: RequestRow,
    factors: list[dict[str, Any]],
    params: dict[str, Any],
    reviews: Sequence[ReviewRow],
) -> dict[str, Any]:
    """The view's fields common to every request: the row's, its decision with `factors`
    (their progress), its `params` as shown and its `reviews`."""
    decision = dict(row.decision)
    decision["factors"] = factors
    return {
        "id": row.id,
        "state": row.state,
        "digest": row.digest,
        "requester": row.requester_id,
        "requester_identity": row.requester_identity,
        "action": row.action,
        "account": row.account_ref,
        "params": params,
        "justification": row.justification,
        "break_glass": row.break_glass,
        "decision": decision,
        "reviews": [
            {
                "reviewer": r.reviewer_id,
                "identity": r.identity,
                "kind": r.kind,
                "decision": r.decision,
                "comment": r.comment,
                "step_up": r.step_up is not None,
                "at": _iso(r.created_at),
            }
            for r in reviews
        ],
        "reverts": row.reverts_id,
        "not_before": _iso(row.not_before),
        "expires_at": _iso(row.expires_at),
        "post_review_due": _iso(row.post_review_due),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "finished_at": _iso(row.finished_at),
        "reason": row.reason,
        "result": None
        if row.result is None
        else shown_fields(services, row.account_ref.partition(":")[0], row.result),
    }


def _approved_by(session: Session, request_id: str) -> list[list[str]] | None:
    """Who approved each factor, as the request's latest `request.approved` event says (the
    engine's assignment then); None if it was never approved or the event says otherwise."""
    body = session.scalar(
        select(EventRow.body)
        .where(
            EventRow.request_id == request_id,
            EventRow.kind == "request.approved",
            in_tree(),
        )
        .order_by(EventRow.seq.desc())
        .limit(1)
    )
    if body is None:
        return None
    recorded = json.loads(body).get("approved_by")
    if not isinstance(recorded, list) or not all(_names(people) for people in recorded):
        return None
    return [list(people) for people in recorded]


def _names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


def _timeline(session: Session, request_id: str) -> list[dict[str, Any]]:
    """The request's events found by the `request_id` column, and those this process's index
    of the bodies adds (`core.request_index`), marked: their column was changed (led7-F4)."""
    events = list(
        session.scalars(
            select(EventRow)
            .where(EventRow.request_id == request_id, in_tree())
            .order_by(EventRow.seq)
        )
    )
    entries = {e.seq: _entry(e.seq, e.at, e.kind, e.actor, e.body, request_id) for e in events}
    found = {e.seq: stored_bytes(e.body) for e in events}
    since = found_events.submission_of(session, request_id, found)
    if since is not None:
        for seq, raw in request_index.hidden(session, request_id, since, found).bodies.items():
            entry = _hidden_entry(seq, raw)
            if entry is not None:
                entries[seq] = entry
    return [entries[seq] for seq in sorted(entries)]


def _hidden_entry(seq: int, raw: bytes) -> dict[str, Any] | None:
    """A timeline entry for an event found by its body alone (None if it is not the event at
    `seq`, which `audit verify` names)."""
    body = body_at(seq, raw)
    if body is None:
        return None
    stamped = _body_time(body.get("at"))
    return {
        "seq": seq,
        "at": _iso(stamped) if stamped is not None else body.get("at"),
        "kind": body.get("kind"),
        "actor": body.get("actor"),
        "event": body,
        "altered": "not found under this request in the store (its request or kind column "
        "was changed); its event's body names this request",
    }


def _entry(
    seq: int, at: datetime, kind: str, actor: str | None, body: bytes, request_id: str
) -> dict[str, Any]:
    """One event of request `request_id`'s timeline: its time, kind and actor as its body says
    (the columns are copies a DBA can edit unnoticed), else as the columns say, marked; an
    event whose body names another request (its `request_id` column re-pointed: attack
    led7-F6) is marked too."""
    try:
        event = json.loads(body)
    except ValueError:  # not JSON: edited in the store (`audit verify` names it); marked below
        event = None
    said = event if isinstance(event, dict) else {}
    stamped = _body_time(said.get("at"))
    entry = {
        "seq": seq,
        "at": _iso(stamped or at),
        "kind": said.get("kind", kind),
        "actor": said.get("actor", actor),
        "event": event,
    }
    copies = (said.get("kind"), said.get("actor"), said.get("seq"), said.get("request"))
    if copies != (kind, actor, seq, request_id) or stamped != at.astimezone(UTC):
        entry["altered"] = (
            "its indexed copy (kind, actor, seq, request, time) differs from its event's body"
        )
    return entry


def _body_time(stamp: object) -> datetime | None:
    """An event body's `at` (RFC 3339 UTC with microseconds, as the log writes it), or None."""
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


# Rows a list reads (and checks, and reads for in bulk) at a time: a page's worth and more,
# so that an inbox of requests its reader may not approve is one chunk, not ten.
_CHUNK = 200


@dataclass(frozen=True)
class ListFilter:
    state: str | None = None
    mine: bool = False
    reviewable: bool = False
    account: str | None = None
    limit: int = 50
    before: str | None = None  # cursor: created_at|id of the last item seen
    action: str | None = None
    requester: str | None = None
    tier: str | None = None  # the tier the decision found when the request was made


def page_position(before: str) -> tuple[datetime, str]:
    """The (created_at, id) a list's cursor `created_at|id` names; BadInput for anything this
    server did not give out (every surface's cursor is read here: a malformed one was a 500)."""
    stamp, sep, last_id = before.partition("|")
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise BadInput("the cursor is not one this server gave out") from None
    if not sep or not last_id or when.tzinfo is None:
        raise BadInput("the cursor is not one this server gave out")
    return when, last_id


def list_requests(
    services: Services, actor: Actor, filters: ListFilter
) -> tuple[list[dict[str, Any]], str | None]:
    """The requests `actor` may see (`access.may_see`), newest first, and the cursor of the
    next page (None on the last); `reviewable` keeps pending ones the actor may approve.

    What SQL can decide is filtered there (the filters; for staff who do not oversee, requests
    they took part in or might act on); whether someone may act on a request is a policy
    question, asked here row by row. A page holds up to `limit` items; `more` is known by
    finding one more item that passes, so the cursor never points past a hidden row that the
    next page would show."""
    limit = max(1, min(filters.limit, 200))
    with page_memo.page(), services.database.transaction() as session:
        query = select(RequestRow).order_by(RequestRow.created_at.desc(), RequestRow.id.desc())
        visible = visible_clause(services, actor)
        if visible is not None:
            query = query.where(visible)
        if filters.state:
            query = query.where(RequestRow.state == filters.state)
        if filters.mine:
            query = query.where(RequestRow.requester_id == actor.id)
        if filters.account:
            query = query.where(RequestRow.account_ref == filters.account)
        if filters.action:
            query = query.where(RequestRow.action == filters.action)
        if filters.requester:
            query = query.where(RequestRow.requester_id == filters.requester)
        if filters.reviewable:
            query = query.where(
                RequestRow.state == RequestState.PENDING.value,
                RequestRow.requester_id != actor.id,
            )
        if filters.before:
            when, last_id = page_position(filters.before)
            query = query.where(
                (RequestRow.created_at < when)
                | ((RequestRow.created_at == when) & (RequestRow.id < last_id))
            )
        return _page(services, session, actor, filters, query, limit, visible is not None)


def _page(
    services: Services,
    session: Session,
    actor: Actor,
    filters: ListFilter,
    query: Select[RequestRow],
    limit: int,
    filtered: bool,
) -> tuple[list[dict[str, Any]], str | None]:
    items: list[dict[str, Any]] = []
    last: RequestRow | None = None
    more = False
    if not filters.tier:
        # The stored decision (the largest column) is read only for the rows shown
        # (`_shown`): deciding who may see or review a request never reads it.
        query = query.options(defer(RequestRow.decision))
    # Read in chunks until `limit` items pass: `reviewable` and visibility filter in Python
    # (eligibility is a policy question), so a chunk may yield fewer than it reads. What the
    # checks read is read for the whole chunk at once (`access.prefetch`), what the views read
    # for the rows that passed (`_shown`). The first chunk is a page and one more (all a
    # reader who may act on the first requests needs), the next ones `_CHUNK` each.
    found = session.scalars(query.execution_options(yield_per=_CHUNK))
    size = limit + 1
    while chunk := found.fetchmany(size):
        size = _CHUNK
        for row in chunk:
            page_memo.remember("request-row", row.id, row)
        prefetch(services, session, chunk, actor)
        passed: list[RequestRow] = []
        for row in chunk:
            if filters.tier and (row.decision or {}).get("tier") != filters.tier:
                continue
            if filters.reviewable:
                if not may_review_now(services, session, row, actor):
                    continue
            elif filtered and not may_see(services, session, row, actor):
                continue
            if len(items) + len(passed) == limit:
                more = True
                break
            passed.append(row)
        _shown(session, passed)
        items.extend(_view(services, session, row, timeline=False, reader=actor) for row in passed)
        last = passed[-1] if passed else last
        if more:
            break
    cursor = f"{last.created_at.isoformat()}|{last.id}" if more and last is not None else None
    return items, cursor


def _shown(session: Session, rows: Sequence[RequestRow]) -> None:
    """What the views of `rows` read besides what deciding them read, in one statement per
    kind: their stored decisions where the list left them unread (written once, at submit:
    read later, they are what the row held) and their latest tickets (`tickets.latest`)."""
    if not rows:
        return
    unread = [row for row in rows if "decision" in inspect(row).unloaded]
    if unread:
        ids = [row.id for row in unread]
        found = session.execute(
            select(RequestRow.id, RequestRow.decision).where(one_of(session, RequestRow.id, ids))
        )
        decisions: dict[str, dict[str, Any]] = dict(found.all())
        for row in unread:
            set_committed_value(row, "decision", decisions[row.id])
    tickets.prefetch_latest(session, [row.id for row in rows])


# --- what the console shows besides requests -----------------------------------------------


def can_review(services: Services, actor: Actor, request_id: str) -> bool:
    """Whether `actor` may still approve this request now (pending, not theirs, not yet
    reviewed by them, and their approval would count for some factor). NotFound for a
    request they may not see."""
    if reviewable_in_page(request_id, actor) is not None:
        return True
    with services.database.read() as session:
        row = visible_request(services, session, stored(session, request_id), request_id, actor)
        return may_review_now(services, session, row, actor)


def person(services: Services, staff_id: str) -> Staff:
    """One member of staff as the directory has them (NotFound if unknown); inside a page
    (`page_memo`) without a transaction once the page has read them."""
    if page_memo.known("staff", staff_id):
        return page_memo.recall("staff", staff_id, lambda: _person(services, staff_id))
    return _person(services, staff_id)


def _person(services: Services, staff_id: str) -> Staff:
    with services.database.read() as session:
        return services.staff(session, staff_id)


def preview(
    services: Services, action: str, account_ref: str, params: dict[str, Any]
) -> dict[str, list[Any]]:
    """What `action` would change on the account now, as {attribute: [before, after]}, the
    values of private attributes redacted (`redaction.shown_fields`, whatever the connector
    did); empty when the connector cannot tell."""
    try:
        platform, account_id = Account.split_ref(account_ref)
    except ValueError:
        return {}
    connector = services.connector(platform)
    order = ExecutionOrder(action, account_id, dict(params), idempotency_key="")
    change = shown_fields(services, platform, connector.preview(order))
    shown = {str(k): list(v) for k, v in change.items()}
    return _without_private_oracle(services, platform, params, shown)


def _without_private_oracle(
    services: Services, platform: str, params: Mapping[str, Any], shown: dict[str, list[Any]]
) -> dict[str, list[Any]]:
    """A preview whose shape does not depend on a private value: whether a row for a private
    attribute appears (a connector leaves out what would not change) would tell anyone who may
    ask for a preview whether their guess of it is right (`change_email` to the address the
    account already has). So private rows go, and every param that names a private attribute
    shows one row, the same whatever the account holds: [hidden, the param redacted]."""
    declared_here = declarations(services, platform)
    out = {
        name: row
        for name, row in shown.items()
        if not (declared_here.get(name) is not None and declared_here[name].private)
    }
    for name, value in params.items():
        attribute = declared_here.get(name)
        if attribute is not None and attribute.private:
            out[name] = [MASK, attribute.redacted(value)]
    return out


def visible_preview(services: Services, actor: Actor, request_id: str) -> dict[str, list[Any]]:
    """`preview` of the request as stored (its views may redact params it restores: see
    `redaction.shown_params`; `preview` redacts the values of private attributes).
    NotFound, as for an unknown id, for a request `actor` may not see."""
    row = reviewable_in_page(request_id, actor)
    if row is not None:
        action, account_ref, params = row.action, row.account_ref, dict(row.params)
        return preview(services, action, account_ref, params)
    with services.database.read() as session:
        row = visible_request(services, session, stored(session, request_id), request_id, actor)
        action, account_ref, params = row.action, row.account_ref, dict(row.params)
    return preview(services, action, account_ref, params)


def policy_source(services: Services) -> tuple[int, str, str]:
    """The policy in force as the audit log vouches for it: (version, digest, its YAML text),
    read and compared afresh (`Services.policy_text_in_force`), never the stored row as it is:
    a text changed outside foureyes is RecordAltered (and alerted), not shown as the policy
    while the server decides under another. The digest is the vouched text's, not the row's."""
    with services.database.transaction() as session:
        found = services.policy_text_in_force(session)
        if found is None:
            raise NotFound("no policy is loaded")
        version, text = found
        return version, services.policy_version(session, version).digest, text


def account_history(
    services: Services, actor: Actor, account_ref: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest `limit` audit events about one account, newest first, as `actor` may read
    them. Oversight staff read each event whole. Everyone else reads only *that* something
    happened — seq, time, kind and the action it was about (`account.deactivate`) — with
    `actor` None and `redacted` True: no who, no justification, comment, parameters or
    decision. Support staff need to know that an account was recently acted on (and escalate
    to oversight staff); they need not browse who did what and why."""
    whole = services.oversees(actor.staff)
    with services.database.transaction() as session:
        rows = session.scalars(
            select(EventRow)
            .where(EventRow.account_ref == account_ref, in_tree())
            .order_by(EventRow.seq.desc())
            .limit(max(1, min(limit, 500)))
        )
        return [_history_item(row, whole=whole) for row in rows]


def _history_item(row: EventRow, *, whole: bool) -> dict[str, Any]:
    body = json.loads(row.body)
    if not whole:
        action = body.get("action")
        return {
            "seq": row.seq,
            "at": _iso(row.at),
            "kind": row.kind,
            "actor": None,
            "event": {"action": action} if isinstance(action, str) else {},
            "redacted": True,
        }
    return {
        "seq": row.seq,
        "at": _iso(row.at),
        "kind": row.kind,
        "actor": row.actor,
        "event": body,
        "redacted": False,
    }
