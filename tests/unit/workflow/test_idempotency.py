"""Submits with an idempotency key: a retry answers the first request and records nothing;
the key with another request is refused; racing submits with one key make one request."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.races import race
from tests.worlds import World

from foureyes.errors import BadInput, IdempotencyKeyReused
from foureyes.store.tables import EventRow, RequestRow
from foureyes.workflow import idempotency, operations
from foureyes.workflow.submit import Denied, Submission, Submitted, submit, submit_or_replay

DEACTIVATE = Submission(
    "account.deactivate", "chirp:president", justification="CASE-1234", idempotency_key="k-1"
)
DMS = Submission("account.read_dms", "chirp:alice", idempotency_key="k-1")  # denied for e-2001


def stored(world: World) -> tuple[int, int]:
    """How many requests and audit events there are."""
    with world.services.database.read() as session:
        requests = session.scalar(select(func.count()).select_from(RequestRow)) or 0
        events = session.scalar(select(func.count()).select_from(EventRow)) or 0
    return requests, events


def keyed_rows(world: World, key: str) -> list[tuple[str, str | None, str | None]]:
    with world.services.database.read() as session:
        rows = session.execute(
            select(RequestRow.id, RequestRow.idempotency_key, RequestRow.idempotency_digest)
            .where(RequestRow.idempotency_key == key)
            .order_by(RequestRow.id)
        )
        return [(row[0], row[1], row[2]) for row in rows]


# --- keys and fingerprints -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["a", "x" * 200, " spaced out ", '"quoted"', "~" * 3])
def test_printable_ascii_keys_up_to_200_characters_are_accepted(key: str) -> None:
    idempotency.check_key(key)


@pytest.mark.parametrize("key", ["", "x" * 201, "café", "tab\there", "new\nline", "\x7f", "\x00"])
def test_other_keys_are_bad_input(key: str) -> None:
    with pytest.raises(BadInput, match="idempotency key"):
        idempotency.check_key(key)


def test_the_fingerprint_covers_what_is_asked_for_and_not_from_where() -> None:
    base = Submission("account.suspend", "chirp:bob", {"reason": "spam", "n": 1}, "CASE-1")
    same = [
        replace(base, params={"n": 1, "reason": "spam"}),  # JSON objects have no order
        replace(base, client="::1"),
        replace(base, idempotency_key="another"),
    ]
    other = [
        replace(base, action="account.lock"),
        replace(base, account="chirp:alice"),
        replace(base, params={"reason": "spam", "n": 2}),
        replace(base, params={"reason": "spam", "n": 1.5}),
        replace(base, justification="CASE-2"),
        replace(base, justification=None),
        replace(base, break_glass=True),
        replace(base, reverts="r-1"),
    ]
    assert {s.fingerprint() for s in same} == {base.fingerprint()}
    assert len({s.fingerprint() for s in [base, *other]}) == len(other) + 1


# --- submit_or_replay ------------------------------------------------------------------------


def test_the_key_and_fingerprint_are_stored_with_the_request(world: World) -> None:
    first = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)

    assert first == Submitted(first.request_id, replayed=False)
    assert keyed_rows(world, "k-1") == [(first.request_id, "k-1", DEACTIVATE.fingerprint())]


def test_a_replay_records_nothing_and_answers_the_first_request(world: World) -> None:
    first = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)
    before = stored(world)

    again = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)

    assert again == Submitted(first.request_id, replayed=True)
    assert stored(world) == before
    assert submit(world.services, world.actor("c-1001"), DEACTIVATE) == first.request_id


def test_a_key_belongs_to_the_person_not_the_login(world: World) -> None:
    first = submit_or_replay(world.services, world.actor("c-1001", "kim"), DEACTIVATE)

    again = submit_or_replay(world.services, world.actor("c-1001", "kim.vendor"), DEACTIVATE)

    assert again == Submitted(first.request_id, replayed=True)


def test_another_persons_equal_key_is_another_key(world: World) -> None:
    mine = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)
    theirs = submit_or_replay(world.services, world.actor("e-3001"), DEACTIVATE)

    assert not theirs.replayed
    assert theirs.request_id != mine.request_id


def test_the_key_with_another_request_is_refused_and_records_nothing(world: World) -> None:
    first = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)
    before = stored(world)
    other = Submission("account.lock", "chirp:bob", idempotency_key="k-1")

    with pytest.raises(IdempotencyKeyReused) as refused:
        submit_or_replay(world.services, world.actor("c-1001"), other)

    assert refused.value.details == {"request_id": first.request_id}
    assert stored(world) == before


def test_a_malformed_key_is_bad_input_before_anything_else(world: World) -> None:
    bad = Submission("account.fly", "chirp:nobody", idempotency_key="")

    with pytest.raises(BadInput, match="idempotency key"):
        submit_or_replay(world.services, world.actor("c-1001"), bad)
    assert stored(world)[0] == 0


def test_a_policy_denial_is_denied_again_the_same_way(world: World) -> None:
    with pytest.raises(Denied) as first:
        submit_or_replay(world.services, world.actor("e-2001"), DMS)
    assert not first.value.replayed
    before = stored(world)

    with pytest.raises(Denied) as again:
        submit_or_replay(world.services, world.actor("e-2001"), DMS)

    assert again.value.replayed
    assert (again.value.message, again.value.details) == (first.value.message, first.value.details)
    assert stored(world) == before


def test_a_replay_is_not_carried_out_again(world: World) -> None:
    lock = Submission("account.lock", "chirp:bob", idempotency_key="lock")
    first, outcome = operations.submit_run_or_replay(world.services, world.actor("e-2001"), lock)
    assert outcome is not None
    assert world.chirp("bob")["status"] == "locked"

    again, outcome = operations.submit_run_or_replay(world.services, world.actor("e-2001"), lock)

    assert (again, outcome) == (Submitted(first.request_id, replayed=True), None)
    assert operations.submit_and_run(world.services, world.actor("e-2001"), lock) == (
        first.request_id,
        None,
    )


def test_a_replay_does_not_ask_the_platform(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    first = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)

    def unreachable(ref: str) -> Any:
        raise AssertionError(f"looked up {ref}")

    monkeypatch.setattr(world.services, "resolve_account", unreachable)

    again = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)
    assert again == Submitted(first.request_id, replayed=True)


# --- losing the race ------------------------------------------------------------------------


def lose_the_look_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first look-up of a key finds nothing, as when another submit with it commits
    between our look-up and our insert: the unique index must then decide."""
    real = idempotency.find
    calls = 0

    def find(*args: Any) -> idempotency.Earlier | None:
        nonlocal calls
        calls += 1
        return None if calls == 1 else real(*args)

    monkeypatch.setattr(idempotency, "find", find)


def test_a_submit_that_loses_to_the_unique_index_answers_the_winners_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)
    before = stored(world)
    lose_the_look_up_once(monkeypatch)

    again = submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)

    assert again == Submitted(first.request_id, replayed=True)
    assert stored(world) == before


def test_a_loser_asking_for_something_else_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit_or_replay(world.services, world.actor("c-1001"), DEACTIVATE)
    before = stored(world)
    lose_the_look_up_once(monkeypatch)
    other = Submission("account.lock", "chirp:bob", idempotency_key="k-1")

    with pytest.raises(IdempotencyKeyReused):
        submit_or_replay(world.services, world.actor("c-1001"), other)
    assert stored(world) == before


@pytest.mark.pg_only
def test_racing_submits_with_one_key_make_one_request(world: World) -> None:
    actor = world.actor("c-1001")
    results = race(*[lambda: submit_or_replay(world.services, actor, DEACTIVATE)] * 6)

    assert all(isinstance(result, Submitted) for result in results), results
    assert len({result.request_id for result in results}) == 1
    assert sorted(result.replayed for result in results) == [False] + [True] * 5
    assert len(keyed_rows(world, "k-1")) == 1
    with world.services.database.read() as session:
        submitted = session.scalar(select(func.count()).where(EventRow.kind == "request.submitted"))
    assert submitted == 1


@pytest.mark.pg_only
def test_racing_denied_submits_with_one_key_record_one_denial(world: World) -> None:
    actor = world.actor("e-2001")
    results = race(*[lambda: submit_or_replay(world.services, actor, DMS)] * 4)

    assert all(isinstance(result, Denied) for result in results), results
    assert len({result.details["request_id"] for result in results}) == 1
    assert sorted(result.replayed for result in results) == [False, True, True, True]
    assert stored(world)[0] == 1


@pytest.mark.pg_only
def test_racing_submits_of_different_requests_with_one_key_make_one(world: World) -> None:
    actor = world.actor("c-1001")
    other = Submission("account.lock", "chirp:bob", idempotency_key="k-1")
    results = race(
        lambda: submit_or_replay(world.services, actor, DEACTIVATE),
        lambda: submit_or_replay(world.services, actor, other),
    )

    made = [result for result in results if isinstance(result, Submitted)]
    refused = [result for result in results if isinstance(result, IdempotencyKeyReused)]
    assert (len(made), len(refused)) == (1, 1), results
    assert refused[0].details == {"request_id": made[0].request_id}
    assert len(keyed_rows(world, "k-1")) == 1
