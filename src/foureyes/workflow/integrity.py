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

Which events are the request's: those the `audit_events.request_id` and `kind` columns find,
as their bodies confirm, and those this process's index of the bodies names
(`core.request_index`). An event only the index finds (its column cleared or re-pointed: a
hidden veto, attack led7-F3) is in the trail all the same, and is itself a problem.

Cost: one indexed query (`audit_events.request_id`) for the request's few submitted, review and
state-change events, the index's read of the bodies appended since its last use (one
statement, once per transaction), and two SHA-256 of small canonical JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from foureyes.audit.log import stored_bytes
from foureyes.core import found_events
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.commitments import DIGEST_VERSION, PARAMS, UNDO_PARAMS, new_salt
from foureyes.core.events import (
    POST_REVIEW,
    REVIEW,
    TRANSITIONS,
    legacy_request_digest,
    move,
    params_digest,
    request_digest,
    salted_digest,
    v2_request_digest,
)
from foureyes.core.services import Services
from foureyes.model import RequestState
from foureyes.store.tables import EventRow, RequestRow, ReviewRow
from foureyes.store.tree import in_tree

DETECTOR = "request_tampered"
SUBMITTED = "request.submitted"
_VERDICT_KIND = {REVIEW: "review.recorded", POST_REVIEW: "break_glass.post_review"}
# The events that finish an execution: they vouch for the undo params stored with it.
_OUTCOMES = ("request.executed", "request.reconciled")
# What an outcome event vouches for the stored undo params with: salted since digest version 3
# (`events.salted_digest`), a plain SHA-256 before.
_UNDO_SALTED = "undo_params_salted_sha256"
_UNDO_PLAIN = "undo_params_sha256"
_PARAMS_SALTED = "params_salted_sha256"
_PARAMS_PLAIN = "params_sha256"
# The submitted event's commitment to the account's attributes as the request stores them
# (`account_snapshot`), salted like the params (`events.salted_digest` of `ACCOUNT_SNAPSHOT`).
ACCOUNT_SNAPSHOT = "account_snapshot"
_SNAPSHOT_SALTED = "account_snapshot_salted_sha256"
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
# The worker's flag of a break-glass post-review not signed off in time: after it (or enough
# sign-offs) `post_review_due` is cleared (`Trail.deadlines`).
OVERDUE = "break_glass.overdue"
SIGNED_OFF = "break_glass.signed_off"
# The worker's word on a stored break-glass request whose log describes none (a row written in
# behind foureyes' back): there is no post-review to wait for, and it is not looked at again.
UNFOUNDED = "break_glass.unfounded"
# Each says the worker has settled a break-glass post-review.
SETTLED = (OVERDUE, SIGNED_OFF, UNFOUNDED)
_KINDS = (SUBMITTED, *_VERDICT_KIND.values(), *_MOVES, *SETTLED)
# Built once, run on the transaction's connection (as the audit log's appends are): building
# the statement cost more than running it.
# Only events the tree covers (`store.tree`): a row at a negative seq (or beyond the head) is
# no event of the log, whatever its body says.
_TRAIL = select(EventRow.seq, EventRow.body).where(
    EventRow.request_id == bindparam("request_id"), EventRow.kind.in_(_KINDS), in_tree()
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
    hidden: tuple[int, ...] = ()
    """Seqs of events whose bodies say they are this request's (of the kinds above) that the
    look-up by the `request_id` and `kind` columns did not find (`core.request_index`): in
    the trail all the same, and named by `problem`."""
    altered: tuple[int, ...] = ()
    """Seqs from its submission on where the log's rows were moved, deleted or edited (a row
    whose body is not the event at its seq, a seq with no row: `core.request_index`), whoever's
    events they held: nothing this trail says can be trusted past them."""

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
            self.undo_params_problem(row),
        ]
        return "; ".join(p for p in found if p is not None) or None

    def request_problem(self, row: RequestRow) -> str | None:
        """Why the stored request is not what its events say was submitted, or its events are
        not all found under it in the store (every re-check asks this first)."""
        found = [
            found_events.store_problem(self.hidden, self.altered),
            self._submitted_problem(row),
        ]
        return "; ".join(p for p in found if p is not None) or None

    def _submitted_problem(self, row: RequestRow) -> str | None:
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
        if not _digest_matches(row, event):
            return "its digest, recomputed from the stored request, is not the submitted one"
        return None

    def undo_params_problem(self, row: RequestRow) -> str | None:
        """Stored undo params (private: no event holds them) must be the ones the execution's
        event committed to: salted with the request's salt (`undo_params_salted_sha256`), or,
        by an execution before salts, their plain SHA-256; and none may be stored where the
        execution committed to none, or where there has been no execution (the write-once
        trigger lets NULL become a value: foureyes' own database role could write params an
        undo would then carry, shown redacted; attack G6, session 14), nor be missing where it
        committed to some (removed so that a typed value passes as not recorded: G1). Requests
        of a foureyes before salted digests, executed before it recorded either, have nothing
        to compare with (the write-once trigger alone guards theirs)."""
        salted = {e[_UNDO_SALTED] for e in self.outcomes if _UNDO_SALTED in e}
        plain = {e[_UNDO_PLAIN] for e in self.outcomes if _UNDO_PLAIN in e}
        if row.undo_params is None:
            if salted or plain:
                return "its undo params are gone, but its execution recorded some"
            return None
        executed = [e for e in self.outcomes if e.get("to") == RequestState.EXECUTED.value]
        if not executed:
            return "it holds undo params, but it has not been executed"
        if not salted and not plain and self.submitted and _salted(self.submitted[0]):
            return "it holds undo params its execution did not record"
        if salted and (
            row.salt is None or salted != {salted_digest(row.salt, UNDO_PARAMS, row.undo_params)}
        ):
            return "its stored undo params (or salt) are not the ones its execution recorded"
        if plain and plain != {params_digest(row.undo_params)}:
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
        found = [self.deadline_problem(row)]
        if row.state in (RequestState.APPROVED.value, RequestState.SCHEDULED.value):
            found.append(self._not_before_problem(row, last))
        return "; ".join(p for p in found if p is not None) or None

    def _not_before_problem(self, row: RequestRow, last: Mapping[str, Any]) -> str | None:
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

    def deadline_problem(self, row: RequestRow) -> str | None:
        """`expires_at` and `post_review_due` must be what the log implies (`deadlines`): a
        later expiry would let a pending request be approved, or a read be carried out, after
        its time; an earlier one expire it before; a moved or cleared post-review deadline
        would keep a break-glass without its sign-offs from being flagged."""
        if len(self.submitted) != 1:
            return None  # `request_problem` names that
        try:
            expires, due, clearable = self.deadlines()
        except (KeyError, TypeError, ValueError):
            return "its audit events do not say when it expires"
        found = []
        if expires is not None and row.expires_at != expires:
            found.append(
                f"it expires at {_shown(row.expires_at)}, but its audit events say at "
                f"{_shown(expires)}"
            )
        if row.post_review_due != due and not (row.post_review_due is None and clearable):
            found.append(
                f"its post-review is due {_shown(row.post_review_due)}, but its audit events "
                f"say {_shown(due)}"
            )
        return "; ".join(found) or None

    def deadlines(self) -> tuple[datetime | None, datetime | None, bool]:
        """What the log implies of the request's `expires_at` (None: an event of an older
        foureyes that does not say), its `post_review_due`, and whether the worker may have
        cleared the latter (a break-glass flagged overdue, or signed off by as many people as
        its terms ask). As submit and review compute them: the submission's time plus its
        decision's `expires_seconds`, plus the delay (`delay_seconds` when it was scheduled at
        submission; an approval's `not_before` minus its time), and the submission's time plus
        its break-glass terms' `within_seconds`. Raises KeyError/TypeError/ValueError for an
        event that does not say it as foureyes writes it."""
        event = self.submitted[0]
        at = _when(event["at"])
        options = event["decision"]["options"]
        expires = None
        if "expires_seconds" in options:
            expires = at + timedelta(seconds=int(options["expires_seconds"]))
            if event.get("state") == RequestState.SCHEDULED.value:
                expires += timedelta(seconds=int(options["delay_seconds"]))
            for move in self.moves:
                if move.get("kind") == "request.approved" and move.get("not_before") is not None:
                    expires += _when(move["not_before"]) - _when(move["at"])
        terms = options.get("break_glass")
        if terms is None:
            return expires, None, False
        due = at + timedelta(seconds=int(terms["within_seconds"]))
        settled = any(e.get("kind") in SETTLED for e in self.verdicts)
        cleared = bool(event["decision"].get("break_glass")) and (
            settled or len(self.signed_off()) >= int(terms.get("reviewers", 1))
        )
        return expires, due, cleared

    def approved_at(self) -> datetime:
        """When the request was last approved, as its log says: its last `request.approved`
        event, else its submission (approved, or allowed, as it was submitted). Raises
        KeyError/TypeError/ValueError/IndexError for a log that does not say it as foureyes
        writes it."""
        approvals = [m for m in self.moves if m.get("kind") == "request.approved"]
        return _when((approvals or list(self.submitted))[-1]["at"])

    def break_glass_terms(self) -> tuple[datetime, int] | None:
        """When the post-review of the break-glass its log describes is due, and how many must
        sign it off; None when the log describes no break-glass (no single `request.submitted`
        event, or one not of a break-glass, or not as foureyes writes it)."""
        if len(self.submitted) != 1:
            return None
        try:
            _, due, _ = self.deadlines()
            terms = self.submitted[0]["decision"]["options"]["break_glass"]
            needed = int(terms.get("reviewers", 1))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return None if due is None else (due, needed)

    def signed_off(self) -> set[str]:
        """Who signed off the break-glass in the log (each post-review approval's event)."""
        return {
            str(e.get("actor"))
            for e in self.verdicts
            if e.get("kind") == _VERDICT_KIND[POST_REVIEW] and e.get("decision") == "approve"
        }

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
        must carry the submitted digest; a row must carry the step-up evidence (and the login)
        its event recorded: the evidence names the credential that confirmed it, which decides
        whether the approval still counts once that credential is revoked."""
        rows = list(reviews)
        unlogged: set[str] = set()
        resigned: set[str] = set()
        restepped: set[str] = set()
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
            elif any(
                ("step_up" in e and e["step_up"] != review.step_up)
                or ("identity" in e and e["identity"] != review.identity)
                for e in events
            ):
                restepped.add(review.reviewer_id)
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
        if restepped:
            return (
                f"review(s) by {', '.join(sorted(restepped))} do not carry the step-up (or "
                "login) their audit event recorded: the store was altered"
            )
        return None


def trail(session: Session, request_id: str) -> Trail:
    """The request's submitted, review and state-change events: one query on the request_id
    index, completed by this process's index of the events' bodies from its submission on
    (`core.request_index`: usually one statement per transaction)."""
    rows = session.connection().execute(_TRAIL, {"request_id": request_id})
    read = found_events.complete(
        session, request_id, ((int(seq), stored_bytes(raw)) for seq, raw in rows), _KINDS, SUBMITTED
    )
    submitted: list[Mapping[str, Any]] = []
    verdicts: list[Mapping[str, Any]] = []
    moves: list[Mapping[str, Any]] = []
    for _seq_found, body in sorted(read.bodies.items()):
        if body.get("kind") == SUBMITTED:
            submitted.append(body)
        elif body.get("kind") in _MOVES:
            moves.append(body)
        elif body.get("kind") in _KINDS:
            verdicts.append(body)
    # In log order (the seq, which the body says too: `body_at`), so the last move is the last.
    return Trail(
        request_id,
        tuple(submitted),
        tuple(verdicts),
        tuple(moves),
        tuple(sorted(read.hidden)),
        tuple(sorted(read.altered)),
    )


def restore_deadlines(row: RequestRow, found: Trail) -> None:
    """Put back in `row` the deadlines its log implies (`Trail.deadlines`), once their
    difference was reported: the row is a cache of the log. A post-review deadline the worker
    may have cleared stays cleared."""
    try:
        expires, due, clearable = found.deadlines()
    except (KeyError, TypeError, ValueError, IndexError):
        return
    if expires is not None:
        row.expires_at = expires
    if not (row.post_review_due is None and clearable):
        row.post_review_due = due


def _shown(when: datetime | None) -> str:
    return "none" if when is None else when.isoformat()


def _when(value: object) -> datetime:
    """A time as an event body writes it (ISO 8601, UTC)."""
    if not isinstance(value, str):
        raise TypeError("not a time")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError("a time without its zone")
    return when


def vouch_for_undo_params(row: RequestRow) -> dict[str, str]:
    """What an execution's event says of the undo params stored with `row`: their salted
    SHA-256 (`events.salted_digest`; the values are private, like params, and a plain hash
    would let the event's readers test guesses of them), so that `Trail.undo_params_problem`
    can check them. A row without a salt (inserted by a process of the previous version during
    an upgrade) is given one now, in the caller's transaction (written once)."""
    if row.undo_params is None:
        return {}
    if row.salt is None:
        row.salt = new_salt()
    return {_UNDO_SALTED: salted_digest(row.salt, UNDO_PARAMS, row.undo_params)}


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
        # A split-out batch undo's item: named by both or by neither.
        ("reverts_item", row.reverts_item_id == event.get("reverts_item")),
        (
            "break_glass",
            isinstance(decision, dict) and bool(row.break_glass) == decision.get("break_glass"),
        ),
    ]
    if _salted(event):
        # Version 3: the event commits to the params with the row's salt. A salt changed in the
        # store (or removed) fails this and the digest alike: the event binds it.
        committed = row.salt is not None and (
            salted_digest(row.salt, PARAMS, row.params) == event.get(_PARAMS_SALTED)
        )
        pairs.append(("params", committed))
    elif _PARAMS_PLAIN in event:
        pairs.append(("params", params_digest(row.params) == event[_PARAMS_PLAIN]))
    if _SNAPSHOT_SALTED in event:
        # What the re-decisions before execution read of the account (review, who may see,
        # cancel or sign off): committed to with the salt, like the params (it may hold private
        # attributes). Execution itself re-decides on what the platform answers then.
        pairs.append(
            (
                "account_snapshot",
                row.salt is not None
                and salted_digest(row.salt, ACCOUNT_SNAPSHOT, row.account_snapshot)
                == event[_SNAPSHOT_SALTED],
            )
        )
    optional: list[tuple[str, str, Any]] = [
        ("identity", "requester_identity", row.requester_identity),
        ("reverts", "reverts_id", row.reverts_id),
        ("client", "client", row.client),
    ]
    pairs.extend((name, value == event[key]) for key, name, value in optional if key in event)
    return pairs


def _salted(event: Mapping[str, Any]) -> bool:
    """Whether a `request.submitted` event is of a request with a salted digest (version 3).
    The event says which version to recompute, not the row: a DBA cannot make a salted request
    checked as an unsalted one."""
    return event.get("digest_version") == DIGEST_VERSION


def _digest_matches(row: RequestRow, event: Mapping[str, Any]) -> bool:
    """Whether the row's digest, recomputed from the row as the submitted `event` says it was
    computed, is the event's: salted with the row's salt (version 3); else unsalted (version
    2), or, for a request submitted before it covered the requester, break-glass and reverts,
    as it was then (those are compared with the event either way)."""
    expected = event.get("digest")
    if not isinstance(expected, str):
        return False
    core: dict[str, Any] = {
        "action": row.action,
        "account": row.account_ref,
        "params": row.params,
        "justification": row.justification,
        "policy_version": row.policy_version,
    }
    rest: dict[str, Any] = {
        "requester": row.requester_id,
        "break_glass": bool(row.break_glass),
        "reverts": row.reverts_id,
    }
    if _salted(event):
        return row.salt is not None and request_digest(salt=row.salt, **core, **rest) == expected
    if "digest_version" in event:
        return False  # a version this foureyes does not know: fail closed
    if v2_request_digest(**core, **rest) == expected:
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
        # It stays as it is (executed, ...): its deadlines go back to what the log says, so that
        # a break-glass is still flagged if it is not signed off in time.
        restore_deadlines(row, found)
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
