"""One pending request per account across requests and batches, what routing tells a reader who
may not see the other requests, when a held request's escalation starts, and what a read of a
pending request costs (routing attack run M1, M2, L1, L4). SQLite and PostgreSQL; time moved with
the world's clock, never slept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.batches import review as review_batch
from tests.batches import submit as submit_batch
from tests.races import race
from tests.worlds import World, make_world

from foureyes.errors import Conflict, Forbidden, NotFound
from foureyes.notify import configure
from foureyes.store.database import Database
from foureyes.store.tables import BatchRow, OutboxRow, RequestRow
from foureyes.workflow import operations, reminders, routing
from foureyes.workflow.away import set_away
from foureyes.workflow.submit import Submission

POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: deactivate-by-trust-safety
    effect: require
    actions: [account.deactivate]
    approvals: 1
    approvers: '"trust-safety" in approver.groups'
    exclude: 'approver.employment == "contractor"'
    escalate:
      after: 30m
      to: '"security" in approver.groups'
      remind_every: 15m
  - id: suspend-by-trust-safety
    effect: require
    actions: [account.suspend]
    approvals: 1
    approvers: '"trust-safety" in approver.groups && approver.employment == "employee"'
  - id: lock-by-legal
    effect: require
    actions: [account.lock]
    approvals: 1
    approvers: '"legal" in approver.groups'
batches:
  - id: ring
    actions: [account.suspend]
    when: '"trust-safety" in staff.groups || "support" in staff.groups'
    tiers: [standard]
    max_items: 100
    approvals: 1
    approvers: '"trust-safety" in approver.groups && approver.employment == "employee"'
    justification: {required: true, pattern: '^CASE-[0-9]+$'}
one_pending_per_account:
  actions: [account.deactivate, account.lock, account.suspend]
  mode: MODE
"""
LOCK = Submission("account.lock", "chirp:bob", justification="CASE-1")
DEACTIVATE = Submission("account.deactivate", "chirp:bob", justification="CASE-2")
SUSPEND_ALICE = Submission("account.suspend", "chirp:alice", justification="CASE-3")


@pytest.fixture(autouse=True)
def _every_message_queued() -> Iterator[None]:
    configure(None)
    yield
    configure(None)


@pytest.fixture(params=["wait", "refuse"])
def any_mode(request: pytest.FixtureRequest, database: Database) -> World:
    return make_world(database, POLICY.replace("MODE", request.param))


@pytest.fixture
def waiting(database: Database) -> World:
    return make_world(database, POLICY.replace("MODE", "wait"))


@pytest.fixture
def refusing(database: Database) -> World:
    return make_world(database, POLICY.replace("MODE", "refuse"))


def _submit(world: World, who: str, what: Submission) -> str:
    return operations.submit(world.services, world.actor(who), what)


def _routing(world: World, request_id: str, reader: str | None = None) -> dict[str, Any]:
    if reader is None:
        shown = operations.show(world.services, request_id)
    else:
        shown = operations.show_to(world.services, world.actor(reader), request_id)
    routed = shown["routing"]
    assert isinstance(routed, dict)
    return routed


def _batches(world: World) -> int:
    with world.services.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(BatchRow)) or 0)


def _pending_on(world: World, account: str) -> list[str]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(RequestRow.id).where(
                    RequestRow.account_ref == account, RequestRow.state == "pending"
                )
            )
        )


# --- M1: a batch item is a pending request on its account, both ways ------------------------


def test_a_batch_over_an_account_with_a_pending_request_is_refused(any_mode: World) -> None:
    world = any_mode
    first = _submit(world, "e-2001", SUSPEND_ALICE)
    for accounts in (["chirp:alice", "chirp:bob"], ["chirp:bob", "chirp:alice"], ["chirp:alice"]):
        with pytest.raises(Conflict, match="chirp:alice") as refused:
            submit_batch(world, accounts, by="c-1001")
        # Kim (a support contractor) may not see Ana's request: not named to her.
        assert first not in refused.value.message
        assert "e-2001" not in refused.value.message
    assert _batches(world) == 0  # nothing recorded
    # Without the busy account it goes through.
    submit_batch(world, ["chirp:bob"], by="c-1001")
    assert _batches(world) == 1


def test_a_request_on_an_account_a_pending_batch_holds_waits_or_is_refused(
    any_mode: World,
) -> None:
    world = any_mode
    batch_id = submit_batch(world, ["chirp:bob", "chirp:newsdesk"], by="c-1001")
    with world.services.database.read() as session:
        spec = world.services.policy_in_force(session)[1].document.one_pending_per_account
    refuse = spec is not None and spec.mode == "refuse"
    waiting: list[str] = []
    for what in (LOCK, DEACTIVATE):
        if refuse:
            with pytest.raises(Conflict, match="another request") as refused:
                _submit(world, "e-2001", what)
            assert batch_id not in refused.value.message  # Ana may not see Kim's batch
            continue
        made = _submit(world, "e-2001", what)
        waiting.append(made)
        routed = _routing(world, made, "e-4001")  # oversight sees the batch it waits for
        assert routed["held"] is True
        assert (routed["held_by"], routed["held_by_kind"]) == (batch_id, "batch")
        approver = "e-3002" if what is DEACTIVATE else "e-5001"
        with pytest.raises(Conflict, match="waits for"):
            world.review(approver, made, step_up=False)
    with pytest.raises(Conflict):
        submit_batch(world, ["chirp:newsdesk"], by="c-1001")  # a second batch: refused too
    assert review_batch(world, batch_id, "e-3002") == "approved"
    # Decided: a request on the account is approvable (wait) or accepted (refuse) again. In
    # wait mode the lock (submitted first) is now first in line; the deactivation waits for it.
    first = waiting[0] if waiting else _submit(world, "e-2001", LOCK)
    assert _routing(world, first)["held"] is False
    if waiting:
        assert (_routing(world, waiting[1], "e-4001")["held_by"]) == first


def test_a_batch_and_a_request_racing_for_one_account_leave_one(refusing: World) -> None:
    world = refusing
    results = race(
        lambda: submit_batch(world, ["chirp:alice", "chirp:bob"], by="c-1001"),
        lambda: _submit(world, "e-2001", SUSPEND_ALICE),
    )
    made = [r for r in results if isinstance(r, str)]
    assert len(made) == 1, results
    assert isinstance(next(r for r in results if not isinstance(r, str)), Conflict), results
    assert _batches(world) + len(_pending_on(world, "chirp:alice")) == 1


# --- M2: routing names only what the reader may see ------------------------------------------


def test_routing_names_no_request_the_reader_may_not_see(waiting: World) -> None:
    world = waiting
    first = _submit(world, "e-2001", LOCK)  # legal approves it: hidden from trust-safety
    second = _submit(world, "e-3001", DEACTIVATE)  # waits for it
    with pytest.raises(NotFound):
        operations.show_to(world.services, world.actor("e-3001"), first)
    for reader in ("e-3001", "e-3002"):  # its requester; a trust-safety approver of it
        routed = _routing(world, second, reader)
        assert routed["held"] is True
        assert routed["held_by"] is None
        assert routed["held_by_kind"] is None
        assert routed["pending_on_account"] == []
        assert routed["others_pending"] == routing.ANOTHER
        assert first not in str(routed)
        assert "e-2001" not in str(routed)
    with pytest.raises(Conflict) as refused:
        world.review("e-3002", second, step_up=False)
    assert "another request" in refused.value.message
    assert first not in refused.value.message
    assert "account.lock" not in refused.value.message
    # Those who may see it are told which: oversight, and the legal approver.
    for reader in ("e-4001", "e-5001"):
        if reader == "e-5001":
            routed = _routing(world, first, reader)
            assert routed["pending_on_account"] == []
            assert routed["others_pending"]
            continue
        routed = _routing(world, second, reader)
        assert routed["held_by"] == first
        assert [p["id"] for p in routed["pending_on_account"]] == [first]
        assert routed["others_pending"] is None


def test_refuse_mode_names_no_request_the_submitter_may_not_see(refusing: World) -> None:
    world = refusing
    first = _submit(world, "e-2001", LOCK)
    with pytest.raises(Conflict) as refused:
        _submit(world, "e-3001", DEACTIVATE)
    assert "another request is already pending on chirp:bob" in refused.value.message
    for leaked in (first, "account.lock", "e-2001"):
        assert leaked not in refused.value.message
    with pytest.raises(Conflict, match=f"request {first} \\(account.lock\\)"):
        _submit(world, "e-2001", DEACTIVATE)  # her own: named


# --- L1: a held request's escalation counts from when it stopped waiting ------------------------


def test_escalation_of_a_held_request_starts_when_it_is_released(waiting: World) -> None:
    world = waiting
    first = _submit(world, "e-2001", DEACTIVATE)
    second = _submit(world, "e-3001", DEACTIVATE)
    world.clock.advance(minutes=45)  # past `after` since both were submitted
    assert reminders.remind_due(world.services) == [f"{first}:0"]  # not the held one
    operations.cancel(world.services, world.actor("e-2001"), first)
    # Released now: security (the escalation group) does not count for 30 minutes more.
    with pytest.raises((Forbidden, NotFound)):
        world.review("e-4001", second, step_up=False)
    world.clock.advance(minutes=29)
    with pytest.raises((Forbidden, NotFound)):
        world.review("e-4001", second, step_up=False)
    assert f"{second}:0" not in reminders.remind_due(world.services)  # reminder round 1 only
    world.clock.advance(minutes=1)
    assert reminders.remind_due(world.services) == [f"{second}:0"]
    state = world.review("e-4001", second, step_up=False)
    assert state in ("approved", "scheduled", "executed")
    if state != "executed":  # the execution re-check counts it the same
        operations.execute(world.services, second)
    assert operations.show(world.services, second)["state"] == "executed"
    with world.services.database.read() as session:
        told = session.scalars(
            select(OutboxRow.to_staff).where(
                OutboxRow.kind == "review.escalated", OutboxRow.link.contains(second)
            )
        )
        assert "e-4001" in list(told)


# --- L4: a read of a pending request does not ask the engine about the whole directory -------


def test_reading_a_pending_request_again_costs_no_pass_over_the_directory(
    waiting: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = waiting
    calls: list[int] = []
    counted: Callable[..., Any] = routing.satisfied

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[1]))  # the reviews: one per person asked about
        return counted(*args, **kwargs)

    monkeypatch.setattr(routing, "satisfied", counting)
    # The same seed in the same process (PostgreSQL's database is reused): start afresh.
    monkeypatch.setattr(routing, "_REMEMBERED", routing._Remembered(16))
    made = _submit(world, "e-2001", DEACTIVATE)
    at_submission = len(calls)
    assert at_submission >= 1
    for reader in (None, "e-2001", "e-3002", "e-4001", None):
        assert _routing(world, made, reader)["reachable"] is True
    assert len(calls) == at_submission  # five reads: no engine pass over the directory
    operations.list_requests(world.services, world.actor("e-4001"), operations.ListFilter())
    assert len(calls) == at_submission
    # Something it depends on changes (every trust-safety approver away; security would count
    # only after `after`, when they are all away too): answered anew, once.
    today = world.clock.now.date()
    for who in ("e-3001", "e-3002", "e-3003", "e-9001", "e-4001"):
        set_away(world.services, world.actor(who), today, today, None)
    assert _routing(world, made)["reachable"] is False
    recomputed = len(calls)
    assert recomputed > at_submission
    assert _routing(world, made)["reachable"] is False
    assert len(calls) == recomputed
