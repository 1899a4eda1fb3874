"""Bearer tokens: a staff member acts only with their own credential, and only while they may."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from foureyes.policy.directory import load_directory
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.api.conftest import Api, assert_problem
from tests.conftest import EXAMPLES

V1_ROUTES = [
    ("GET", "/v1/requests"),
    ("POST", "/v1/requests"),
    ("GET", "/v1/requests/some-id"),
    ("POST", "/v1/requests/some-id/reviews"),
    ("POST", "/v1/requests/some-id/cancel"),
    ("POST", "/v1/requests/some-id/undo"),
    ("POST", "/v1/requests/some-id/execute"),
    ("POST", "/v1/decisions"),
    ("GET", "/v1/accounts/chirp:president"),
    ("GET", "/v1/audit/checkpoint"),
    ("GET", "/v1/audit/events"),
    ("GET", "/v1/audit/proofs/inclusion?seq=0"),
    ("GET", "/v1/audit/proofs/consistency?first=1"),
]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
def test_every_v1_route_needs_a_token(api: Api, method: str, path: str) -> None:
    response = api.client.request(method, path)
    body = assert_problem(response, 401, "unauthenticated")
    assert "Bearer" in body["detail"]
    assert response.headers["www-authenticate"] == 'Bearer realm="foureyes"'


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        ("Bearer not-a-token", "malformed token"),
        ("Bearer fey_0123456789abcdef_notthesecret", "unknown token"),
        ("Bearer fey__", "malformed token"),
    ],
)
def test_a_token_that_does_not_verify_is_401_invalid_token(
    api: Api, authorization: str, why: str
) -> None:
    response = api.client.get("/v1/requests", headers={"Authorization": authorization})
    body = assert_problem(response, 401, "unauthenticated")
    assert body["detail"] == why
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="foureyes", error="invalid_token"')
    assert why in challenge


def test_another_scheme_is_not_a_token(api: Api) -> None:
    response = api.client.get("/v1/requests", headers={"Authorization": "Basic a2ltOmtpbQ=="})
    assert_problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_real_token_with_a_wrong_secret_is_unknown(api: Api) -> None:
    prefix, token_id, _ = api.tokens["e-3002"].split("_", 2)
    forged = f"{prefix}_{token_id}_{'A' * 43}"
    response = api.client.get("/v1/requests", headers={"Authorization": f"Bearer {forged}"})
    assert assert_problem(response, 401, "unauthenticated")["detail"] == "unknown token"


def test_an_expired_token_is_refused(api: Api) -> None:
    token = operations.issue_token(api.world.services, "e-3002", lifetime=timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/requests", headers=headers).status_code == 200
    api.world.clock.advance(hours=2)
    response = api.client.get("/v1/requests", headers=headers)
    assert assert_problem(response, 401, "unauthenticated")["detail"] == "this token has expired"


def test_a_revoked_token_is_refused_from_the_next_request(api: Api) -> None:
    """Both ways a token is checked: `authenticate` (GET /v1/requests) and the dry run's own
    one-statement read (POST /v1/decisions)."""
    token = operations.issue_token(api.world.services, "e-2001", label="phished")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"action": "account.lock", "account": "chirp:bob"}
    assert api.client.get("/v1/requests", headers=headers).status_code == 200
    assert api.client.post("/v1/decisions", headers=headers, json=body).status_code == 200
    operations.revoke_token(api.world.services, token.split("_")[1])
    for response in (
        api.client.get("/v1/requests", headers=headers),
        api.client.post("/v1/decisions", headers=headers, json=body),
    ):
        problem = assert_problem(response, 401, "unauthenticated")
        assert problem["detail"] == "this token was revoked"
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # The person's other token is untouched.
    assert api.get("e-2001", "/v1/requests").status_code == 200


def test_a_terminated_persons_token_stops_working(api: Api) -> None:
    assert api.get("c-1001", "/v1/requests").status_code == 200
    directory = load_directory(EXAMPLES / "staff.yaml")
    without_kim = {k: v for k, v in directory.staff.items() if k != "c-1001"}
    operations.import_directory(
        api.world.services, dataclasses.replace(directory, staff=without_kim)
    )
    response = api.get("c-1001", "/v1/requests")
    body = assert_problem(response, 401, "unauthenticated")
    assert "no longer works" in body["detail"]


def test_a_contractor_past_the_contract_end_is_refused(api: Api) -> None:
    tokens = {
        staff_id: operations.issue_token(api.world.services, staff_id, lifetime=None)
        for staff_id in ("c-1001", "e-3002")
    }
    api.world.clock.now = datetime(2027, 7, 1, 9, 0, tzinfo=UTC)  # Kim's contract ended 30 June
    kim = {"Authorization": f"Bearer {tokens['c-1001']}"}
    body = assert_problem(api.client.get("/v1/requests", headers=kim), 401, "unauthenticated")
    assert "ended on 2027-06-30" in body["detail"]
    mei = {"Authorization": f"Bearer {tokens['e-3002']}"}
    assert api.client.get("/v1/requests", headers=mei).status_code == 200


def test_the_token_decides_who_acts(api: Api) -> None:
    """The body cannot name the requester: the request is the token owner's."""
    view = api.submitted("e-2001", action="account.lock", account="chirp:bob")
    assert view["requester"] == "e-2001"
    refused = api.post(
        "e-2001",
        "/v1/requests",
        {"action": "account.lock", "account": "chirp:alice", "requester": "e-9001"},
    )
    assert_problem(refused, 422, "bad-input")


def test_someone_elses_token_cannot_cancel_a_pending_request(api: Api) -> None:
    view = api.submitted(
        "c-1001", action="account.deactivate", account="chirp:president", justification="CASE-1"
    )
    # Mei may review it (so she sees it), but only the requester cancels a pending request;
    # to a stranger it does not exist (tests/api/test_need_to_know.py).
    response = api.post("e-3002", f"/v1/requests/{view['id']}/cancel")
    body = assert_problem(response, 403, "forbidden")
    assert "only the requester" in body["detail"]
    assert_problem(api.post("e-2001", f"/v1/requests/{view['id']}/cancel"), 404, "not-found")
    assert api.show("c-1001", view["id"])["state"] == "pending"


def test_someone_else_cannot_carry_out_a_read(api: Api) -> None:
    # Submitted through the library, which leaves the allowed read waiting for its requester.
    request_id = operations.submit(
        api.world.services, api.world.actor("e-2001"), Submission("account.view", "chirp:bob")
    )
    assert api.show("e-2001", request_id)["state"] == "approved"
    # Ines oversees (she sees every request) and still may not carry out Ana's read.
    response = api.post("e-4001", f"/v1/requests/{request_id}/execute")
    assert_problem(response, 403, "forbidden")
    assert api.show("e-2001", request_id)["state"] == "approved"


def test_the_requester_cannot_approve_their_own_request(api: Api) -> None:
    view = api.submitted(
        "e-3002", action="account.suspend", account="chirp:president", justification="CASE-2"
    )
    response = api.review("e-3002", view["id"])
    assert_problem(response, 403, "forbidden")
