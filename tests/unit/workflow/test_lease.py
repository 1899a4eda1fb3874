"""The execution lease (issue #15 item 8): a process carrying out a request holds it and renews
the hold while its platform call runs, so a call longer than the lease is not reconciled under
it; an execution whose process stopped is reconciled once the lease has lapsed, and a call that
comes back after that finishes nothing it no longer holds. On SQLite and PostgreSQL.

The lease is set short (a fraction of a second, so the heartbeat beats several times a second),
and the test's clock is moved far beyond it: nothing waits on time, only on the heartbeat having
renewed the lease past the moved clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.worlds import World, as_remote

from foureyes import worker
from foureyes.bootstrap import services_for
from foureyes.config import Settings
from foureyes.connectors.base import ExecutionOrder, ExecutionResult
from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.errors import BadInput, Conflict
from foureyes.store.tables import AlertRow, ExecutionRow
from foureyes.workflow import operations
from foureyes.workflow.execute import ExecutionOutcome
from foureyes.workflow.lease import INTERRUPTED_ALERT
from foureyes.workflow.submit import Submission

SHORT_LEASE = timedelta(seconds=0.3)  # the heartbeat renews it every 0.1 s
HANG_GUARD = 300.0  # only keeps a broken test from hanging: nothing alive reaches it


def wait_for(what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass
class SlowPlatform:
    """Wraps the demo platform's `execute`: the first call waits at the platform (before
    applying) until the test releases it; later calls go straight through."""

    real: Callable[[ExecutionOrder], ExecutionResult]
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, order: ExecutionOrder) -> ExecutionResult:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(HANG_GUARD), "never released"
        return self.real(order)


@pytest.fixture
def slow(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowPlatform]:
    chirp = world.services.connectors["chirp"]
    platform = SlowPlatform(chirp.execute)
    monkeypatch.setattr(chirp, "execute", platform)
    as_remote(monkeypatch, chirp)
    yield platform
    platform.release.set()


def approved_lock(world: World, account: str = "chirp:bob") -> str:
    """A support lead's lock of a standard account: allowed, approved at once."""
    request_id = operations.submit(
        world.services, world.actor("e-2001"), Submission("account.lock", account)
    )
    assert operations.show(world.services, request_id)["state"] == "approved"
    return request_id


def in_thread(world: World, request_id: str) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(operations.execute(world.services, request_id, worker="slow"))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def attempts(world: World, request_id: str) -> list[ExecutionRow]:
    with world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(ExecutionRow)
                .where(ExecutionRow.request_id == request_id)
                .order_by(ExecutionRow.attempt)
            )
        )


def lease_until(world: World, request_id: str) -> datetime | None:
    return attempts(world, request_id)[-1].lease_until


def applied(world: World, request_id: str) -> int:
    with world.services.database.transaction() as session:
        count = session.scalar(
            select(func.count())
            .select_from(ChirpAppliedRow)
            .where(ChirpAppliedRow.idempotency_key == request_id)
        )
    return int(count or 0)


def alerts(world: World, request_id: str) -> list[AlertRow]:
    with world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(AlertRow)
                .where(AlertRow.request_id == request_id, AlertRow.detector == INTERRUPTED_ALERT)
                .order_by(AlertRow.id)
            )
        )


def state(world: World, request_id: str) -> str:
    return str(operations.show(world.services, request_id)["state"])


def test_a_platform_call_longer_than_the_lease_is_not_reconciled_while_it_runs(
    world: World, slow: SlowPlatform
) -> None:
    world.services.execution_lease = SHORT_LEASE
    request_id = approved_lock(world)
    thread, box = in_thread(world, request_id)
    assert slow.entered.wait(HANG_GUARD)
    claimed = lease_until(world, request_id)
    assert claimed == world.clock.now + SHORT_LEASE

    # The call has now run for 200 leases by foureyes' clock; its process renews the hold.
    world.clock.advance(seconds=60)
    wait_for(
        "the heartbeat to renew the lease",
        lambda: (until := lease_until(world, request_id)) is not None and until > world.clock.now,
    )
    tick = worker.run_once(world.services)
    assert request_id not in tick.reconciled
    assert state(world, request_id) == "executing"
    with pytest.raises(Conflict, match="is being carried out"):
        operations.reconcile(world.services, request_id)

    slow.release.set()
    thread.join(HANG_GUARD)
    assert isinstance(box[0], ExecutionOutcome)
    assert box[0].state.value == "executed"
    assert state(world, request_id) == "executed"
    assert applied(world, request_id) == 1
    assert alerts(world, request_id) == []
    (attempt,) = attempts(world, request_id)
    assert attempt.outcome == "executed"


def test_an_execution_whose_process_died_is_reconciled_once_its_lease_lapses(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies in the platform call, before the platform applied anything: nothing
    renews the lease. Before it lapses the worker leaves the request alone; after, it asks the
    platform's record of the key (none), sends the request back to run, and raises an alert."""
    world.services.execution_lease = timedelta(minutes=5)
    request_id = approved_lock(world)
    chirp = world.services.connectors["chirp"]

    def dies(order: ExecutionOrder) -> ExecutionResult:
        raise SystemExit("killed during the platform call")

    with monkeypatch.context() as patched:
        patched.setattr(chirp, "execute", dies)
        as_remote(patched, chirp)
        with pytest.raises(SystemExit):
            operations.execute(world.services, request_id, worker="doomed")
    assert state(world, request_id) == "executing"

    world.clock.advance(minutes=4)  # within the lease: maybe only slow
    assert request_id not in worker.run_once(world.services).reconciled
    assert state(world, request_id) == "executing"

    world.clock.advance(minutes=2)
    assert worker.run_once(world.services).reconciled == [request_id]
    view = operations.show(world.services, request_id)
    assert view["state"] == "approved"
    assert "no record of its idempotency key" in view["reason"]
    (alert,) = alerts(world, request_id)
    assert alert.severity == "medium"
    assert [a.outcome for a in attempts(world, request_id)] == ["interrupted"]

    assert worker.run_once(world.services).executed == [request_id]
    assert state(world, request_id) == "executed"
    assert world.chirp("bob")["status"] == "locked"
    assert applied(world, request_id) == 1


@pytest.mark.parametrize("first", ["the late call", "the new run"])
def test_a_call_that_outlives_its_lease_finishes_nothing_it_no_longer_holds(
    world: World, slow: SlowPlatform, first: str
) -> None:
    """A process hangs in the platform call long enough for its lease to lapse (its heartbeat
    stopped too: the lease here is too long to beat within the test). Reconciliation takes the
    attempt over and sends the request back; it runs again. Whichever of the hung call and the
    new run reaches the platform first applies the lock, the other replays it (same key); the
    hung call's answer moves nothing, and if it applied the lock while the request was not
    executed, security hears of it."""
    world.services.execution_lease = timedelta(minutes=2)
    request_id = approved_lock(world)
    thread, box = in_thread(world, request_id)
    assert slow.entered.wait(HANG_GUARD)
    world.clock.advance(minutes=3)
    assert worker.run_once(world.services).reconciled == [request_id]
    assert state(world, request_id) == "approved"
    assert [a.outcome for a in attempts(world, request_id)] == ["interrupted"]

    if first == "the late call":
        slow.release.set()  # it applies the lock now, under its key
        thread.join(HANG_GUARD)
        assert isinstance(box[0], ExecutionOutcome)
        assert box[0].state.value == "approved"  # it moved nothing
        assert [a.severity for a in alerts(world, request_id)] == ["medium", "high"]
        assert worker.run_once(world.services).executed == [request_id]  # replays
    else:
        assert worker.run_once(world.services).executed == [request_id]
        slow.release.set()  # it finds the key applied, and replays
        thread.join(HANG_GUARD)
        assert isinstance(box[0], ExecutionOutcome)
        assert box[0].state.value == "executed"
        assert [a.severity for a in alerts(world, request_id)] == ["medium"]
    assert state(world, request_id) == "executed"
    assert applied(world, request_id) == 1
    outcomes = sorted(str(a.outcome) for a in attempts(world, request_id))
    assert outcomes == ["executed", "late_executed"]
    kinds = [e["kind"] for e in operations.show(world.services, request_id)["timeline"]]
    assert kinds.count("request.executed") == 1


def test_the_lease_is_a_setting(tmp_path: Path) -> None:
    assert Settings.load(tmp_path, env={}).execution_lease_delta == timedelta(minutes=2)
    short = Settings.load(tmp_path, env={"FOUREYES_EXECUTION_LEASE": "5"})
    assert short.execution_lease_delta == timedelta(seconds=5)
    services = services_for(short)
    try:
        assert services.execution_lease == timedelta(seconds=5)
    finally:
        services.database.dispose()
    (tmp_path / "foureyes.toml").write_text("execution_lease = 0.5\n", encoding="utf-8")
    with pytest.raises(BadInput, match="execution_lease"):
        Settings.load(tmp_path, env={})
