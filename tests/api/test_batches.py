"""`/v1/batches` over the demo world: submit (JSON list and CSV), the manifest's line errors as
one problem+json, review bound to the Merkle root, progress, proofs and undo."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from foureyes.store.tables import BatchItemRow, BatchRow, EventRow
from foureyes.workflow import batch_manifest, batch_worker
from tests.api.conftest import Api, assert_problem
from tests.batches import counts, make_big_vit, seed_big

CASE = "CASE-77"


def seed(api: Api, count: int, prefix: str = "ring") -> list[str]:
    connector = api.world.services.connector("chirp")
    made = connector.seed(  # type: ignore[attr-defined]
        [{"id": f"{prefix}{n}", "followers": 5, "verified": False} for n in range(count)]
    )
    return [f"chirp:{i}" for i in made]


def nothing_recorded(api: Api) -> None:
    with api.world.services.database.read() as session:
        assert session.scalar(select(func.count()).select_from(BatchRow)) == 0
        assert session.scalar(select(func.count()).select_from(BatchItemRow)) == 0
        kinds = set(session.scalars(select(EventRow.kind)))
    assert not {k for k in kinds if k.startswith("batch.")}


def submitted(api: Api, body: dict[str, Any], by: str = "e-3001") -> dict[str, Any]:
    response = api.post(by, "/v1/batches", body)
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    return view


def review(api: Api, by: str, view: dict[str, Any], decision: str = "approve") -> Any:
    return api.post(
        by, f"/v1/batches/{view['id']}/reviews", {"decision": decision, "digest": view["digest"]}
    )


def test_a_csv_batch_is_approved_carried_out_and_shows_its_progress(api: Api) -> None:
    ring = seed(api, 30)
    csv_text = "account\n" + "\n".join(ring) + "\n# end of the ring\n"
    view = submitted(api, {"action": "account.suspend", "csv": csv_text, "justification": CASE})
    assert (view["state"], view["item_count"]) == ("pending", 30)
    assert view["progress"] == {
        "total": 30,
        "done": 0,
        "by_state": {"pending": 30},
        "percent": 0,
        "executed": 0,
        "failed": 0,
        "cancelled": 0,
        "pending": 30,
    }
    assert (view["executed"], view["failed"], view["cancelled"], view["pending"]) == (0, 0, 0, 30)
    assert review(api, "e-3002", view).json()["state"] == "pending"
    assert review(api, "e-3003", view).json()["state"] == "approved"
    batch_worker.run_batches(api.world.services, "test")
    shown = api.get("e-3001", f"/v1/batches/{view['id']}").json()
    assert (shown["state"], shown["executed"], shown["failed"]) == ("executed", 30, 0)
    assert shown["progress"]["percent"] == 100


def test_bad_lines_are_one_problem_with_every_line_and_nothing_is_recorded(api: Api) -> None:
    ring = seed(api, 3)
    csv_text = "\n".join(
        [
            ring[0],
            "chirp:nobody-here",  # unknown account
            ring[0],  # duplicate
            "no-colon",  # malformed
            ring[1] + ",extra",  # two columns
            "chirp:" + ring[2].split(":")[1].upper(),  # a second spelling of ring2...
            ring[2],  # ...and ring2 itself after it
        ]
    )
    response = api.post(
        "e-3001",
        "/v1/batches",
        {"action": "account.suspend", "csv": csv_text, "justification": CASE},
    )
    problem = assert_problem(response, 422, "bad-manifest")
    lines = {e["line"]: e["error"] for e in problem["errors"]}
    assert set(lines) == {2, 3, 4, 5, 6, 7}, lines
    assert lines[2] == "unknown account"
    assert lines[3] == "duplicate of line 1"
    assert "platform:id" in lines[4]
    assert "single column" in lines[5]
    # The platform knows no RING2 (ids are exact), and ring2 is a second spelling of it.
    assert lines[6] == "unknown account"
    assert lines[7] == "duplicate of line 6"
    nothing_recorded(api)


def test_over_the_limit_is_a_line_error(api: Api) -> None:
    accounts = [f"chirp:x{n}" for n in range(batch_manifest.MAX_ITEMS + 1)]
    response = api.post(
        "e-3001",
        "/v1/batches",
        {"action": "account.suspend", "accounts": accounts, "justification": CASE},
    )
    problem = assert_problem(response, 422, "bad-manifest")
    assert problem["errors"][-1]["line"] == batch_manifest.MAX_ITEMS + 1
    nothing_recorded(api)


def test_reviews_bound_to_the_root_and_never_by_the_requester(api: Api) -> None:
    view = submitted(
        api, {"action": "account.suspend", "accounts": seed(api, 4), "justification": CASE}
    )
    stale = {**view, "digest": "ab" * 32}
    assert_problem(review(api, "e-3002", stale), 409, "conflict")
    assert_problem(review(api, "e-3001", view), 403, "forbidden")
    assert review(api, "e-3002", view).status_code == 200
    assert_problem(review(api, "e-3002", view), 409, "conflict")


def test_membership_proofs_verify(api: Api) -> None:
    view = submitted(
        api, {"action": "account.suspend", "accounts": seed(api, 9), "justification": CASE}
    )
    for position in (0, 4, 8):
        proof = api.get("e-3001", f"/v1/batches/{view['id']}/proofs/{position}").json()
        assert proof["root"] == view["digest"]
        batch_manifest.verify_membership(proof)
    assert api.get("e-3001", f"/v1/batches/{view['id']}/proofs/9").status_code == 404


def test_a_stranger_sees_no_batch(api: Api) -> None:
    view = submitted(
        api, {"action": "account.suspend", "accounts": seed(api, 2), "justification": CASE}
    )
    # Support staff are not eligible approvers of the batch rule nor oversight.
    assert_problem(api.get("e-2001", f"/v1/batches/{view['id']}"), 404, "not-found")


def test_undo_is_one_reverse_batch(api: Api) -> None:
    ring = seed(api, 5)
    view = submitted(api, {"action": "account.suspend", "accounts": ring, "justification": CASE})
    review(api, "e-3002", view)
    review(api, "e-3003", view)
    batch_worker.run_batches(api.world.services, "test")
    response = api.post(
        "e-3001", f"/v1/batches/{view['id']}/undo", {"positions": [1, 3], "justification": CASE}
    )
    assert response.status_code == 201, response.text
    reverse = response.json()
    assert reverse["reverts"] == view["id"]
    assert reverse["action"] == "account.unsuspend"
    assert [i["account"] for i in reverse["items"]] == [ring[1], ring[3]]
    # A whole-batch undo meanwhile leaves out the items that undo carries, and says so.
    rest = api.post("e-3002", f"/v1/batches/{view['id']}/undo", {})
    assert rest.status_code == 201, rest.text
    assert [i["account"] for i in rest.json()["items"]] == [ring[0], ring[2], ring[4]]
    assert rest.json()["left_out"] == [
        {"position": p, "account": ring[p], "undone_by": {"batch": reverse["id"]}} for p in (1, 3)
    ]


def test_a_batch_and_the_list_count_cancelled_items_and_sum_to_its_items(api: Api) -> None:
    # Two accounts the policy in force at the run's start no longer lets ride: cancelled by
    # the start's re-check, and counted so in the batch and in the list.
    ring, big = seed(api, 3), seed_big(api.world, 2)
    view = submitted(
        api, {"action": "account.suspend", "accounts": [*ring, *big], "justification": CASE}
    )
    review(api, "e-3002", view)
    review(api, "e-3003", view)
    make_big_vit(api.world)
    batch_worker.run_batches(api.world.services, "test")
    shown = api.get("e-3001", f"/v1/batches/{view['id']}").json()
    assert shown["state"] == "executed"
    assert counts(shown) == (3, 0, 2, 0)
    (listed,) = api.get("e-3001", "/v1/batches").json()["items"]
    assert counts(listed) == (3, 0, 2, 0)
