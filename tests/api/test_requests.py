"""`/v1/requests`: submit, list, show, review, cancel, undo, execute — shapes and refusals."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from foureyes import worker
from foureyes.store.tables import EventRow, ExecutionRow, RequestRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.api.conftest import Api, assert_problem
from tests.worlds import challenge_signature

DEACTIVATE = {
    "action": "account.deactivate",
    "account": "chirp:president",
    "justification": "CASE-1234",
}
REQUEST_FIELDS = {
    "id",
    "state",
    "digest",
    "requester",
    "action",
    "account",
    "params",
    "justification",
    "decision",
    "not_before",
    "expires_at",
    "created_at",
    "timeline",
}
DECISION_FIELDS = {"outcome", "policy_version", "rules", "factors", "min_people", "reasons"}


# --- submit ---------------------------------------------------------------------------------


def test_a_held_request_is_201_with_the_design_shape(api: Api) -> None:
    response = api.submit("c-1001", **DEACTIVATE)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    view = response.json()
    assert set(view) >= REQUEST_FIELDS
    assert set(view["decision"]) >= DECISION_FIELDS
    assert view["state"] == "pending"
    assert view["requester"] == "c-1001"
    assert view["action"] == "account.deactivate"
    assert view["account"] == "chirp:president"
    assert view["params"] == {}
    assert view["justification"] == "CASE-1234"
    assert len(view["digest"]) == 64
    assert view["decision"]["outcome"] == "pending"
    assert view["decision"]["min_people"] == 4
    factors = view["decision"]["factors"]
    assert [(f["rule"], f["approvals"], f["approved_by"], f["missing"]) for f in factors] == [
        ("vit-significant-changes", 2, [], 2),
        ("vit-security-sign-off", 1, [], 1),
    ]
    assert [event["kind"] for event in view["timeline"]] == ["request.submitted"]
    assert view["timeline"][0]["event"]["client"] == "testclient"


def test_an_allowed_write_is_carried_out_at_once(api: Api) -> None:
    view = api.submitted("e-2001", action="account.lock", account="chirp:bob")
    assert view["state"] == "executed"
    assert view["decision"]["outcome"] == "allowed"
    assert view["data"] is None
    assert worker.run_once(api.world.services).executed == []
    assert api.world.chirp("bob")["status"] == "locked"


def test_an_allowed_read_returns_its_data_once(api: Api) -> None:
    view = api.submitted("e-2001", action="account.view", account="chirp:bob")
    assert view["state"] == "executed"
    assert view["data"]
    assert "data" not in api.show("e-2001", view["id"])


def test_a_policy_denial_is_recorded_and_answered_403_with_its_id_and_decision(api: Api) -> None:
    response = api.submit("e-2001", action="account.read_dms", account="chirp:alice")
    body = assert_problem(response, 403, "denied-by-policy")
    assert "no-dms-or-impersonation-for-support" in body["detail"]
    assert body["decision"]["outcome"] == "denied"
    assert body["decision"]["rules"] == [
        {"id": "no-dms-or-impersonation-for-support", "effect": "deny"}
    ]
    recorded = api.show("e-2001", body["request_id"])
    assert recorded["state"] == "denied"
    assert recorded["requester"] == "e-2001"


@pytest.mark.parametrize(
    ("body", "status", "slug", "says"),
    [
        ({"action": "account.fly", "account": "chirp:bob"}, 422, "bad-input", "no action"),
        ({"action": "account.lock", "account": "chirp:nobody"}, 404, "not-found", "no account"),
        ({"action": "account.lock", "account": "mastodon:bob"}, 404, "not-found", "no platform"),
        ({"action": "account.lock", "account": "bob"}, 422, "bad-input", "account"),
        (
            {"action": "account.suspend", "account": "chirp:bob", "params": {"colour": "red"}},
            422,
            "bad-input",
            "params do not fit",
        ),
        (
            {"action": "account.deactivate", "account": "chirp:president"},
            422,
            "bad-input",
            "needs a justification",
        ),
        (
            {**DEACTIVATE, "justification": "because"},
            422,
            "bad-input",
            "must match",
        ),
    ],
)
def test_bad_input_records_nothing(
    api: Api, body: dict[str, Any], status: int, slug: str, says: str
) -> None:
    response = api.submit("c-1001", **body)
    problem = assert_problem(response, status, slug)
    assert says in problem["detail"]
    assert api.get("c-1001", "/v1/requests").json()["items"] == []


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({**DEACTIVATE, "requester": "e-9001"}, "body.requester"),
        ({"account": "chirp:bob"}, "body.action"),
        ({"action": "account.lock", "account": "chirp:bob", "params": []}, "body.params"),
        (
            {"action": "account.lock", "account": "chirp:bob", "break_glass": "yes"},
            "body.break_glass",
        ),
        ({"action": 7, "account": "chirp:bob"}, "body.action"),
        ({**DEACTIVATE, "justification": "x" * 501}, "body.justification"),
    ],
)
def test_a_body_outside_the_schema_is_a_422_problem(
    api: Api, body: dict[str, Any], location: str
) -> None:
    problem = assert_problem(api.submit("c-1001", **body), 422, "bad-input")
    assert location in [error["location"] for error in problem["errors"]]
    assert all(set(error) == {"location", "message", "type"} for error in problem["errors"])


def test_a_body_that_is_not_json_is_a_422_problem(api: Api) -> None:
    headers = {**api.auth("c-1001"), "Content-Type": "application/json"}
    response = api.client.post("/v1/requests", content=b"{not json", headers=headers)
    assert assert_problem(response, 422, "bad-input")["errors"][0]["type"] == "json_invalid"
    plain = {**api.auth("c-1001"), "Content-Type": "text/plain"}
    response = api.client.post("/v1/requests", content=b'{"action": "x"}', headers=plain)
    assert_problem(response, 422, "bad-input")
    assert_problem(api.post("c-1001", "/v1/requests"), 422, "bad-input")


# --- submit with an Idempotency-Key ---------------------------------------------------------


def submit_keyed(api: Api, staff_id: str, key: str | bytes, **body: Any) -> httpx.Response:
    headers = {**api.auth(staff_id), "Idempotency-Key": key}
    return api.client.post("/v1/requests", headers=headers, json=body)


def recorded(api: Api) -> tuple[int, int]:
    """How many requests and audit events the store holds."""
    with api.world.services.database.read() as session:
        requests = session.scalar(select(func.count()).select_from(RequestRow)) or 0
        events = session.scalar(select(func.count()).select_from(EventRow)) or 0
    return requests, events


def test_a_retry_with_the_same_key_answers_the_first_request_and_records_nothing(
    api: Api,
) -> None:
    first = submit_keyed(api, "c-1001", "8e03978e-40d5-43e8-bc93-6894a57f9324", **DEACTIVATE)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    before = recorded(api)

    again = submit_keyed(api, "c-1001", "8e03978e-40d5-43e8-bc93-6894a57f9324", **DEACTIVATE)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["content-type"] == "application/json"
    assert again.json() == first.json()
    assert recorded(api) == before
    assert [item["id"] for item in api.get("c-1001", "/v1/requests").json()["items"]] == [
        first.json()["id"]
    ]


def test_a_replay_answers_the_request_as_it_is_now(api: Api) -> None:
    request_id = submit_keyed(api, "c-1001", "k-1", **DEACTIVATE).json()["id"]
    assert api.post("c-1001", f"/v1/requests/{request_id}/cancel").status_code == 200

    again = submit_keyed(api, "c-1001", "k-1", **DEACTIVATE)

    assert again.status_code == 200
    assert (again.json()["id"], again.json()["state"]) == (request_id, "cancelled")


def test_a_replayed_allowed_write_is_not_carried_out_again(api: Api) -> None:
    body = {"action": "account.lock", "account": "chirp:bob"}
    first = submit_keyed(api, "e-2001", "lock-bob", **body).json()
    assert first["state"] == "executed"
    before = recorded(api)

    again = submit_keyed(api, "e-2001", "lock-bob", **body)

    assert again.status_code == 200
    assert (again.json()["id"], again.json()["state"]) == (first["id"], "executed")
    assert again.json()["data"] is None
    assert recorded(api) == before
    with api.world.services.database.read() as session:
        runs = session.scalar(select(func.count()).where(ExecutionRow.request_id == first["id"]))
    assert runs == 1


def test_a_replayed_read_does_not_return_its_data_again(api: Api) -> None:
    body = {"action": "account.view", "account": "chirp:bob"}
    assert submit_keyed(api, "e-2001", "view-bob", **body).json()["data"]

    again = submit_keyed(api, "e-2001", "view-bob", **body)

    assert again.status_code == 200
    assert (again.json()["state"], again.json()["data"]) == ("executed", None)


def test_a_replay_of_a_policy_denial_is_the_same_403(api: Api) -> None:
    # The first answer was a 403 problem carrying the recorded request: the retry gets it again.
    body = {"action": "account.read_dms", "account": "chirp:alice"}
    first = submit_keyed(api, "e-2001", "dms", **body)
    problem = assert_problem(first, 403, "denied-by-policy")
    assert "idempotent-replayed" not in first.headers
    before = recorded(api)

    again = submit_keyed(api, "e-2001", "dms", **body)

    assert assert_problem(again, 403, "denied-by-policy") == problem
    assert again.headers["Idempotent-Replayed"] == "true"
    assert recorded(api) == before


def test_a_replay_of_a_request_vetoed_later_is_200(api: Api) -> None:
    # Its submit was answered 201; that it is `denied` now (a reviewer's veto) is its state.
    request_id = submit_keyed(api, "c-1001", "veto", **DEACTIVATE).json()["id"]
    assert api.review("e-4001", request_id, "deny", step_up=True).status_code == 200

    again = submit_keyed(api, "c-1001", "veto", **DEACTIVATE)

    assert again.status_code == 200
    assert (again.json()["id"], again.json()["state"]) == (request_id, "denied")


@pytest.mark.parametrize(
    "other",
    [
        {**DEACTIVATE, "justification": "CASE-1235"},
        {**DEACTIVATE, "account": "chirp:bob"},
        {**DEACTIVATE, "action": "account.lock"},
        {**DEACTIVATE, "break_glass": True},
        {**DEACTIVATE, "params": {"reason": "spam"}},
    ],
)
def test_the_same_key_with_another_body_is_422_and_records_nothing(
    api: Api, other: dict[str, Any]
) -> None:
    request_id = submit_keyed(api, "c-1001", "k-1", **DEACTIVATE).json()["id"]
    before = recorded(api)

    problem = assert_problem(
        submit_keyed(api, "c-1001", "k-1", **other), 422, "idempotency-key-reused"
    )

    assert problem["request_id"] == request_id
    assert recorded(api) == before


def test_keys_belong_to_their_requester(api: Api) -> None:
    mine = submit_keyed(api, "c-1001", "shared", **DEACTIVATE)
    theirs = submit_keyed(api, "e-2001", "shared", **DEACTIVATE)

    assert (mine.status_code, theirs.status_code) == (201, 201), theirs.text
    assert mine.json()["id"] != theirs.json()["id"]


def test_without_a_key_every_submit_is_a_new_request(api: Api) -> None:
    first = api.submitted("c-1001", **DEACTIVATE)["id"]
    second = api.submitted("c-1001", **DEACTIVATE)["id"]
    assert first != second


def test_a_refused_submit_leaves_its_key_unused(api: Api) -> None:
    no_ticket = {k: v for k, v in DEACTIVATE.items() if k != "justification"}
    assert_problem(submit_keyed(api, "c-1001", "k-1", **no_ticket), 422, "bad-input")

    assert submit_keyed(api, "c-1001", "k-1", **DEACTIVATE).status_code == 201


@pytest.mark.parametrize(
    "key",
    ["", "x" * 201, "caf\xc3\xa9".encode("latin-1"), b"tab\there", b"\x7f"],
    ids=["empty", "too-long", "not-ascii", "tab", "del"],
)
def test_a_malformed_key_is_a_422_problem_and_records_nothing(api: Api, key: str | bytes) -> None:
    problem = assert_problem(submit_keyed(api, "c-1001", key, **DEACTIVATE), 422, "bad-input")

    assert "header.Idempotency-Key" in [error["location"] for error in problem["errors"]]
    assert recorded(api)[0] == 0


@pytest.mark.parametrize("key", ["x" * 200, "a key with spaces", '"quoted"', "~!@#$%^&*()"])
def test_any_printable_ascii_key_up_to_200_characters(api: Api, key: str) -> None:
    assert submit_keyed(api, "c-1001", key, **DEACTIVATE).status_code == 201
    assert submit_keyed(api, "c-1001", key, **DEACTIVATE).status_code == 200


# --- show and list ---------------------------------------------------------------------------


def test_an_unknown_request_is_a_404_problem(api: Api) -> None:
    response = api.get("e-3002", "/v1/requests/no-such-id")
    assert "no request" in assert_problem(response, 404, "not-found")["detail"]


def test_lists_page_newest_first_with_an_opaque_cursor(api: Api) -> None:
    ids = []
    for action, account in (
        ("account.view", "chirp:alice"),
        ("account.view", "chirp:bob"),
        ("account.lock", "chirp:bob"),
    ):
        ids.append(api.submitted("e-2001", action=action, account=account)["id"])
        api.world.clock.advance(seconds=1)
    first = api.get("e-2001", "/v1/requests", params={"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == [ids[2], ids[1]]
    assert "timeline" not in first["items"][0]
    assert isinstance(first["next"], str)
    second = api.get("e-2001", "/v1/requests", params={"limit": 2, "cursor": first["next"]}).json()
    assert [item["id"] for item in second["items"]] == [ids[0]]
    assert second["next"] is None


def test_lists_filter_by_state_mine_account_and_what_i_may_review(api: Api) -> None:
    pending = api.submitted("c-1001", **DEACTIVATE)["id"]
    api.world.clock.advance(seconds=1)
    allowed = api.submitted("e-2001", action="account.lock", account="chirp:bob")["id"]

    def ids(staff_id: str, **params: Any) -> list[str]:
        response = api.get(staff_id, "/v1/requests", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids("e-4001") == [allowed, pending]  # Ines oversees: she sees every request
    assert ids("e-4001", state="pending") == [pending]
    assert ids("e-4001", state="executed") == [allowed]
    assert ids("e-3002") == [pending]  # Mei sees what she may review, not Ana's lock
    assert ids("e-2001", mine="true") == [allowed]
    assert ids("e-3002", account="chirp:president") == [pending]
    assert ids("e-3002", reviewable="true") == [pending]  # trust & safety, not Kim's manager
    assert ids("e-4001", reviewable="true") == [pending]  # security
    assert ids("e-3001", reviewable="true") == []  # Tomas is Kim's manager
    assert ids("c-1001", reviewable="true") == []  # never one's own
    assert ids("e-2001", reviewable="true") == []  # support approves nothing here


@pytest.mark.parametrize(
    "params",
    [{"state": "sleeping"}, {"limit": 0}, {"limit": 201}, {"cursor": "bm9wZQ"}, {"cursor": "%%"}],
)
def test_bad_list_parameters_are_422_problems(api: Api, params: dict[str, Any]) -> None:
    assert_problem(api.get("e-3002", "/v1/requests", params=params), 422, "bad-input")


# --- reviews -------------------------------------------------------------------------------


def test_a_review_answers_the_updated_request(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    response = api.review("e-3002", request_id, step_up=True, comment="checked the ticket")
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["state"] == "pending"
    assert view["decision"]["factors"][0]["approved_by"] == ["e-3002"]
    assert view["decision"]["factors"][0]["missing"] == 1
    review = view["reviews"][0]
    assert review["reviewer"] == "e-3002"
    assert review["decision"] == "approve"
    assert review["comment"] == "checked the ticket"
    assert review["step_up"] is True


def test_a_digest_other_than_the_requests_is_409(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    response = api.review("e-3002", request_id, digest="0" * 64, step_up=True)
    body = assert_problem(response, 409, "conflict")
    assert "digest mismatch" in body["detail"]
    assert body["request_id"] == request_id
    assert api.show("e-3002", request_id)["reviews"] == []


def test_a_second_review_by_the_same_person_is_409(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    assert api.review("e-3002", request_id, step_up=True).status_code == 200
    assert_problem(api.review("e-3002", request_id, step_up=True), 409, "conflict")


def test_step_up_is_needed_where_the_policy_asks_for_it(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    path = f"/v1/requests/{request_id}/reviews"
    missing = assert_problem(api.review("e-3002", request_id), 403, "forbidden")
    assert "step-up" in missing["detail"]
    digest = api.show("e-3002", request_id)["digest"]
    sams = challenge_signature(api.world, "e-3003", request_id, digest)
    with_sams_key = {"decision": "approve", "digest": digest, "step_up": sams}
    response = api.post("e-3002", path, with_sams_key)
    assert "not enrolled for you" in assert_problem(response, 403, "forbidden")["detail"]
    bad = {"key_id": api.world.key_ids["e-3002"], "signature": sams["signature"]}
    response = api.post("e-3002", path, {"decision": "approve", "digest": digest, "step_up": bad})
    assert "signature" in assert_problem(response, 403, "forbidden")["detail"]
    # A signature over "approve" does not confirm a deny.
    approve = challenge_signature(api.world, "e-3002", request_id, digest)
    response = api.post("e-3002", path, {"decision": "deny", "digest": digest, "step_up": approve})
    assert_problem(response, 403, "forbidden")
    assert api.show("e-3002", request_id)["reviews"] == []


def test_an_approver_not_eligible_for_any_factor_is_403(api: Api) -> None:
    # Jo oversees (so he sees the request) but is Tomas's manager: his approval would not
    # count. To Ana, who may not see it, the same review is the 404 of an unknown id.
    request_id = api.submitted("e-3001", **DEACTIVATE)["id"]
    response = api.review("e-9001", request_id, step_up=True)
    assert "would not count" in assert_problem(response, 403, "forbidden")["detail"]
    digest = api.show("e-3001", request_id)["digest"]
    stranger = api.post(
        "e-2001", f"/v1/requests/{request_id}/reviews", {"decision": "approve", "digest": digest}
    )
    assert_problem(stranger, 404, "not-found")


def test_a_deny_vetoes(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    response = api.review("e-4001", request_id, "deny", step_up=True, comment="no ticket")
    assert response.json()["state"] == "denied"
    assert_problem(api.review("e-9001", request_id, step_up=True), 409, "conflict")


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe", "digest": "x"},
        {"decision": "approve"},
        {"decision": "approve", "digest": "x", "extra": 1},
        {"decision": "approve", "digest": "x", "step_up": {"key_id": "k"}},
        {
            "decision": "approve",
            "digest": "x",
            "step_up": {"key_id": "k", "signature": "s", "x": 1},
        },
        {"decision": "approve", "digest": "x", "comment": "x" * 2001},
    ],
)
def test_a_review_body_outside_the_schema_is_422(api: Api, body: dict[str, Any]) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    response = api.post("e-3002", f"/v1/requests/{request_id}/reviews", body)
    assert_problem(response, 422, "bad-input")


# --- cancel --------------------------------------------------------------------------------


def test_the_requester_cancels_with_or_without_a_body(api: Api) -> None:
    first = api.submitted("c-1001", **DEACTIVATE)["id"]
    response = api.client.post(f"/v1/requests/{first}/cancel", headers=api.auth("c-1001"))
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    assert response.json()["reason"] == "cancelled by c-1001"
    second = api.submitted("c-1001", **DEACTIVATE)["id"]
    view = api.post("c-1001", f"/v1/requests/{second}/cancel", {"reason": "wrong account"}).json()
    assert (view["state"], view["reason"]) == ("cancelled", "wrong account")
    assert_problem(api.post("c-1001", f"/v1/requests/{second}/cancel"), 409, "conflict")
    assert_problem(
        api.post("c-1001", f"/v1/requests/{second}/cancel", {"why": "x"}), 422, "bad-input"
    )


def test_an_eligible_reviewer_may_cancel_while_the_delay_runs(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        assert api.review(reviewer, request_id, step_up=True).status_code == 200
    assert api.show("e-9001", request_id)["state"] == "scheduled"
    # Ana may not review it, so to her it does not exist; Jo may review it, so he may cancel.
    assert_problem(api.post("e-2001", f"/v1/requests/{request_id}/cancel"), 404, "not-found")
    view = api.post("e-9001", f"/v1/requests/{request_id}/cancel", {"reason": "stop"}).json()
    assert view["state"] == "cancelled"


# --- execute and undo ----------------------------------------------------------------------


def test_the_requester_gets_an_approved_reads_data_once(api: Api) -> None:
    request_id = api.submitted(
        "e-3002", action="account.read_dms", account="chirp:alice", justification="LEGAL-7"
    )["id"]
    assert_problem(api.post("e-3002", f"/v1/requests/{request_id}/execute"), 409, "conflict")
    assert api.review("e-5001", request_id).json()["state"] == "approved"
    assert worker.run_once(api.world.services).executed == []  # reads wait for the requester
    response = api.post("e-3002", f"/v1/requests/{request_id}/execute")
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["state"] == "executed"
    messages = view["data"]["messages"]
    assert isinstance(messages, list)
    stored = api.show("e-3002", request_id)
    assert "data" not in stored  # the data is answered once, never stored
    assert stored["result"] == {
        "action": "account.read_dms",
        "account": "alice",
        "messages": len(messages),
    }
    again = api.post("e-3002", f"/v1/requests/{request_id}/execute")
    assert_problem(again, 409, "conflict")


def test_executing_an_approved_write_now(api: Api) -> None:
    # Through the library, which leaves an allowed write `approved` for the worker.
    request_id = operations.submit(
        api.world.services, api.world.actor("e-2001"), Submission("account.lock", "chirp:alice")
    )
    view = api.post("e-2001", f"/v1/requests/{request_id}/execute").json()
    assert (view["state"], view["data"]) == ("executed", None)
    assert api.world.chirp("alice")["status"] == "locked"
    assert worker.run_once(api.world.services).executed == []


def test_a_scheduled_request_cannot_be_executed_before_its_time(api: Api) -> None:
    request_id = api.submitted("c-1001", **DEACTIVATE)["id"]
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        api.review(reviewer, request_id, step_up=True)
    response = api.post("c-1001", f"/v1/requests/{request_id}/execute")
    assert "scheduled for" in assert_problem(response, 409, "conflict")["detail"]


def test_undo_is_a_new_linked_request(api: Api) -> None:
    pending = operations.submit(
        api.world.services, api.world.actor("e-2001"), Submission("account.lock", "chirp:bob")
    )
    assert_problem(api.post("e-2001", f"/v1/requests/{pending}/undo", {}), 409, "conflict")
    operations.cancel(api.world.services, api.world.actor("e-2001"), pending)
    original = api.submitted("e-2001", action="account.lock", account="chirp:bob")["id"]
    response = api.post("e-2001", f"/v1/requests/{original}/undo", {"justification": "mistake"})
    assert response.status_code == 201, response.text
    undo = response.json()
    assert (undo["action"], undo["reverts"], undo["state"]) == (
        "account.unlock",
        original,
        "executed",
    )
    assert api.show("e-2001", original)["state"] == "reverted"
    assert api.world.chirp("bob")["status"] == "active"
    assert_problem(
        api.post("e-2001", f"/v1/requests/{original}/undo", {"params": [], "x": 1}),
        422,
        "bad-input",
    )


def test_an_irreversible_action_cannot_be_undone(api: Api) -> None:
    request_id = api.submitted("e-3002", action="account.delete", account="chirp:bob")["id"]
    for reviewer in ("e-3003", "e-9001"):
        assert api.review(reviewer, request_id).status_code == 200
    api.world.clock.advance(hours=25)
    assert worker.run_once(api.world.services).executed == [request_id]
    response = api.post("e-3002", f"/v1/requests/{request_id}/undo", {})
    assert "cannot be undone" in assert_problem(response, 409, "conflict")["detail"]


def test_an_undo_the_policy_denies_is_403_with_its_id(api: Api) -> None:
    original = api.submitted("e-3002", action="account.deactivate", account="chirp:bob")["id"]
    assert api.show("e-3002", original)["state"] == "executed"
    # Ines (security) sees it (oversight) but may not reactivate accounts: the undo is
    # recorded, and denied by default. (Someone who may not see the original gets its 404.)
    refused = api.post("e-4001", f"/v1/requests/{original}/undo", {"justification": "oops"})
    body = assert_problem(refused, 403, "denied-by-policy")
    undo = api.show("e-4001", body["request_id"])
    assert (undo["state"], undo["reverts"], undo["action"]) == (
        "denied",
        original,
        "account.reactivate",
    )
    assert api.show("e-3002", original)["state"] == "executed"


def test_a_break_glass_is_signed_off_over_http(api: Api) -> None:
    glass = api.submitted(
        "e-3001", action="account.suspend", account="chirp:president", break_glass=True
    )
    assert glass["state"] == "executed"
    path = f"/v1/requests/{glass['id']}/post-reviews"
    body = {"decision": "approve", "digest": glass["digest"], "comment": "saw the incident"}
    assert_problem(api.post("e-3001", path, body), 403, "forbidden")  # not one's own
    assert_problem(api.post("e-3002", path, {**body, "digest": "0" * 64}), 409, "conflict")
    signed = api.post("e-3002", path, body)
    assert signed.status_code == 200, signed.text
    assert [(r["reviewer"], r["kind"]) for r in signed.json()["reviews"]] == [
        ("e-3002", "post_review")
    ]
    assert_problem(api.post("e-3002", path, body), 409, "conflict")  # only once
