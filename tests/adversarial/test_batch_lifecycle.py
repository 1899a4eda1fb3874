"""Attacks on a batch's lifecycle (the attack run on issue #20): its state, deadlines and item
states edited in the store behind foureyes' back (a cancelled item put back to pending mid-run,
a finished batch set back to executing, an expired batch revived, a delay skipped), a batch
undone twice, a batch nobody could stop, refusals that cost a full re-plan. Each runs on SQLite
and PostgreSQL (the `database` fixture)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from foureyes.errors import Conflict, Forbidden, NotFound
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, BatchItemRow, EventRow
from foureyes.workflow import (
    batch_cancel,
    batch_execute,
    batch_recheck,
    batch_undo,
    batch_worker,
)
from foureyes.workflow.batch_manifest import ManifestRefused
from tests.api.conftest import Api
from tests.batches import approved, review, seed_ring, show, submit
from tests.conftest import EXAMPLES
from tests.dba import tamper
from tests.worlds import World, make_world

_EXAMPLE = (EXAMPLES / "policy.yaml").read_text()
# The reference batch rule with a 10-minute delay: the time in which it can still be cancelled.
DELAY_POLICY = _EXAMPLE.replace(
    "    notify: [security]\n\ninvariants:", "    notify: [security]\n    delay: 10m\n\ninvariants:"
)
assert _EXAMPLE != DELAY_POLICY


def _executions(world: World, batch_id: str) -> dict[str, int]:
    """`batch.item.executed` events per item id, as the log holds them."""
    with world.services.database.read() as session:
        rows = session.execute(
            select(EventRow.body).where(
                EventRow.request_id == batch_id, EventRow.kind == "batch.item.executed"
            )
        )
        found: dict[str, int] = {}
        for (body,) in rows:
            item = json.loads(bytes(body))["item"]
            found[item] = found.get(item, 0) + 1
        return found


def _tampered_alerts(world: World, batch_id: str) -> list[AlertRow]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.detector == "batch_tampered", AlertRow.request_id == batch_id
                )
            )
        )


def _items(world: World, batch_id: str) -> list[BatchItemRow]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(BatchItemRow)
                .where(BatchItemRow.batch_id == batch_id)
                .order_by(BatchItemRow.position)
            )
        )


def _make_vit(world: World, ref: str) -> None:
    tamper(
        world.services.database,
        "UPDATE chirp_accounts SET followers = 5000000 WHERE id = :id",
        id=ref.split(":", 1)[1],
    )


def _between_chunks(
    monkeypatch: pytest.MonkeyPatch, before_chunk: int, act: Callable[[], None]
) -> None:
    """Run `act` (the DBA's statement) just before the `before_chunk`-th chunk (1-based),
    outside any transaction of foureyes: as a DBA's session between two chunks' commits."""
    original = batch_execute._chunk
    calls = {"n": 0}

    def chunk(*args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == before_chunk:
            act()
        return original(*args, **kwargs)

    monkeypatch.setattr(batch_execute, "_chunk", chunk)


# --- item states against the log ---------------------------------------------------------------


def test_a_cancelled_item_put_back_to_pending_mid_run_never_runs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = seed_ring(world, 6)
    batch_id = approved(world, ring)
    _make_vit(world, ring[0])  # the execution re-check cancels item 0
    (first,) = [i for i in _items(world, batch_id) if i.position == 0]

    def revive() -> None:
        tamper(
            world.services.database,
            "UPDATE batch_items SET state = 'pending', reason = NULL, finished_at = NULL "
            "WHERE id = :id",
            id=first.id,
        )

    _between_chunks(monkeypatch, 2, revive)
    batch_execute.execute_batch(world.services, batch_id, chunk=2)
    assert world.chirp(ring[0].split(":", 1)[1])["status"] == "active"
    assert first.id not in _executions(world, batch_id)
    assert {i.id: i.state for i in _items(world, batch_id)}[first.id] == "cancelled"
    (alert,) = _tampered_alerts(world, batch_id)
    assert alert.severity == "high"
    # Nothing after the DBA's edit reached the platform: the rest was cancelled.
    assert show(world, batch_id)["state"] == "executed"
    assert len(_executions(world, batch_id)) == 2  # the first chunk only


@pytest.mark.parametrize("resume", [False, True])
def test_an_executed_item_put_back_to_pending_is_not_run_again(
    world: World, monkeypatch: pytest.MonkeyPatch, resume: bool
) -> None:
    ring = seed_ring(world, 4)
    batch_id = approved(world, ring)
    if resume:
        # The process died after the first chunk: the DBA edits, the worker resumes (its start).
        _between_chunks(monkeypatch, 2, lambda: (_ for _ in ()).throw(SystemExit))
        with pytest.raises(SystemExit):
            batch_execute.execute_batch(world.services, batch_id, chunk=2)
        monkeypatch.undo()
    done = [i for i in _items(world, batch_id) if i.state == "executed"] if resume else []

    def reset() -> None:
        tamper(
            world.services.database,
            "UPDATE batch_items SET state = 'pending', result = NULL, finished_at = NULL "
            "WHERE batch_id = :id AND state = 'executed'",
            id=batch_id,
        )

    if resume:
        reset()
    else:
        _between_chunks(monkeypatch, 2, reset)
    batch_execute.execute_batch(world.services, batch_id, chunk=2)
    assert all(count == 1 for count in _executions(world, batch_id).values())
    assert len(_tampered_alerts(world, batch_id)) == 1
    states = {i.id: i.state for i in _items(world, batch_id)}
    assert all(states[i.id] == "executed" for i in done)


def test_a_finished_batch_set_back_to_executing_is_not_run_again(world: World) -> None:
    ring = seed_ring(world, 4)
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    assert len(_executions(world, batch_id)) == 4
    tamper(
        world.services.database,
        "UPDATE batches SET state = 'executing', finished_at = NULL WHERE id = :id",
        id=batch_id,
    )
    tamper(
        world.services.database,
        "UPDATE batch_items SET state = 'pending', finished_at = NULL, result = NULL "
        "WHERE batch_id = :id",
        id=batch_id,
    )
    batch_worker.run_batches(world.services, "test")
    assert _executions(world, batch_id) == {i.id: 1 for i in _items(world, batch_id)}
    assert show(world, batch_id)["state"] == "executed"
    assert {i.state for i in _items(world, batch_id)} == {"executed"}
    assert len(_tampered_alerts(world, batch_id)) == 1


# --- batch state and deadlines against the log -------------------------------------------------


@pytest.mark.parametrize("how", ["state", "expires_at"])
def test_an_expired_batch_revived_is_never_approved(world: World, how: str) -> None:
    ring = seed_ring(world, 3)
    batch_id = submit(world, ring)
    world.clock.advance(days=30)
    if how == "state":
        assert batch_worker.expire_batches(world.services) == [batch_id]
        sql = (
            "UPDATE batches SET state = 'pending', expires_at = :later, reason = NULL, "
            "finished_at = NULL WHERE id = :id"
        )
    else:  # not yet expired by the worker: its deadline moved on
        sql = "UPDATE batches SET expires_at = :later WHERE id = :id"
    later = world.clock.now.replace(year=world.clock.now.year + 1)
    tamper(world.services.database, sql, later=later, id=batch_id)
    with pytest.raises(Conflict, match="audit events say"):
        review(world, batch_id, "e-3002")
    view = show(world, batch_id)
    assert view["state"] in ("expired", "cancelled")
    assert view["reviews"] == []
    assert len(_tampered_alerts(world, batch_id)) == 1
    batch_worker.run_batches(world.services, "test")
    assert _executions(world, batch_id) == {}


@pytest.mark.parametrize("not_before", ["past", "null"])
def test_a_delay_cannot_be_skipped(database: Database, not_before: str) -> None:
    world = make_world(database, DELAY_POLICY)
    ring = seed_ring(world, 3)
    batch_id = approved(world, ring)
    assert show(world, batch_id)["not_before"] is not None
    earlier = None if not_before == "null" else world.clock.now.replace(year=2000)
    tamper(
        world.services.database,
        "UPDATE batches SET not_before = :at WHERE id = :id",
        at=earlier,
        id=batch_id,
    )
    batch_worker.run_batches(world.services, "test")
    assert _executions(world, batch_id) == {}
    assert show(world, batch_id)["state"] == "cancelled"
    assert len(_tampered_alerts(world, batch_id)) == 1
    for ref in ring:
        assert world.chirp(ref.split(":", 1)[1])["status"] == "active"


def test_a_batch_set_back_to_pending_after_approval_is_stopped(world: World) -> None:
    batch_id = submit(world, seed_ring(world, 3))
    review(world, batch_id, "e-3002", "deny")  # declined: vetoed
    tamper(
        world.services.database,
        "UPDATE batches SET state = 'pending', finished_at = NULL WHERE id = :id",
        id=batch_id,
    )
    with pytest.raises(Conflict, match="audit events say it is declined"):
        review(world, batch_id, "e-3003")
    assert show(world, batch_id)["state"] == "declined"
    assert len(_tampered_alerts(world, batch_id)) == 1


# --- undo once ---------------------------------------------------------------------------------


def test_a_batch_is_undone_once(world: World) -> None:
    ring = seed_ring(world, 3)
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    undo = batch_undo.undo_batch(world.services, world.actor("e-3001"), batch_id)
    # While the first undo is pending, a second one over the same items is refused.
    with pytest.raises(Conflict, match="already undoes"):
        batch_undo.undo_batch(world.services, world.actor("e-3001"), batch_id, positions=[1])
    review(world, undo, "e-3002")
    assert review(world, undo, "e-3003") == "approved"
    batch_execute.execute_batch(world.services, undo)
    assert {i.state for i in _items(world, batch_id)} == {"reverted"}
    assert show(world, batch_id)["state"] == "reverted"
    # Someone suspends ring[0] again for a new incident: no second undo reaches it.
    for positions in (None, [0]):
        with pytest.raises(Conflict, match="reverted"):
            batch_undo.undo_batch(
                world.services, world.actor("e-3001"), batch_id, positions=positions
            )
    # The log agrees with the rows: nothing is flagged.
    assert _tampered_alerts(world, batch_id) == []


def test_a_partly_undone_batch_undoes_only_the_rest(world: World) -> None:
    ring = seed_ring(world, 3)
    batch_id = approved(world, ring)
    batch_execute.execute_batch(world.services, batch_id)
    undo = batch_undo.undo_batch(world.services, world.actor("e-3001"), batch_id, positions=[0])
    review(world, undo, "e-3002")
    review(world, undo, "e-3003")
    batch_execute.execute_batch(world.services, undo)
    assert [i.state for i in _items(world, batch_id)] == ["reverted", "executed", "executed"]
    assert show(world, batch_id)["state"] == "executed"
    with pytest.raises(Conflict, match="reverted"):
        batch_undo.undo_batch(world.services, world.actor("e-3001"), batch_id, positions=[0, 1])
    rest = batch_undo.undo_batch(world.services, world.actor("e-3001"), batch_id)
    assert [i.account_ref for i in _items(world, rest)] == ring[1:]


# --- cancel ------------------------------------------------------------------------------------


def _cancel(world: World, batch_id: str, by: str) -> str:
    return batch_cancel.cancel_batch(world.services, world.actor(by), batch_id, "CASE-1 wrong")


def test_the_requester_withdraws_a_pending_batch_and_its_items_show_cancelled(
    world: World,
) -> None:
    ring = seed_ring(world, 3)
    batch_id = submit(world, ring)
    # Not the requester, no delay running: refused (an eligible approver declines instead).
    with pytest.raises(Forbidden, match="not in its delay"):
        _cancel(world, batch_id, "e-3002")
    with pytest.raises(NotFound, match="no batch"):
        _cancel(world, batch_id, "c-3004")  # may not see it: as an unknown id
    assert _cancel(world, batch_id, "e-3001") == "cancelled"
    view = show(world, batch_id)
    assert {i["state"] for i in view["items"]} == {"cancelled"}
    assert view["progress"]["by_state"] == {"cancelled": 3}
    with pytest.raises(Conflict, match="is cancelled"):
        review(world, batch_id, "e-4001")  # oversight still sees it
    batch_worker.run_batches(world.services, "test")
    assert _executions(world, batch_id) == {}
    with world.services.database.read() as session:
        actors = list(
            session.scalars(
                select(EventRow.actor).where(
                    EventRow.request_id == batch_id, EventRow.kind == "batch.cancelled"
                )
            )
        )
    assert actors == ["e-3001"]


def test_an_eligible_approver_cancels_during_the_delay(database: Database) -> None:
    world = make_world(database, DELAY_POLICY)
    batch_id = approved(world, seed_ring(world, 3))
    for outsider, error in (("c-3004", NotFound), ("e-4001", Forbidden)):
        with pytest.raises(error):
            _cancel(world, batch_id, outsider)
    assert _cancel(world, batch_id, "e-3002") == "cancelled"
    world.clock.advance(hours=1)
    batch_worker.run_batches(world.services, "test")
    assert _executions(world, batch_id) == {}


def test_nobody_cancels_once_it_runs_or_after_the_delay(database: Database) -> None:
    world = make_world(database, DELAY_POLICY)
    batch_id = approved(world, seed_ring(world, 3))
    world.clock.advance(hours=1)  # the delay is over: only the requester may still stop it
    with pytest.raises(Forbidden, match="not in its delay"):
        _cancel(world, batch_id, "e-3002")
    batch_worker.run_batches(world.services, "test")
    with pytest.raises(Conflict, match="is executed"):
        _cancel(world, batch_id, "e-3001")


def test_execute_asked_during_the_delay_says_when_and_runs_nothing(database: Database) -> None:
    world = make_world(database, DELAY_POLICY)
    batch_id = approved(world, seed_ring(world, 3))
    with pytest.raises(Conflict, match="not before"):
        batch_execute.execute_now(world.services, batch_id, worker="test")
    assert _executions(world, batch_id) == {}
    world.clock.advance(hours=1)
    assert batch_execute.execute_now(world.services, batch_id, worker="test").executed == 3
    with pytest.raises(Conflict, match="is executed"):
        batch_execute.execute_now(world.services, batch_id, worker="test")


# --- cheap refusals, manifests -----------------------------------------------------------------


def test_a_refused_review_looks_up_no_account(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = submit(world, seed_ring(world, 5))
    review(world, batch_id, "e-3002")
    calls = {"n": 0}
    original = batch_recheck.look_up

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(batch_recheck, "look_up", counted)
    refusals: list[tuple[str, str | None, type[Exception]]] = [
        ("e-3001", None, Forbidden),  # the requester
        ("e-3002", None, Conflict),  # a second review
        ("e-3003", "x" * 64, Conflict),  # the wrong digest
        ("e-4001", None, Forbidden),  # oversight, not an approver
        ("c-3004", None, NotFound),  # may not see it
    ]
    for by, digest, error in refusals:
        with pytest.raises(error):
            review(world, batch_id, by, digest=digest or show(world, batch_id)["digest"])
    assert calls["n"] == 0
    assert review(world, batch_id, "e-3003") == "approved"
    assert calls["n"] == 1


def test_a_csv_from_excel_with_a_byte_order_mark_is_accepted(world: World) -> None:
    ring = seed_ring(world, 2)
    batch_id = submit(world, None, csv="\ufeffaccount\r\n" + "\r\n".join(ring) + "\r\n")
    assert [i["account"] for i in show(world, batch_id)["items"]] == ring
    # Only one, leading: a second (or one further on) is still an invisible character.
    for text in ("\ufeff\ufeff" + ring[0], ring[0] + "\r\n\ufeff" + ring[1]):
        with pytest.raises(ManifestRefused):
            submit(world, None, csv=text)


# --- over the API ------------------------------------------------------------------------------


def test_the_api_cancels_and_answers_strangers_as_an_unknown_id(api: Api) -> None:
    world = api.world
    batch_id = submit(world, seed_ring(world, 3))
    digest = show(world, batch_id)["digest"]
    done = approved(world, seed_ring(world, 2, prefix="done"))
    batch_execute.execute_batch(world.services, done)
    unknown = "00000000-0000-0000-0000-000000000000"
    # A stranger's review of an executed, a pending, and an unknown batch: the same 404.
    for target, given in ((done, "x"), (batch_id, digest), (batch_id, "x"), (unknown, "x")):
        response = api.post(
            "c-3004", f"/v1/batches/{target}/reviews", {"decision": "approve", "digest": given}
        )
        assert response.status_code == 404, response.text
        assert target in response.json()["detail"]
    pending = api.post("e-3001", f"/v1/batches/{batch_id}/execute", {})
    assert pending.status_code == 409, pending.text
    assert pending.headers["content-type"].startswith("application/problem+json")
    assert "is pending" in pending.json()["detail"]
    for by, status in (("c-3004", 404), ("e-3002", 403), ("e-3001", 200), ("e-3001", 409)):
        response = api.post(by, f"/v1/batches/{batch_id}/cancel", {"reason": "CASE-9"})
        assert response.status_code == status, response.text
    assert api.get("e-3001", f"/v1/batches/{batch_id}").json()["state"] == "cancelled"
    response = api.post("e-3001", f"/v1/batches/{batch_id}/cancel", {"reason": 5})
    assert response.status_code == 422
