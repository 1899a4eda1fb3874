"""Attacks on undoing a request (group attack run, finding F3): one executed request undone
several times, and a stale undo, approved after the original was reverted, lifting a later,
separately approved request's action. Each runs on SQLite and PostgreSQL (`database`).

The cast (examples/staff.yaml, example policy): a suspension of the president (a vit) needs two
trust & safety approvals; lifting it (the undo, `account.unsuspend`) one trust & safety
employee's. Lee c-3004 is a trust & safety contractor: never an approver of the undo.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import select

from foureyes.errors import Conflict
from foureyes.model import RequestState
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, RequestRow
from foureyes.workflow import access, execute, operations, submit, undo, undo_once, views
from foureyes.workflow.submit import Submission
from tests.dba import tamper
from tests.worlds import World, make_world

ACCOUNT = "chirp:president"


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


def _state(world: World, request_id: str) -> str:
    with world.services.database.read() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row.state


def _submit(world: World, by: str, action: str, justification: str) -> str:
    submission = Submission(action=action, account=ACCOUNT, justification=justification)
    return operations.submit(world.services, world.actor(by), submission)


def _carried_out(world: World, request_id: str, *approvers: str) -> None:
    """Approved by `approvers` and, unless carried out at once, executed."""
    for reviewer in approvers:
        world.review(reviewer, request_id)
    if _state(world, request_id) == RequestState.APPROVED.value:
        execute.execute(world.services, request_id)


def _suspended(world: World, by: str = "e-3001") -> str:
    """A suspension of the president, approved by two trust & safety employees, executed."""
    request_id = _submit(world, by, "account.suspend", "CASE-1")
    approvers = [a for a in ("e-3002", "e-3003", "e-9001") if a != by][:2]
    _carried_out(world, request_id, *approvers)
    assert _state(world, request_id) == "executed"
    assert world.chirp("president")["status"] == "suspended"
    return request_id


def _undo(world: World, request_id: str, by: str = "e-3002") -> str:
    return undo.undo(world.services, world.actor(by), request_id, "UNDO")


def _undos(world: World, request_id: str) -> list[str]:
    with world.services.database.read() as session:
        return list(
            session.scalars(select(RequestRow.id).where(RequestRow.reverts_id == request_id))
        )


def test_a_second_undo_while_the_first_is_open_is_refused(world: World) -> None:
    original = _suspended(world)
    first = _undo(world, original)
    assert _state(world, first) == "pending"
    with pytest.raises(Conflict, match=f"request {first} already undoes request {original}"):
        _undo(world, original, by="e-3003")
    assert _undos(world, original) == [first]
    # Once the first ended (cancelled by its requester), the request may be undone again.
    operations.cancel(world.services, world.actor("e-3002"), first, "CASE-2")
    second = _undo(world, original, by="e-3003")
    assert set(_undos(world, original)) == {first, second}


def test_racing_undos_of_one_request_record_one(world: World) -> None:
    original = _suspended(world)
    asked = ["e-3002", "e-3003", "e-3002", "e-9001"]
    actors = {by: world.actor(by) for by in asked}
    start = threading.Barrier(len(asked))
    made: list[str] = []
    refused: list[BaseException] = []

    def race(by: str) -> None:
        start.wait()
        try:
            made.append(undo.undo(world.services, actors[by], original, "UNDO"))
        except BaseException as exc:  # every outcome is checked below
            refused.append(exc)

    threads = [threading.Thread(target=race, args=(by,)) for by in asked]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1, refused
    assert len(refused) == len(asked) - 1
    assert all(isinstance(exc, Conflict) for exc in refused), refused
    assert _undos(world, original) == made


def test_a_keyed_retry_racing_its_first_call_is_answered_the_first_calls_undo(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack F4 (session 14): a retry with the same key and body, recorded between the first
    call's key look-up and its write, made the first call's answer 409 ("decline or cancel
    it") instead of the replay docs/idempotency.md promises. One undo, both calls answered it."""
    original = _suspended(world)
    actor = world.actor("e-3002")
    raced: list[tuple[str, bool]] = []
    look = submit._first_look

    def keyed() -> tuple[str, bool]:
        made = undo.undo_or_replay(
            world.services, actor, original, "UNDO", idempotency_key="retry-7"
        )
        return made.request_id, made.replayed

    def racing_look(*args: Any, **kwargs: Any) -> Any:
        # The retry lands after the first call looked its key up, before its write.
        if not raced:
            raced.append(("", False))
            raced.append(keyed())
        return look(*args, **kwargs)

    monkeypatch.setattr(submit, "_first_look", racing_look)
    first = keyed()
    assert raced[1][1] is False
    assert first == (raced[1][0], True)
    assert _undos(world, original) == [first[0]]
    with pytest.raises(Conflict, match="already undoes"):  # another key is still refused
        undo.undo_or_replay(world.services, actor, original, "UNDO", idempotency_key="other-8")


def test_a_stale_undo_never_lifts_a_later_request(world: World, database: Database) -> None:
    """F3's scenario: two undos filed while the original was executed (the second forced in
    as the old code recorded it); the first carried out; a new suspension approved by two and
    executed; the stale second undo, approved by one, is cancelled saying why."""
    original = _suspended(world)
    first = _undo(world, original)
    # The old code recorded the second too: written past the record-time guard.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(undo_once, "check_recordable", lambda *args, **kwargs: None)
        stale = _undo(world, original, by="e-3003")
    _carried_out(world, first, "e-9001")
    assert _state(world, first) == "executed"
    assert _state(world, original) == "reverted"
    assert world.chirp("president")["status"] == "active"
    later = _suspended(world, by="e-3002")  # R2, approved by two
    # The stale undo, approved by one.
    world.review("e-9001", stale)
    if _state(world, stale) == RequestState.APPROVED.value:
        execute.execute(world.services, stale)
    with world.services.database.read() as session:
        row = session.get(RequestRow, stale)
        assert row is not None
        assert row.state == "cancelled", (row.state, row.reason)
        assert f"the request it undoes ({original}) is reverted" in (row.reason or "")
    assert world.chirp("president")["status"] == "suspended"
    assert _state(world, later) == "executed"
    assert _state(world, original) == "reverted"


def test_an_undo_after_a_later_change_on_the_account_is_cancelled(world: World) -> None:
    """The original still executed, but a later change (another request on the account)
    was carried out after it: undoing now would reverse that change."""
    original = _suspended(world)
    pending = _undo(world, original)
    # Someone lifts the suspension by an ordinary request, and another suspends again.
    lift = _submit(world, "e-3003", "account.unsuspend", "X")
    _carried_out(world, lift, "e-9001")
    assert world.chirp("president")["status"] == "active"
    again = _submit(world, "e-3003", "account.suspend", "Y")
    _carried_out(world, again, "e-3001", "e-9001")
    assert world.chirp("president")["status"] == "suspended"
    world.review("e-9001", pending)
    if _state(world, pending) == RequestState.APPROVED.value:
        execute.execute(world.services, pending)
    with world.services.database.read() as session:
        row = session.get(RequestRow, pending)
        assert row is not None
        assert row.state == "cancelled", (row.state, row.reason)
        assert "a later change on the account superseded the request it undoes" in (
            row.reason or ""
        )
    assert world.chirp("president")["status"] == "suspended"
    assert _state(world, original) == "executed"


@pytest.mark.parametrize("column", ["original", "both"])
def test_an_original_retargeted_by_a_dba_never_lets_a_stale_undo_run(
    world: World, database: Database, column: str
) -> None:
    """Attack F2 (session 14): after the undo was recorded, a DBA pointed the ORIGINAL's row
    at another account (one with no later change), so the later-change check looked there,
    and the stale undo lifted a later two-person suspension with one approval. The original
    is now checked against the log before it is used: the undo is cancelled saying so, a high
    `request_tampered` alert names the original, and the later suspension stands."""
    original = _suspended(world)
    pending = _undo(world, original)
    lift = _submit(world, "e-3003", "account.unsuspend", "X")
    _carried_out(world, lift, "e-9001")
    again = _submit(world, "e-3003", "account.suspend", "Y")
    _carried_out(world, again, "e-3001", "e-9001")
    assert world.chirp("president")["status"] == "suspended"
    retarget = "UPDATE requests SET account_ref = 'chirp:bob' WHERE id = :id"
    assert tamper(database, retarget, id=original) == 1
    if column == "both":  # the undo moved along with it: its own re-check catches that
        assert tamper(database, retarget, id=pending) == 1
    if column == "both":  # caught at the review already: the undo is not what was submitted
        with pytest.raises(Conflict, match=r"differs from its request\.submitted audit event"):
            world.review("e-9001", pending)
    else:
        world.review("e-9001", pending)
        if _state(world, pending) == RequestState.APPROVED.value:
            execute.execute(world.services, pending)
    assert world.chirp("president")["status"] == "suspended"
    assert _state(world, pending) == "cancelled"
    if column == "original":
        with world.services.database.read() as session:
            reason = session.get(RequestRow, pending).reason or ""  # type: ignore[union-attr]
            assert f"the request it undoes ({original}) is not what was submitted" in reason
            alerts = session.scalars(
                select(AlertRow).where(
                    AlertRow.detector == "request_tampered", AlertRow.request_id == original
                )
            ).all()
        assert alerts
        assert alerts[0].severity == "high"


def test_an_undo_of_an_undo_still_works(world: World) -> None:
    original = _suspended(world)
    first = _undo(world, original)
    _carried_out(world, first, "e-9001")
    assert world.chirp("president")["status"] == "active"
    redo = _undo(world, first)  # by its requester, Mei
    _carried_out(world, redo, "e-3001", "e-9001")
    assert _state(world, redo) == "executed", _state(world, redo)
    assert _state(world, first) == "reverted"
    assert world.chirp("president")["status"] == "suspended"


def test_the_refusal_names_no_undo_its_caller_may_not_see(world: World) -> None:
    """Lee (a contractor: never the undo's approver) asked for the suspension; Mei's undo of it
    is open. Lee's undo is refused without naming Mei's."""
    original = _suspended(world, by="c-3004")
    first = _undo(world, original)
    lee = world.actor("c-3004")
    with world.services.database.read() as session:
        row = session.get(RequestRow, first)
        assert row is not None
        hidden = not access.may_see(world.services, session, row, lee)
    with pytest.raises(Conflict) as refused:
        undo.undo(world.services, lee, original, "UNDO")
    assert hidden  # the premise: Lee may not open Mei's undo
    assert first not in str(refused.value)
    assert first not in str(vars(refused.value))
    assert f"another undo of request {original} is not yet ended" in str(refused.value)
    assert _undos(world, original) == [first]


def test_a_reverted_request_names_its_undo_only_to_whoever_may_see_it(world: World) -> None:
    """Attack F3 (session 14): once Mei's undo of Lee's suspension ran, the original's reason
    ("undone by request …") and its `request.reverted` event named the undo to Lee, who gets
    the unknown id's 404 for it. Lee now reads "another request"; Mei, who may see it, its id."""
    original = _suspended(world, by="c-3004")
    first = _undo(world, original)
    _carried_out(world, first, "e-9001")
    assert _state(world, original) == "reverted"
    lee, mei = world.actor("c-3004"), world.actor("e-3002")
    with world.services.database.read() as session:
        row = session.get(RequestRow, first)
        assert row is not None
        assert not access.may_see(world.services, session, row, lee)  # the premise
    seen_by_lee = views.visible_view(world.services, lee, original)
    assert first not in json.dumps(seen_by_lee)
    assert seen_by_lee["reason"] == "undone by another request"
    [reverted] = [e for e in seen_by_lee["timeline"] if e["kind"] == "request.reverted"]
    assert reverted["event"]["undo"] is None
    listed = views.list_requests(world.services, lee, views.ListFilter(account=ACCOUNT))
    assert first not in json.dumps(listed)
    seen_by_mei = views.visible_view(world.services, mei, original)
    assert seen_by_mei["reason"] == f"undone by request {first}"
