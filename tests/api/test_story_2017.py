"""The 2017 incident through the HTTP API: the contractor's request waits for three independent
colleagues (with step-up), runs after its delay, and is undone; on the contract's last day it is
refused outright."""

from __future__ import annotations

from datetime import UTC, datetime

from foureyes import worker
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem

DEACTIVATE = {
    "action": "account.deactivate",
    "account": "chirp:president",
    "params": {},
    "justification": "CASE-1234",
    "break_glass": False,
}


def test_the_2017_story_through_the_api(api: Api) -> None:
    # The dry run says what will happen before anything does.
    dry = api.post("c-1001", "/v1/decisions", DEACTIVATE).json()
    assert (dry["outcome"], dry["min_people"], dry["tier"]) == ("pending", 4, "vit")

    submitted = api.post("c-1001", "/v1/requests", DEACTIVATE)
    assert submitted.status_code == 201
    request = submitted.json()
    request_id, digest = request["id"], request["digest"]
    assert request["state"] == "pending"
    assert [f["missing"] for f in request["decision"]["factors"]] == [2, 1]
    inbox = api.get("e-3002", "/v1/requests", params={"reviewable": "true"}).json()
    assert [item["id"] for item in inbox["items"]] == [request_id]

    after_mei = api.review("e-3002", request_id, digest=digest, step_up=True).json()
    assert after_mei["state"] == "pending"
    after_sam = api.review("e-3003", request_id, digest=digest, step_up=True).json()
    assert after_sam["state"] == "pending"
    assert [f["missing"] for f in after_sam["decision"]["factors"]] == [0, 1]
    after_ines = api.review("e-4001", request_id, digest=digest, step_up=True).json()
    assert after_ines["state"] == "scheduled"
    assert after_ines["not_before"] == "2026-11-25T15:10:00+00:00"

    # The ten-minute delay runs: nothing happens yet, and it cannot be forced.
    assert worker.run_once(api.world.services).executed == []
    assert_problem(api.post("c-1001", f"/v1/requests/{request_id}/execute"), 409, "conflict")
    assert api.world.chirp("president")["status"] == "active"
    api.world.clock.advance(minutes=11)
    assert worker.run_once(api.world.services).executed == [request_id]
    executed = api.show("c-1001", request_id)
    assert executed["state"] == "executed"
    assert api.world.chirp("president")["status"] == "deactivated"
    account = api.get("e-3001", "/v1/accounts/chirp:president").json()
    assert (account["tier"], account["attributes"]["status"]) == ("vit", "deactivated")

    # Mei, who approved it, asks to undo it (an undo is for those who may see the request);
    # one other trust & safety employee confirms, and their approval carries the undo out.
    undo = api.post("e-3002", f"/v1/requests/{request_id}/undo", {"justification": "CASE-1234"})
    assert undo.status_code == 201
    undo_id = undo.json()["id"]
    assert (undo.json()["state"], undo.json()["reverts"]) == ("pending", request_id)
    assert api.review("e-3003", undo_id).json()["state"] == "executed"
    assert api.world.chirp("president")["status"] == "active"
    assert api.show("e-3002", undo_id)["state"] == "executed"
    final = api.show("c-1001", request_id)
    assert final["state"] == "reverted"
    assert [event["kind"] for event in final["timeline"]] == [
        "request.submitted",
        "review.recorded",
        "review.recorded",
        "review.recorded",
        "request.approved",
        "request.executing",
        "request.executed",
        "request.reverted",
    ]
    reviewed = {r["reviewer"]: r["step_up"] for r in final["reviews"]}
    assert reviewed == {"e-3002": True, "e-3003": True, "e-4001": True}

    # Every step is in the log, provably.
    events = api.get("e-4001", "/v1/audit/events", params={"request": request_id}).json()
    assert [e["kind"] for e in events["items"]] == [e["kind"] for e in final["timeline"]]


def test_on_the_last_day_the_api_refuses_it_and_records_why(api: Api) -> None:
    api.world.clock.now = datetime(2027, 6, 30, 9, 0, tzinfo=UTC)  # Kim's last day
    token = operations.issue_token(api.world.services, "c-1001")
    headers = {"Authorization": f"Bearer {token}"}
    response = api.client.post("/v1/requests", json=DEACTIVATE, headers=headers)
    body = assert_problem(response, 403, "denied-by-policy")
    assert "departing-contractors-read-only" in body["detail"]
    assert {"id": "departing-contractors-read-only", "effect": "deny"} in body["decision"]["rules"]
    assert body["decision"]["outcome"] == "denied"
    recorded = api.client.get(f"/v1/requests/{body['request_id']}", headers=headers).json()
    assert recorded["state"] == "denied"
