"""`GET /v1/pins`: the list of the accounts foureyes protects and watches is a target list, so
only staff who govern pins read it (oversight staff, and those the policy lets ask for a pin
change); everyone else gets 403, whatever they add to the query. Paged like the other lists.
(Attack run on #18: every member of staff, a phished contractor's token included, could list
every `protected` account.)"""

from __future__ import annotations

import pytest

from foureyes import worker
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.api.conftest import Api, assert_problem

JO, INES = "e-9001", "e-4001"  # a lead, security: they oversee and govern pins
OTHERS = ["c-1001", "e-2001", "e-3001", "e-3002", "c-3004", "e-5001"]  # support, T&S, legal


def _pin(api: Api, account: str, pin: str = "protected") -> None:
    world = api.world
    request_id = operations.submit(
        world.services,
        world.actor(JO),
        Submission(
            "foureyes.account.pin",
            "foureyes:pins",
            {"account": account, "pin": pin, "present": True},
            "SEC-18",
        ),
    )
    assert world.review(INES, request_id) == "approved"
    assert request_id in worker.run_once(world.services).executed


def test_staff_who_do_not_govern_pins_cannot_list_them(api: Api) -> None:
    _pin(api, "chirp:bob")
    queries: list[dict[str, object]] = [
        {},
        {"pin": "protected"},
        {"limit": 1},
        {"cursor": "chirp:a"},
        {"pin": "protected", "limit": 200, "cursor": ""},
    ]
    for staff_id in OTHERS:
        for query in queries:
            response = api.get(staff_id, "/v1/pins", params=query)
            body = assert_problem(response, 403, "forbidden")
            assert "chirp:bob" not in response.text
            assert "pin" in body["detail"]
    staff_id = OTHERS[0]
    # One account asked for by name still shows its own pins (it lists nothing else).
    assert api.get(staff_id, "/v1/accounts/chirp:bob").json()["pins"] == ["protected"]


@pytest.mark.parametrize("staff_id", [JO, INES])
def test_oversight_staff_list_the_pins_page_by_page(api: Api, staff_id: str) -> None:
    for account in ("chirp:alice", "chirp:bob", "chirp:president"):
        _pin(api, account)
    _pin(api, "chirp:newsdesk", "watchlist")
    seen: list[str] = []
    params: dict[str, object] = {"limit": 1, "pin": "protected"}
    for _ in range(10):
        response = api.get(staff_id, "/v1/pins", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 1
        seen += [item["account"] for item in page["items"]]
        if page["next"] is None:
            break
        params = {**params, "cursor": page["next"]}
    assert seen == ["chirp:alice", "chirp:bob", "chirp:president"]
    whole = api.get(staff_id, "/v1/pins").json()
    assert [item["account"] for item in whole["items"]] == [
        "chirp:alice",
        "chirp:bob",
        "chirp:newsdesk",
        "chirp:president",
    ]
    assert whole["next"] is None


@pytest.mark.parametrize("limit", [0, 201, -1])
def test_a_page_size_out_of_bounds_is_refused(api: Api, limit: int) -> None:
    assert_problem(api.get(JO, "/v1/pins", params={"limit": limit}), 422, "bad-input")
