"""`/v1/audit`: the tamper-evident log — a signed checkpoint, the events, and RFC 9162 proofs.

Hashes are base64 (standard, padded), as in checkpoints. An event's `body` is its exact
canonical JSON (RFC 8785): a verifier hashes ``0x00 || body`` (UTF-8) to get `leaf_hash`, checks
an inclusion proof against a checkpoint's root, and checks checkpoints against each other with
consistency proofs — trusting nothing but the log's public key.

Who reads what: the checkpoint and the proofs (hashes only) are open to all staff, so that
anyone can verify the log; the events themselves (who did what to whom, and why) are for
oversight staff (settings' `[access] oversight_groups`; 403 for anyone else).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from foureyes.api.auth import ActorDep
from foureyes.api.schemas import problem_responses
from foureyes.audit.checkpoint import Signer, signer_from_file
from foureyes.audit.log import Event
from foureyes.errors import BadInput, FoureyesError, Unavailable
from foureyes.model import MAX_SQL_INT
from foureyes.web.deps import ServicesDep
from foureyes.workflow import operations

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problem_responses(401, 422, 503))

NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _signer(request: Request) -> Signer:
    """The log's signing key, read once from the settings' key file."""
    state = request.app.state
    signer: Signer | None = getattr(state, "signer", None)
    if signer is None:
        try:
            signer = signer_from_file(state.settings.signing_key_file)
        except FoureyesError as exc:
            raise Unavailable(f"checkpoints cannot be signed: {exc.message}") from exc
        state.signer = signer
    return signer


@router.get(
    "/checkpoint",
    summary="A signed checkpoint of the log as it is now",
    responses={200: {"content": {"application/json": {}, NOTE_MEDIA_TYPE: {}}}},
)
def checkpoint(request: Request, services: ServicesDep, actor: ActorDep) -> Any:
    """Signs (or finds) the checkpoint of the log's current size and answers it: as JSON
    (`origin`, `size`, `root_hash`, `note`), or as the bare C2SP signed note when the client
    asks for `text/plain`. The checkpoint is stored and copied to the witness directory
    (`witness_dir`), after checking it is consistent with the witness's latest."""
    del actor
    settings = request.app.state.settings
    signed = services.audit.checkpoint(services.database, _signer(request), settings.witness_dir)
    if "text/plain" in request.headers.get("accept", ""):
        return Response(content=signed.note, media_type=NOTE_MEDIA_TYPE)
    point = signed.checkpoint
    return {
        "origin": point.origin,
        "size": point.size,
        "root_hash": _b64(point.root_hash),
        "note": signed.note.decode(),
    }


def _event(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "actor": event.actor,
        "account": event.account_ref,
        "request": event.request_id,
        "body": event.text(),
        "leaf_hash": _b64(event.leaf_hash),
        "event": event.data(),
    }


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@router.get(
    "/events", summary="Events, oldest first (oversight staff)", responses=problem_responses(403)
)
def events(
    services: ServicesDep,
    actor: ActorDep,
    account: Annotated[
        str | None, Query(max_length=300, description="e.g. chirp:president")
    ] = None,
    by: Annotated[
        str | None, Query(alias="actor", max_length=100, description="Events by this person.")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=200, description="Events of requests for this action.")
    ] = None,
    kind: Annotated[str | None, Query(max_length=50, description="e.g. review.recorded")] = None,
    request_id: Annotated[
        str | None, Query(alias="request", max_length=100, description="One request's events.")
    ] = None,
    since: Annotated[datetime | None, Query(description="From this time (inclusive).")] = None,
    until: Annotated[datetime | None, Query(description="Before this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=20, description="`next` of the last page.")
    ] = None,
) -> dict[str, Any]:
    """Events matching every filter given, in log order: `{"items": [...], "next": cursor}`.
    Each item has the event's fields, its exact canonical `body`, its `leaf_hash` and the body
    parsed (`event`). Times without a zone are UTC. For oversight staff only (403 otherwise)."""
    after: int | None = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > MAX_SQL_INT:
            raise BadInput("the cursor is not one this server gave out")
        after = int(cursor)
    found = operations.audit_events(
        services,
        actor,
        operations.EventFilter(
            account=account,
            actor=by,
            action=action,
            kind=kind,
            request=request_id,
            since=_aware(since),
            until=_aware(until),
            after_seq=after,
            limit=limit,
        ),
    )
    following = str(found[-1].seq) if len(found) == limit else None
    return {"items": [_event(e) for e in found], "next": following}


@router.get(
    "/proofs/inclusion",
    summary="RFC 9162 inclusion proof of one event",
    responses=problem_responses(404),
)
def inclusion(
    services: ServicesDep,
    actor: ActorDep,
    seq: Annotated[
        int, Query(ge=0, le=MAX_SQL_INT, description="The event's seq (its leaf index).")
    ],
    size: Annotated[
        int | None,
        Query(ge=1, le=MAX_SQL_INT, description="The tree size (a checkpoint's); default now."),
    ] = None,
) -> dict[str, Any]:
    """`leaf_index`, `tree_size`, `leaf_hash`, `inclusion_path` and `root_hash`."""
    del actor
    with services.database.transaction() as session:
        proof = services.audit.inclusion(session, seq, size)
    return dict(proof.to_json())


@router.get(
    "/proofs/consistency",
    summary="RFC 9162 consistency proof between two tree sizes",
    responses=problem_responses(404),
)
def consistency(
    services: ServicesDep,
    actor: ActorDep,
    first: Annotated[int, Query(ge=0, le=MAX_SQL_INT, description="The older tree size.")],
    second: Annotated[
        int | None, Query(ge=0, le=MAX_SQL_INT, description="The newer tree size; default now.")
    ] = None,
) -> dict[str, Any]:
    """`tree_size_1`, `tree_size_2`, `consistency_path`, `root_hash_1` and `root_hash_2`."""
    del actor
    with services.database.transaction() as session:
        proof = services.audit.consistency(session, first, second)
    return dict(proof.to_json())
