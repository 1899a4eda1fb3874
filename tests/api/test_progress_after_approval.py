"""What a request's view says about its approvals once it is past pending (issue #19): who
approved each factor, as the `request.approved` event recorded it, and nothing missing, through
scheduled, executed and reverted; never "approved by nobody yet" on a request that ran."""

from __future__ import annotations

from foureyes import worker
from tests.api.conftest import Api

DEACTIVATE = {
    "action": "account.deactivate",
    "account": "chirp:president",
    "params": {},
    "justification": "CASE-1234",
    "break_glass": False,
}


def _progress(view: dict[str, object]) -> list[tuple[str, list[str], int]]:
    decision = view["decision"]
    assert isinstance(decision, dict)
    return [(f["rule"], f["approved_by"], f["missing"]) for f in decision["factors"]]


def test_scheduled_and_executed_requests_show_who_approved(api: Api) -> None:
    request = api.post("c-1001", "/v1/requests", DEACTIVATE).json()
    request_id, digest = request["id"], request["digest"]
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        api.review(reviewer, request_id, digest=digest, step_up=True)

    scheduled = api.show("c-1001", request_id)
    assert scheduled["state"] == "scheduled"
    expected = [
        ("vit-significant-changes", ["e-3002", "e-3003"], 0),
        ("vit-security-sign-off", ["e-4001"], 0),
    ]
    assert _progress(scheduled) == expected
    # The list shows the same as the request's own view.
    listed = api.get("c-1001", "/v1/requests", params={"mine": "true"}).json()["items"]
    assert [_progress(item) for item in listed if item["id"] == request_id] == [expected]

    api.world.clock.advance(minutes=11)
    assert worker.run_once(api.world.services).executed == [request_id]
    executed = api.show("e-4001", request_id)
    assert executed["state"] == "executed"
    assert _progress(executed) == expected
