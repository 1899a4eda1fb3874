"""WebAuthn step-up over the HTTP API: `GET /v1/requests/{id}/step-up` gives the options of one
review, and `POST …/reviews` takes the security key's assertion (and still device keys)."""

from __future__ import annotations

from typing import Any

from foureyes.auth import webauthn
from foureyes.auth.messages import challenge
from tests.api.conftest import Api, assert_problem
from tests.webauthn_authenticator import SoftAuthenticator, b64url
from tests.worlds import bootstrap_security_key

RP = webauthn.DEMO_RELYING_PARTY
KIM, MEI, SAM = "c-1001", "e-3002", "e-3003"
DEACTIVATE = {
    "action": "account.deactivate",
    "account": "chirp:president",
    "justification": "CASE-1234",
}


def enrol(api: Api, staff_id: str) -> SoftAuthenticator:
    """A key stored as the bootstrap stores them (adding keys: tests/adversarial)."""
    return bootstrap_security_key(api.world, staff_id, "key")


def test_an_api_client_confirms_a_review_with_a_security_key(api: Api) -> None:
    key = enrol(api, MEI)
    view = api.submitted(KIM, **DEACTIVATE)
    path = f"/v1/requests/{view['id']}"

    response = api.get(MEI, f"{path}/step-up", params={"decision": "approve"})
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    assert options["rpId"] == RP.id
    assert options["userVerification"] == "required"
    expected = challenge(
        request_id=view["id"], digest=view["digest"], reviewer_id=MEI, decision="approve"
    )
    assert options["challenge"] == b64url(expected)
    assert [c["id"] for c in options["allowCredentials"]] == [b64url(key.credential_id)]

    body = {
        "decision": "approve",
        "digest": view["digest"],
        "step_up": {"method": "webauthn", "credential": key.get(options)},
    }
    as_deny = {**body, "decision": "deny"}
    assert_problem(api.post(MEI, f"{path}/reviews", as_deny), 403, "forbidden")
    response = api.post(MEI, f"{path}/reviews", body)
    assert response.status_code == 200, response.text
    [review] = response.json()["reviews"]
    assert review["reviewer"] == MEI

    # Sam has no security key: the options say so; his device key still confirms his review.
    assert_problem(api.get(SAM, f"{path}/step-up", params={"decision": "approve"}), 409, "conflict")
    assert api.review(SAM, view["id"], step_up=True).status_code == 200


def test_the_options_and_the_assertion_are_checked_at_the_edge(api: Api) -> None:
    view = api.submitted(KIM, **DEACTIVATE)
    path = f"/v1/requests/{view['id']}"
    assert_problem(api.get(MEI, f"{path}/step-up", params={"decision": "maybe"}), 422, "bad-input")
    assert_problem(api.get(MEI, "/v1/requests/nope/step-up?decision=approve"), 404, "not-found")
    malformed = {
        "decision": "approve",
        "digest": view["digest"],
        "step_up": {"method": "webauthn", "credential": {"id": "not base64url!"}},
    }
    assert_problem(api.post(MEI, f"{path}/reviews", malformed), 422, "bad-input")
    assert api.client.get(f"{path}/step-up?decision=approve").status_code == 401
