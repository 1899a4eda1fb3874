"""The items a reverse batch undoes (`batch_undo`), checked where it matters: before the undo is
recorded (in its write transaction, the original batch's row locked, so that racing undos of
the same items are decided one after the other) and again when each undo item is carried out.

- Recording: every chosen item must be, in its row *and* in the log, `executed` (not
  reverted, not cancelled); no open undo may carry it already; and the original batch must be
  intact (`batch_integrity.problem`: each item's digest recomputed from its row is the leaf of
  the approved Merkle root; `batch_ledger`: rows where the log says). An altered original is
  refused with a high `batch_tampered` alert, nothing recorded.
- Execution (`superseded`): the original item must still be `executed` and its digest the one
  checked at the start, and no later change on its account (a request or another batch item
  executed after it) may have superseded it; else the undo item fails alone, saying why. "Later" is
  the audit log's order (the seq of the item's `batch.item.executed` event against the events after
  it), never a time column the runtime role can write; the item's row (`finished_at`, `result`'s
  `already_applied`) must say what that event says, else `batch_tampered` (batch attack F2), and
  the event decides, never the row (session h2, F2: a row edited to say "changed nothing" must not
  stop an honest undo). A reverse batch's submission alerts such a row too (`rows_against_log`). A
  "change" is an event of `CHANGES` whose body says it carried out an action that is not a read
  (`ActionKind.READ`: a view changes nothing; an action the registry does not know counts as a
  change). The events after the item are read by seq and judged by their bodies, which the tree
  covers, never by the indexed copy columns (`account_ref`, `kind`) a DBA can move (batch attack 2,
  G1-G3): the database returns only the bodies holding a change's `"kind":"…"` (canonical JSON
  writes it exactly so, so none is missed; a body merely quoting it is parsed and judged like any
  other), and at most `MAX_LATER` changes are judged: past that the undo is held as "cannot prove"
  (fail closed). Only judged changes count: counting every event, or every execution (a view's),
  let ordinary traffic make an older batch impossible to undo (final attack, 1; undo attack F2).
- Under the account's lock (undo attack F0): the check reads the log before the platform's
  rows are locked, and on PostgreSQL a change could commit in between. On a platform kept in
  foureyes' database the undo's write locks the account's row, in a savepoint, and the log is
  read again from where the check stopped (`Later.catch_up`; `unless_superseded` for a
  split-out request): a change found then rolls the write back and holds the item; one
  committing later waits for the lock and comes after the undo. On any other platform the
  call is made outside our transactions: an item is held while another execution on its
  account is in flight (`in_flight`: `executing`, its event not yet in the log).

An undo item the policy splits out of the reverse batch (its account protected since) is an
ordinary request naming the item it reverses (`requests.reverts_item_id`): it is held by the
same guards (`check_split_recordable` at its submit, `refuse_open_undo`, `split_undo_problem`
at its execution) and reverts the item when it executes (`revert_originals`; batch attack F1).
It ends with the reverse batch if that is cancelled, declined or expired (`batch_split_end`).

A refusal names the undo that carries an item only to whoever may see it (`named_to`); with no
caller to judge (a split-out request's refusal, kept on the batch) it names none (undo attack
F1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, LargeBinary, String, and_, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from foureyes.audit.copies import body_at
from foureyes.audit.log import stored_bytes
from foureyes.core import alert_log
from foureyes.core.alerts import NewAlert, raise_alert
from foureyes.core.services import Actor, Services
from foureyes.errors import Conflict, ConnectorError, FoureyesError
from foureyes.model import Account, ActionKind
from foureyes.store.bulk import chunks, one_of
from foureyes.store.tables import AlertRow, BatchItemRow, BatchRow, EventRow, RequestRow
from foureyes.store.tree import in_tree
from foureyes.workflow import (
    access,
    batch_events,
    batch_integrity,
    batch_ledger,
    batch_views,
    flight_log,
    logged_result,
)

R = TypeVar("R")
OPEN = ("pending", "approved", "executing")
# A request not yet ended: a split-out undo request in one of these holds its item.
OPEN_REQUEST = ("pending", "approved", "scheduled", "executing")
ITEM_EXECUTED = "batch.item.executed"
# The events that record a change carried out on an account: a request's execution
# (break-glass included), a request's reconciliation whose body says it ended `executed`
# (the platform had applied it), and a batch item's execution (by its run or by its
# reconciliation, which writes the same event).
REQUEST_ENDS = ("request.executed", "request.reconciled")
CHANGES = (*REQUEST_ENDS, ITEM_EXECUTED)
# How many changes after the item's execution the guard judges (one JSON parse each, ~5 µs,
# in the undo's transaction): past that it cannot prove nothing later changed the account.
# Only changes count toward it: an execution (request or batch item) of an action that is
# not a read; a view's execution, a denial or any other event never does (attack F2).
MAX_LATER = 200_000
# What the body of every event of `CHANGES` holds, byte for byte (RFC 8785: no spaces).
_CHANGE_MARKS = tuple(f'"kind":"{kind}"' for kind in CHANGES)


class UndoRefused(Conflict):
    """An undo the guards refuse to record: its message names only the batch it undoes, its
    items and, when the caller may be told it, the undo carrying them (`refuse_open_undo`)."""


class OriginalAltered(UndoRefused):
    """The batch an undo would reverse is not what its log and approved manifest prove."""


def check_recordable(
    session: Session, batch_id: str, item_ids: Sequence[str], named: Named | None = None
) -> None:
    """In the undo's write transaction: lock the original batch (racing undos wait here) and
    refuse (Conflict) items already reverted, not executed, or carried by an open undo (named
    as `named` lets the caller be told it: `refuse_open_undo`); OriginalAltered when the
    original batch was altered."""
    original = batch_events.lock(session, batch_id)
    assert original is not None
    found = altered(session, original, item_ids)
    if found is not None:
        raise OriginalAltered(
            f"batch {batch_id} is not what its log and approved manifest prove: {found}; "
            "nothing of it is undone",
            batch_id=batch_id,
        )
    rows = {i.id: i for i in batch_integrity.items_of(session, batch_id)}
    for item_id in item_ids:
        item = rows[item_id]
        if item.state != "executed":
            raise UndoRefused(
                f"item {item.position} of batch {batch_id} is {item.state}: it was undone "
                "already or never executed",
                positions=[item.position],
            )
    refuse_open_undo(session, batch_id, item_ids, named)


def altered(session: Session, original: BatchRow, item_ids: Sequence[str]) -> str | None:
    """Why the original batch, or one of the chosen items, is not what the log and the
    approved manifest prove (None: it is)."""
    items = batch_integrity.items_of(session, original.id)
    reviews = batch_integrity.reviews_of(session, original.id)
    found = batch_integrity.problem(session, original, items, reviews)
    if found is not None:
        return found
    ledger = batch_ledger.ledger(session, original.id)
    found = ledger.problem(original, items)
    if found is not None:
        return found
    known = {i.id: i for i in items}
    for item_id in item_ids:
        item = known.get(item_id)
        if item is None:
            return f"item {item_id} is not of this batch"
        logged = ledger.logged(item_id)
        if logged not in ("executed", "reverted"):
            return (
                f"item {item.position} is {item.state}, but its audit events say it was "
                f"{logged}: it never executed"
            )
    return None


def alert(services: Services, batch_id: str, found: str, during: str) -> None:
    """The high `batch_tampered` alert for an altered original, in its own transaction (the
    refused undo's rolled back)."""
    with services.database.transaction() as session:
        original = session.get(BatchRow, batch_id)
        assert original is not None
        raise_tampered(services, session, original, found, during, services.clock())


def raise_tampered(
    services: Services, session: Session, original: BatchRow, found: str, during: str, now: datetime
) -> None:
    """The high `batch_tampered` alert for `original`, in the caller's transaction."""
    raise_alert(
        services,
        session,
        NewAlert(
            batch_integrity.DETECTOR,
            "high",
            f"batch {original.id} was altered in the store: {found}",
            staff=original.requester_id,
            request=original.id,
            details={"batch": original.id, "found_during": during, "problem": found},
        ),
        now=now,
    )


def raise_tampered_once(
    services: Services, session: Session, original: BatchRow, found: str, during: str
) -> None:
    """`raise_tampered`, in the caller's transaction, unless an alert naming the same problem
    of the batch was raised already (each look, each undo tried would raise it again)."""
    raised = session.scalars(
        select(AlertRow).where(
            AlertRow.request_id == original.id,
            AlertRow.detector == batch_integrity.DETECTOR,
        )
    )
    for alert in alert_log.vouched(session, raised):  # a row written in silences nothing
        if isinstance(alert.details, Mapping) and alert.details.get("problem") == found:
            return
    raise_tampered(services, session, original, found, during, services.clock())


def rows_against_log(session: Session, items: Sequence[BatchItemRow]) -> list[str]:
    """Why executed `items`' rows do not say what their execution's event says (their time,
    whether they changed anything): a reverse batch is decided by the event (`superseded`),
    the difference is alerted (`alert_rows`)."""
    found: list[str] = []
    for item in items:
        logged = _execution_event(session, item)
        if isinstance(logged, str):
            continue  # `superseded` holds it: the log cannot say
        problem = _row_against_event(item, logged[1])
        if problem is not None:
            found.append(problem)
    return found


def alert_rows(services: Services, batch_id: str, problems: Sequence[str], during: str) -> None:
    """The high `batch_tampered` alert for each of `problems` (`rows_against_log`) not
    alerted yet, in its own transaction."""
    if not problems:
        return
    with services.database.transaction() as session:
        original = session.get(BatchRow, batch_id)
        if original is None:
            return
        for problem in problems:
            raise_tampered_once(services, session, original, problem, during)


Named = Callable[[str, str], str | None]
"""`named(kind, id)`: the id of the undo (`kind` "batch" or "request") carrying an item, as
the caller may be told it (None: not to be named to them); see `named_to`."""

OPEN_UNDO = (
    "another undo not yet ended already undoes an item of batch {batch}: it must end (be "
    "declined, cancelled or carried out) first"
)


def refuse_open_undo(
    session: Session, batch_id: str, item_ids: Sequence[str], named: Named | None = None
) -> None:
    """Conflict when a reverse batch not yet ended already carries one of the items: a second
    undo of the same items would reverse whatever happened to the accounts in between.
    The carrying undo is named only as `named` lets the caller be told it; without `named`
    (no caller to judge: a message that may be kept or shown to others) it is never named."""
    held = open_undos(session, batch_id, item_ids)
    if not held:
        return
    kind, holder = next(iter(held.values()))
    if named is None or named(kind, holder) is None:
        raise UndoRefused(OPEN_UNDO.format(batch=batch_id))
    if kind == "batch":
        raise UndoRefused(
            f"batch {holder} already undoes items of batch {batch_id}: decline or cancel it first",
            batch_id=holder,
        )
    raise UndoRefused(
        f"request {holder} already undoes an item of batch {batch_id}: decline or cancel it first",
        request_id=holder,
    )


def named_to(services: Services, session: Session, actor: Actor) -> Named:
    """`Named` for `actor`, read in `session`: an undo is named to them only if they may see
    it (`batch_views.may_see`, `access.may_see`; the final attack: a refusal named another
    person's undo its caller could not open)."""

    def named(kind: str, holder: str) -> str | None:
        if kind == "batch":
            batch = session.get(BatchRow, holder)
            seen = batch is not None and batch_views.may_see(services, session, batch, actor)
        else:
            request = session.get(RequestRow, holder)
            seen = request is not None and access.may_see(services, session, request, actor)
        return holder if seen else None

    return named


def open_undos(
    session: Session, batch_id: str, item_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """The items of `item_ids` an undo not yet ended carries: item id → ("batch", the reverse
    batch's id) or ("request", the split-out undo request's id)."""
    held: dict[str, tuple[str, str]] = {}
    for chunk in chunks(item_ids):
        for holder, item_id in session.execute(
            select(BatchRow.id, BatchItemRow.reverts_item_id)
            .join(BatchItemRow, BatchItemRow.batch_id == BatchRow.id)
            .where(
                BatchRow.reverts_id == batch_id,
                BatchRow.state.in_(OPEN),
                one_of(session, BatchItemRow.reverts_item_id, chunk),
                BatchItemRow.state.in_(("pending", "executing")),
            )
            .order_by(BatchRow.id)
        ):
            held.setdefault(str(item_id), ("batch", holder))
        for holder, item_id in session.execute(
            select(RequestRow.id, RequestRow.reverts_item_id)
            .where(
                one_of(session, RequestRow.reverts_item_id, chunk),
                RequestRow.state.in_(OPEN_REQUEST),
            )
            .order_by(RequestRow.id)
        ):
            held.setdefault(str(item_id), ("request", holder))
    return held


def check_split_recordable(session: Session, item_id: str) -> None:
    """In the submit transaction of an undo item split out as its own request: the item it
    reverses held as `check_recordable` holds a reverse batch's (the original batch locked,
    intact, the item executed, no open undo of it). Conflict (OriginalAltered) else; an open
    undo of the item is never named (the refusal is kept on the reverse batch that split it
    out, for whoever may see that batch: attack F1)."""
    batch_id = session.scalar(select(BatchItemRow.batch_id).where(BatchItemRow.id == item_id))
    if batch_id is None:
        raise UndoRefused(f"no batch item {item_id} to undo")
    check_recordable(session, batch_id, [item_id])


def split_undo_problem(
    services: Services, session: Session, request: RequestRow, now: datetime
) -> str | None:
    """Why a split-out undo request (one with `reverts_item_id`) may not be carried out now
    (None: it may, or it undoes no batch item), under the request's lock: the original batch,
    locked, must be what its log and approved manifest prove (else the high `batch_tampered`
    alert), and the item not undone already nor superseded (`superseded`)."""
    if request.reverts_item_id is None:
        return None
    batch_id = session.scalar(
        select(BatchItemRow.batch_id).where(BatchItemRow.id == request.reverts_item_id)
    )
    original = None if batch_id is None else batch_events.lock(session, batch_id)
    if original is None:
        return "not undone: the item it undoes is gone"
    found = altered(session, original, [request.reverts_item_id])
    if found is not None:
        raise_tampered(services, session, original, found, "undo execution", now)
        return f"the batch it undoes ({original.id}) was altered in the store"
    held = superseded(services, session, request.reverts_item_id, None)
    if held is None:
        # Whatever the platform (one query; on a platform changed in our transactions no
        # other execution is ever left `executing` by a live process).
        held = in_flight(services, session, request.account_ref, request=request.id)
    if held is None:
        return None
    if held.tampered:
        raise_tampered(services, session, original, held.why, "undo execution", now)
    return f"not undone: {held.why}"


def in_flight(
    services: Services,
    session: Session,
    account_ref: str,
    *,
    request: str | None = None,
    item: str | None = None,
) -> Held | None:
    """Held while another execution on the account (a request, or another batch's item; not
    `request` nor `item`, the undo itself) is in flight: on a platform outside foureyes'
    database its call may be made or in flight, or await reconciliation, with no event in
    the log yet for `Later` to find; undoing now could reverse it (attack F0). A read's
    execution changes nothing and does not hold it. Found by the rows' state (`executing`),
    in the undo's transaction, before its own claim commits; each judged by its log
    (`flight_log`): a row the log does not say is in flight (written in by a DBA: attacker
    s3, S6) holds nothing and is the high tamper alert, once per problem."""
    requests = select(RequestRow).where(
        RequestRow.account_ref == account_ref, RequestRow.state == flight_log.EXECUTING
    )
    if request is not None:
        requests = requests.where(RequestRow.id != request)
    for row in session.scalars(requests.order_by(RequestRow.id)):
        flight, found = flight_log.request_flight(session, row)
        if flight.problem is not None:
            logged_result.alert_once(
                services, session, row, found, flight.problem, actor=None, during="undo"
            )
        if flight.action is not None and _writes(services, account_ref, flight.action):
            return Held(_IN_FLIGHT)
    items = (
        select(BatchItemRow, BatchRow)
        .join(BatchRow, BatchItemRow.batch_id == BatchRow.id)
        .where(
            BatchItemRow.account_ref == account_ref,
            BatchItemRow.state == flight_log.EXECUTING,
        )
    )
    if item is not None:
        items = items.where(BatchItemRow.id != item)
    for other, batch in session.execute(items.order_by(BatchItemRow.id)).tuples():
        judged = flight_log.item_flight(session, other, batch)
        if judged.problem is not None:
            raise_tampered_once(services, session, batch, judged.problem, "undo")
        if judged.action is not None and _writes(services, account_ref, judged.action):
            return Held(_IN_FLIGHT)
    return None


_IN_FLIGHT = (
    "another execution on the account is still in flight (its outcome not yet recorded): "
    "undoing it now could reverse that change"
)


def unless_superseded(
    services: Services,
    session: Session,
    request: RequestRow,
    write: Callable[[], R],
    judge: Judge | None,
) -> R:
    """`write()` (a platform kept in foureyes' database changing the account in `session`,
    which locks its row) for the request; for a split-out undo (`reverts_item_id`), in a
    savepoint, after which the item is judged again (`superseded`), now under that lock: a
    change that committed after `split_undo_problem` read the log and before the lock is
    found, the savepoint rolled back (the platform unchanged) and ConnectorError raised
    saying why (attack F0). The caller settles it as the failed attempt it is. `judge` is
    what judges the undo under the lock (`split_judge`, `undo_once.judge`); None: not an
    undo, `write()` alone."""
    if judge is None:
        return write()
    savepoint = session.begin_nested()
    try:
        result = write()
        held = judge()
    except BaseException:
        savepoint.rollback()
        raise
    if held is None:
        savepoint.commit()
        return result
    savepoint.rollback()
    if held.tampered and request.reverts_item_id is not None:
        batch_id = session.scalar(
            select(BatchItemRow.batch_id).where(BatchItemRow.id == request.reverts_item_id)
        )
        original = None if batch_id is None else session.get(BatchRow, batch_id)
        if original is not None:
            raise_tampered(
                services, session, original, held.why, "undo execution", services.clock()
            )
    raise ConnectorError(f"not undone: {held.why} ({HELD_UNDER_LOCK})", transient=False)


# An undo item held once its account was locked for the write: what its reason adds.
HELD_UNDER_LOCK = "held by foureyes under the account's lock; nothing was changed on the platform"


@dataclass(frozen=True)
class Held:
    """Why an undo item may not be carried out now; `tampered`: because the original item's
    row is not what its audit event says (the caller raises `batch_tampered`)."""

    why: str
    tampered: bool = False


Judge = Callable[[], Held | None]
"""Why an undo may not go ahead, asked under the account's lock (None: it may)."""


def split_judge(services: Services, session: Session, request: RequestRow) -> Judge | None:
    """`superseded` for the split-out undo `request`, to ask under the account's lock
    (`unless_superseded`); None when it undoes no batch item."""
    item_id = request.reverts_item_id
    if item_id is None:
        return None
    return lambda: superseded(services, session, item_id, None)


def superseded(
    services: Services,
    session: Session,
    reverts_item_id: str | None,
    digest_at_start: str | None,
    later: Later | None = None,
) -> Held | None:
    """Why the undo of the item `reverts_item_id` may not be carried out now (None: it may),
    read under the lock of the undo (the original batch locked too): the item it reverses is
    no longer `executed`, was changed since the start, changed nothing, or a later change on
    its account superseded it. "Later" and "changed nothing" are what the log says (the
    module's note): a row that says otherwise is Held as tampered. `later`: the log's changes
    read once for many items in this transaction (a reverse batch's chunk)."""
    if reverts_item_id is None:
        return None
    original = session.get(
        BatchItemRow, reverts_item_id, with_for_update=True, populate_existing=True
    )
    if original is None:
        return Held("the item it undoes is gone")
    if original.state != "executed":
        return Held(f"the item it undoes is {original.state}, not executed: it was undone already")
    if digest_at_start is not None and original.digest != digest_at_start:
        return Held("the item it undoes was changed since the undo started")
    logged = _execution_event(session, original)
    if isinstance(logged, str):
        return Held(logged, tampered=True)
    seq, body = logged
    found = _row_against_event(original, body)
    if found is not None:
        # The row's copy of its execution was edited: alerted, and decided by the event (a
        # `result` set to "already applied" must not cancel an honest undo; session h2, F2).
        batch = session.get(BatchRow, original.batch_id)
        if batch is not None:
            raise_tampered_once(services, session, batch, found, "undo execution")
    summary = body.get("summary")
    if isinstance(summary, dict) and summary.get("already_applied") is True:
        return Held(
            "the item it undoes changed nothing: someone else had put the account in that state"
        )
    return (later or Later(services, session)).held(original.account_ref, seq)


def _execution_event(session: Session, item: BatchItemRow) -> tuple[int, dict[str, Any]] | str:
    """The seq and body of the item's one `batch.item.executed` event (the body, covered by
    the tree's hashes, says which item), or what is wrong."""
    found: list[tuple[int, dict[str, Any]]] = []
    for seq, raw in session.execute(
        select(EventRow.seq, EventRow.body)
        .where(
            EventRow.account_ref == item.account_ref,
            EventRow.request_id == item.batch_id,
            EventRow.kind == ITEM_EXECUTED,
            in_tree(),
        )
        .order_by(EventRow.seq)
    ):
        body = body_at(int(seq), stored_bytes(raw))
        if body is None:
            # Moved or edited: which event it was, the log's verification says, not the row.
            return (
                f"item {item.position} ({item.account_ref}): the audit log's row at {seq} is not "
                "the event the log holds there (rows moved, deleted or edited)"
            )
        if (
            body.get("kind") == ITEM_EXECUTED
            and body.get("request") == item.batch_id
            and body.get("item") == item.id
        ):
            found.append((int(seq), body))
    if len(found) != 1:
        return (
            f"item {item.position} ({item.account_ref}) is executed, but it has {len(found)} "
            f"{ITEM_EXECUTED} audit events"
        )
    return found[0]


def _row_against_event(item: BatchItemRow, body: Mapping[str, Any]) -> str | None:
    """Why the item's row does not say what its execution's event says (None: it does): its
    time of execution (the event's time), and whether it changed anything."""
    at = body.get("at")
    logged = datetime.fromisoformat(at) if isinstance(at, str) else None
    if item.finished_at is None or logged is None or _utc(item.finished_at) != logged:
        return (
            f"item {item.position} ({item.account_ref}) says it executed at "
            f"{item.finished_at}, but its audit event says at {at}"
        )
    summary = body.get("summary")
    applied = summary.get("already_applied") is True if isinstance(summary, dict) else False
    if ((item.result or {}).get("already_applied") is True) != applied:
        return (
            f"item {item.position} ({item.account_ref}) says whether it changed anything "
            "otherwise than its audit event"
        )
    return None


class Later:
    """The changes the log records after a seq, per account (the seq of the last), read in
    one pass for every item of a transaction: each event after the earliest seq asked about
    is read once, by seq, and judged by its body alone (the copy columns are not trusted to
    find an account's events: module note); at most `MAX_LATER` judged changes (a view, a
    denial or any other event read is not one: it does not count).

    `catch_up` reads on from where the last read stopped, for what committed since: made
    once the accounts are locked for the write (`batch_execute`), it sees every change that
    could have committed between the first read and the lock (the log's appends are ordered
    by its head's lock, so a seq never commits behind a higher one already read)."""

    def __init__(self, services: Services, session: Session) -> None:
        self._services, self._session = services, session
        self._since: int | None = None  # events after it are read
        self._through: int | None = None  # the last seq read (from `_since` on)
        self._asked: dict[str, int] = {}  # account -> the earliest seq asked about
        self._last: dict[str, int] = {}
        self._counted = 0  # judged changes read
        self._broken: int | None = None  # the seq of an event whose body is not JSON
        self._writes: dict[tuple[str, object], bool] = {}

    def held(self, account_ref: str, seq: int) -> Held | None:
        """Held when a change on the account was carried out after `seq`, or when it cannot
        be told (too many changes to judge, or an event that does not parse); None: none
        was."""
        if self._since is None or seq < self._since:
            self._scan(seq, self._since)
            self._since = seq
            self._through = seq if self._through is None else self._through
        self._asked[account_ref] = min(self._asked.get(account_ref, seq), seq)
        return self._judged(account_ref, seq)

    def catch_up(self) -> None:
        """Read the changes logged after the last event read (none read yet: nothing to do)."""
        if self._through is not None:
            self._scan(self._through, None)

    def again(self, account_ref: str) -> Held | None:
        """`held` for the account once more, on what the log holds now (call `catch_up`
        first), for the earliest seq it was asked about (never asked: None)."""
        seq = self._asked.get(account_ref)
        return None if seq is None else self._judged(account_ref, seq)

    def _judged(self, account_ref: str, seq: int) -> Held | None:
        if self._broken is not None:
            return Held(
                f"audit event {self._broken} after the item it undoes is not the event at its "
                "seq (not JSON, or a row moved)",
                True,
            )
        if self._counted > MAX_LATER:
            return Held(
                "foureyes cannot prove that no later change on the account superseded the item "
                f"it undoes: more than {MAX_LATER:,} changes to accounts (executions of actions "
                "that are not reads; on any account) were logged since it executed; undo it on "
                "the account by an ordinary request"
            )
        if self._last.get(account_ref, seq) > seq:
            return Held(
                "a later change on the account superseded the item it undoes: undoing it now "
                "would reverse that change"
            )
        return None

    def _scan(self, after: int, upto: int | None) -> None:
        if self._counted > MAX_LATER:
            return  # held as unproven already: nothing read can change that
        query = select(EventRow.seq, EventRow.body).where(
            EventRow.seq > after,
            in_tree(),
            or_(_holds_a_change(self._session), _not_at_its_seq(self._session)),
        )
        if upto is not None:
            query = query.where(EventRow.seq <= upto)
        # No LIMIT: the bound is on judged changes, which SQL cannot tell from a read's
        # execution; the rows are streamed and the read stops past the bound.
        result = self._session.execute(
            query.order_by(EventRow.seq).execution_options(yield_per=1_000)
        )
        try:
            for later, raw in result:
                if upto is None:
                    self._through = max(self._through or later, later)
                # A row whose body is not the event at its seq (rows swapped: a later change
                # moved before the item, attack hide2-F1) is as unreadable as one not JSON.
                body = body_at(later, stored_bytes(raw))
                if body is None:
                    self._broken = later if self._broken is None else min(self._broken, later)
                    continue
                account = _changed_account(body)
                if account is None or not self._is_write(account, body.get("action")):
                    continue  # a read's execution, or a request that did not execute
                self._counted += 1
                if self._counted > MAX_LATER:
                    return
                self._last[account] = max(self._last.get(account, later), later)
        finally:
            result.close()

    def _is_write(self, account_ref: str, action: object) -> bool:
        platform = account_ref.partition(":")[0]
        if (platform, action) not in self._writes:
            self._writes[platform, action] = _writes(self._services, account_ref, action)
        return self._writes[platform, action]


def _holds_a_change(session: Session) -> ColumnElement[bool]:
    """SQL: the event's body holds one of `_CHANGE_MARKS`, found by the database byte for byte
    (SQLite's `instr` searches a BLOB's bytes; PostgreSQL's bytea is searched as its `escape`
    text, in which the marks' ASCII stands as itself)."""
    if session.get_bind().dialect.name == "sqlite":
        found = [func.instr(EventRow.body, mark.encode()) > 0 for mark in _CHANGE_MARKS]
    else:
        text = func.encode(EventRow.body, "escape")
        found = [func.strpos(text, mark) > 0 for mark in _CHANGE_MARKS]
    return or_(*found)


def _not_at_its_seq(session: Session) -> ColumnElement[bool]:
    """SQL: the event's body does not say it is the event at its row's seq (canonical JSON:
    `"seq":N` then `,` or `}`): a row moved (swapped with a later change, so that the change
    sits before the item and the scan would never read it: attack hide2-F1) or edited."""
    said = literal('"seq":') + cast(EventRow.seq, String)
    if session.get_bind().dialect.name == "sqlite":
        marks = [
            func.instr(EventRow.body, cast(said + literal(end), LargeBinary)) for end in (",", "}")
        ]
    else:
        text = func.encode(EventRow.body, "escape")
        marks = [func.strpos(text, said + literal(end)) for end in (",", "}")]
    return and_(*(mark == 0 for mark in marks))


def _changed_account(body: object) -> str | None:
    """The account the event `body` records a change carried out on (`CHANGES`; a request's
    event only when it ended `executed`), whatever its action; None: it records none."""
    if not isinstance(body, dict) or not isinstance(body.get("account"), str):
        return None
    kind = body.get("kind")
    if kind == ITEM_EXECUTED or (kind in REQUEST_ENDS and body.get("to") == "executed"):
        return str(body["account"])
    return None


def _writes(services: Services, account_ref: str, action: object) -> bool:
    """Whether `action` on the account's platform is not a read, by the action registry (the
    connector's `ActionSpec.kind`); an action or platform it does not know counts as a
    write (fail closed)."""
    if not isinstance(action, str):
        return True
    try:
        platform, _ = Account.split_ref(account_ref)
        spec = services.connector(platform).action(action)
    except (ValueError, FoureyesError):
        return True
    return spec.kind is not ActionKind.READ


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def revert_originals(
    services: Services,
    session: Session,
    reverses: Mapping[str, str | None],
    by: Mapping[str, str],
    now: datetime,
) -> None:
    """The undos just executed: each original item (`reverses`: its id, and the undo item's
    id or None for a request) still `executed` is now `reverted`, with its
    `batch.item.reverted` event on its own batch (details `by`, the undo batch or request),
    and a batch with no executed item left is `reverted`: neither is undone a second time."""
    if not reverses:
        return
    originals = list(
        session.scalars(
            select(BatchItemRow)
            .where(BatchItemRow.id.in_(list(reverses)), BatchItemRow.state == "executed")
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    by_batch: dict[str, list[BatchItemRow]] = {}
    for original in originals:
        by_batch.setdefault(original.batch_id, []).append(original)
    for batch_id, reverted in sorted(by_batch.items()):
        owner = batch_events.lock(session, batch_id)
        assert owner is not None
        events = []
        for original in reverted:
            original.state = "reverted"
            undo_item = reverses[original.id]
            details = {**by, **({"by_item": undo_item} if undo_item else {})}
            events.append(
                batch_events.item_event(
                    services, owner, original, "batch.item.reverted", now, details
                )
            )
        services.audit.append_many(session, events)
        session.flush()
        left = session.scalar(
            select(BatchItemRow.id)
            .where(BatchItemRow.batch_id == batch_id, BatchItemRow.state == "executed")
            .limit(1)
        )
        if left is None and owner.state == "executed":
            batch_events.move(
                services,
                session,
                owner,
                "reverted",
                allowed=("executed",),
                actor=None,
                now=now,
                details=dict(by),
            )
