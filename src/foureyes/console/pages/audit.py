"""The audit explorer: events filtered as `foureyes audit log` filters them, and one event with
its inclusion proof, checked here and shown step by step. For oversight staff only (the
operations answer 403 to anyone else, as `GET /v1/audit/events` does)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from foureyes.audit.merkle import MerkleVerificationError, leaf_hash, verify_inclusion
from foureyes.console.pages.briefing import names
from foureyes.console.sessions import ConsoleActorDep
from foureyes.console.templating import render
from foureyes.errors import BadInput
from foureyes.model import MAX_SQL_INT
from foureyes.web.deps import ServicesDep
from foureyes.workflow import operations
from foureyes.workflow.audit_paging import audit_page

router = APIRouter()

PAGE = 50


def _time(value: str, name: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInput(
            f"{name}: {value!r} is not a date or time (2026-11-25 or 2026-11-25T14:00)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@router.get("/console/audit")
def explorer(
    request: Request,
    services: ServicesDep,
    actor: ConsoleActorDep,
    account: Annotated[str, Query(max_length=300)] = "",
    staff: Annotated[str, Query(max_length=100)] = "",
    action: Annotated[str, Query(max_length=200)] = "",
    kind: Annotated[str, Query(max_length=50)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    before: Annotated[str | None, Query(max_length=100)] = None,
    after: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The events matching the filters, newest first, a page at a time: `before` (older) and
    `after` (newer) are the cursors the page's links carry (`workflow.audit_paging`)."""
    filters = {
        "account": account.strip(),
        "staff": staff.strip(),
        "action": action.strip(),
        "kind": kind.strip(),
        "since": since.strip(),
        "until": until.strip(),
    }
    shown = audit_page(
        services,
        actor,
        operations.EventFilter(
            account=filters["account"] or None,
            actor=filters["staff"] or None,
            action=filters["action"] or None,
            kind=filters["kind"] or None,
            since=_time(since, "since"),
            until=_time(until, "until"),
            limit=PAGE,
        ),
        older_than=before,
        newer_than=after,
    )
    events = shown.items
    items = [
        {
            "seq": e.seq,
            "at": e.at,
            "kind": e.kind,
            "actor": e.actor,
            "account": e.account_ref,
            "request": e.request_id,
            "event": e.data(),
        }
        for e in events
    ]
    return render(
        request,
        "audit.html",
        {
            "items": items,
            "filters": filters,
            "query": {k: v for k, v in filters.items() if v},
            "older": shown.older,
            "newer": shown.newer,
            "paged": before is not None or after is not None,
            "people": names(services, sorted({e.actor for e in events if e.actor})),
        },
    )


@router.get("/console/audit/events/{seq}")
def event(
    request: Request,
    seq: Annotated[int, Path(ge=0, le=MAX_SQL_INT)],
    services: ServicesDep,
    actor: ConsoleActorDep,
) -> Response:
    """One event, and the proof that the log holds it: the leaf hash recomputed from the
    event's exact bytes, and the path from it to the root of the log as it is now."""
    item, proof = operations.audit_event(services, actor, seq)
    recomputed = leaf_hash(item.body)
    checked: dict[str, Any] = {"leaf": recomputed == proof.leaf_hash, "path": True, "error": ""}
    try:
        verify_inclusion(
            proof.leaf_index, proof.tree_size, recomputed, proof.inclusion_path, proof.root_hash
        )
    except MerkleVerificationError as exc:
        checked["path"] = False
        checked["error"] = str(exc)
    return render(
        request,
        "audit_event.html",
        {
            "item": item,
            "data": item.data(),
            "proof": {
                "leaf_index": proof.leaf_index,
                "tree_size": proof.tree_size,
                "leaf_hash": _b64(proof.leaf_hash),
                "path": [_b64(h) for h in proof.inclusion_path],
                "root_hash": _b64(proof.root_hash),
            },
            "checked": checked,
            "people": names(services, [item.actor] if item.actor else []),
        },
    )
