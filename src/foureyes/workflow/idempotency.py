"""Idempotency keys of submits: a retried `POST /v1/requests` (or `…/undo`) asks for one
request, not two.

A client whose submit got no usable answer (a dropped connection, a timeout, or a 503
`outcome-unknown`: the COMMIT's answer was lost, or the request was recorded and a later step
failed) cannot tell what was recorded. If it sent an idempotency key (the `Idempotency-Key`
header, after the IETF httpapi draft), it retries with the same key:

- The key is stored with the request, unique per requester (person, not login identity), with
  the `fingerprint` of what was asked for. The database's unique index on
  (requester_id, idempotency_key) is what decides between two submits racing with one key.
- A submit with a key its requester used before, asking for the same thing, is a replay: it
  records nothing and answers the earlier request (`foureyes.workflow.submit.submit_or_replay`).
- Asking for something else under a used key is `IdempotencyKeyReused`, and records nothing.
- Keys of different people never meet: the same string from someone else is another key.

Keys do not expire: a key is as permanent as the request it made. An undo's key stands for
the undo as its client asked for it (`undo_fingerprint`: which request, the justification, the
params given), not for the reverse request foureyes made of it. docs/idempotency.md is the
contract as clients see it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foureyes.audit.canonical import canonical_json
from foureyes.core.services import json_safe
from foureyes.errors import BadInput
from foureyes.store.tables import RequestRow

MAX_KEY = 200
# Printable ASCII (space to tilde), 1 to MAX_KEY characters: what an HTTP header carries
# unchanged. The value is opaque: the draft's quoted form ("...") is a key with its quotes.
KEY_PATTERN = rf"^[\x20-\x7e]{{1,{MAX_KEY}}}$"
_KEY = re.compile(KEY_PATTERN)


def check_key(key: str) -> None:
    """BadInput unless `key` is 1 to MAX_KEY printable ASCII characters."""
    if not _KEY.fullmatch(key):
        raise BadInput(f"the idempotency key must be 1 to {MAX_KEY} printable ASCII characters")


def fingerprint(
    *,
    action: str,
    account: str,
    params: Mapping[str, Any],
    justification: str | None,
    break_glass: bool,
    reverts: str | None,
) -> str:
    """SHA-256 of the canonical JSON (RFC 8785) of what a submission asks for: two submits
    with one key are the same request exactly when these are equal. The client's address is
    left out (a retry may come from elsewhere); `reverts` is in (an undo is another request),
    though the API's submits never set it."""
    body = {
        "action": action,
        "account": account,
        "params": json_safe(dict(params)),
        "justification": justification,
        "break_glass": break_glass,
        "reverts": reverts,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def undo_fingerprint(
    *, reverts: str, justification: str | None, params: Mapping[str, Any] | None
) -> str:
    """SHA-256 of the canonical JSON of an undo as its client asked for it: the request to
    undo, the justification and the params given (none: foureyes fills them in). Distinct
    from every `fingerprint` (its own member names), so a submit's key never replays an undo."""
    body = {
        "undo": reverts,
        "justification": justification,
        "params": json_safe(dict(params or {})),
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class Earlier:
    """The request an idempotency key already made: what a replay answers from."""

    request_id: str
    fingerprint: str | None
    decision: Mapping[str, Any]  # the decision recorded at submit (never changed after)

    @property
    def denied_by_policy(self) -> bool:
        """Whether its submit was answered as a policy denial. (State `denied` is not enough:
        a request held for review and then vetoed is `denied` too, and was answered 201.)"""
        return self.decision.get("outcome") == "denied"


def find(session: Session, requester_id: str, key: str) -> Earlier | None:
    """The request `requester_id` made with `key`, if any (one, by the unique index)."""
    found = session.execute(
        select(RequestRow.id, RequestRow.idempotency_digest, RequestRow.decision).where(
            RequestRow.requester_id == requester_id, RequestRow.idempotency_key == key
        )
    ).one_or_none()
    if found is None:
        return None
    request_id, digest, decision = found
    return Earlier(request_id=request_id, fingerprint=digest, decision=decision or {})
