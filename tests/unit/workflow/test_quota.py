"""Quotas are part of the decision: counted at submission, in the database, exactly, also when
several submissions race on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from tests.unit.detect.policies import use_policy
from tests.worlds import World

from foureyes.workflow import operations
from foureyes.workflow.submit import Denied, Submission

VIEW = Submission("account.view_private", "chirp:bob", justification="CASE-1")


def _per_staff(world: World, limit: int = 3, window: str = "1h") -> None:
    use_policy(
        world,
        quotas=[
            {
                "id": "private-views",
                "actions": ["account.view_private"],
                "per": "staff",
                "limit": limit,
                "window": window,
            }
        ],
        detectors={"velocity": {"enabled": False}},
    )


def test_a_request_over_quota_is_denied_naming_the_quota_and_when_it_resets(world: World) -> None:
    _per_staff(world, limit=2)
    kim = world.actor("c-1001")
    first = operations.submit(world.services, kim, VIEW)
    world.clock.advance(minutes=10)
    operations.submit(world.services, kim, VIEW)
    world.clock.advance(minutes=10)
    with pytest.raises(Denied) as denied:
        operations.submit(world.services, kim, VIEW)
    reason = denied.value.message
    assert "quota private-views" in reason
    assert "at most 2" in reason
    # The first use leaves the window an hour after it was made.
    first_at = operations.show(world.services, first)["created_at"]
    assert first_at == (world.clock.now - timedelta(minutes=20)).isoformat()
    assert f"resets at {(world.clock.now + timedelta(minutes=40)).isoformat()}" in reason
    view = operations.show(world.services, denied.value.details["request_id"])
    assert view["state"] == "denied"
    assert view["decision"]["outcome"] == "denied"
    # Others have their own count; after the window, kim has hers back.
    operations.submit(world.services, world.actor("e-2001"), VIEW)
    world.clock.advance(minutes=41)
    operations.submit(world.services, kim, VIEW)


def test_denied_requests_do_not_use_the_quota(world: World) -> None:
    _per_staff(world, limit=1)
    kim = world.actor("c-1001")
    with pytest.raises(Denied):  # support may not see private data on a verified account
        operations.submit(world.services, kim, Submission("account.view_private", "chirp:newsdesk"))
    operations.submit(world.services, kim, VIEW)


def test_a_per_account_quota_counts_distinct_people(world: World) -> None:
    use_policy(
        world,
        quotas=[
            {
                "id": "bob-private",
                "actions": ["account.view_*"],
                "per": "account",
                "limit": 1,
                "window": "1d",
            }
        ],
    )
    kim = world.actor("c-1001")
    operations.submit(world.services, kim, VIEW)
    operations.submit(world.services, kim, VIEW)  # the same person again: still one person
    with pytest.raises(Denied, match="quota bob-private: at most 1 people per account"):
        operations.submit(world.services, world.actor("e-2001"), VIEW)
    # Another account is counted apart.
    operations.submit(
        world.services, world.actor("e-2001"), Submission("account.view_private", "chirp:alice")
    )


def test_exactly_limit_submissions_win_a_race(world: World) -> None:
    limit, racers = 3, 12
    _per_staff(world, limit=limit)
    kim = world.actor("c-1001")
    start = threading.Barrier(racers)
    won: list[str] = []
    lost: list[str] = []
    other: list[BaseException] = []

    def race() -> None:
        start.wait()
        try:
            won.append(operations.submit(world.services, kim, VIEW))
        except Denied as exc:
            lost.append(str(exc.details["request_id"]))
        except Exception as exc:  # reported below
            other.append(exc)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert other == []
    assert len(won) == limit
    assert len(lost) == racers - limit
