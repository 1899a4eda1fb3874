"""Reconciliation's outcomes in the lifecycle (on SQLite and PostgreSQL): what a platform's
record of the key says decides, and the log keeps what the platform answered. The connectors'
own answers are tested in tests/unit/connectors/; the kill -9 on PostgreSQL in
tests/faults/test_reconcile_credit.py."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from tests.conftest import EXAMPLES
from tests.worlds import World, as_remote

from foureyes import worker
from foureyes.connectors.base import ExecutionOrder, ExecutionResult, Reconciliation
from foureyes.errors import ConnectorError
from foureyes.store.tables import AlertRow
from foureyes.workflow import operations
from foureyes.workflow.lease import INTERRUPTED_ALERT
from foureyes.workflow.submit import Submission


def interrupted(
    world: World, monkeypatch: pytest.MonkeyPatch, request_id: str, platform: str, *, after: bool
) -> None:
    """Carry `request_id` out with a process that dies in the platform call, after the platform
    applied it (`after`) or before."""
    connector = world.services.connectors[platform]
    real = connector.execute

    def dies(order: ExecutionOrder) -> ExecutionResult:
        if after:
            real(order)
        raise SystemExit("killed during the platform call")

    with monkeypatch.context() as patched:
        patched.setattr(connector, "execute", dies)
        as_remote(patched, connector)
        with pytest.raises(SystemExit):
            operations.execute(world.services, request_id, worker="doomed")
    assert operations.show(world.services, request_id)["state"] == "executing"
    world.clock.advance(seconds=world.services.execution_lease.total_seconds() + 1)


def interrupted_alerts(world: World, request_id: str) -> list[AlertRow]:
    with world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.request_id == request_id, AlertRow.detector == INTERRUPTED_ALERT
                )
            )
        )


def test_a_policy_update_applied_before_the_crash_is_in_force_after_reconciliation(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconciled event carries the summary the governance record kept (version, digest),
    which is what vouches for the new policy text: without it the policy in force would be
    refused as not the one the log says was installed."""
    text = (EXAMPLES / "policy.yaml").read_text().replace("limit: 50", "limit: 40")
    request_id = operations.submit(
        world.services,
        world.actor("e-9001"),
        Submission("foureyes.policy.update", "foureyes:policy", {"text": text}, "INC-9"),
    )
    assert world.review("e-4001", request_id, step_up=False) == "approved"
    interrupted(world, monkeypatch, request_id, "foureyes", after=True)
    assert worker.run_once(world.services).reconciled == [request_id]
    view = operations.show(world.services, request_id)
    assert view["state"] == "executed"
    assert "shows it applied" in view["reason"]
    with world.services.database.transaction() as session:
        version, policy = world.services.policy_in_force(session)
    assert version == 2
    assert policy.quotas[0].limit == 40
    (alert,) = interrupted_alerts(world, request_id)
    assert alert.severity == "medium"


def test_a_platform_that_cannot_be_asked_now_is_asked_again_later(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = operations.submit(
        world.services, world.actor("e-2001"), Submission("account.lock", "chirp:bob")
    )
    interrupted(world, monkeypatch, request_id, "chirp", after=True)
    chirp = world.services.connectors["chirp"]
    real = chirp.reconcile
    calls: list[str] = []

    def down_once(order: ExecutionOrder) -> Reconciliation:
        calls.append(order.idempotency_key)
        if len(calls) == 1:
            raise ConnectorError("chirp is unavailable", transient=True)
        return real(order)

    monkeypatch.setattr(chirp, "reconcile", down_once)
    assert worker.run_once(world.services).reconciled == []
    assert operations.show(world.services, request_id)["state"] == "executing"
    assert interrupted_alerts(world, request_id) == []
    # The reconciler held the attempt for a lease while it asked; once that lapses, again.
    assert worker.run_once(world.services).reconciled == []
    world.clock.advance(seconds=world.services.execution_lease.total_seconds() + 1)
    assert worker.run_once(world.services).reconciled == [request_id]
    assert calls == [request_id, request_id]
    assert operations.show(world.services, request_id)["state"] == "executed"
    assert len(interrupted_alerts(world, request_id)) == 1
