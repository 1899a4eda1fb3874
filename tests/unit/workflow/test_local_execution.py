"""A platform kept in foureyes' own database (the demo) is carried out inside the transaction
that claims the request and records its outcome (`execute._carry_out_here`): the platform's
change, `executed` and their audit events commit together or not at all. These tests try to
make the two disagree: a crash after the platform's write, a refusal, a transient failure, a
key already written behind foureyes' back. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.worlds import World

from foureyes import worker
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.errors import OutcomeUnknown
from foureyes.store.tables import ExecutionRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission


def approved_lock(world: World, account: str = "chirp:bob") -> str:
    """A support lead's lock of a standard account: allowed, left `approved` for the worker
    (submitted with `submit`, which does not carry it out)."""
    request_id = operations.submit(
        world.services, world.actor("e-2001"), Submission("account.lock", account)
    )
    assert operations.show(world.services, request_id)["state"] == "approved"
    return request_id


def applied(world: World, request_id: str) -> int:
    with world.services.database.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ChirpAppliedRow)
                .where(ChirpAppliedRow.idempotency_key == request_id)
            )
            or 0
        )


def attempts(world: World, request_id: str) -> list[tuple[int, str | None]]:
    with world.services.database.read() as session:
        rows = session.scalars(
            select(ExecutionRow)
            .where(ExecutionRow.request_id == request_id)
            .order_by(ExecutionRow.attempt)
        ).all()
        return [(row.attempt, row.outcome) for row in rows]


def kinds(world: World, request_id: str) -> list[str]:
    return [e["kind"] for e in operations.show(world.services, request_id)["timeline"]]


def test_the_platform_write_and_executed_commit_together(world: World) -> None:
    request_id = approved_lock(world)
    outcome = operations.execute(world.services, request_id, worker="w")
    assert outcome is not None
    assert outcome.state.value == "executed"
    assert world.chirp("bob")["status"] == "locked"
    assert applied(world, request_id) == 1
    assert attempts(world, request_id) == [(1, "executed")]
    assert kinds(world, request_id)[-2:] == ["request.executing", "request.executed"]


def test_a_crash_after_the_platform_write_leaves_nothing_of_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process fails after the platform's change, before the outcome is recorded: the
    whole transaction is rolled back (no `executing` left to reconcile, no write kept), and
    the next run carries it out exactly once."""
    request_id = approved_lock(world)
    chirp: Any = world.services.connectors["chirp"]
    real_write: Callable[..., Any] = chirp._write

    def writes_then_crashes(session: Any, order: Any) -> Any:
        real_write(session, order)
        raise RuntimeError("the process fails after the platform's write")

    with monkeypatch.context() as patched:
        patched.setattr(chirp, "_write", writes_then_crashes)
        with pytest.raises(OutcomeUnknown, match="is unknown"):
            operations.execute(world.services, request_id, worker="doomed")
    assert operations.show(world.services, request_id)["state"] == "approved"
    assert world.chirp("bob")["status"] != "locked"
    assert applied(world, request_id) == 0
    assert attempts(world, request_id) == []
    assert "request.executing" not in kinds(world, request_id)

    assert worker.run_once(world.services).executed == [request_id]
    assert applied(world, request_id) == 1
    assert world.chirp("bob")["status"] == "locked"
    assert worker.run_once(world.services).executed == []


def test_a_refusal_keeps_the_claim_and_the_failure_but_no_write(world: World) -> None:
    """The platform refuses: the attempt and `failed` are recorded with their events, and
    nothing is applied."""
    request_id = approved_lock(world)
    chirp: Any = world.services.connectors["chirp"]
    chirp.inject_failures(1, transient=False)
    outcome = operations.execute(world.services, request_id, worker="w")
    assert outcome is not None
    assert outcome.state.value == "failed"
    assert attempts(world, request_id) == [(1, "error")]
    assert kinds(world, request_id)[-2:] == ["request.executing", "request.failed"]
    assert applied(world, request_id) == 0
    assert world.chirp("bob")["status"] != "locked"


def test_a_transient_failure_is_retried_later_and_applies_once(world: World) -> None:
    request_id = approved_lock(world)
    chirp: Any = world.services.connectors["chirp"]
    chirp.inject_failures(1, transient=True)
    outcome = operations.execute(world.services, request_id, worker="w")
    assert outcome is not None
    assert outcome.state.value == "approved"
    assert attempts(world, request_id) == [(1, "error")]
    assert applied(world, request_id) == 0
    assert kinds(world, request_id)[-1] == "execution.retry"
    world.clock.advance(minutes=1)
    assert worker.run_once(world.services).executed == [request_id]
    assert attempts(world, request_id) == [(1, "error"), (2, "executed")]
    assert applied(world, request_id) == 1


def test_a_key_written_behind_foureyes_back_is_not_executed(world: World) -> None:
    """A row already holding the request's key on the platform (written by someone with the
    database): the platform's write collides and nothing is taken as executed."""
    request_id = approved_lock(world)
    with world.services.database.transaction() as session:
        session.add(
            ChirpAppliedRow(
                idempotency_key=request_id,
                action="account.suspend",
                account_id="alice",
                applied_at=world.clock.now,
                summary={},
                undo_params=None,
            )
        )
    outcome = operations.execute(world.services, request_id, worker="w")
    assert outcome is not None
    assert outcome.state.value == "failed"
    assert "was used for account.suspend" in (outcome.reason or "")
    assert world.chirp("bob")["status"] != "locked"
    assert attempts(world, request_id) == [(1, "error")]
