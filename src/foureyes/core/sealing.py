"""Writing the seals of `foureyes.store.seals`, and what follows a record found altered.

**Sealing.** foureyes changes the records that decisions and sign-ins read (people and their
logins, tokens, console sessions, step-up credentials, pins, logins' provider bindings) in many
places: the HR import,
`foureyes.staff.update` and `foureyes.account.pin` carried out, token issue and revocation,
sign-in and sign-out, enrolment and revocation of keys. Rather than trusting each of them to
remember, `watch` hooks the ORM sessions of a database: after each flush it notes the subjects
the unit of work touched, and just before the COMMIT it reads each of them back (with the
statements the checks read them with) and appends a `row.sealed` event for every one whose
digest is no longer what its latest seal holds: in the same transaction, after taking the log's
head lock, so two transactions touching one subject seal in the order they commit. A change
foureyes makes is thus never without its seal, and a change made any other way (plain SQL, a
DBA) never has one.

**Before the change.** A seal covers what the store holds at the COMMIT: a record a DBA edited
and foureyes then changed (an import touching that person, a pin set on that account) would be
sealed with the DBA's edit in it. So the first time a transaction is about to change a record
(before the flush that writes it, or before an ORM bulk statement on its kind), the record is
read *as stored* (rows on the connection, not the session's objects; on PostgreSQL with its
row locked FOR NO KEY UPDATE until the COMMIT) with its latest seal, and must be what the seal
says; if not, the transaction fails with `RecordAltered` (it rolls back whole: 503
`record-altered`, or the execution that made it fails) and the `record_tampered` alert is
raised. Deleting a record is such a change (a console session excepted). A person's logins and
an account's pins are rows of their own, which that lock does not hold back: at the COMMIT,
under the log's head lock, a person's logins must be the ones checked plus this transaction's
own changes, and an account's pins without this transaction's changes what the latest seal says.

The hook sees the ORM's unit of work. An ORM bulk statement (`session.execute(update(
TokenRow)...)`) names no rows, so every record of its kind is checked before it runs and read
back before the COMMIT instead; one on pins is refused (an account whose last pin it deleted is
not found again), and one deleting console sessions is left alone (a session gone signs nobody
in; sign-in and sign-out tidy them that way). Core statements on the connection bypass the ORM
and must not write these tables.

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
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

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
    GovernanceAppliedRow,
    IdentityRow,
    LoginRow,
    PinRow,
    StaffRow,
    StepUpKeyRow,
    TokenRow,
    WebAuthnCredentialRow,
)
from foureyes.store.tree import in_tree

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
    GovernanceAppliedRow,
    StaffRow,
    IdentityRow,
    LoginRow,
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


# Per watched engine: what raises the alert about a record a transaction found altered before
# changing it (`Services.report_altered`).
_reporters: weakref.WeakKeyDictionary[Engine, Callable[[RecordAltered], None]] = (
    weakref.WeakKeyDictionary()
)


def watch(
    database: Database,
    audit: AuditLog,
    clock: Callable[[], datetime],
    *,
    report: Callable[[RecordAltered], None] | None = None,
) -> None:
    """Seal every change foureyes makes through `database`'s ORM sessions, refusing to change
    a record that is not what its seal says (see the module); `report` raises the alert."""
    with _install_lock:
        _watched[database.engine] = (audit, clock)
        if report is not None:
            _reporters[database.engine] = report
        _listen()


def unwatch_all() -> None:
    """Forget every database `watch` was given: for tests, which share one `Database` object
    on PostgreSQL and must not seal a later test's writes with an earlier test's log."""
    with _install_lock:
        _watched.clear()
        _reporters.clear()


@functools.cache
def _listen() -> None:
    """The session hooks, once per process (they do nothing for a database not watched)."""
    event.listen(Session, "before_flush", _before_flush)
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
    if isinstance(row, LoginRow):
        return {seals.ref(seals.LOGIN, row.identity)}
    if isinstance(row, GovernanceAppliedRow):
        return {seals.ref(seals.APPLIED, row.idempotency_key)}
    return set()


# --- the state before the change --------------------------------------------------------------

_CHECKED = "foureyes_checked"  # Session.info: the subjects found as sealed before their change
# Session.info: subject -> its members (a person's logins, an account's pins) as they were stored
# when it was checked, and subject -> member -> whether this transaction leaves it there.
_MEMBERS = "foureyes_members"
_MEMBER_CHANGES = "foureyes_member_changes"


def _before_flush(session: Session, _context: UOWTransaction, _instances: object) -> None:
    """Before a flush writes them: each record it changes, not yet looked at in this
    transaction, must be what its seal says (`_check_before`)."""
    if _watcher(session) is None:
        return
    subjects: set[str] = set()
    for row in (*session.new, *session.dirty, *session.deleted):
        if isinstance(row, ConsoleSessionRow) and row in session.deleted:
            continue  # a session gone signs nobody in (one found altered was reported, then ended)
        subjects |= _subjects(row)
        if isinstance(row, PinRow | IdentityRow):
            _note_member(session, row)
    _check_before(session, subjects, members=True)


def _note_member(session: Session, row: PinRow | IdentityRow) -> None:
    """Keep what this transaction does to the members of a person (a login added, moved,
    removed) or of an account's pins, for the COMMIT's check (`_check_members`)."""
    if isinstance(row, PinRow):
        kind, owner, member = seals.PINS_KIND, "account_ref", "pin"
    else:
        kind, owner, member = seals.STAFF, "staff_id", "identity"
    changes: dict[str, dict[str, bool]] = session.info.setdefault(_MEMBER_CHANGES, {})
    state: Any = inspect(row)

    def note(key: object, name: object, *, there: bool) -> None:
        changes.setdefault(seals.ref(kind, str(key)), {})[str(name)] = there

    now = (getattr(row, owner), getattr(row, member))
    if state.pending:
        note(*now, there=True)
        return
    if row in session.deleted:
        note(*now, there=False)
        return
    was = tuple(_first_value(state, name) for name in (owner, member))
    if was != now and None not in was:
        note(*was, there=False)
        note(*now, there=True)


def _first_value(state: Any, name: str) -> object:
    """The value attribute `name` had before this flush's change (None if unknown)."""
    history = state.attrs[name].history
    values = (*history.deleted, *history.unchanged)
    return values[0] if values else None


def _check_before(session: Session, subjects: Iterable[str], *, members: bool) -> None:
    """RecordAltered (reported) for the first of `subjects` not yet looked at in this
    transaction whose record, as stored, is not what its latest seal says. With `members`,
    what a person's logins or an account's pins were is kept for the COMMIT's check."""
    checked: set[str] = session.info.setdefault(_CHECKED, set())
    fresh = sorted(set(subjects) - checked)
    if not fresh:
        return
    lock = session.get_bind().dialect.name == "postgresql"
    for subject in fresh:
        found, sealed, held = seals.stored_state(session, subject, lock=lock)
        checked.add(subject)
        if members and held is not None:
            session.info.setdefault(_MEMBERS, {})[subject] = held
        try:
            seals.check_state(subject, found, sealed)
        except RecordAltered as exc:
            if sealed is seals.UNSEALED and not _baselined(session):
                continue  # a store not sealed yet: `baseline` takes it as found
            _refuse(session, exc)


def _refuse(session: Session, altered: RecordAltered) -> NoReturn:
    """Raise `altered`, reporting it first (the alert comes once the transaction is over)."""
    bind = session.bind
    report = _reporters.get(bind) if isinstance(bind, Engine) else None
    if report is not None:
        report(altered)
    log.warning("refused to change a record found altered: %s", altered.record)
    raise altered


_baselines: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _baselined(session: Session) -> bool:
    """Whether the store's records were sealed (`baseline`): before, none is refused for
    having no seal. Remembered once true (the baseline event stays in the log)."""
    bind = session.bind
    if isinstance(bind, Engine) and _baselines.get(bind):
        return True
    done = session.connection().scalar(
        select(EventRow.seq)
        .where(
            EventRow.account_ref == seals.BASELINE_REF, EventRow.kind == seals.BASELINE, in_tree()
        )
        .limit(1)
    )
    if done is not None and isinstance(bind, Engine):
        _baselines[bind] = True
    return done is not None


def _check_members(session: Session) -> dict[str, str | None]:
    """At the COMMIT, under the log's head lock: each person checked before this transaction
    changed them must hold exactly the logins they held then, with this transaction's own
    changes; each account's pins, without this transaction's changes, what the latest seal says
    (another transaction of foureyes may have sealed a change since). A login or pin a DBA
    inserted (or moved away) meanwhile has no row the check before the change could lock.
    Answers the digests read, for the seals: from the same statement, so nothing can come in
    between."""
    before: dict[str, frozenset[str]] = session.info.pop(_MEMBERS, None) or {}
    changes: dict[str, dict[str, bool]] = session.info.pop(_MEMBER_CHANGES, None) or {}
    digests: dict[str, str | None] = {}
    for subject, held in sorted(before.items()):
        mine = changes.get(subject, {})
        added = {m for m, there in mine.items() if there}
        removed = {m for m, there in mine.items() if not there}
        digest, now = seals.current_state(session, subject)
        kind, key = seals.split(subject)
        if kind == seals.PINS_KIND and now is not None:
            # Another transaction of foureyes may have changed these pins since the check (no
            # row of theirs was locked): it sealed what it left. Without this transaction's
            # changes, the pins must be what the latest seal says.
            try:
                seals.check_state(
                    subject,
                    seals.pins_digest(key, (now - added) | removed),
                    seals.sealed_now(session, subject),
                )
            except RecordAltered as exc:
                _refuse(session, exc)
        elif now is not None and now != (held - removed) | added:
            # A person's row was locked since the check: whoever else moved a login onto or
            # off them meanwhile was not foureyes (its changes to them wait for that lock).
            _refuse(
                session,
                RecordAltered(
                    f"{seals.describe(subject)} was changed outside foureyes while foureyes was "
                    "changing it: nothing is decided on it until it is restored",
                    record=subject,
                    staff=seals.key_of(subject, seals.STAFF),
                    found=digest,
                    sealed=None,
                ),
            )
        digests[subject] = digest
    return digests


# --- after the change ------------------------------------------------------------------------


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
        if state.is_update or state.is_delete:
            # Whichever it changes must be as sealed before it does (as for the unit of work).
            _check_before(state.session, seals.keys(state.session, kind), members=False)
        state.session.info.setdefault(_BULK, set()).add(kind)


_BULK = "foureyes_unsealed_kinds"  # Session.info: kinds changed by bulk statements
_BULK_KINDS: dict[type, str] = {
    StaffRow: seals.STAFF,
    IdentityRow: seals.STAFF,
    TokenRow: seals.TOKEN,
    ConsoleSessionRow: seals.SESSION,
    StepUpKeyRow: seals.STEP_UP_KEY,
    WebAuthnCredentialRow: seals.SECURITY_KEY,
    LoginRow: seals.LOGIN,
    GovernanceAppliedRow: seals.APPLIED,
}


def _forget(session: Session, _previous: SessionTransaction) -> None:
    for key in (_UNSEALED, _BULK, _CHECKED, _MEMBERS, _MEMBER_CHANGES):
        session.info.pop(key, None)


def _before_commit(session: Session) -> None:
    watcher = _watcher(session)
    if watcher is None:
        return
    session.flush()  # the last changes, noted by `_after_flush` (and checked before them)
    session.info.pop(_CHECKED, None)
    touched: set[str] = session.info.pop(_UNSEALED, None) or set()
    for kind in sorted(session.info.pop(_BULK, None) or ()):
        touched |= set(seals.keys(session, kind))
    audit, clock = watcher
    known: dict[str, str | None] = {}
    if session.info.get(_MEMBERS):
        _lock_head(session, audit)
        known = _check_members(session)
    if touched:
        seal(session, audit, touched, clock(), locked=bool(known), known=known)


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
    known: Mapping[str, str | None] | None = None,
) -> int:
    """Append a `row.sealed` event for each of `subjects` whose digest as the store holds it
    now (in the session's transaction) is not what its latest seal says; how many.

    Most transactions that touch a record change nothing a seal covers (a session seen again,
    a security key's counter): they are compared first without the log's head lock; only the
    subjects that differ are read again under it (`locked`: it is held already) and sealed.
    `known`: digests read under the lock already (`_check_members`), not read again."""
    known = known or {}
    changed = [s for s in sorted(set(subjects)) if _new_seal(session, s, known)[0]]
    if not changed:
        return 0
    if not locked:
        _lock_head(session, audit)
    events = []
    for subject in changed:
        differs, digest = _new_seal(session, subject, known)  # read again, under the lock
        if differs:
            events.append(
                NewEvent(kind=seals.SEALED, account_ref=subject, payload={"sha256": digest}, at=now)
            )
    audit.append_many(session, events)
    return len(events)


def _new_seal(
    session: Session, subject: str, known: Mapping[str, str | None]
) -> tuple[bool, str | None]:
    """Whether the subject as the store holds it now differs from its latest seal, and its
    digest (None: it is not there; `known` has it when it was read under the lock already). An
    account never pinned and without pins, and a record never sealed that is not there, do not
    differ."""
    digest = known[subject] if subject in known else seals.current_digest(session, subject)
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
            .where(
                EventRow.account_ref == seals.BASELINE_REF,
                EventRow.kind == seals.BASELINE,
                in_tree(),
            )
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
