"""`/v1/batches`: Idempotency-Key on submit and undo (as on `/v1/requests`: same key and
body answer the first batch, another body is 422, keys are the caller's), and paging with
the requests' opaque cursors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from foureyes.store.tables import BatchRow, EventRow
from foureyes.workflow import batch_worker
from tests.api.conftest import Api, assert_problem
from tests.api.test_batches import review, seed

CASE = "CASE-77"


def keyed(api: Api, by: str, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return api.client.post(path, headers={**api.auth(by), "Idempotency-Key": key}, json=body)


def recorded(api: Api) -> tuple[int, int]:
    with api.world.services.database.read() as session:
        batches = session.scalar(select(func.count()).select_from(BatchRow)) or 0
        events = session.scalar(select(func.count()).select_from(EventRow)) or 0
    return batches, events


def test_a_retried_submit_answers_the_first_batch_and_records_nothing(api: Api) -> None:
    body = {"action": "account.suspend", "accounts": seed(api, 3), "justification": CASE}
    first = keyed(api, "e-3001", "b-1", "/v1/batches", body)
    assert first.status_code == 201, first.text
    before = recorded(api)
    again = keyed(api, "e-3001", "b-1", "/v1/batches", body)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert recorded(api) == before


@pytest.mark.parametrize(
    "change", [{"justification": "CASE-78"}, {"action": "account.lock"}, {"accounts": "drop"}]
)
def test_the_same_key_with_another_body_is_422_and_records_nothing(
    api: Api, change: dict[str, Any]
) -> None:
    ring = seed(api, 3)
    body = {"action": "account.suspend", "accounts": ring, "justification": CASE}
    first = keyed(api, "e-3001", "b-2", "/v1/batches", body).json()["id"]
    before = recorded(api)
    other = {**body, **change}
    if change.get("accounts") == "drop":
        other["accounts"] = ring[:2]
    problem = assert_problem(
        keyed(api, "e-3001", "b-2", "/v1/batches", other), 422, "idempotency-key-reused"
    )
    assert problem["batch_id"] == first
    assert recorded(api) == before


def test_batch_keys_belong_to_their_requester(api: Api) -> None:
    body = {"action": "account.suspend", "accounts": seed(api, 2), "justification": CASE}
    mine = keyed(api, "e-3001", "shared", "/v1/batches", body)
    assert mine.status_code == 201, mine.text
    body["accounts"] = seed(api, 2, prefix="other")
    theirs = keyed(api, "e-3002", "shared", "/v1/batches", body)
    assert theirs.status_code == 201, theirs.text
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_retried_undo_answers_the_first_reverse_batch(api: Api) -> None:
    body = {"action": "account.suspend", "accounts": seed(api, 3), "justification": CASE}
    response = keyed(api, "e-3001", "b-3", "/v1/batches", body)
    view = response.json()
    review(api, "e-3002", view)
    review(api, "e-3003", view)
    batch_worker.run_batches(api.world.services, "test")
    path = f"/v1/batches/{view['id']}/undo"
    undo = {"positions": [0, 2], "justification": CASE}
    first = keyed(api, "e-3001", "u-1", path, undo)
    assert first.status_code == 201, first.text
    before = recorded(api)
    again = keyed(api, "e-3001", "u-1", path, undo)
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert recorded(api) == before
    # The undo's key is not the submit's: another undo under it is refused, nothing recorded.
    assert_problem(
        keyed(api, "e-3001", "u-1", path, {"positions": [1], "justification": CASE}),
        422,
        "idempotency-key-reused",
    )
    assert_problem(keyed(api, "e-3001", "b-3", path, undo), 422, "idempotency-key-reused")
    assert recorded(api) == before


def test_batches_page_newest_first_with_an_opaque_cursor(api: Api) -> None:
    made = []
    for n in range(5):
        body = {
            "action": "account.suspend",
            "accounts": seed(api, 1, prefix=f"page{n}-"),
            "justification": CASE,
        }
        made.append(keyed(api, "e-3001", f"p-{n}", "/v1/batches", body).json()["id"])
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("e-3001", "/v1/batches", params=params).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    # Newest first, ties (one clock tick) by id: the order of one page of them all.
    whole = api.get("e-3001", "/v1/batches", params={"limit": 200}).json()
    assert whole["next"] is None
    assert seen == [item["id"] for item in whole["items"]]
    assert sorted(seen) == sorted(made)


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 201}, {"cursor": "bm9wZQ"}, {"cursor": "%%"}]
)
def test_bad_batch_list_parameters_are_the_requests_problems(
    api: Api, params: dict[str, Any]
) -> None:
    assert_problem(api.get("e-3001", "/v1/batches", params=params), 422, "bad-input")
    assert_problem(api.get("e-3001", "/v1/requests", params=params), 422, "bad-input")
