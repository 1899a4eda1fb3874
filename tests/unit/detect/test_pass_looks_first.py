"""On SQLite a detector pass that raises nothing looks at its events in a read transaction and
holds the write lock (the whole file, which every submit waits for) only to move its cursor
(`detect.pipeline._pass`); anything it would store makes it the whole pass in one write
transaction, and a cursor moved meanwhile is looked at again: no event skipped, none twice."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from foureyes import detect
from foureyes.detect import pipeline
from foureyes.store.tables import AlertRow, DetectorStateRow, EventRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.worlds import World

sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def views(world: World, count: int, account: str = "bob") -> None:
    for _ in range(count):
        submission = Submission("account.view", f"chirp:{account}")
        operations.submit(world.services, world.actor("e-2001"), submission)


def touch_a_vit_account(world: World) -> None:
    """A request on a VIT account: `protected_touched` flags it."""
    submission = Submission("account.suspend", "chirp:president")
    operations.submit(world.services, world.actor("e-3001"), submission)


def written_events_read(world: World) -> list[str]:
    """The statements that read the log's events inside write transactions, from now on."""
    found: list[str] = []

    def seen(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        writing = not conn.get_execution_options().get("foureyes_read_only", False)
        if writing and "FROM audit_events" in statement and "seq >" in statement:
            found.append(statement)

    event.listen(world.services.database.engine, "before_cursor_execute", seen)
    return found


def cursor_at(world: World) -> int:
    with world.services.database.read() as session:
        return int(session.scalar(select(DetectorStateRow.cursor)) or 0)


def last_seq(world: World) -> int:
    with world.services.database.read() as session:
        return int(session.scalar(select(EventRow.seq).order_by(EventRow.seq.desc())) or 0)


@sqlite_only
def test_a_quiet_pass_reads_its_events_outside_the_write_lock(world: World) -> None:
    detect.run(world.services)
    views(world, 5)
    read_while_writing = written_events_read(world)
    assert detect.run(world.services) == []
    assert read_while_writing == []
    assert cursor_at(world) == last_seq(world) - 1  # all read; its own record is the last


@sqlite_only
def test_a_pass_that_raises_an_alert_raises_it_in_the_write_transaction(world: World) -> None:
    detect.run(world.services)
    touch_a_vit_account(world)
    read_while_writing = written_events_read(world)
    raised = detect.run(world.services)
    assert raised
    assert read_while_writing  # the whole pass, in one write transaction
    with world.services.database.read() as session:
        detectors = set(session.scalars(select(AlertRow.detector)))
    assert "protected_touched" in detectors


@sqlite_only
def test_a_cursor_moved_between_the_look_and_the_move_is_looked_at_again(
    world: World,
) -> None:
    detect.run(world.services)
    views(world, 3)
    looked = pipeline._look_ahead(world.services, pipeline.BATCH)
    assert looked is not None
    detect.run(world.services)  # another worker's pass moved the cursor meanwhile
    moved = cursor_at(world)
    assert pipeline._advance(world.services, looked) is None  # not moved back
    assert cursor_at(world) == moved


@sqlite_only
def test_a_looked_ahead_pass_stores_nothing_when_an_alert_is_due(world: World) -> None:
    detect.run(world.services)
    touch_a_vit_account(world)
    before = cursor_at(world)
    looked = pipeline._look_ahead(world.services, pipeline.BATCH)
    assert looked is not None
    assert looked.stopped
    assert cursor_at(world) == before
    with world.services.database.read() as session:
        assert session.scalar(select(AlertRow.id).limit(1)) is None


@sqlite_only
def test_a_look_ahead_stops_before_the_event_that_raises_and_the_pass_goes_on_from_there(
    world: World,
) -> None:
    detect.run(world.services)
    views(world, 3)
    quiet_until = last_seq(world)
    touch_a_vit_account(world)
    looked = pipeline._look_ahead(world.services, pipeline.BATCH)
    assert looked is not None
    assert looked.stopped
    assert looked.last == quiet_until  # the quiet events only
    raised = detect.run(world.services)
    assert len(raised) == 1  # the VIT request's alert, once
    assert detect.run(world.services) == []
    assert cursor_at(world) == last_seq(world) - 1
