"""Need-to-know reads over HTTP (foureyes.workflow.access): a request is for its requester,
whoever took part in it or may act on it now, and oversight staff (`security`, `leads` by
default); to anyone else it is the 404 of an unknown id, on reads and on every action. The
audit log's events are for oversight staff; its checkpoint and proofs are for everyone.

The demo cast: Kim (c-1001, support contractor) asks to deactivate the president; Mei and Sam
(trust & safety) and Ines (security) may review it; Tomas is Kim's manager (not eligible); Ana
(support) and Lee (trust & safety contractor) have nothing to do with it; Jo (leads) oversees.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import Api, assert_problem

DEACTIVATE = {
    "action": "account.deactivate",
    "account": "chirp:president",
    "params": {},
    "justification": "CASE-1234",
}
STRANGERS = ("e-2001", "c-3004", "e-3001", "e-5001")  # Ana, Lee, Tomas, Ravi


def listed(api: Api, staff_id: str, **params: Any) -> list[str]:
    response = api.get(staff_id, "/v1/requests", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def assert_unknown(response: Any, request_id: str) -> None:
    """A 404 that says exactly what an unknown id's says."""
    body = assert_problem(response, 404, "not-found")
    assert body == {
        "type": "urn:foureyes:problem:not-found",
        "title": "Not Found",
        "status": 404,
        "detail": f"no request {request_id!r}",
    }


def test_the_requester_sees_their_own_request(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    assert api.show("c-1001", request_id)["justification"] == "CASE-1234"
    assert listed(api, "c-1001") == [request_id]
    assert listed(api, "c-1001", mine="true") == [request_id]


def test_a_stranger_gets_the_404_of_an_unknown_id_and_an_empty_list(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    unknown = str(uuid.uuid4())
    for stranger in STRANGERS:
        assert_unknown(api.get(stranger, f"/v1/requests/{request_id}"), request_id)
        assert_unknown(api.get(stranger, f"/v1/requests/{unknown}"), unknown)
        assert listed(api, stranger) == []
        assert listed(api, stranger, account="chirp:president") == []
        assert listed(api, stranger, state="pending") == []


def test_a_strangers_actions_answer_the_same_404(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    digest = api.show("c-1001", request_id)["digest"]
    path = f"/v1/requests/{request_id}"
    review = {"decision": "approve", "digest": digest}
    # Ana is not eligible: the review's refusal must not say why (that would say what it is).
    assert_unknown(api.post("e-2001", f"{path}/reviews", review), request_id)
    assert_unknown(api.post("e-2001", f"{path}/reviews", {**review, "digest": "x"}), request_id)
    assert_unknown(api.post("e-2001", f"{path}/post-reviews", review), request_id)
    assert_unknown(api.post("e-2001", f"{path}/cancel"), request_id)
    assert_unknown(api.post("e-2001", f"{path}/execute"), request_id)
    assert_unknown(api.post("e-2001", f"{path}/undo", {"justification": "x"}), request_id)
    step_up = api.get("e-2001", f"{path}/step-up", params={"decision": "approve"})
    assert_unknown(step_up, request_id)
    assert api.show("c-1001", request_id)["reviews"] == []
    assert api.show("c-1001", request_id)["state"] == "pending"


def test_an_eligible_reviewer_sees_it_and_still_does_after_reviewing(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    assert api.show("e-3002", request_id)["id"] == request_id
    assert listed(api, "e-3002") == [request_id]
    assert listed(api, "e-3002", reviewable="true") == [request_id]
    assert api.review("e-3002", request_id, step_up=True).status_code == 200
    assert listed(api, "e-3002", reviewable="true") == []
    assert listed(api, "e-3002") == [request_id]
    for reviewer in ("e-3003", "e-4001"):
        assert api.review(reviewer, request_id, step_up=True).status_code == 200
    # Approved and waiting out its delay: Mei and Sam took part, and still see it.
    assert api.show("e-3003", request_id)["state"] == "scheduled"
    assert api.show("e-3002", request_id)["state"] == "scheduled"
    api.world.clock.advance(minutes=11)
    assert api.post("c-1001", f"/v1/requests/{request_id}/execute").status_code == 200
    assert api.show("e-3002", request_id)["state"] == "executed"
    # Tomas (Kim's manager, not eligible) never did, and still does not.
    assert_unknown(api.get("e-3001", f"/v1/requests/{request_id}"), request_id)


def test_oversight_staff_see_every_request(api: Api) -> None:
    kims = api.submitted("c-1001", **DEACTIVATE)["id"]
    api.world.clock.advance(seconds=1)
    anas = api.submitted("e-2001", action="account.lock", account="chirp:bob")["id"]
    for overseer in ("e-4001", "e-9001"):  # Ines (security), Jo (leads)
        assert listed(api, overseer) == [anas, kims]
        assert api.show(overseer, anas)["requester"] == "e-2001"
    assert listed(api, "e-2001") == [anas]
    assert listed(api, "c-1001") == [kims]


def test_pages_of_a_filtered_list_hold_only_visible_requests(api: Api) -> None:
    # Kim's and Ana's requests interleave; Kim's pages hold his alone, and the last page
    # says so (no cursor to an empty page past Ana's).
    kims = []
    for account in ("alice", "bob", "alice", "bob"):
        api.submitted("e-2001", action="account.view", account=f"chirp:{account}")
        api.world.clock.advance(seconds=1)
        kims.append(api.submitted("c-1001", action="account.view", account=f"chirp:{account}"))
        api.world.clock.advance(seconds=1)
    api.submitted("e-2001", action="account.view", account="chirp:alice")
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = api.get("c-1001", "/v1/requests", params=params).json()
        seen += [item["id"] for item in page["items"]]
        assert all(item["requester"] == "c-1001" for item in page["items"])
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert seen == [view["id"] for view in reversed(kims)]
    assert len(api.get("e-4001", "/v1/requests").json()["items"]) == 9


def test_the_audit_logs_events_are_for_oversight_staff(api: Api) -> None:
    api.submitted("c-1001", **DEACTIVATE)
    for staff_id in ("c-1001", "e-2001", "e-3002", "e-3001"):
        response = api.get(staff_id, "/v1/audit/events")
        body = assert_problem(response, 403, "forbidden")
        assert body["detail"] == "the audit log's events are for staff in leads or security"
    for overseer in ("e-4001", "e-9001"):
        response = api.get(overseer, "/v1/audit/events")
        assert response.status_code == 200, response.text
        assert response.json()["items"]


def test_the_checkpoint_and_proofs_stay_open_to_all_staff(api: Api) -> None:
    api.submitted("c-1001", **DEACTIVATE)
    first = api.get("c-1001", "/v1/audit/checkpoint")
    assert first.status_code == 200, first.text
    api.submitted("e-2001", action="account.lock", account="chirp:bob")
    for staff_id in ("c-1001", "e-2001", "e-4001"):
        now = api.get(staff_id, "/v1/audit/checkpoint")
        assert now.status_code == 200, now.text
        inclusion = api.get(staff_id, "/v1/audit/proofs/inclusion", params={"seq": 0})
        assert inclusion.status_code == 200, inclusion.text
        consistency = api.get(
            staff_id, "/v1/audit/proofs/consistency", params={"first": first.json()["size"]}
        )
        assert consistency.status_code == 200, consistency.text


def test_the_oversight_groups_are_configurable(api: Api) -> None:
    anas = api.submitted("e-2001", action="account.lock", account="chirp:bob")["id"]
    api.world.services.oversight_groups = frozenset({"legal"})
    assert listed(api, "e-5001") == [anas]  # Ravi (legal) now oversees
    assert api.get("e-5001", "/v1/audit/events").status_code == 200
    assert api.get("e-5001", "/v1/alerts").status_code == 200
    assert listed(api, "e-4001") == []  # Ines (security) no longer does
    body = assert_problem(api.get("e-4001", "/v1/audit/events"), 403, "forbidden")
    assert body["detail"] == "the audit log's events are for staff in legal"
    assert_problem(api.get("e-4001", "/v1/alerts"), 403, "forbidden")
