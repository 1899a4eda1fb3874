"""A submit the policy allows at once, on a platform kept in foureyes' database (the demo), is
carried out in the submit's own transaction (`execute.carry_out_at_once`): the request, its
claim, the platform's change, the outcome and all their audit events commit together, or
nothing of them does. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select
from tests.worlds import World

from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.core import redaction
from foureyes.errors import NotFound, OutcomeUnknown
from foureyes.notify import hooks
from foureyes.store.tables import EventRow, ExecutionRow, OutboxRow, RequestRow
from foureyes.workflow import operations
from foureyes.workflow.answered import submit_and_run, submit_run_or_replay
from foureyes.workflow.submit import Submission

LOCK = Submission("account.lock", "chirp:bob")  # a support lead's, allowed at once


@contextmanager
def writing_commits(world: World) -> Iterator[list[int]]:
    """Counts the COMMITs of transactions that wrote something (one item per COMMIT)."""
    engine = world.services.database.engine
    counted: list[int] = []

    def executed(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            conn.info["wrote"] = True

    def committed(conn: Any) -> None:
        if conn.info.pop("wrote", False):
            counted.append(1)

    def rolled_back(conn: Any) -> None:
        conn.info.pop("wrote", None)

    event.listen(engine, "after_cursor_execute", executed)
    event.listen(engine, "commit", committed)
    event.listen(engine, "rollback", rolled_back)
    try:
        yield counted
    finally:
        event.remove(engine, "after_cursor_execute", executed)
        event.remove(engine, "commit", committed)
        event.remove(engine, "rollback", rolled_back)


def count(world: World, table: Any, *where: Any) -> int:
    with world.services.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def kinds(world: World, request_id: str) -> list[str]:
    return [e["kind"] for e in operations.show(world.services, request_id)["timeline"]]


def test_an_allowed_request_is_recorded_and_carried_out_in_one_commit(world: World) -> None:
    actor = world.actor("e-2001")
    with writing_commits(world) as commits:
        request_id, outcome = submit_and_run(world.services, actor, LOCK)
    assert outcome is not None
    assert outcome.state.value == "executed"
    assert len(commits) == 1
    assert world.chirp("bob")["status"] == "locked"
    assert count(world, ChirpAppliedRow, ChirpAppliedRow.idempotency_key == request_id) == 1
    assert kinds(world, request_id)[:3] == [
        "request.submitted",
        "request.executing",
        "request.executed",
    ]
    # The log verifies with the grouped append (one head move for the three events).
    with world.services.database.read() as session:
        assert world.services.audit.head_problem(session) is None


def test_a_refusal_records_the_request_failed_and_changes_nothing(world: World) -> None:
    chirp: Any = world.services.connectors["chirp"]
    chirp.inject_failures(1, transient=False)
    with writing_commits(world) as commits:
        request_id, outcome = submit_and_run(world.services, world.actor("e-2001"), LOCK)
    assert outcome is not None
    assert outcome.state.value == "failed"
    assert len(commits) == 1
    assert world.chirp("bob")["status"] != "locked"
    assert count(world, ChirpAppliedRow, ChirpAppliedRow.idempotency_key == request_id) == 0
    assert kinds(world, request_id)[-2:] == ["request.executing", "request.failed"]


def test_a_crash_in_the_platform_write_leaves_nothing_at_all(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    chirp: Any = world.services.connectors["chirp"]
    real_write: Callable[..., Any] = chirp._write

    def writes_then_crashes(session: Any, order: Any) -> Any:
        real_write(session, order)
        raise RuntimeError("the process fails after the platform's write")

    events_before = count(world, EventRow)
    monkeypatch.setattr(chirp, "_write", writes_then_crashes)
    with pytest.raises(RuntimeError):
        submit_and_run(world.services, world.actor("e-2001"), LOCK)
    assert count(world, RequestRow) == 0
    assert count(world, ExecutionRow) == 0
    assert count(world, ChirpAppliedRow) == 0
    assert count(world, EventRow) == events_before
    assert world.chirp("bob")["status"] != "locked"


def test_a_failed_commit_leaves_nothing_and_names_the_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The COMMIT of the one transaction fails (nothing was committed): the answer is
    OutcomeUnknown naming the request, and none of the request, its claim, the platform's
    change or their events is in the store; submitting again carries it out once."""
    engine = world.services.database.engine
    dialect = engine.dialect
    real_commit = dialect.do_commit
    events_before = count(world, EventRow)
    armed: list[bool] = []

    def inserting(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO REQUESTS"):
            armed.append(True)

    def refuse_commit(dbapi_connection: Any) -> None:
        if not armed:
            real_commit(dbapi_connection)  # the reads before it
            return
        armed.clear()
        dbapi_connection.rollback()
        raise dialect.loaded_dbapi.OperationalError("the connection dropped during COMMIT")

    event.listen(engine, "after_cursor_execute", inserting)
    monkeypatch.setattr(dialect, "do_commit", refuse_commit)
    try:
        with pytest.raises(OutcomeUnknown) as lost:
            submit_and_run(world.services, world.actor("e-2001"), LOCK)
    finally:
        monkeypatch.setattr(dialect, "do_commit", real_commit)
        event.remove(engine, "after_cursor_execute", inserting)
    assert lost.value.details.get("request_id")
    assert count(world, RequestRow) == 0
    assert count(world, ExecutionRow) == 0
    assert count(world, ChirpAppliedRow) == 0
    assert count(world, EventRow) == events_before
    assert world.chirp("bob")["status"] != "locked"

    request_id, outcome = submit_and_run(world.services, world.actor("e-2001"), LOCK)
    assert outcome is not None
    assert outcome.state.value == "executed"
    assert count(world, ChirpAppliedRow, ChirpAppliedRow.idempotency_key == request_id) == 1


def submitted_with(world: World, staff_id: str, submission: Submission) -> Any:
    return submit_run_or_replay(world.services, world.actor(staff_id), submission)[0]


@pytest.mark.parametrize(
    ("staff_id", "submission", "failures"),
    [
        ("e-2001", LOCK, 0),  # a write, executed
        ("e-2001", LOCK, 1),  # the platform refuses it: failed
        ("e-2001", Submission("account.view", "chirp:alice", client="10.0.0.1"), 0),  # a read
    ],
)
def test_the_answer_built_by_the_submit_is_the_view_read_after_it(
    world: World, staff_id: str, submission: Submission, failures: int
) -> None:
    """`Submitted.view` (what the submit's transaction wrote, no read) is exactly the view its
    requester reads after the COMMIT: every field, the timeline's seqs, times and bodies."""
    if failures:
        chirp: Any = world.services.connectors["chirp"]
        chirp.inject_failures(failures, transient=False)
    submitted = submitted_with(world, staff_id, submission)
    assert submitted.carried_out is not None
    assert submitted.view is not None
    read = operations.show_to(world.services, world.actor(staff_id), submitted.request_id)
    assert submitted.view == read
    assert [e["kind"] for e in read["timeline"]][:2] == ["request.submitted", "request.executing"]
    answered = operations.show_submitted(world.services, world.actor(staff_id), submitted)
    assert answered == read
    answered["data"] = "the route's own"  # the answer is a copy: the submit's view unchanged
    assert "data" not in submitted.view


def test_another_reader_is_answered_from_the_store(world: World) -> None:
    """The built view is its requester's: anyone else is answered as `show_to` answers them
    (here, someone who may not see it: NotFound, as for an unknown id)."""
    submitted = submitted_with(world, "e-2001", LOCK)
    with pytest.raises(NotFound):
        operations.show_submitted(world.services, world.actor("e-2002"), submitted)


def test_the_requester_is_told_with_the_card_a_fresh_read_builds(world: World) -> None:
    """The requester's `request.executed` card, built in the submit's transaction from what it
    knows (`notify.hooks.recorded_here`: no person or ticket read), is the card built by
    reading the store after the COMMIT."""
    submitted = submitted_with(world, "e-2001", LOCK)
    with world.services.database.read() as session:
        told = session.scalars(
            select(OutboxRow).where(
                OutboxRow.to_staff == "e-2001", OutboxRow.kind == "request.executed"
            )
        ).all()
        assert len(told) == 1
        row = session.get(RequestRow, submitted.request_id)
        assert row is not None
        params = redaction.notified_params(world.services, session, row)
        fresh = hooks.request_card(
            session, row, "Your request is executed", params, to_requester=True
        )
    assert told[0].details == fresh
    assert fresh["requester_name"]


# What one allowed submit carried out at once costs the store (`bench/submit.py` measures the
# whole route's), and the answer read from memory: bounds that hold what was cut.
STATEMENTS = {
    ("sqlite", "account.lock"): 20,
    ("postgresql", "account.lock"): 20,
    ("sqlite", "account.view"): 15,
    ("postgresql", "account.view"): 15,
}


@pytest.mark.parametrize("action", ["account.lock", "account.view"])
def test_an_allowed_submit_carried_out_at_once_makes_few_statements(
    world: World, action: str
) -> None:
    engine = world.services.database.engine
    actor = world.actor("e-2001")
    submitted_with(world, "e-2001", LOCK)  # first use: policy compiled, caches filled
    made: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        made.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", executed)
    try:
        submitted, outcome = submit_run_or_replay(
            world.services, actor, Submission(action, "chirp:alice")
        )
        operations.show_submitted(world.services, actor, submitted)
    finally:
        event.remove(engine, "before_cursor_execute", executed)
    assert outcome is not None
    assert outcome.state.value == "executed"
    assert len(made) <= STATEMENTS[(engine.dialect.name, action)], "\n".join(made)
    # The answer reads nothing again: no request row, no timeline.
    assert not [s for s in made if s.startswith("SELECT requests.id")]
    assert not [s for s in made if s.startswith("SELECT audit_events.seq")]
    if action == "account.view":
        # A read needs no savepoint: the claim is inserted once with its outcome and the
        # request updated once after its insert (the ORM's changes flushed together).
        assert not [s for s in made if "SAVEPOINT" in s]
        updates = [s for s in made if s.startswith("UPDATE requests")]
        claims = [s for s in made if s.startswith("INSERT INTO executions")]
        assert (len(updates), len(claims)) == (1, 1)
        assert not [s for s in made if s.startswith("UPDATE executions")]
