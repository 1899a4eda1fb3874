"""The governance connector (foureyes' own actions): each change is recorded under its
idempotency key in the same transaction, a repeat answers the record, and reconciliation asks
the record alone, never whether a pin or a staff attribute happens to look changed (issue #15
item 4). On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from foureyes.connectors.base import ExecutionOrder
from foureyes.errors import BadInput, ConnectorError, RecordAltered
from foureyes.store.database import Database
from foureyes.store.tables import GovernanceAppliedRow, PinRow, PolicyVersionRow, StaffRow
from foureyes.workflow.accounts import pinned_accounts
from foureyes.workflow.governance import GovernanceConnector
from tests.worlds import World, make_world


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


@pytest.fixture
def governance(world: World) -> GovernanceConnector:
    connector = world.services.connectors["foureyes"]
    assert isinstance(connector, GovernanceConnector)
    return connector


def pin(key: str, present: bool = True, account: str = "chirp:bob") -> ExecutionOrder:
    return ExecutionOrder(
        "foureyes.account.pin",
        "pins",
        {"account": account, "pin": "watchlist", "present": present},
        idempotency_key=key,
        approvers=("e-4001",),
        requester="e-9001",
    )


def pins(world: World, account: str = "chirp:bob") -> set[str]:
    with world.services.database.transaction() as session:
        return set(session.scalars(select(PinRow.pin).where(PinRow.account_ref == account)))


def test_a_pin_someone_else_set_is_not_this_request_applied(
    world: World, governance: GovernanceConnector
) -> None:
    mine, other = pin("req-mine"), pin("req-other")
    assert governance.reconcile(mine).applied is False
    governance.execute(other)
    assert pins(world) == {"watchlist"}
    assert governance.reconcile(mine).applied is False  # the pin is there: not by this request
    found = governance.reconcile(other)
    assert found.applied is True
    assert found.summary == {"account": "chirp:bob", "pin": "watchlist", "present": True}


@pytest.mark.parametrize(
    "account", ["chirp:nobody-here", "chirp:BOB", "chirp:bob ", "nosuch:zzz", "chirp"]
)
def test_a_pin_names_an_account_exactly_as_its_platform_does(
    governance: GovernanceConnector, account: str
) -> None:
    """Attack run on `foureyes pin`: pins on accounts that do not exist, or on another spelling
    of one, were approved and shown as protection that protected nothing."""
    with pytest.raises(BadInput):
        governance.validate(pin("req-x", account=account))
    governance.validate(pin("req-y", account="chirp:bob"))  # the platform's own name


def test_a_repeat_answers_the_record_and_changes_nothing(
    world: World, governance: GovernanceConnector
) -> None:
    first = governance.execute(pin("req-1"))
    governance.execute(pin("req-2", present=False))  # another request removes it
    assert pins(world) == set()
    assert governance.execute(pin("req-1")).summary == first.summary
    assert pins(world) == set()  # the repeat did not pin it again
    with pytest.raises(ConnectorError, match=r"was used for foureyes\.account\.pin"):
        governance.execute(
            ExecutionOrder("foureyes.staff.update", "staff", {"staff": "e-3001"}, "req-1")
        )
    reused = governance.reconcile(
        ExecutionOrder("foureyes.staff.update", "staff", {"staff": "e-3001"}, "req-1")
    )
    assert reused.applied is None
    assert "req-1" in reused.why


def test_a_staff_update_is_reconciled_from_its_record(
    world: World, governance: GovernanceConnector
) -> None:
    update = ExecutionOrder(
        "foureyes.staff.update",
        "staff",
        {"staff": "c-1001", "status": "suspended"},
        idempotency_key="req-staff",
        approvers=("e-4001",),
        requester="e-9001",
    )
    with world.services.database.transaction() as session:
        row = session.get(StaffRow, "c-1001")
        assert row is not None
        row.status = "suspended"  # the HR import got there first
    assert governance.reconcile(update).applied is False
    governance.execute(update)
    found = governance.reconcile(update)
    assert found.applied is True
    assert found.summary == {"staff": "c-1001", "before": {"status": "suspended"}}
    with world.services.database.transaction() as session:
        kept = session.get(GovernanceAppliedRow, "req-staff")
        assert kept is not None
        assert kept.action == "foureyes.staff.update"


def test_a_policy_version_naming_the_request_is_not_taken_for_its_record(
    world: World, governance: GovernanceConnector
) -> None:
    """Versions carry the request that made them, but only foureyes' sealed record says that
    it carried the request out: a version naming it without that record (written in, or an
    old one retargeted) is reported, never answered as applied (nor is the request run on top
    of it: tests/adversarial/test_dba_laundering.py)."""
    update = ExecutionOrder(
        "foureyes.policy.update", "policy", {"text": "version: 1"}, idempotency_key="req-policy"
    )
    assert governance.reconcile(update).applied is False
    with world.services.database.transaction() as session:
        first = session.get(PolicyVersionRow, 1)
        assert first is not None
        session.add(
            PolicyVersionRow(
                version=2,
                digest=first.digest,
                text=first.text,
                author="e-9001",
                request_id="req-policy",
                created_at=world.clock.now,
            )
        )
    with pytest.raises(RecordAltered, match="no record of carrying req-policy out"):
        governance.reconcile(update)
    with world.services.database.transaction() as session:
        assert session.get(GovernanceAppliedRow, "req-policy") is None


def test_pins_deleted_behind_foureyes_back_do_not_drop_out_of_the_list(
    world: World, governance: GovernanceConnector
) -> None:
    """Attack run: `GET /v1/pins` listed the pin rows still in the table, so rows a DBA
    deleted simply vanished from it. The log's seals name every pinned account: the list
    finds the deletion (RecordAltered, and the alert) instead of leaving the account out."""
    governance.execute(pin("req-list"))
    listed = pinned_accounts(world.services)
    assert listed == [{"account": "chirp:bob", "pins": ["watchlist"]}]
    assert pinned_accounts(world.services, "protected") == []
    with world.services.database.engine.begin() as dba:  # the DBA's own connection
        dba.execute(delete(PinRow).where(PinRow.account_ref == "chirp:bob"))
    with pytest.raises(RecordAltered):
        pinned_accounts(world.services)
