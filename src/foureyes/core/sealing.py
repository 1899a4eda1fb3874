"""Writing the seals of `foureyes.store.seals`, and what follows a record found altered.

**Sealing.** foureyes changes the records that decisions and sign-ins read (people and their
logins, tokens, console sessions, step-up credentials, pins) in many places: the HR import,
`foureyes.staff.update` and `foureyes.account.pin` carried out, token issue and revocation,
sign-in and sign-out, enrolment and revocation of keys. Rather than trusting each of them to
remember, `watch` hooks the ORM sessions of a database: after each flush it notes the subjects
the unit of work touched, and just before the COMMIT it reads each of them back (with the
statements the checks read them with) and appends a `row.sealed` event for every one whose
digest is no longer what its latest seal holds: in the same transaction, after taking the log's
head lock, so two transactions touching one subject seal in the order they commit. A change
foureyes makes is thus never without its seal, and a change made any other way (plain SQL, a
DBA) never has one.

The hook sees the ORM's unit of work. An ORM bulk statement (`session.execute(update(
TokenRow)...)`) names no rows, so every record of its kind is read back before the COMMIT
instead; one on pins is refused (an account whose last pin it deleted is not found again), and
one deleting console sessions is left alone (a session gone signs nobody in; sign-in and
sign-out tidy them that way). Core statements on the connection bypass the ORM and must not
write these tables.

**Baseline.** A store from before seals has records and no seals. `baseline` seals every record
as it is found, once, and appends `seals.baseline`; `foureyes init` writes it on the empty store
and `serve` and `worker` at start on an upgraded one. After it, a record the log never sealed
is refused.

**Alerts.** A record found altered (`RecordAltered`) fails closed where it was read; `report`
raises a high `record_tampered` alert, with its audit event, once no transaction of this thread
(or task) is open any more (so it never waits for locks its own caller holds), at most once per
record per hour.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from foureyes.audit.log import AuditLog, NewEvent
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.errors import RecordAltered
from foureyes.store import seals
from foureyes.store.database import Database
from foureyes.store.tables import (
    AuditHeadRow,
    ConsoleSessionRow,
    EventRow,
    IdentityRow,
    PinRow,
    StaffRow,
    StepUpKeyRow,
    TokenRow,
    WebAuthnCredentialRow,
)

if TYPE_CHECKING:
    from foureyes.core.services import Services

__all__ = [
    "DETECTOR",
    "WINDOW",
    "baseline",
    "note",
    "report",
    "seal",
    "unwatch_all",
    "watch",
    "when_idle",
]

log = logging.getLogger(__name__)

DETECTOR = "record_tampered"
WINDOW = timedelta(hours=1)
CHANNELS = ("security",)
_UNSEALED = "foureyes_unsealed"  # Session.info: the subjects touched since the last seal

_SEALED_CLASSES = (
    StaffRow,
    IdentityRow,
    TokenRow,
    PinRow,
    ConsoleSessionRow,
    StepUpKeyRow,
    WebAuthnCredentialRow,
)

# Per watched engine: the log the seals go to, and the clock that dates them.
_watched: weakref.WeakKeyDictionary[Engine, tuple[AuditLog, Callable[[], datetime]]] = (
    weakref.WeakKeyDictionary()
)
_install_lock = threading.Lock()


def watch(database: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
    """Seal every change foureyes makes through `database`'s ORM sessions (see the module)."""
    with _install_lock:
        _watched[database.engine] = (audit, clock)
        _listen()


def unwatch_all() -> None:
    """Forget every database `watch` was given: for tests, which share one `Database` object
    on PostgreSQL and must not seal a later test's writes with an earlier test's log."""
    with _install_lock:
        _watched.clear()


@functools.cache
def _listen() -> None:
    """The session hooks, once per process (they do nothing for a database not watched)."""
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _on_bulk)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_soft_rollback", _forget)
    event.listen(Session, "after_begin", _began)
    event.listen(Session, "after_transaction_end", _ended)


def _watcher(session: Session) -> tuple[AuditLog, Callable[[], datetime]] | None:
    bind = session.bind
    return _watched.get(bind) if isinstance(bind, Engine) else None


# --- collecting what a transaction touched ---------------------------------------------------


def _values(row: object, attribute: str) -> set[str]:
    """Every value `attribute` had in this flush: before and after (a login moved from one
    person to another touches both)."""
    history = inspect(row).attrs[attribute].history
    return {str(v) for v in (*history.added, *history.unchanged, *history.deleted) if v is not None}


def _subjects(row: object) -> set[str]:
    if isinstance(row, StaffRow):
        return {seals.ref(seals.STAFF, row.id)}
    if isinstance(row, IdentityRow):
        return {seals.ref(seals.STAFF, key) for key in _values(row, "staff_id")}
    if isinstance(row, TokenRow):
        return {seals.ref(seals.TOKEN, row.id)}
    if isinstance(row, PinRow):
        return {seals.ref(seals.PINS_KIND, key) for key in _values(row, "account_ref")}
    if isinstance(row, ConsoleSessionRow):
        return {seals.ref(seals.SESSION, row.id)}
    if isinstance(row, StepUpKeyRow | WebAuthnCredentialRow):
        return {seals.credential_ref(row)}
    return set()


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    if _watcher(session) is None:
        return
    touched: set[str] = session.info.setdefault(_UNSEALED, set())
    for row in (*session.new, *session.dirty, *session.deleted):
        touched |= _subjects(row)


def _on_bulk(state: ORMExecuteState) -> None:
    """An ORM bulk statement names no rows: every record of its kind is looked at before the
    COMMIT instead. Pins cannot be (an account whose last pin it deletes is not found again),
    so a bulk statement on them is refused."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    if _watcher(state.session) is None or state.bind_mapper is None:
        return
    target = state.bind_mapper.class_
    if target is ConsoleSessionRow and state.is_delete:
        return  # a session gone signs nobody in
    if target is PinRow:
        raise RuntimeError(
            "account_pins is sealed: change pins through the session's unit of work (add, "
            "delete), so that each account's change is sealed in the log"
        )
    kind = _BULK_KINDS.get(target)
    if kind is not None:
        state.session.info.setdefault(_BULK, set()).add(kind)


_BULK = "foureyes_unsealed_kinds"  # Session.info: kinds changed by bulk statements
_BULK_KINDS: dict[type, str] = {
    StaffRow: seals.STAFF,
    IdentityRow: seals.STAFF,
    TokenRow: seals.TOKEN,
    ConsoleSessionRow: seals.SESSION,
    StepUpKeyRow: seals.STEP_UP_KEY,
    WebAuthnCredentialRow: seals.SECURITY_KEY,
}


def _forget(session: Session, _previous: SessionTransaction) -> None:
    session.info.pop(_UNSEALED, None)
    session.info.pop(_BULK, None)


def _before_commit(session: Session) -> None:
    watcher = _watcher(session)
    if watcher is None:
        return
    session.flush()  # the last changes, noted by `_after_flush`
    touched: set[str] = session.info.pop(_UNSEALED, None) or set()
    for kind in sorted(session.info.pop(_BULK, None) or ()):
        touched |= set(seals.keys(session, kind))
    if touched:
        audit, clock = watcher
        seal(session, audit, touched, clock())


# --- sealing ---------------------------------------------------------------------------------


def _lock_head(session: Session, audit: AuditLog) -> None:
    """The log's head lock, before the subjects are read: a transaction touching the same
    subject commits (and seals) first, and its changes are then seen here (on PostgreSQL each
    statement reads what is committed; SQLite's BEGIN IMMEDIATE already serialises writers)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    head = select(AuditHeadRow.size).where(AuditHeadRow.id == 1).with_for_update()
    if session.execute(head).first() is None:
        audit.ensure_head(session)
        session.execute(head)


def seal(
    session: Session,
    audit: AuditLog,
    subjects: Iterable[str],
    now: datetime,
    *,
    locked: bool = False,
) -> int:
    """Append a `row.sealed` event for each of `subjects` whose digest as the store holds it
    now (in the session's transaction) is not what its latest seal says; how many.

    Most transactions that touch a record change nothing a seal covers (a session seen again,
    a security key's counter): they are compared first without the log's head lock; only the
    subjects that differ are read again under it (`locked`: it is held already) and sealed."""
    changed = [s for s in sorted(set(subjects)) if _new_seal(session, s)[0]]
    if not changed:
        return 0
    if not locked:
        _lock_head(session, audit)
    events = []
    for subject in changed:
        differs, digest = _new_seal(session, subject)  # read again, under the lock
        if differs:
            events.append(
                NewEvent(kind=seals.SEALED, account_ref=subject, payload={"sha256": digest}, at=now)
            )
    audit.append_many(session, events)
    return len(events)


def _new_seal(session: Session, subject: str) -> tuple[bool, str | None]:
    """Whether the subject as the store holds it now differs from its latest seal, and its
    digest (None: it is not there). An account never pinned and without pins, and a record
    never sealed that is not there, do not differ."""
    digest = seals.current_digest(session, subject)
    sealed = seals.sealed_now(session, subject)
    if sealed is seals.UNSEALED:
        kind, key = seals.split(subject)
        empty = kind == seals.PINS_KIND and digest == seals.pins_digest(key, ())
        return not (digest is None or empty), digest
    return sealed != digest, digest


def baseline(database: Database, audit: AuditLog, now: datetime) -> int | None:
    """Seal every record of a store that has never been sealed, as it is found, with the
    `seals.baseline` event; how many records (None when the store was sealed already)."""
    with database.transaction() as session:
        _lock_head(session, audit)
        done = session.scalar(
            select(EventRow.seq)
            .where(EventRow.account_ref == seals.BASELINE_REF, EventRow.kind == seals.BASELINE)
            .limit(1)
        )
        if done is not None:
            return None
        subjects = [s for kind in seals.KINDS for s in seals.keys(session, kind)]
        count = seal(session, audit, subjects, now, locked=True)
        audit.append(
            session,
            kind=seals.BASELINE,
            actor=None,
            account_ref=seals.BASELINE_REF,
            request_id=None,
            payload={"sealed": count},
            at=now,
        )
    if count:
        log.info("sealed %d records found in the store (its first start with seals)", count)
    return count


# --- a record found altered ------------------------------------------------------------------

# The root transactions this thread (or task) has open, and what waits for them all to end.
_open: ContextVar[frozenset[int]] = ContextVar("foureyes_open_transactions", default=frozenset())
_waiting: ContextVar[tuple[Callable[[], None], ...]] = ContextVar(
    "foureyes_after_transactions", default=()
)


def _began(session: Session, transaction: SessionTransaction, _connection: Any) -> None:
    if transaction.parent is None:
        _open.set(_open.get() | {id(transaction)})


def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or id(transaction) not in _open.get():
        return
    remaining = _open.get() - {id(transaction)}
    _open.set(remaining)
    if not remaining:
        _run_waiting()


def _run_waiting() -> None:
    waiting = _waiting.get()
    _waiting.set(())
    for call in waiting:
        call()


def when_idle(call: Callable[[], None]) -> None:
    """Run `call` now if this thread (or task) has no foureyes transaction open, else as soon
    as the last one ends (committed or rolled back). `call` must not raise."""
    if _open.get():
        _waiting.set((*_waiting.get(), call))
    else:
        call()


def report(services: Services, altered: RecordAltered) -> None:
    """`note` the altered record once no transaction of this thread or task is open."""
    when_idle(functools.partial(note, services, altered))


# Per database: record -> when its latest alert was raised, so a flood of reads of one altered
# record costs a dictionary lookup each.
_memos: weakref.WeakKeyDictionary[Database, dict[str, datetime]] = weakref.WeakKeyDictionary()
_memo_lock = threading.Lock()


def note(services: Services, altered: RecordAltered) -> None:
    """Raise the high `record_tampered` alert (with its `alert.raised` event) about `altered`,
    unless one was raised for the same record within `WINDOW`. Never raises: the caller fails
    closed whatever happens here; a failure to write the alert is logged as an error."""
    now = services.clock()
    with _memo_lock:
        memo = _memos.setdefault(services.database, {})
        if len(memo) > 10_000:
            memo.clear()
        raised = memo.get(altered.record)
        if raised is not None and timedelta(0) <= now - raised < WINDOW:
            return
        memo[altered.record] = now
    try:
        with services.database.transaction() as session:
            raise_alert(
                services,
                session,
                NewAlert(
                    DETECTOR,
                    "high",
                    f"{altered.record} does not match the audit log: it was changed outside "
                    "foureyes, and nothing is decided on it until it is restored",
                    staff=altered.staff,
                    account=altered.record,
                    details={
                        "record": altered.record,
                        "found_sha256": altered.found,
                        "sealed_sha256": altered.sealed,
                    },
                ),
                now=now,
                channels=CHANNELS,
                dedupe=WINDOW,
            )
    except Exception:  # whatever it is: the caller has failed closed already
        log.exception("could not raise the alert about %s", altered.record)
