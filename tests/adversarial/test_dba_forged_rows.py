"""A DBA writes rows in to block honest work (attacker s3, S4 and S6), on SQLite and PostgreSQL
(`database`; `tests.dba` plays the DBA).

S4: ten `quota_usage` rows naming made-up requests filled Mei's quota: her deactivation of the
president was denied "over quota", with no alert. Now a count that would deny is made again
from the rows the log vouches for (`workflow.quota_log`): forged rows are not counted and are
one high `request_tampered` alert; the honest limit still holds.

S6: a row written in as `executing` on the account made the honest undo be cancelled ("another
execution on the account is still in flight"), each time it was forged again. Now each
`executing` row is judged by its log (`workflow.flight_log`): one the log does not say is in
flight holds nothing and is alerted once; a genuine one still holds the undo.

The cast: Mei (e-3002), Tomas (e-3001), Sam (e-3003): trust & safety; Jo (e-9001) a lead."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import select, text

from foureyes.core.events import lock_request, move
from foureyes.model import RequestState
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, BatchItemRow, QuotaUsageRow, RequestRow
from foureyes.workflow import (
    batch_execute,
    batch_quota,
    batch_undo,
    batch_undo_guard,
    execute,
    integrity,
    operations,
    undo,
)
from foureyes.workflow.submit import Denied, Submission
from tests.batches import approved, review, seed_ring
from tests.batches import submit as submit_batch
from tests.conftest import EXAMPLES
from tests.dba import dba, tamper
from tests.worlds import START, World, as_remote, install_next_policy, make_world

PRESIDENT = "chirp:president"
TOMAS, MEI, SAM, JO = "e-3001", "e-3002", "e-3003", "e-9001"
QUOTA = "significant-requests-per-person"


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database)


def _row(world: World, request_id: str) -> RequestRow:
    with world.services.database.read() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row


def _tamper_alerts(world: World) -> list[AlertRow]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(AlertRow)
                .where(AlertRow.detector.in_([integrity.DETECTOR, "batch_tampered"]))
                .order_by(AlertRow.id)
            )
        )


def _quota_alerts(world: World) -> list[AlertRow]:
    return [a for a in _tamper_alerts(world) if "quota_usage" in a.summary]


def _deactivate(world: World, by: str = MEI, account: str = PRESIDENT) -> str:
    return operations.submit(
        world.services,
        world.actor(by),
        Submission(action="account.deactivate", account=account, justification="CASE-12"),
    )


def _usage(
    world: World, key: str, staff: str, request_id: str, at: datetime, quota: str = QUOTA
) -> None:
    """The attacker's INSERT into quota_usage."""
    tamper(
        world.services.database,
        "INSERT INTO quota_usage (quota_id, key, staff_id, request_id, at) "
        "VALUES (:quota, :key, :staff, :request, :at)",
        quota=quota,
        key=key,
        staff=staff,
        request=request_id,
        at=at.replace(tzinfo=None),
    )


def _real_ids(world: World, staff: str) -> list[str]:
    with world.services.database.read() as session:
        return list(
            session.scalars(select(QuotaUsageRow.request_id).where(QuotaUsageRow.staff_id == staff))
        )


# --- S4: quotas ---------------------------------------------------------------------------


def _made_up(world: World) -> None:
    for _ in range(10):
        _usage(world, MEI, MEI, str(uuid.uuid4()), world.clock())


def _dated_ahead(world: World) -> None:
    for _ in range(10):
        _usage(world, MEI, MEI, str(uuid.uuid4()), world.clock() + timedelta(days=30))


def _copies_of_one_real(world: World) -> None:
    _deactivate(world, MEI)
    [real] = _real_ids(world, MEI)
    for _ in range(9):
        _usage(world, MEI, MEI, real, world.clock())


def _someone_elses(world: World) -> None:
    for _ in range(2):
        _deactivate(world, TOMAS)
    for real in _real_ids(world, TOMAS):
        for _ in range(5):
            _usage(world, MEI, MEI, real, world.clock())


def _an_uncounted_action(world: World) -> None:
    """Mei's real request of an action the quota does not count (a suspension)."""
    real = operations.submit(
        world.services,
        world.actor(MEI),
        Submission(action="account.suspend", account="chirp:bob", justification="CASE-9"),
    )
    for _ in range(10):
        _usage(world, MEI, MEI, real, world.clock())


def _real_rows_redated(world: World) -> None:
    """Ten real uses an hour and more ago, moved into the window: the quota kept full."""
    for _ in range(10):
        _deactivate(world, MEI)
    world.clock.advance(minutes=61)
    tamper(
        world.services.database,
        "UPDATE quota_usage SET at = :at WHERE staff_id = :staff",
        at=world.clock().replace(tzinfo=None),
        staff=MEI,
    )


FORGERIES: dict[str, Callable[[World], None]] = {
    "made-up": _made_up,
    "dated-ahead": _dated_ahead,
    "copies-of-one-real": _copies_of_one_real,
    "someone-elses": _someone_elses,
    "uncounted-action": _an_uncounted_action,
    "real-rows-redated": _real_rows_redated,
}


@pytest.mark.parametrize("forge", list(FORGERIES.values()), ids=list(FORGERIES))
def test_forged_usage_rows_deny_nobody_and_are_alerted_once(
    world: World, forge: Callable[[World], None]
) -> None:
    forge(world)
    # A dry run answers what the submit will, and alerts nothing (it only reads).
    dry = operations.dry_run(
        world.services,
        world.actor(MEI),
        Submission(action="account.deactivate", account=PRESIDENT, justification="CASE-12"),
    )
    assert dry.outcome.value == "pending", dry.to_dict()
    assert _quota_alerts(world) == []
    first = _deactivate(world)
    assert _row(world, first).state == "pending"
    [alert] = _quota_alerts(world)
    assert alert.severity == "high"
    assert alert.staff_id == MEI
    assert f"quota {QUOTA}" in alert.summary
    # Again, with the same forged rows: no second alert.
    world.clock.advance(minutes=1)
    assert _row(world, _deactivate(world)).state == "pending"
    assert len(_quota_alerts(world)) == 1


def test_the_honest_limit_still_denies_and_forged_rows_do_not_add_to_it(world: World) -> None:
    for _ in range(10):
        _deactivate(world, MEI)
        world.clock.advance(seconds=1)
    with pytest.raises(Denied, match=rf"quota {QUOTA}: .*\(e-3002 has 10\)"):
        _deactivate(world)
    assert _tamper_alerts(world) == []  # the honest count is no tampering
    for _ in range(5):
        _usage(world, MEI, MEI, str(uuid.uuid4()), world.clock() + timedelta(days=1))
    with pytest.raises(Denied, match=r"\(e-3002 has 10\)") as denied:
        _deactivate(world)
    # It resets when the oldest real use leaves the window (forged rows dated a day ahead
    # would have put it a day later).
    assert f"it resets at {(START + timedelta(hours=1)).isoformat()}" in str(denied.value)
    assert len(_quota_alerts(world)) == 1
    # One real use leaves the window: Mei may ask again, the forged rows notwithstanding.
    world.clock.advance(minutes=60)
    assert _row(world, _deactivate(world)).state == "pending"


def _install_quota(world: World, spec: dict[str, Any]) -> None:
    document = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    document["quotas"].append(spec)
    install_next_policy(
        world.services, yaml.safe_dump(document, sort_keys=False, width=1_000_000), world.clock()
    )


PEOPLE = {
    "id": "two-people-per-account",
    "actions": ["account.deactivate"],
    "per": "account",
    "limit": 2,
    "window": "1h",
}


def test_forged_people_on_an_account_block_nobody(world: World) -> None:
    _install_quota(world, PEOPLE)
    for person in ("x-1", "x-2", "x-3"):
        _usage(world, PRESIDENT, person, str(uuid.uuid4()), world.clock(), PEOPLE["id"])
    assert _row(world, _deactivate(world)).state == "pending"
    [alert] = _quota_alerts(world)
    assert alert.account_ref == PRESIDENT
    # The honest limit holds: Tomas makes two people; Sam is a third; Mei may go on.
    assert _row(world, _deactivate(world, TOMAS)).state == "pending"
    with pytest.raises(Denied, match="quota two-people-per-account"):
        _deactivate(world, SAM)
    assert _row(world, _deactivate(world, MEI)).state == "pending"
    assert len(_quota_alerts(world)) == 1


SUSPENSIONS = {
    "id": "suspensions",
    "actions": ["account.suspend"],
    "per": "staff",
    "limit": 4,
    "window": "1h",
}


def test_forged_rows_do_not_refuse_a_batch_and_are_alerted(world: World) -> None:
    _install_quota(world, SUSPENSIONS)
    ring = seed_ring(world, 5)
    for _ in range(4):
        _usage(world, TOMAS, TOMAS, str(uuid.uuid4()), world.clock(), "suspensions")
    batch_id = submit_batch(world, ring[:2])
    assert batch_id
    [alert] = _quota_alerts(world)
    assert alert.staff_id == TOMAS
    # The items' own rows are vouched for by the batch's event: two more fill the quota ...
    submit_batch(world, ring[2:4])
    # ... and the fifth is over it, honestly (no new alert; the refusal rolled back, the
    # alert it found was raised apart).
    with pytest.raises(batch_quota.BatchOverQuota, match="e-3001 has 4"):
        submit_batch(world, ring[4:])
    assert len(_quota_alerts(world)) == 1


def test_a_batch_refused_honestly_still_alerts_the_forged_rows(world: World) -> None:
    _install_quota(world, SUSPENSIONS)
    ring = seed_ring(world, 5)
    submit_batch(world, ring[:4])
    for _ in range(3):
        _usage(world, TOMAS, TOMAS, str(uuid.uuid4()), world.clock(), "suspensions")
    with pytest.raises(batch_quota.BatchOverQuota, match="e-3001 has 4"):
        submit_batch(world, ring[4:])
    [alert] = _quota_alerts(world)
    assert "3 quota_usage row(s)" in alert.summary


def test_more_items_counted_than_the_batch_has_are_forged(world: World) -> None:
    """Rows naming real items of a real batch, beyond its items (a DBA adds item rows)."""
    _install_quota(world, SUSPENSIONS)
    ring = seed_ring(world, 3)
    batch_id = submit_batch(world, ring[:1])
    with dba(world.services.database) as connection:
        item = dict(
            connection.execute(
                text("SELECT * FROM batch_items WHERE batch_id = :id"), {"id": batch_id}
            )
            .mappings()
            .one()
        )
        for position in (1, 2, 3):
            extra = {**item, "id": str(uuid.uuid4()), "position": position}
            extra = {
                k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in extra.items()
            }
            columns = ", ".join(extra)
            values = ", ".join(f":{c}" for c in extra)
            connection.execute(
                text(f"INSERT INTO batch_items ({columns}) VALUES ({values})"), extra
            )
            connection.execute(
                text(
                    "INSERT INTO quota_usage (quota_id, key, staff_id, request_id, at) "
                    "VALUES ('suspensions', :key, :key, :item, :at)"
                ),
                {"key": TOMAS, "item": extra["id"], "at": world.clock().replace(tzinfo=None)},
            )
    submit_batch(world, ring[1:3])  # 1 real + 2: within 4
    [alert] = _quota_alerts(world)
    assert "more counted items than its batch.submitted event" in alert.summary


# --- S6: a forged `executing` row on the account ----------------------------------------------


def _suspended(world: World) -> str:
    request_id = operations.submit(
        world.services,
        world.actor(TOMAS),
        Submission(action="account.suspend", account=PRESIDENT, justification="CASE-3"),
    )
    world.review(MEI, request_id)
    world.review(SAM, request_id)
    if _row(world, request_id).state == "approved":
        execute.execute(world.services, request_id)
    assert _row(world, request_id).state == "executed"
    return request_id


def _copy_as_executing(world: World, source: str, **changes: Any) -> str:
    """The attacker's forge.py: a copy of `source`'s row under a new id, no event."""
    with dba(world.services.database) as connection:
        row = dict(
            connection.execute(text("SELECT * FROM requests WHERE id = :id"), {"id": source})
            .mappings()
            .one()
        )
        row.update(
            id=str(uuid.uuid4()),
            state="executing",
            idempotency_key=None,
            idempotency_digest=None,
            undo_params=None,
            finished_at=None,
            result=None,
            **changes,
        )
        row = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        columns = ", ".join(row)
        values = ", ".join(f":{name}" for name in row)
        connection.execute(text(f"INSERT INTO requests ({columns}) VALUES ({values})"), row)
    return str(row["id"])


def _forged_copy(world: World, original: str) -> str:
    return _copy_as_executing(world, original, action="account.lock")


def _a_cancelled_one_revived(world: World, original: str) -> str:
    del original
    real = _deactivate(world, MEI)
    operations.cancel(world.services, world.actor(MEI), real, "not needed")
    tamper(
        world.services.database, "UPDATE requests SET state = 'executing' WHERE id = :id", id=real
    )
    return real


def _one_on_another_account_moved_here(world: World, original: str) -> str:
    del original
    real = _deactivate(world, MEI, "chirp:bob")
    tamper(
        world.services.database,
        "UPDATE requests SET state = 'executing', account_ref = :here WHERE id = :id",
        id=real,
        here=PRESIDENT,
    )
    return real


def _an_approved_one_claimed_in_the_store(world: World, original: str) -> str:
    """A real approved request set executing by the DBA: its log has no claim."""
    del original
    real = operations.submit(
        world.services,
        world.actor(SAM),
        Submission(action="account.suspend", account=PRESIDENT, justification="CASE-8"),
    )
    for approver in (MEI, JO):
        if _row(world, real).state == "pending":
            world.review(approver, real)
    assert _row(world, real).state in ("approved", "executed")
    tamper(
        world.services.database, "UPDATE requests SET state = 'executing' WHERE id = :id", id=real
    )
    return real


EXECUTING = {
    "copy": _forged_copy,
    "cancelled-revived": _a_cancelled_one_revived,
    "moved-here": _one_on_another_account_moved_here,
    "claimed-in-the-store": _an_approved_one_claimed_in_the_store,
}


@pytest.mark.parametrize("forge", list(EXECUTING.values()), ids=list(EXECUTING))
def test_a_forged_executing_row_does_not_cancel_the_honest_undo(
    world: World, forge: Callable[[World, str], str]
) -> None:
    original = _suspended(world)
    undo_id = undo.undo(world.services, world.actor(MEI), original, "CASE-31")
    forged = forge(world, original)
    # Asked twice (each try of the undo would ask): alerted once.
    for _ in range(2):
        with world.services.database.transaction() as session:
            assert (
                batch_undo_guard.in_flight(world.services, session, PRESIDENT, request=undo_id)
                is None
            )
    world.review(SAM, undo_id)
    if _row(world, undo_id).state == "approved":
        execute.execute(world.services, undo_id)
    assert _row(world, undo_id).state == "executed", _row(world, undo_id).reason
    assert world.chirp("president")["status"] == "active"
    named = [a for a in _tamper_alerts(world) if a.request_id == forged]
    assert len(named) == 1, [a.summary for a in named]
    assert named[0].severity == "high"


def test_a_genuine_execution_in_flight_still_holds_the_undo(world: World) -> None:
    original = _suspended(world)
    undo_id = undo.undo(world.services, world.actor(MEI), original, "CASE-31")
    real = operations.submit(
        world.services,
        world.actor(SAM),
        Submission(action="account.suspend", account=PRESIDENT, justification="CASE-8"),
    )
    for approver in (MEI, JO):
        if _row(world, real).state == "pending":
            world.review(approver, real)
    with world.services.database.transaction() as session:
        row = lock_request(session, real)
        assert row.state == "approved"
        move(
            world.services,
            session,
            row,
            RequestState.EXECUTING,
            actor=None,
            kind="request.executing",
            now=world.clock(),
        )
    # Even with a column of it edited (its justification), the log says it is in flight.
    tamper(
        world.services.database, "UPDATE requests SET justification = 'x' WHERE id = :id", id=real
    )
    world.review(SAM, undo_id)
    if _row(world, undo_id).state == "approved":
        execute.execute(world.services, undo_id)
    assert _row(world, undo_id).state == "cancelled"
    assert "in flight" in (_row(world, undo_id).reason or "")
    assert world.chirp("president")["status"] == "suspended"
    # The edit is named; the genuine claim is not taken for a forgery.
    [alert] = [a for a in _tamper_alerts(world) if a.request_id == real]
    assert "justification" in alert.summary


def test_a_forged_executing_batch_item_does_not_cancel_the_honest_undo(world: World) -> None:
    ring = seed_ring(world, 2)
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    original = _suspended(world)
    undo_id = undo.undo(world.services, world.actor(MEI), original, "CASE-31")
    tamper(
        world.services.database,
        "UPDATE batch_items SET state = 'executing', account_ref = :here "
        "WHERE batch_id = :batch AND position = 0",
        here=PRESIDENT,
        batch=batch_id,
    )
    world.review(SAM, undo_id)
    if _row(world, undo_id).state == "approved":
        execute.execute(world.services, undo_id)
    assert _row(world, undo_id).state == "executed", _row(world, undo_id).reason
    [alert] = [a for a in _tamper_alerts(world) if a.request_id == batch_id]
    assert "its batch is executed" in alert.summary


def test_a_forged_executing_row_does_not_fail_a_remote_batch_undo_item(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = seed_ring(world, 2)
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    reverse = batch_undo.undo_batch(world.services, world.actor(TOMAS), batch_id)
    review(world, reverse, MEI)
    assert review(world, reverse, SAM) == "approved"
    as_remote(monkeypatch, world.services.connector("chirp"))
    world.clock.advance(minutes=1)
    real = _deactivate(world, MEI, "chirp:bob")
    forged = _copy_as_executing(world, real, account_ref=ring[0], action="account.suspend")
    batch_execute.execute_batch(world.services, reverse)
    with world.services.database.read() as session:
        states = list(
            session.scalars(
                select(BatchItemRow.state)
                .where(BatchItemRow.batch_id == reverse)
                .order_by(BatchItemRow.position)
            )
        )
    assert states == ["executed", "executed"]
    assert [a.request_id for a in _tamper_alerts(world)] == [forged]
