"""Attacks and faults on foureyes' platform calls, over real sockets: a receiver (or whoever sits
on the path to it) that trickles its answer, swallows an order and delivers it late, answers
reconciliation with 5xx for ever, or answers in the receiver's name; and a platform URL that
would carry all of that over plain http.

The receiver is the reference one (examples/webhook_receiver.py) behind
`tests.misbehaving_platform.Platform`, a proxy that misbehaves on the requests a rule picks.
Every connector call has a deadline of half a second here (the `deadline` setting), and reads
time out only after a minute: whatever ends a call is the deadline, not a read timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from foureyes import bootstrap, worker
from foureyes.config import Settings
from foureyes.connectors.base import ExecutionOrder
from foureyes.connectors.calls import DeadlineExceeded
from foureyes.connectors.synapse import SynapseConnector
from foureyes.errors import BadInput, Conflict
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, ExecutionRow
from foureyes.workflow import operations
from foureyes.workflow.execute import MAX_ATTEMPTS
from foureyes.workflow.reconcile import RECONCILE_TRIES, UNANSWERED, backoff
from foureyes.workflow.submit import Submission
from tests.misbehaving_platform import BAD_GATEWAY, FORGE, PASS, SWALLOW, TRICKLE, Platform
from tests.unit.connectors.test_http import SECRET, Shop, make_shop, receiver_module

FAST = {"deadline": 0.5, "timeout": 60, "backoff": 0.01}
SUPPORT = "e-2001"  # Ana, support: suspends standard accounts alone


@pytest.fixture
def receiver() -> Iterator[Any]:
    running = receiver_module.Receiver(
        SECRET,
        {
            "alice": {"status": "active", "followers": 120},
            "bob": {"status": "active", "followers": 87},
        },
    ).start()
    yield running
    running.stop()


@pytest.fixture
def platform(receiver: Any) -> Iterator[Platform]:
    proxy = Platform(receiver.url)
    yield proxy
    proxy.close()


def _orders_for(account: str, mode: str, *, also_void: bool = False) -> Any:
    """A rule: `mode` for the orders (POST /actions) naming `account` (and, with `also_void`,
    every void), everything else passed through."""

    def rule(method: str, target: str, body: bytes) -> str:
        if method == "POST" and target == "/actions":
            return mode if json.loads(body).get("account") == account else PASS
        if also_void and target.endswith("/void"):
            return mode
        return PASS

    return rule


def _suspend(world: Shop, account: str) -> str:
    actor = world.actor(SUPPORT)
    return operations.submit(
        world.services, actor, Submission("account.suspend", f"shop:{account}")
    )


def _kinds(world: Shop, request_id: str) -> list[str]:
    return [event["kind"] for event in operations.show(world.services, request_id)["timeline"]]


def _alerts(world: Shop, request_id: str) -> list[AlertRow]:
    with world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.request_id == request_id,
                    AlertRow.detector == "execution_interrupted",
                )
            )
        )


def _attempts(world: Shop, request_id: str) -> list[ExecutionRow]:
    with world.services.database.transaction() as session:
        return list(
            session.scalars(
                select(ExecutionRow)
                .where(ExecutionRow.request_id == request_id)
                .order_by(ExecutionRow.attempt)
            )
        )


# --- 1. a call that never ends -------------------------------------------------------------------


def test_a_receiver_trickling_its_answer_holds_no_worker(
    database: Database, receiver: Any, platform: Platform
) -> None:
    """The receiver applies alice's suspension, then trickles its answer a byte at a time,
    for ever. The worker abandons the call at its deadline, carries out bob's suspension in the
    same pass, and reconciles alice's from the receiver's record of its key: executed because
    the receiver says it applied it, never by assumption."""
    platform.rule = _orders_for("alice", TRICKLE)
    world = make_shop(database, receiver, url=platform.url, **FAST)
    alice, bob = _suspend(world, "alice"), _suspend(world, "bob")

    tick = worker.run_once(world.services)

    platform.wait_for(TRICKLE)
    assert tick.executed == [bob]
    assert tick.reconciled == [alice]
    view = operations.show(world.services, alice)
    assert view["state"] == "executed"
    assert _kinds(world, alice)[-2:] == ["execution.abandoned", "request.reconciled"]
    assert view["timeline"][-1]["event"]["verdict"] == "applied"
    assert list(view["result"]["changes"]) == ["status"]  # the summary the receiver kept
    (attempt,) = _attempts(world, alice)
    assert attempt.outcome == "reconciled"
    assert "did not finish the call within its deadline (0.5 s)" in attempt.detail["error"]
    assert receiver.accounts["alice"]["status"] == "suspended"
    assert receiver.accounts["bob"]["status"] == "suspended"
    assert [a.severity for a in _alerts(world, alice)] == ["medium"]


def test_a_receiver_that_accepts_and_never_answers_holds_no_worker(
    database: Database, receiver: Any, platform: Platform
) -> None:
    """The order for alice is swallowed: the connection is accepted and stays silent. Abandoned
    at the deadline; reconciliation voids attempt 1 at the receiver (which never saw it); the
    request runs again as attempt 2 and is applied once. When the swallowed attempt 1 arrives
    after all, the receiver refuses it."""
    swallowing = [True]

    def rule(method: str, target: str, body: bytes) -> str:
        if method == "POST" and target == "/actions" and swallowing[0]:
            swallowing[0] = False
            return SWALLOW
        return PASS

    platform.rule = rule
    world = make_shop(database, receiver, url=platform.url, **FAST)
    alice = _suspend(world, "alice")

    first = worker.run_once(world.services)
    assert first.executed == []
    assert first.reconciled == [alice]
    assert operations.show(world.services, alice)["state"] == "approved"
    assert receiver.voided == {alice: 1}
    assert worker.run_once(world.services).executed == [alice]

    assert platform.deliver() == [(409, {"error": _voided_error(1), "voided": True})]
    assert receiver.refused_void == [alice]
    assert receiver.accounts["alice"]["status"] == "suspended"
    assert receiver.applied[alice].status == 200
    first_attempt, _ = _attempts(world, alice)
    assert "within its deadline (0.5 s)" in first_attempt.detail["error"]  # not a read timeout
    assert _kinds(world, alice).count("request.executed") == 1


def _voided_error(attempt: int) -> str:
    return (
        f"attempt {attempt} of this idempotency key was voided by foureyes' reconciliation: "
        "not applied"
    )


def test_the_synapse_connector_abandons_a_call_at_its_deadline_too() -> None:
    """A homeserver (here a proxy with nothing behind it) that trickles its answers, or
    accepts and never answers: look-ups and writes are abandoned at the deadline; a write's
    outcome is then unknown."""
    nothing = Platform(None, rule=lambda method, target, body: TRICKLE)
    silent = Platform(None, rule=lambda method, target, body: SWALLOW)
    try:
        for homeserver in (nothing, silent):
            matrix = SynapseConnector(
                homeserver.url, "admin-token", deadline=0.5, timeout=60, sleep=lambda _: None
            )
            with pytest.raises(DeadlineExceeded, match="within its deadline") as looked_up:
                matrix.lookup("@alice:matrix.test")
            assert looked_up.value.transient
            lock = ExecutionOrder("account.lock", "@alice:matrix.test", {}, idempotency_key="r1")
            with pytest.raises(DeadlineExceeded) as executed:
                matrix.execute(lock)
            assert executed.value.outcome_unknown
            matrix.close()
    finally:
        nothing.close()
        silent.close()
    assert nothing.seen
    assert silent.seen


# --- 2. reconciliation against a receiver that never answers it ----------------------------------


@pytest.mark.parametrize("failure", ["receiver answers 500", "a proxy answers 502, unsigned"])
def test_reconciliation_is_bounded_then_fails_without_executing(
    database: Database, receiver: Any, platform: Platform, failure: str
) -> None:
    """Alice's order is swallowed; then every void fails (the receiver answers 500, or a
    load balancer answers 502 in its stead). Reconciliation asks again with a growing back-off,
    RECONCILE_TRIES times, and then ends the request `failed`, outcome unknown, with a high
    alert: never executed, never run again."""
    platform.rule = _orders_for("alice", SWALLOW, also_void=failure.startswith("a proxy"))
    if failure.startswith("a proxy"):
        platform.rule = _then_bad_gateway(platform.rule)
    world = make_shop(database, receiver, url=platform.url, **FAST)
    alice = _suspend(world, "alice")
    receiver.broken = failure.startswith("receiver")

    tick = worker.run_once(world.services)  # abandoned at the deadline; asked once
    for tries in range(1, RECONCILE_TRIES):
        assert operations.show(world.services, alice)["state"] == "executing"
        assert tick.reconciled == []
        assert _attempts(world, alice)[0].detail["reconcile_tries"] == tries
        world.clock.now += backoff(tries) - timedelta(seconds=1)
        worker.run_once(world.services)
        assert _attempts(world, alice)[0].detail["reconcile_tries"] == tries  # not yet asked
        world.clock.now += timedelta(seconds=1)
        tick = worker.run_once(world.services)
    view = operations.show(world.services, alice)
    assert tick.reconciled == [alice]
    assert view["state"] == "failed"
    assert view["reason"].startswith(UNANSWERED)
    assert f"asked {RECONCILE_TRIES} times" in view["reason"]
    assert "request.executed" not in _kinds(world, alice)
    (attempt,) = _attempts(world, alice)
    assert attempt.detail["reconcile_tries"] == RECONCILE_TRIES
    (alert,) = _alerts(world, alice)
    assert alert.severity == "high"
    assert UNANSWERED in alert.summary
    assert receiver.accounts["alice"]["status"] == "active"
    assert alice not in receiver.applied


def _then_bad_gateway(rule: Any) -> Any:
    def bad(method: str, target: str, body: bytes) -> str:
        picked = rule(method, target, body)
        return BAD_GATEWAY if picked == SWALLOW and target.endswith("/void") else picked

    return bad


# --- 3. an order still in flight when reconciliation asks -----------------------------------------


def test_a_late_order_cannot_apply_a_request_that_ended(
    database: Database, receiver: Any, platform: Platform
) -> None:
    """The attack: alice's order is held on the way (it has not reached the receiver) when
    reconciliation asks; the receiver has no record of it, so the request goes back to
    `approved`, and its requester cancels it. Then the order arrives. Without fencing the
    receiver would apply a cancelled request; reconciliation voided it, so it is refused."""
    platform.rule = _orders_for("alice", SWALLOW)
    world = make_shop(database, receiver, url=platform.url, **FAST)
    alice = _suspend(world, "alice")
    assert worker.run_once(world.services).reconciled == [alice]
    assert operations.show(world.services, alice)["state"] == "approved"
    operations.cancel(world.services, world.actor(SUPPORT), alice, "not needed any more")
    assert operations.show(world.services, alice)["state"] == "cancelled"

    (late,) = platform.deliver()

    assert late == (409, {"error": _voided_error(1), "voided": True})
    assert receiver.accounts["alice"]["status"] == "active"
    assert alice not in receiver.applied
    assert receiver.refused_void == [alice]


def test_the_void_is_kept_across_a_receiver_restart(tmp_path: Path) -> None:
    """Voided keys are kept like applied ones: a late order after a restart is refused too."""
    state = tmp_path / "receiver.json"
    accounts = {"alice": {"status": "active", "followers": 1}}
    first = receiver_module.Receiver(SECRET, accounts, state=state).start()
    try:
        assert first.void("k1", 1) == (
            200,
            {"idempotency_key": "k1", "outcome": "void", "attempt": 1},
        )
    finally:
        first.stop()
    second = receiver_module.Receiver(SECRET, accounts, state=state).start()
    try:
        order = {"idempotency_key": "k1", "attempt": 1, "action": "account.suspend",
                 "account": "alice", "params": {}}  # fmt: skip
        refused, _ = second.act(order, "k1")
        applied, _ = second.act({**order, "attempt": 2}, "k1")
    finally:
        second.stop()
    assert (refused, applied) == (409, 200)
    assert accounts["alice"]["status"] == "suspended"


def test_an_order_in_progress_at_the_receiver_is_waited_for_not_ended(
    database: Database, receiver: Any, platform: Platform
) -> None:
    """Alice's order reaches the receiver, which is slow to apply it: the call is abandoned at
    its deadline; reconciliation's void is answered "in progress", and the request waits,
    `executing`. Once the receiver has applied it, the next try finds it applied: executed."""
    world = make_shop(database, receiver, url=platform.url, **FAST)
    alice = _suspend(world, "alice")
    receiver.hold()

    tick = worker.run_once(world.services)

    receiver.wait_held()
    assert tick.reconciled == []
    assert operations.show(world.services, alice)["state"] == "executing"
    (attempt,) = _attempts(world, alice)
    assert attempt.detail["reconcile_tries"] == 1
    assert "still in progress" in attempt.detail["reconcile_error"]
    assert receiver.voided == {}
    receiver.release()
    receiver.wait_until(lambda: alice in receiver.applied, "the held order was never applied")
    world.clock.now += backoff(1)
    assert worker.run_once(world.services).reconciled == [alice]
    view = operations.show(world.services, alice)
    assert view["state"] == "executed"
    assert view["timeline"][-1]["event"]["verdict"] == "applied"
    assert receiver.accounts["alice"]["status"] == "suspended"


# --- 4. a try left unanswered, then other answers to the later tries of the same call -----------

# Reads time out after two seconds (the swallowed first try), the call's deadline is far off:
# what ends the first try is its read timeout, and the later tries are made.
RETRIED = {"deadline": 20, "timeout": 2, "backoff": 0.01}
LATER_TRIES = ["signed 500", "signed 429", "connection refused"]


def _first_order_swallowed(platform: Platform, later: str) -> Any:
    """A rule: the first order is held on the way (kept, to be delivered late), and with
    "connection refused" the proxy stops listening as it holds it (the later tries cannot
    connect); everything else passes."""
    first = [True]

    def rule(method: str, target: str, body: bytes) -> str:
        if method == "POST" and target == "/actions" and first[0]:
            first[0] = False
            if later == "connection refused":
                platform.refuse_connections()
            return SWALLOW
        return PASS

    return rule


def _outage(receiver: Any, platform: Platform, later: str) -> None:
    if later != "connection refused":  # the receiver's own, signed, "not now" to the rest
        receiver.broken, receiver.broken_status = True, int(later.split()[1])


def _recovered(receiver: Any, platform: Platform, later: str) -> None:
    if later == "connection refused":
        platform.accept_connections()
    receiver.broken = False


@pytest.mark.parametrize("later", LATER_TRIES)
def test_a_try_left_unanswered_is_voided_whatever_the_later_tries_are_told(
    database: Database, receiver: Any, platform: Platform, later: str
) -> None:
    """The attack (attack-p2 F1): alice's suspension is approved; its first try is held on the
    way (a read timeout: it may still arrive), and the call's later tries are answered 500 or
    429 by the receiver itself, or cannot connect. Those answers say nothing of the first try,
    so the attempt's outcome is unknown: it is abandoned, the request stays `executing` (its
    requester cannot cancel it) and is not run again until reconciliation has voided attempt 1
    at the receiver. Then it is cancelled, the first try arrives late and is refused: the
    platform and foureyes agree that nothing was done."""
    platform.rule = _first_order_swallowed(platform, later)
    world = make_shop(database, receiver, url=platform.url, **RETRIED)
    alice = _suspend(world, "alice")
    _outage(receiver, platform, later)

    tick = worker.run_once(world.services)

    platform.wait_for(SWALLOW)
    assert tick.executed == tick.reconciled == []
    assert operations.show(world.services, alice)["state"] == "executing"
    assert _kinds(world, alice)[-1] == "execution.abandoned"
    (attempt,) = _attempts(world, alice)
    assert "try 1 of the order may have reached shop" in attempt.detail["error"]
    assert attempt.detail["reconcile_tries"] == 1  # the void could not be made yet
    with pytest.raises(Conflict):  # nothing ends it while attempt 1 may still apply
        operations.cancel(world.services, world.actor(SUPPORT), alice, "not needed any more")
    assert receiver.voided == {}

    _recovered(receiver, platform, later)
    world.clock.now += backoff(1)
    assert worker.run_once(world.services).reconciled == [alice]
    assert receiver.voided == {alice: 1}
    assert operations.show(world.services, alice)["state"] == "approved"
    operations.cancel(world.services, world.actor(SUPPORT), alice, "not needed any more")

    (late,) = platform.deliver()

    assert late == (409, {"error": _voided_error(1), "voided": True})
    assert receiver.accounts["alice"]["status"] == "active"
    assert alice not in receiver.applied
    assert operations.show(world.services, alice)["state"] == "cancelled"
    assert "request.executed" not in _kinds(world, alice)
    assert [a.severity for a in _alerts(world, alice)] == ["medium"]


def test_the_last_attempt_does_not_end_while_a_try_of_it_may_still_apply(
    database: Database, receiver: Any, platform: Platform
) -> None:
    """The same on the last attempt (MAX_ATTEMPTS): attempts 1-4 are answered 500 (nothing
    applied: run again later); attempt 5's first try is held on the way and its later tries
    are answered 500. It does not end `failed` "out of retries" with that try still able to
    apply: it ends only once reconciliation has voided it, and the late try is refused."""
    world = make_shop(database, receiver, url=platform.url, **RETRIED)
    alice = _suspend(world, "alice")
    receiver.broken = True
    for _ in range(MAX_ATTEMPTS - 1):
        worker.run_once(world.services)
        assert operations.show(world.services, alice)["state"] == "approved"
        world.clock.now += timedelta(hours=1)  # past the back-off
    platform.rule = _first_order_swallowed(platform, "signed 500")

    worker.run_once(world.services)

    assert operations.show(world.services, alice)["state"] == "executing"
    assert _attempts(world, alice)[-1].attempt == MAX_ATTEMPTS
    receiver.broken = False
    world.clock.now += backoff(1)
    assert worker.run_once(world.services).reconciled == [alice]
    view = operations.show(world.services, alice)
    assert view["state"] == "failed"
    assert "out of attempts" in view["reason"]
    assert receiver.voided == {alice: MAX_ATTEMPTS}
    assert platform.deliver() == [(409, {"error": _voided_error(MAX_ATTEMPTS), "voided": True})]
    assert receiver.accounts["alice"]["status"] == "active"
    assert alice not in receiver.applied


def test_a_try_left_unanswered_that_arrives_before_the_void_is_found_applied(
    database: Database, receiver: Any, platform: Platform
) -> None:
    """The other order of events: the held first try reaches the receiver once it is back,
    before reconciliation asks. The void finds the key applied: `executed`, as on the
    platform, never run again nor ended."""
    platform.rule = _first_order_swallowed(platform, "signed 500")
    world = make_shop(database, receiver, url=platform.url, **RETRIED)
    alice = _suspend(world, "alice")
    _outage(receiver, platform, "signed 500")
    worker.run_once(world.services)
    assert operations.show(world.services, alice)["state"] == "executing"
    _recovered(receiver, platform, "signed 500")

    ((status, answer),) = platform.deliver()

    assert status == 200
    world.clock.now += backoff(1)
    assert worker.run_once(world.services).reconciled == [alice]
    view = operations.show(world.services, alice)
    assert view["state"] == "executed"
    assert view["timeline"][-1]["event"]["verdict"] == "applied"
    assert list(view["result"]["changes"]) == list(answer["summary"]["changes"]) == ["status"]
    assert receiver.accounts["alice"]["status"] == "suspended"
    assert receiver.voided == {}


def test_a_retried_try_and_the_late_one_are_the_same_order(
    database: Database, receiver: Any, platform: Platform
) -> None:
    """Retrying an order within its call after a try left unanswered is safe: the tries carry
    the same key and attempt, so the receiver applies whichever comes first and answers the
    other with that first answer. Here the second try is applied and the call succeeds; the
    first, delivered late, changes nothing."""
    platform.rule = _first_order_swallowed(platform, "signed 500")
    world = make_shop(database, receiver, url=platform.url, **RETRIED)
    alice = _suspend(world, "alice")

    assert worker.run_once(world.services).executed == [alice]
    applied = receiver.applied[alice]

    assert platform.deliver() == [(200, applied.answer)]
    assert receiver.applied == {alice: applied}
    assert receiver.accounts["alice"]["status"] == "suspended"
    assert _kinds(world, alice).count("request.executed") == 1
    assert "execution.abandoned" not in _kinds(world, alice)


# --- 5. answers in the receiver's name, and plain http -----------------------------------------


def test_answers_forged_on_the_path_are_not_believed(
    database: Database, receiver: Any, platform: Platform
) -> None:
    """Someone on the path answers alice's order "done" and reconciliation's void "applied",
    in the receiver's name, without its signature, and keeps the order from it. foureyes
    believes neither: the request stays `executing` (never executed); once the path is clean
    again, the receiver's own answer (void) is what counts, and the order runs as attempt 2."""
    platform.rule = _orders_for("alice", FORGE, also_void=True)
    platform.forged = (200, {"summary": {"changes": {"status": ["active", "suspended"]}},
                             "idempotency_key": "", "outcome": "applied"})  # fmt: skip
    world = make_shop(database, receiver, url=platform.url, **FAST)
    alice = _suspend(world, "alice")

    worker.run_once(world.services)

    assert operations.show(world.services, alice)["state"] == "executing"
    (attempt,) = _attempts(world, alice)
    assert "without a valid answer signature" in attempt.detail["error"]
    assert "without a valid answer signature" in attempt.detail["reconcile_error"]
    assert "request.executed" not in _kinds(world, alice)
    platform.rule = _orders_for("alice", PASS)
    world.clock.now += backoff(1)
    assert worker.run_once(world.services).reconciled == [alice]
    assert receiver.voided == {alice: 1}
    assert worker.run_once(world.services).executed == [alice]
    assert receiver.accounts["alice"]["status"] == "suspended"


def test_a_remote_platform_over_plain_http_is_refused_at_load(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "foureyes.toml").write_text(
        '[connectors.shop]\nkind = "http"\nurl = "http://shop.example.org/hooks"\n'
        'secret = "s3cret-s3cret"\nactions = ["account.view"]\n'
    )
    settings = Settings.load(data, env={})
    with pytest.raises(BadInput, match=r"connector shop: url must be an https URL"):
        bootstrap.services_for(settings)
