"""Idempotency keys of batch submits and batch undos: a retried `POST /v1/batches` (or
`…/undo`) asks for one batch, not two. The same contract as single requests'
(`foureyes.workflow.idempotency`, docs/idempotency.md):

- the key is stored with the batch, unique per requester (the person), with the fingerprint of
  what was asked for; the unique index on (requester_id, idempotency_key) decides between two
  submits racing with one key;
- the same key asking for the same thing is a replay: nothing is recorded, decided or looked
  up again, and the answer is the earlier batch;
- the key asking for anything else is `IdempotencyKeyReused` (422), nothing recorded;
- keys of different people never meet. Batch keys and request keys are separate spaces.

A submit refused outright (a bad manifest, no batch rule, over a quota) recorded nothing, so a
retry with its key is decided again, as a first call would be.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from foureyes.audit.canonical import canonical_json
from foureyes.core.services import Actor, Services, json_safe
from foureyes.errors import IdempotencyKeyReused
from foureyes.store.tables import BatchRow
from foureyes.workflow import idempotency
from foureyes.workflow.batch_submit import BatchSubmission, submit_batch


def fingerprint(given: BatchSubmission) -> str:
    """SHA-256 of the canonical JSON of what a batch submit asks for: the manifest exactly as
    given (list or CSV), the action, params and justification. The client's address is left
    out (a retry may come from elsewhere)."""
    body = {
        "batch": given.action,
        "accounts": json_safe(list(given.accounts)) if given.accounts is not None else None,
        "csv": given.csv,
        "params": json_safe(dict(given.params)),
        "justification": given.justification,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def undo_fingerprint(
    batch_id: str, positions: Sequence[int] | None, justification: str | None
) -> str:
    """SHA-256 of a batch undo as its client asked for it (distinct member names from
    `fingerprint`, so a submit's key never replays an undo)."""
    body = {
        "undo_batch": batch_id,
        "positions": None if positions is None else [int(p) for p in positions],
        "justification": justification,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def earlier(services: Services, actor: Actor, key: str, asked: str) -> str | None:
    """The batch `actor` made with `key` (BadInput for a malformed key), if any;
    IdempotencyKeyReused when it asked for something else than `asked`."""
    idempotency.check_key(key)
    with services.database.read() as session:
        found = session.execute(
            select(BatchRow.id, BatchRow.idempotency_digest).where(
                BatchRow.requester_id == actor.id, BatchRow.idempotency_key == key
            )
        ).one_or_none()
    if found is None:
        return None
    batch_id, digest = found
    if digest != asked:
        raise IdempotencyKeyReused(
            f"this idempotency key was used for another batch ({batch_id}): a new batch needs "
            "a new key",
            batch_id=batch_id,
        )
    return str(batch_id)


def submit_or_replay(
    services: Services, actor: Actor, given: BatchSubmission, *, asked: str | None = None
) -> tuple[str, bool]:
    """`submit_batch` keeping the promise of `given.idempotency_key`: (batch id, replayed).
    `asked` replaces the submission's fingerprint where the client asked in other words (an
    undo: `undo_fingerprint`)."""
    key = given.idempotency_key
    if key is None:
        return submit_batch(services, actor, given), False
    asked = fingerprint(given) if asked is None else asked
    found = earlier(services, actor, key, asked)
    if found is not None:
        return found, True
    try:
        keyed = dataclasses.replace(given, idempotency_digest=asked)
        return submit_batch(services, actor, keyed), False
    except IntegrityError:
        # Another submit with this key committed between the look-up and our insert.
        found = earlier(services, actor, key, asked)
        if found is None:
            raise
        return found, True
