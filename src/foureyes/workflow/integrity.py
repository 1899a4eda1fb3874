"""Acting only on what was submitted and approved: a stored request checked against the log.

The `requests` and `reviews` rows are the store's working copy; a request's `request.submitted`
audit event (a Merkle leaf, which `audit verify` and the copies outside the database check) says
what was asked for, and each review's event what was approved. Before anything acts on a stored
request (a review or post-review, an execution by anyone or the worker, a reconciliation, an
undo of it), `Trail.problem` recomputes the digest from the row and compares the row with the
submitted event, and every counted review (row and event) with that digest; the review rows
with the review events both ways (a deleted veto is missing, a forged approval unlogged); and
the row's state, and when a scheduled or retried request may run (`not_before`), with what its
state-change events say. A difference means the store was changed behind foureyes' back (the
triggers of migration 0007 refuse it, but a DBA can drop them): `refuse` cancels the request
(fails it if it was executing), raises a high alert (an audit event, in the caller's
transaction), and nothing is carried out.

Every state change is written by `records.move` with its event; `_MOVES` names their kinds. A
kind missing there fails closed (the log's state lags, so the request is refused), never open.

Cost: one indexed query (`audit_events.request_id`) for the request's few submitted, review and
state-change events, and two SHA-256 of small canonical JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.events import (
    POST_REVIEW,
    REVIEW,
    TRANSITIONS,
    legacy_request_digest,
    move,
    params_digest,
    request_digest,
)
from foureyes.core.services import Services
from foureyes.model import RequestState
from foureyes.store.tables import EventRow, RequestRow, ReviewRow

DETECTOR = "request_tampered"
SUBMITTED = "request.submitted"
_VERDICT_KIND = {REVIEW: "review.recorded", POST_REVIEW: "break_glass.post_review"}
# The events that finish an execution: they vouch for the undo params stored with it.
_OUTCOMES = ("request.executed", "request.reconciled")
_UNDO_PARAMS = "undo_params_sha256"
# Every kind `records.move` is called with: each body says `from` and `to`.
_MOVES = (
    "request.approved",
    "request.denied",
    "request.vetoed",
    "request.cancelled",
    "request.expired",
    "request.executing",
    "request.failed",
    "request.reverted",
    "execution.retry",
    *_OUTCOMES,
)
_KINDS = (SUBMITTED, *_VERDICT_KIND.values(), *_MOVES)
# Built once, run on the transaction's connection (as the audit log's appends are): building
# the statement cost more than running it.
_TRAIL = select(EventRow.body).where(
    EventRow.request_id == bindparam("request_id"), EventRow.kind.in_(_KINDS)
)


@dataclass(frozen=True)
class Trail:
    """A request's submitted, review and state-change events (`moves`, in log order), as the
    log holds them (bodies only: the columns beside them are not covered by the tree's hashes,
    so they only find the rows)."""

    request_id: str
    submitted: tuple[Mapping[str, Any], ...]
    verdicts: tuple[Mapping[str, Any], ...]
    moves: tuple[Mapping[str, Any], ...] = ()

    @property
    def outcomes(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(e for e in self.moves if e.get("kind") in _OUTCOMES)

    @property
    def digest(self) -> str | None:
        """The digest the request was submitted with (None without exactly one event)."""
        if len(self.submitted) != 1:
            return None
        value = self.submitted[0].get("digest")
        return value if isinstance(value, str) else None

    def problem(
        self, row: RequestRow, reviews: Iterable[ReviewRow] | None = None, kind: str = REVIEW
    ) -> str | None:
        """Why `row` is not what was submitted and approved, or not in the state the log says
        (with `reviews`, all its review rows of `kind`: why those are not the ones the log
        recorded), or None when all is intact. Every problem found is named."""
        found = [
            self.request_problem(row),
            None if reviews is None else self.review_problem(reviews, kind),
            self.lifecycle_problem(row),
        ]
        return "; ".join(p for p in found if p is not None) or None

    def request_problem(self, row: RequestRow) -> str | None:
        if not self.submitted:
            return "it has no request.submitted audit event"
        if len(self.submitted) > 1:
            return "it has several request.submitted audit events"
        event = self.submitted[0]
        changed = [name for name, same in _compared(row, event) if not same]
        if changed:
            return (
                "the stored request differs from its request.submitted audit event in "
                + ", ".join(changed)
            )
        if not _digest_matches(row, self.digest):
            return "its digest, recomputed from the stored request, is not the submitted one"
        return None

    def undo_params_problem(self, row: RequestRow) -> str | None:
        """Stored undo params (private: no event holds them) must be the ones whose SHA-256
        the execution's event recorded. Requests executed before foureyes recorded it have
        none to compare with (the write-once trigger alone guards theirs)."""
        if row.undo_params is None:
            return None
        vouched = {e[_UNDO_PARAMS] for e in self.outcomes if _UNDO_PARAMS in e}
        if vouched and vouched != {params_digest(row.undo_params)}:
            return "its stored undo params are not the ones its execution recorded"
        return None

    def lifecycle_problem(self, row: RequestRow) -> str | None:
        """The row's state must be the one its events last recorded (a request the log says
        was denied, cancelled, expired or executed is not pending or approved again), and an
        approved or scheduled request may not run earlier than they said (`not_before`)."""
        if len(self.submitted) != 1:
            return None  # `request_problem` names that
        last: Mapping[str, Any] = self.moves[-1] if self.moves else self.submitted[0]
        logged = last.get("to") if self.moves else last.get("state")
        if row.state != logged:
            return f"its state is {row.state}, but its audit events say it is {logged}"
        if row.state not in (RequestState.APPROVED.value, RequestState.SCHEDULED.value):
            return None
        try:
            earliest = self._earliest(last)
        except (KeyError, TypeError, ValueError):
            return "its audit events do not say when it may run"
        if earliest is not None and (row.not_before is None or row.not_before < earliest):
            shown = "now" if row.not_before is None else row.not_before.isoformat()
            return (
                f"it may run from {shown}, but its audit events say not before "
                f"{earliest.isoformat()}"
            )
        return None

    def _earliest(self, last: Mapping[str, Any]) -> datetime | None:
        """When the event that made the request runnable (`last`) said it may run: the delay
        from its submission, the approval's or a retry's `not_before`, or a reconciliation's
        time. Raises KeyError/TypeError/ValueError for an event that does not say it as foureyes
        writes it."""
        if last.get("kind") == SUBMITTED:
            if last.get("state") != RequestState.SCHEDULED.value:
                return None
            delay = last["decision"]["options"]["delay_seconds"]
            return _when(last["at"]) + timedelta(seconds=int(delay))
        for key in ("not_before", "retry_at"):
            if last.get(key) is not None:
                return _when(last[key])
        if last.get("kind") == "request.reconciled":
            return _when(last["at"])
        return None

    def review_problem(self, reviews: Iterable[ReviewRow], kind: str = REVIEW) -> str | None:
        """`reviews` are all the request's review rows of `kind`. Each must have its audit
        event, each such event its row (a deleted veto would let approvals settle it), and both
        must carry the submitted digest."""
        rows = list(reviews)
        unlogged: set[str] = set()
        resigned: set[str] = set()
        for review in rows:
            events = [
                e
                for e in self.verdicts
                if e.get("kind") == _VERDICT_KIND.get(review.kind)
                and e.get("actor") == review.reviewer_id
                and e.get("decision") == review.decision
            ]
            if not events:
                unlogged.add(review.reviewer_id)
            elif review.digest != self.digest or any(
                e.get("digest") != self.digest for e in events
            ):
                resigned.add(review.reviewer_id)
        kept = {(r.reviewer_id, r.decision) for r in rows if r.kind == kind}
        missing = {
            f"{e.get('actor')} ({e.get('decision')})"
            for e in self.verdicts
            if e.get("kind") == _VERDICT_KIND.get(kind)
            and (e.get("actor"), e.get("decision")) not in kept
        }
        if missing:
            # Rows are never deleted: a logged review without one was removed behind our back.
            return (
                f"review(s) by {', '.join(sorted(missing))} in the audit log are missing "
                "from the store: the store was altered"
            )
        if unlogged:
            # Every review is stored with its event, in one transaction.
            return (
                f"review(s) by {', '.join(sorted(unlogged))} have no audit event: "
                "the store was altered"
            )
        if resigned:
            return (
                f"review(s) by {', '.join(sorted(resigned))} do not carry the submitted digest: "
                "the store was altered"
            )
        return None


def trail(session: Session, request_id: str) -> Trail:
    """The request's submitted, review and state-change events: one query on the request_id
    index."""
    submitted: list[Mapping[str, Any]] = []
    verdicts: list[Mapping[str, Any]] = []
    moves: list[Mapping[str, Any]] = []
    bodies = session.connection().execute(_TRAIL, {"request_id": request_id}).scalars()
    for raw in bodies:
        body = json.loads(bytes(raw))
        # The body, not the columns, says what the event is about (a DBA can edit columns
        # without `audit verify` noticing, never a body).
        if not isinstance(body, dict) or body.get("request") != request_id:
            continue
        if body.get("kind") == SUBMITTED:
            submitted.append(body)
        elif body.get("kind") in _MOVES:
            moves.append(body)
        elif body.get("kind") in _KINDS:
            verdicts.append(body)
    # In log order (the body's seq, which the tree's hashes cover), so the last move is the last.
    moves.sort(key=_seq)
    return Trail(request_id, tuple(submitted), tuple(verdicts), tuple(moves))


def _seq(event: Mapping[str, Any]) -> int:
    seq = event.get("seq")
    return seq if isinstance(seq, int) else -1


def _when(value: object) -> datetime:
    """A time as an event body writes it (ISO 8601, UTC)."""
    if not isinstance(value, str):
        raise TypeError("not a time")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError("a time without its zone")
    return when


def vouch_for_undo_params(undo_params: Mapping[str, Any] | None) -> dict[str, str]:
    """What an execution's event says of the undo params stored with it: their SHA-256 (the
    values are private, like params), so that `Trail.undo_params_problem` can check them."""
    return {} if undo_params is None else {_UNDO_PARAMS: params_digest(undo_params)}


def _compared(row: RequestRow, event: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(field, whether the row agrees with the event) for each field the event records. Keys
    an event of an older foureyes lacks are not compared (its digest still covers the core)."""
    decision = event.get("decision")
    pairs: list[tuple[str, bool]] = [
        ("action", row.action == event.get("action")),
        ("account_ref", row.account_ref == event.get("account")),
        ("requester", row.requester_id == event.get("actor")),
        ("digest", row.digest == event.get("digest")),
        ("policy_version", row.policy_version == event.get("policy_version")),
        ("justification", row.justification == event.get("justification")),
        # Both are plain JSON values read back from the store: compared as such.
        ("decision", row.decision == decision),
        (
            "break_glass",
            isinstance(decision, dict) and bool(row.break_glass) == decision.get("break_glass"),
        ),
    ]
    if "params_sha256" in event:
        pairs.append(("params", params_digest(row.params) == event["params_sha256"]))
    optional: list[tuple[str, str, Any]] = [
        ("identity", "requester_identity", row.requester_identity),
        ("reverts", "reverts_id", row.reverts_id),
        ("client", "client", row.client),
    ]
    pairs.extend((name, value == event[key]) for key, name, value in optional if key in event)
    return pairs


def _digest_matches(row: RequestRow, expected: str | None) -> bool:
    """Whether the row's digest, recomputed as submit computes it now (or, for a request
    submitted before it covered the requester, break-glass and reverts, as it did then: those
    are compared with the event either way), is `expected`."""
    core: dict[str, Any] = {
        "action": row.action,
        "account": row.account_ref,
        "params": row.params,
        "justification": row.justification,
        "policy_version": row.policy_version,
    }
    if expected is None:
        return False
    if (
        request_digest(
            **core,
            requester=row.requester_id,
            break_glass=bool(row.break_glass),
            reverts=row.reverts_id,
        )
        == expected
    ):
        return True
    return legacy_request_digest(**core) == expected


def refuse(
    services: Services,
    session: Session,
    row: RequestRow,
    found: Trail,
    problem: str,
    now: datetime,
    *,
    actor: str | None,
    during: str,
) -> str:
    """Stop a request whose stored copy was altered, in the caller's transaction: cancelled
    (failed, if it was executing: the platform may have applied the approved action) when its
    state allows, with the reason; and a high alert. Returns the reason. `during` names what
    found it ("execution", "review", ...)."""
    state = RequestState(row.state)
    # The events name the request as submitted, not as the store has it now.
    submitted = found.submitted[0] if len(found.submitted) == 1 else {}
    details = {
        key: submitted[key] for key in ("action", "digest") if isinstance(submitted.get(key), str)
    }
    reason = f"re-check at {during} failed: {problem}"
    if RequestState.CANCELLED in TRANSITIONS.get(state, frozenset()):
        reason += (
            "; the store no longer holds what was submitted and approved, so it is "
            "cancelled and nothing was carried out"
        )
        move(
            services,
            session,
            row,
            RequestState.CANCELLED,
            actor=None,
            kind="request.cancelled",
            now=now,
            reason=reason,
            details=details,
        )
    elif state == RequestState.EXECUTING:
        reason += "; the platform was not asked about it: check the platform by hand"
        move(
            services,
            session,
            row,
            RequestState.FAILED,
            actor=None,
            kind="request.failed",
            now=now,
            reason=reason,
            details=details,
        )
    else:
        reason += "; security has been alerted"
    account = submitted.get("account")
    raise_alert(
        services,
        session,
        NewAlert(
            detector=DETECTOR,
            severity="high",
            summary=f"request {row.id} was altered in the store: {problem}",
            account=account if isinstance(account, str) else None,
            request=row.id,
            details={"problem": problem, "found_during": during, "by": actor, "state": state.value},
        ),
        now=now,
    )
    return reason
