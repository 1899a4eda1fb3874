"""A process killed (SIGKILL) during the platform call: after restart the request is reconciled
to the platform's real state, and nothing is executed twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from tests.worlds import World

from foureyes import worker
from foureyes.connectors.demo_tables import ChirpAppliedRow as AppliedRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission

pytestmark = pytest.mark.pg_only

DOOMED = textwrap.dedent(
    """
    import sys, time
    from foureyes.store.database import Database
    from foureyes import bootstrap
    from foureyes.workflow import operations

    url, request_id, when = sys.argv[1], sys.argv[2], sys.argv[3]
    services = bootstrap.build_services(Database(url), connectors={"chirp": ("demo", {})})
    demo = services.connectors["chirp"]
    real_execute = demo.execute

    def dies_during_the_call(order):
        if when == "after":
            real_execute(order)          # the platform has applied it ...
        print("IN CALL", flush=True)
        time.sleep(600)                  # ... and the process is killed before it hears back

    demo.execute = dies_during_the_call
    demo.local_execution = lambda: None  # called outside the transaction, as a remote one is
    operations.execute(services, request_id, worker="doomed")
    """
)


def run_and_kill(world: World, request_id: str, when: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", DOOMED, world.services.database.url, request_id, when],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "IN CALL", line
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=300)
    assert process.returncode == -signal.SIGKILL


def applied(world: World, request_id: str) -> int:
    with world.services.database.transaction() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(AppliedRow)
                .where(AppliedRow.idempotency_key == request_id)
            )
            or 0
        )


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_kill_during_the_platform_call_is_reconciled(world: World, when: str) -> None:
    world.clock.now = datetime.now(UTC)
    request_id = operations.submit(
        world.services, world.actor("e-2001"), Submission("account.lock", "chirp:bob")
    )
    run_and_kill(world, request_id, when)
    assert operations.show(world.services, request_id)["state"] == "executing"

    # The doomed process claimed the request by the real clock, after its own (possibly slow)
    # start: the restarted worker looks from that moment on, once the claim has gone stale.
    world.clock.now = datetime.now(UTC) + world.services.execution_lease + timedelta(seconds=5)
    tick = worker.run_once(world.services)  # the restarted worker
    assert tick.reconciled == [request_id]
    if when == "before":  # not applied: it is simply run again, once
        assert worker.run_once(world.services).executed == [request_id]
    view = operations.show(world.services, request_id)
    assert view["state"] == "executed"
    assert world.chirp("bob")["status"] == "locked"
    assert applied(world, request_id) == 1
    kinds = [e["kind"] for e in view["timeline"]]
    assert "request.reconciled" in kinds
    assert kinds[-1] in {"request.reconciled", "request.executed"}
