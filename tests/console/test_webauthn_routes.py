"""The console's security-key routes over HTTP (the console fixture's TestClient, signed in
with a token), with the software authenticator: enrolment through the JSON endpoints (a
request for approval without a proof, a cooling key with one), one attempt per challenge, CSRF
on every POST, assertion options computed by the server, revocation of one's own keys only."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import select

from foureyes.auth import registrations, webauthn
from foureyes.auth.messages import challenge
from foureyes.console import LOGIN_STATE_COOKIE
from foureyes.errors import BadInput
from foureyes.store.tables import (
    AlertRow,
    LoginFailureRow,
    PendingRegistrationRow,
    RequestRow,
)
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import Browser, Console
from tests.webauthn_authenticator import SoftAuthenticator, b64url
from tests.worlds import bootstrap_security_key

RP = webauthn.DEMO_RELYING_PARTY
KIM, MEI, SAM = "c-1001", "e-3002", "e-3003"
PROBLEM_JSON = "application/problem+json"


def post_json(browser: Browser, path: str, body: Any, *, csrf: bool = True) -> httpx.Response:
    headers = {"X-CSRF-Token": browser.csrf("/console/security-keys")} if csrf else {}
    return browser.client.post(path, json=body, headers=headers, follow_redirects=False)


def enrol(browser: Browser, key: SoftAuthenticator, name: str = "blue key") -> httpx.Response:
    options = post_json(browser, "/console/webauthn/registration/options", {})
    assert options.status_code == 200, options.text
    return post_json(
        browser,
        "/console/webauthn/registration",
        {"name": name, "credential": key.create(options.json())},
    )


def test_a_key_added_through_the_console_without_a_proof_waits_for_approval(
    console: Console,
) -> None:
    """Mei has no security key that counts: her new key becomes a request for security's
    approval (202), not a key; the pending registration is used up either way."""
    mei = console.signed_in(MEI)
    key = SoftAuthenticator(RP.id, RP.origins[0])
    options = post_json(mei, "/console/webauthn/registration/options", {}).json()
    assert options["user"]["displayName"] == "Mei Chen"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    response = key.create(options)
    body = {"name": "blue", "credential": response}
    # No key of hers counts, so none can vouch for this one.
    none = post_json(mei, "/console/webauthn/registration/proof-options", body)
    assert none.status_code == 409
    assert none.headers["content-type"] == PROBLEM_JSON

    done = post_json(mei, "/console/webauthn/registration", body)
    assert done.status_code == 202, done.text
    request_id = done.json()["request_id"]
    assert done.json() == {
        "key_id": webauthn.key_id_of(key.credential_id),
        "request_id": request_id,
        "next": f"/console/requests/{request_id}",
    }
    assert webauthn.list_keys(console.world.services, MEI) == []
    view = operations.show(console.world.services, request_id)
    assert (view["action"], view["state"]) == ("foureyes.staff.enrol_credential", "pending")
    again = post_json(mei, "/console/webauthn/registration", body)
    assert again.status_code == 422
    assert again.headers["content-type"] == PROBLEM_JSON
    assert "no security key enrolment is in progress" in again.json()["detail"]

    page = mei.get("/console/security-keys")
    assert page.status_code == 200
    assert "You have no security key yet." in page.text
    assert '<script src="/console/static/webauthn.js"></script>' in page.text
    # The page is at https://testserver, not on the RP ID: it says where keys work.
    assert 'data-wrong-address="1"' in page.text
    assert 'href="http://localhost:8400/console/security-keys"' in page.text


def test_a_key_vouched_for_by_a_counting_key_is_added_and_cools_down(console: Console) -> None:
    """With a key that counts, Mei confirms the new one with it (201); the new key is listed,
    still in its cool-down, and the page says from when it counts."""
    mei = console.signed_in(MEI)
    old = bootstrap_security_key(console.world, MEI, "old key")
    new = SoftAuthenticator(RP.id, RP.origins[0])
    options = post_json(mei, "/console/webauthn/registration/options", {}).json()
    assert [c["id"] for c in options["excludeCredentials"]] == [b64url(old.credential_id)]
    body: dict[str, Any] = {"name": "new key", "credential": new.create(options)}
    proof = post_json(mei, "/console/webauthn/registration/proof-options", body)
    assert proof.status_code == 200, proof.text
    assert [c["id"] for c in proof.json()["allowCredentials"]] == [b64url(old.credential_id)]
    body["proof"] = {"method": "webauthn", "credential": old.get(proof.json())}

    done = post_json(mei, "/console/webauthn/registration", body)
    assert done.status_code == 201, done.text
    assert done.json()["next"] == "/console/security-keys?done=enrolled"
    views = {v.name: v for v in webauthn.list_keys(console.world.services, MEI)}
    assert views["new key"].counts_from == console.world.clock.now + timedelta(hours=24)
    page = mei.get("/console/security-keys?done=enrolled")
    assert "Security key added." in page.text
    assert f'data-key-id="{views["new key"].id}"' in page.text
    assert 'data-cooling="1"' in page.text


def test_a_refused_registration_is_a_problem_and_stores_nothing(console: Console) -> None:
    mei = console.signed_in(MEI)
    key = SoftAuthenticator(RP.id, "https://evil.example")
    refused = enrol(mei, key)
    assert refused.status_code == 403
    assert "origin" in refused.json()["detail"]
    assert webauthn.list_keys(console.world.services, MEI) == []


def test_every_post_needs_the_csrf_token(console: Console) -> None:
    mei = console.signed_in(MEI)
    path = "/console/webauthn/registration/options"
    assert post_json(mei, path, {}, csrf=False).status_code == 403
    wrong = mei.client.post(path, json={}, headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403
    assert console.browser().post(path, {}).status_code == 303  # signed out: to the login page


def test_assertion_options_carry_the_challenge_of_that_review(console: Console) -> None:
    mei = console.signed_in(MEI)
    key = bootstrap_security_key(console.world, MEI)
    request_id = operations.submit(
        console.world.services,
        console.world.actor(KIM),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )
    digest = operations.show(console.world.services, request_id)["digest"]
    path = "/console/webauthn/assertion/options"

    options = post_json(mei, path, {"request_id": request_id, "decision": "deny"})
    assert options.status_code == 200, options.text
    expected = challenge(request_id=request_id, digest=digest, reviewer_id=MEI, decision="deny")
    assert options.json()["challenge"] == b64url(expected)
    assert [c["id"] for c in options.json()["allowCredentials"]] == [b64url(key.credential_id)]
    unknown = post_json(mei, path, {"request_id": "nope", "decision": "approve"})
    assert unknown.status_code == 404
    sam = console.signed_in(SAM)  # no key
    assert post_json(sam, path, {"request_id": request_id, "decision": "approve"}).status_code == (
        409
    )
    supplied = {"request_id": request_id, "decision": "approve", "challenge": "AAAA"}
    assert post_json(mei, path, supplied).status_code == 422  # the client never names it


def test_only_the_owner_revokes_a_key(console: Console) -> None:
    mei, sam = console.signed_in(MEI), console.signed_in(SAM)
    bootstrap_security_key(console.world, MEI)
    [view] = webauthn.list_keys(console.world.services, MEI)
    path = f"/console/security-keys/{view.id}/revoke"
    assert sam.post(path, {}, csrf_from="/console/security-keys").status_code == 404
    revoked = mei.post(path, {}, csrf_from="/console/security-keys")
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/console/security-keys?done=revoked"
    [after] = webauthn.list_keys(console.world.services, MEI)
    assert after.revoked_at is not None


def _login_state(browser: Browser) -> dict[str, Any]:
    """What the browser's signed login-state cookie holds (Starlette's: base64 JSON, then the
    signature)."""
    value = browser.client.cookies.get(LOGIN_STATE_COOKIE)
    if value is None:
        return {}
    payload = value.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def test_a_replayed_registration_brings_no_challenge_back(console: Console) -> None:
    """`atk/s8.py`: one `registration/options` call, the cookies of that moment saved and
    replayed with bogus proofs, then two other new keys sent against the same challenge. The
    challenge lives on the server, under the console session, and the first response used it
    up: every later one is refused before anything is verified, and leaves nothing."""
    mei = console.signed_in(MEI)
    options = post_json(mei, "/console/webauthn/registration/options", {})
    assert options.status_code == 200, options.text
    assert "webauthn" not in json.dumps(_login_state(mei))  # nothing of it in the browser
    saved = list(mei.client.cookies.jar)  # every cookie as it is now, path and all
    bogus = {"key_id": "0" * 16, "signature": "AAAA"}

    def send(key: SoftAuthenticator, proof: dict[str, Any] | None) -> httpx.Response:
        body: dict[str, Any] = {"name": "k", "credential": key.create(options.json())}
        if proof is not None:
            body["proof"] = proof
        return post_json(mei, "/console/webauthn/registration", body)

    first = send(SoftAuthenticator(RP.id, RP.origins[0]), bogus)
    assert first.status_code == 403, first.text
    for _ in range(15):
        mei.client.cookies.clear()  # the cookies as they were after the options
        for cookie in saved:
            mei.client.cookies.jar.set_cookie(cookie)
        again = send(SoftAuthenticator(RP.id, RP.origins[0]), bogus)
        assert again.status_code == 422, again.text
        assert "no security key enrolment is in progress" in again.json()["detail"]
    for _ in range(2):  # two other new keys, no proof: no enrolment request either
        assert send(SoftAuthenticator(RP.id, RP.origins[0]), None).status_code == 422

    services = console.world.services
    with services.database.transaction() as session:
        assert session.scalars(select(PendingRegistrationRow)).all() == []
        assert session.scalars(select(RequestRow)).all() == []
        detectors = list(session.scalars(select(AlertRow.detector)))
        failures = list(session.scalars(select(LoginFailureRow.key)))
    assert detectors == ["step_up_failed"]  # the one response that was looked at
    assert failures == [f"step-up:{MEI}"]
    assert webauthn.list_keys(services, MEI) == []


def test_an_enrolment_in_progress_ends_with_its_session(console: Console) -> None:
    """Signing out deletes the pending registration with the session; signing in again
    starts none."""
    mei = console.signed_in(MEI)
    options = post_json(mei, "/console/webauthn/registration/options", {}).json()
    key = SoftAuthenticator(RP.id, RP.origins[0])
    body = {"name": "k", "credential": key.create(options)}
    with console.world.services.database.transaction() as session:
        assert len(session.scalars(select(PendingRegistrationRow)).all()) == 1
    assert mei.post("/console/logout", {}).status_code == 303
    with console.world.services.database.transaction() as session:
        assert session.scalars(select(PendingRegistrationRow)).all() == []
    again = console.signed_in(MEI)
    refused = post_json(again, "/console/webauthn/registration", body)
    assert refused.status_code == 422
    assert "no security key enrolment is in progress" in refused.json()["detail"]


def test_an_enrolment_is_kept_only_for_a_session_that_exists(console: Console) -> None:
    """The pending registration belongs to a console session in the store: none is kept for a
    session that is gone (signed out in another tab meanwhile), and nothing is written."""
    services = console.world.services
    with pytest.raises(BadInput, match="this console session has ended"):
        registrations.start(services, console.world.actor(MEI), "0" * 64)
    with pytest.raises(BadInput, match="no security key enrolment is in progress"):
        registrations.take(services, "0" * 64)
    with services.database.transaction() as session:
        assert session.scalars(select(PendingRegistrationRow)).all() == []
