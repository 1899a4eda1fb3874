"""A stolen sign-in adding its own step-up credential, the way an attacker would: with only Mei's
phished `fey_` token, sign in to the console, register a software authenticator's security key
(attestation "none", user verification claimed, the right origin), then approve a step-up review
with it over the HTTP API. On SQLite and PostgreSQL.

What foureyes must do: the session alone adds no key that counts (the key becomes a request that
security approves, and that Mei cannot approve herself); a key that an existing key of Mei's
vouches for is stored but counts only after the cool-down; once it counts it decides; every
enrolment raises a high alert and tells Mei and security; revoking is immediate. The API and the
operator CLI are no way around it either.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from starlette.testclient import TestClient

from foureyes import worker
from foureyes.auth import credentials, webauthn
from foureyes.auth.messages import challenge
from foureyes.auth.stepup import bootstrap_key
from foureyes.bootstrap import services_for
from foureyes.config import Settings
from foureyes.config.served import as_served
from foureyes.store.tables import (
    EventRow,
    OutboxRow,
    RequestRow,
    ReviewRow,
    StepUpKeyRow,
    WebAuthnCredentialRow,
)
from foureyes.workflow import operations
from tests.api.conftest import Api, assert_problem
from tests.console.conftest import BASE_URL, Browser
from tests.unit.commands.cli import initialised, run
from tests.webauthn_authenticator import SoftAuthenticator, b64url
from tests.worlds import World, bootstrap_security_key

RP = webauthn.DEMO_RELYING_PARTY
KIM, MEI, SAM, INES, JO = "c-1001", "e-3002", "e-3003", "e-4001", "e-9001"
DEACTIVATE = {
    "action": "account.deactivate",
    "account": "chirp:president",
    "justification": "CASE-1234",
}
COOLDOWN = timedelta(hours=24)
Proof = Callable[[Browser, dict[str, Any]], dict[str, Any]]


# --- the attacker's moves, through the console and the API -----------------------------------


def console_with(api: Api, token: str) -> Browser:
    """A browser signed in to the console with a bearer token (what a phished token gives)."""
    browser = Browser(TestClient(api.client.app, base_url=BASE_URL))
    signed_in = browser.post("/console/login", {"token": token}, csrf_from="/console/login")
    assert signed_in.status_code == 303, signed_in.text
    return browser


def post_json(browser: Browser, path: str, body: Any) -> httpx.Response:
    headers = {"X-CSRF-Token": browser.csrf("/console/security-keys")}
    return browser.client.post(path, json=body, headers=headers, follow_redirects=False)


def register(
    browser: Browser, key: SoftAuthenticator, name: str = "attacker key", proof: Proof | None = None
) -> httpx.Response:
    """The registration ceremony on the Security keys page's endpoints, with the vouching
    assertion `proof` makes (if any)."""
    options = post_json(browser, "/console/webauthn/registration/options", {})
    assert options.status_code == 200, options.text
    body: dict[str, Any] = {"name": name, "credential": key.create(options.json())}
    if proof is not None:
        body["proof"] = proof(browser, body)
    return post_json(browser, "/console/webauthn/registration", body)


def new_key(staff_id: str, key: SoftAuthenticator, name: str) -> credentials.NewCredential:
    """The new key as the server sees it: everything in it is in the registration response,
    so anyone can compute its enrolment challenge."""
    return credentials.NewCredential(
        staff_id, credentials.WEBAUTHN, key.cose_public_key(), name, key.credential_id
    )


def webauthn_proof(voucher: SoftAuthenticator, staff_id: str, new: SoftAuthenticator) -> Proof:
    """`voucher` signs the enrolment challenge of `new` (what `…/proof-options` would ask)."""

    def proof(_: Browser, body: dict[str, Any]) -> dict[str, Any]:
        expected = credentials.enrolment_challenge(new_key(staff_id, new, body["name"]))
        options = {
            "challenge": b64url(expected),
            "rpId": RP.id,
            "allowCredentials": [],
            "userVerification": "required",
        }
        return {"method": "webauthn", "credential": voucher.get(options)}

    return proof


def device_key_proof(world: World, staff_id: str, new: SoftAuthenticator) -> Proof:
    """The person's device key (the world's, enrolled at init: it counts) vouches for `new`."""

    def proof(_: Browser, body: dict[str, Any]) -> dict[str, Any]:
        expected = credentials.enrolment_challenge(new_key(staff_id, new, body["name"]))
        signature = world.keys[staff_id].sign(expected)
        return {
            "key_id": world.key_ids[staff_id],
            "signature": base64.b64encode(signature).decode(),
        }

    return proof


def approve_with(api: Api, staff_id: str, key: SoftAuthenticator, request_id: str) -> Any:
    """`GET …/step-up` if it answers, else the challenge computed as anyone can; then the key's
    assertion in `POST …/reviews`."""
    view = api.show(staff_id, request_id)
    options = api.get(staff_id, f"/v1/requests/{request_id}/step-up?decision=approve")
    if options.status_code == 200:
        made = options.json()
    else:
        expected = challenge(
            request_id=request_id, digest=view["digest"], reviewer_id=staff_id, decision="approve"
        )
        made = {"challenge": b64url(expected), "rpId": RP.id, "userVerification": "required"}
    body = {
        "decision": "approve",
        "digest": view["digest"],
        "step_up": {"method": "webauthn", "credential": key.get(made)},
    }
    return api.post(staff_id, f"/v1/requests/{request_id}/reviews", body)


# --- what the test looks at --------------------------------------------------------------------


def keys_of(world: World, staff_id: str) -> list[tuple[str, Any]]:
    """(name, counts_from) of the person's security keys."""
    with world.services.database.transaction() as session:
        return [
            (row.name, row.counts_from)
            for row in session.scalars(
                select(WebAuthnCredentialRow)
                .where(WebAuthnCredentialRow.staff_id == staff_id)
                .order_by(WebAuthnCredentialRow.created_at)
            )
        ]


def reviews_of(world: World, request_id: str) -> list[str]:
    with world.services.database.transaction() as session:
        return list(
            session.scalars(select(ReviewRow.reviewer_id).where(ReviewRow.request_id == request_id))
        )


def alerts(api: Api, detector: str) -> list[dict[str, Any]]:
    response = api.get(INES, "/v1/alerts", params={"detector": detector})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def outbox(world: World, kind: str) -> list[tuple[str | None, str | None]]:
    with world.services.database.transaction() as session:
        return sorted(
            (row.channel, row.to_staff)
            for row in session.scalars(select(OutboxRow).where(OutboxRow.kind == kind))
        )


def approved_by(api: Api, request_id: str) -> list[str]:
    view = api.show(INES, request_id)
    return sorted(who for factor in view["decision"]["factors"] for who in factor["approved_by"])


def enrolment_requests(world: World) -> list[RequestRow]:
    with world.services.database.transaction() as session:
        rows = list(
            session.scalars(select(RequestRow).where(RequestRow.action == credentials.ENROL_ACTION))
        )
        session.expunge_all()
        return rows


def pass_cooldown(api: Api) -> None:
    """Move the services' clock past the cool-down; tokens are reissued (sessions age too)."""
    api.world.clock.advance(hours=24, minutes=1)
    for staff_id in list(api.tokens):
        api.tokens[staff_id] = operations.issue_token(api.world.services, staff_id)


# --- the attack --------------------------------------------------------------------------------


def test_a_stolen_token_cannot_enrol_a_key_that_approves(api: Api) -> None:
    """The verified attack, step by step. Before the fix: 201, then Mei's approval counted on
    the vit deactivation. Now: the key is only asked for, nothing approves with it, the failed
    step-up is flagged, and the stolen token cannot approve its own enrolment request."""
    attacker = console_with(api, api.tokens[MEI])
    key = SoftAuthenticator(RP.id, "http://localhost:8400")  # user verification claimed

    answer = register(attacker, key)
    assert answer.status_code == 202, answer.text  # asked for, not added
    assert keys_of(api.world, MEI) == []

    request_id = api.submitted(KIM, **DEACTIVATE)["id"]
    assert_problem(
        api.get(MEI, f"/v1/requests/{request_id}/step-up?decision=approve"), 409, "conflict"
    )
    refused = approve_with(api, MEI, key, request_id)
    assert "not enrolled for you" in assert_problem(refused, 403, "forbidden")["detail"]
    assert reviews_of(api.world, request_id) == []
    assert approved_by(api, request_id) == []
    assert [a["staff"] for a in alerts(api, "step_up_failed")] == [MEI]  # beyond fast_approval

    # The enrolment request is Mei's: her stolen token cannot approve it, and nothing runs.
    [asked] = enrolment_requests(api.world)
    assert (asked.requester_id, asked.state) == (MEI, "pending")
    assert asked.params["staff"] == MEI
    assert asked.params["credential_id"] == b64url(key.credential_id)
    assert_problem(api.review(MEI, asked.id), 403, "forbidden")
    assert worker.run_once(api.world.services).executed == []
    assert keys_of(api.world, MEI) == []
    # ... and Mei hears that a key was asked for in her name.
    assert outbox(api.world, "credential.requested") == [(None, MEI)]

    # The same request over the API directly is the same governed request, no shortcut.
    direct = api.submit(
        MEI,
        action=credentials.ENROL_ACTION,
        account=credentials.STAFF_ACCOUNT,
        params=new_key(MEI, SoftAuthenticator(), "via api").to_params(),
    )
    assert direct.status_code == 201, direct.text
    assert direct.json()["state"] == "pending"
    assert_problem(api.review(MEI, direct.json()["id"]), 403, "forbidden")


def test_the_session_cannot_dress_up_a_proof(api: Api) -> None:
    """Variants: a proof by another person's key, a made-up device-key signature, a real proof
    for another new key (replayed), a proof by a key still in its cool-down. Each is refused as
    a failed step-up (and flagged); none stores a key that counts."""
    attacker = console_with(api, api.tokens[MEI])
    sams = bootstrap_security_key(api.world, SAM, "Sam's key")

    new = SoftAuthenticator(RP.id, RP.origins[0])
    refused = register(attacker, new, proof=webauthn_proof(sams, MEI, new))
    assert "not enrolled for you" in assert_problem(refused, 403, "forbidden")["detail"]

    def made_up(_: Browser, __: dict[str, Any]) -> dict[str, Any]:
        signature = Ed25519PrivateKey.generate().sign(b"anything")
        return {"key_id": api.world.key_ids[MEI], "signature": base64.b64encode(signature).decode()}

    refused = register(attacker, SoftAuthenticator(RP.id, RP.origins[0]), proof=made_up)
    assert "does not confirm" in assert_problem(refused, 403, "forbidden")["detail"]

    other = SoftAuthenticator(RP.id, RP.origins[0])  # the proof is for this one ...
    refused = register(attacker, new, proof=device_key_proof(api.world, MEI, other))  # ... not new
    assert "does not confirm" in assert_problem(refused, 403, "forbidden")["detail"]
    assert keys_of(api.world, MEI) == []
    # Flagged once per person and once per credential of hers that failed within the hour
    # (`step_up_failures`): Sam's key is not hers (the person's alert); her device key failed
    # twice (its own alert, once).
    flagged = alerts(api, "step_up_failed")
    assert len(flagged) == 2

    # A key in its cool-down vouches for nothing: no chain of keys that count at once.
    cooling = SoftAuthenticator(RP.id, RP.origins[0])
    added = register(attacker, cooling, "first", proof=device_key_proof(api.world, MEI, cooling))
    assert added.status_code == 201, added.text
    second = SoftAuthenticator(RP.id, RP.origins[0])
    refused = register(attacker, second, "second", proof=webauthn_proof(cooling, MEI, second))
    detail = assert_problem(refused, 403, "forbidden")["detail"]
    assert "counts for approvals only from" in detail
    assert [name for name, _ in keys_of(api.world, MEI)] == ["first"]


def test_a_first_key_is_approved_by_security_and_counts_after_the_cooldown(api: Api) -> None:
    """Mei (really her, this time) adds her first security key: a request security approves;
    the approval stores the key, which raises a high alert and tells Mei and security; until
    the cool-down is over the key is refused with a clear reason; then it counts."""
    mei = console_with(api, api.tokens[MEI])
    key = SoftAuthenticator(RP.id, RP.origins[0])
    asked = register(mei, key, "blue key")
    assert asked.status_code == 202, asked.text
    request_id = asked.json()["request_id"]
    assert_problem(api.review(MEI, request_id), 403, "forbidden")  # never herself
    # Security approves, confirming with their own key (a phished sign-in alone cannot).
    assert_problem(api.review(INES, request_id), 403, "forbidden")
    decided = api.review(INES, request_id, step_up=True)
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "executed"  # Ines's approval stored the key
    now = api.world.clock.now
    assert keys_of(api.world, MEI) == [("blue key", now + COOLDOWN)]

    [alert] = alerts(api, "credential_enrolled")
    assert (alert["severity"], alert["staff"]) == ("high", MEI)
    assert outbox(api.world, "credential.enrolled") == [(None, MEI)]
    assert outbox(api.world, "alert.credential_enrolled") == [("security", None)]

    # In its cool-down: the options say so (409), and an assertion is refused (403), clearly.
    vit = api.submitted(KIM, **DEACTIVATE)["id"]
    cooling = api.get(MEI, f"/v1/requests/{vit}/step-up?decision=approve")
    assert "cool-down" in assert_problem(cooling, 409, "conflict")["detail"]
    refused = approve_with(api, MEI, key, vit)
    detail = assert_problem(refused, 403, "forbidden")["detail"]
    assert "blue key" in detail
    assert "counts for approvals only from" in detail
    assert reviews_of(api.world, vit) == []

    pass_cooldown(api)
    vit = api.submitted(KIM, **DEACTIVATE)["id"]
    counted = approve_with(api, MEI, key, vit)
    assert counted.status_code == 200, counted.text
    assert approved_by(api, vit) == [MEI]


def test_a_key_vouched_for_cools_down_then_counts_and_revoking_is_immediate(api: Api) -> None:
    """With her device key's proof, Mei adds a security key at once (201), but it does not
    decide until the cool-down is over; revoking it stops it at once."""
    mei = console_with(api, api.tokens[MEI])
    key = SoftAuthenticator(RP.id, RP.origins[0])
    added = register(mei, key, "blue key", proof=device_key_proof(api.world, MEI, key))
    assert added.status_code == 201, added.text
    now = api.world.clock.now
    assert added.json()["counts_from"] == (now + COOLDOWN).isoformat()
    assert keys_of(api.world, MEI) == [("blue key", now + COOLDOWN)]
    [alert] = alerts(api, "credential_enrolled")
    assert alert["severity"] == "high"
    assert outbox(api.world, "credential.enrolled") == [(None, MEI)]
    assert outbox(api.world, "alert.credential_enrolled") == [("security", None)]
    assert enrolment_requests(api.world) == []

    vit = api.submitted(KIM, **DEACTIVATE)["id"]
    refused = approve_with(api, MEI, key, vit)
    assert "counts for approvals only from" in assert_problem(refused, 403, "forbidden")["detail"]
    assert approved_by(api, vit) == []

    pass_cooldown(api)
    vit = api.submitted(KIM, **DEACTIVATE)["id"]
    assert approve_with(api, MEI, key, vit).status_code == 200
    assert approved_by(api, vit) == [MEI]

    # Revoked: at once, no cool-down the other way.
    mei = console_with(api, api.tokens[MEI])
    [view] = webauthn.list_keys(api.world.services, MEI)
    revoked = mei.post(
        f"/console/security-keys/{view.id}/revoke", {}, csrf_from="/console/security-keys"
    )
    assert revoked.status_code == 303
    later = api.submitted(KIM, **DEACTIVATE)["id"]
    sams = approve_with(api, SAM, bootstrap_security_key(api.world, SAM), later)
    assert sams.status_code == 200  # Sam's key counts (bootstrap) ...
    refused = approve_with(api, MEI, key, later)
    assert "revoked" in assert_problem(refused, 403, "forbidden")["detail"]  # ... Mei's no more


def test_the_person_never_approves_their_own_credential(api: Api) -> None:
    """Jo (a lead) asks for a device key for Ines (security). Ines's approval would satisfy
    the rule, but nobody approves their own credential: her review is refused up front (403,
    nothing recorded), even confirmed with her key; a deny of hers is hers to give."""
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    params = credentials.NewCredential(INES, credentials.DEVICE_KEY, public, "new key").to_params()
    asked = api.submit(
        JO, action=credentials.ENROL_ACTION, account=credentials.STAFF_ACCOUNT, params=params
    )
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]
    for step_up in (False, True):
        refused = api.review(INES, request_id, step_up=step_up)
        assert "your own step-up credential" in assert_problem(refused, 403, "forbidden")["detail"]
    assert reviews_of(api.world, request_id) == []
    assert api.show(INES, request_id)["state"] == "pending"
    assert worker.run_once(api.world.services).executed == []
    with api.world.services.database.transaction() as session:
        owned = session.scalars(select(StepUpKeyRow.id).where(StepUpKeyRow.staff_id == INES))
        assert list(owned) == [api.world.key_ids[INES]]  # only her bootstrap key
    assert api.review(INES, request_id, "deny", step_up=True).status_code == 200


def test_the_operator_cli_asks_for_approval_instead_of_enrolling(tmp_path: Path) -> None:
    """`foureyes staff enroll-key` opens the database but adds no key: it submits the governed
    request in the person's name, and the key is nowhere until security approves it."""
    data_dir = initialised(tmp_path)
    pem = tmp_path / "mei.pub"
    public = Ed25519PrivateKey.generate().public_key()
    pem.write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))

    code, out, err = run(data_dir, "staff", "enroll-key", MEI, str(pem))

    assert code == 0, err
    assert "waits for approval" in out
    services = services_for(Settings.load(data_dir))
    try:
        with services.database.transaction() as session:
            keys = session.scalars(select(StepUpKeyRow.id).where(StepUpKeyRow.staff_id == MEI))
            assert list(keys) == []
            [asked] = session.scalars(
                select(RequestRow).where(RequestRow.action == credentials.ENROL_ACTION)
            )
            assert (asked.requester_id, asked.state) == (MEI, "pending")
            assert asked.params["kind"] == credentials.DEVICE_KEY
    finally:
        services.database.dispose()


# --- revoking takes back what a key approved ---------------------------------------------------


def revoke_in_console(api: Api, staff_id: str, key_id: str) -> httpx.Response:
    browser = console_with(api, api.tokens[staff_id])
    return browser.post(
        f"/console/security-keys/{key_id}/revoke", {}, csrf_from="/console/security-keys"
    )


def approve_with_device_key(api: Api, staff_id: str, request_id: str) -> httpx.Response:
    return api.review(staff_id, request_id, step_up=True)


def state_of(api: Api, request_id: str) -> str:
    state: str = api.show(INES, request_id)["state"]
    return state


def president_active(api: Api) -> bool:
    return bool(api.world.chirp("president")["status"] == "active")


def test_an_approval_made_with_a_key_revoked_since_no_longer_counts(api: Api) -> None:
    """The attack: Mei approves a vit deactivation with her security key B, revokes B in the
    console (it was stolen, say), then Sam and Ines approve. Before the fix: approved,
    scheduled, executed. Now Mei's approval does not count: two others are still needed, and
    the request stays pending; nothing runs."""
    key_b = bootstrap_security_key(api.world, MEI, "key B")
    vit = api.submitted(KIM, **DEACTIVATE)["id"]
    assert approve_with(api, MEI, key_b, vit).status_code == 200
    assert approved_by(api, vit) == [MEI]
    [b] = [k for k in operations.security_keys(api.world.services, MEI) if k.name == "key B"]
    assert revoke_in_console(api, MEI, b.id).status_code == 303

    assert approved_by(api, vit) == []  # taken back at once
    assert approve_with_device_key(api, SAM, vit).status_code == 200
    assert approve_with_device_key(api, INES, vit).status_code == 200
    assert state_of(api, vit) == "pending"
    assert approved_by(api, vit) == [SAM, INES]
    api.world.clock.advance(minutes=11)
    assert worker.run_once(api.world.services).executed == []
    assert state_of(api, vit) == "pending"
    assert president_active(api)


def test_revoking_after_approval_cancels_at_execution(api: Api) -> None:
    """Variants: the request was already approved (scheduled, in its delay) when the key is
    revoked, with a security key and with a device key: the re-check at execution no longer
    counts that approval, so the request is cancelled with the reason, and nothing runs."""
    key_b = bootstrap_security_key(api.world, MEI, "key B")
    by_security_key = api.submitted(KIM, **DEACTIVATE)["id"]
    assert approve_with(api, MEI, key_b, by_security_key).status_code == 200
    by_device_key = api.submitted(KIM, **DEACTIVATE)["id"]
    assert approve_with_device_key(api, MEI, by_device_key).status_code == 200
    for request_id in (by_security_key, by_device_key):
        assert approve_with_device_key(api, SAM, request_id).status_code == 200
        assert approve_with_device_key(api, INES, request_id).status_code == 200
        assert state_of(api, request_id) == "scheduled"

    [b] = [k for k in operations.security_keys(api.world.services, MEI) if k.name == "key B"]
    assert revoke_in_console(api, MEI, b.id).status_code == 303
    assert revoke_in_console(api, MEI, api.world.key_ids[MEI]).status_code == 303

    api.world.clock.advance(minutes=11)
    assert worker.run_once(api.world.services).executed == []
    for request_id, key_id in ((by_security_key, b.id), (by_device_key, api.world.key_ids[MEI])):
        view = api.show(INES, request_id)
        assert view["state"] == "cancelled"
        assert "re-check at execution failed" in view["reason"]
        assert f"step-up credential {key_id}, revoked" in view["reason"]
    assert president_active(api)


# --- device keys: seen and revoked by their owner, and by the operator -------------------------


def test_the_owner_sees_and_revokes_a_device_key_enrolled_by_request(api: Api) -> None:
    """After an approved device-key enrolment, Mei's Security keys page lists the key and
    revokes it (audit event `staff.step_up_key_revoked`); it then signs nothing that counts.
    Nobody else can revoke it from their page."""
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    new = credentials.NewCredential(MEI, credentials.DEVICE_KEY, public, "laptop")
    asked = api.submit(
        MEI,
        action=credentials.ENROL_ACTION,
        account=credentials.STAFF_ACCOUNT,
        params=new.to_params(),
    )
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]
    assert api.review(INES, request_id, step_up=True).json()["state"] == "executed"

    mei = console_with(api, api.tokens[MEI])
    page = mei.get("/console/security-keys")
    assert f'data-key-id="{new.key_id}"' in page.text
    assert 'id="device-keys"' in page.text

    sams = revoke_in_console(api, SAM, new.key_id)
    assert sams.status_code == 404
    revoked = revoke_in_console(api, MEI, new.key_id)
    assert revoked.status_code == 303
    with api.world.services.database.transaction() as session:
        row = session.get(StepUpKeyRow, new.key_id)
        assert row is not None
        assert row.revoked_at is not None
    [event] = audit_events(api, "staff.step_up_key_revoked")
    assert (event["actor"], event["payload"]["key_id"]) == (MEI, new.key_id)
    again = revoke_in_console(api, MEI, new.key_id)
    assert again.status_code == 409

    pass_cooldown(api)
    vit = api.submitted(KIM, **DEACTIVATE)["id"]
    digest = api.show(MEI, vit)["digest"]
    signature = private.sign(
        challenge(request_id=vit, digest=digest, reviewer_id=MEI, decision="approve")
    )
    body = {
        "decision": "approve",
        "digest": digest,
        "step_up": {"key_id": new.key_id, "signature": base64.b64encode(signature).decode()},
    }
    refused = api.post(MEI, f"/v1/requests/{vit}/reviews", body)
    assert "revoked" in assert_problem(refused, 403, "forbidden")["detail"]


def audit_events(api: Api, kind: str) -> list[dict[str, Any]]:
    with api.world.services.database.transaction() as session:
        return [
            {"actor": row.actor, "payload": json.loads(row.body)}
            for row in session.scalars(select(EventRow).where(EventRow.kind == kind))
        ]


def test_the_operator_revokes_any_key_with_the_cli(tmp_path: Path) -> None:
    """`foureyes staff revoke-key KEY_ID` opens the database and revokes a device key or a
    security key of anyone's at once, with an audit event; an unknown or revoked key, or
    something that is no key id, is a one-line diagnosis (exit 2)."""
    data_dir = initialised(tmp_path)
    services = services_for(Settings.load(data_dir))
    try:
        public = Ed25519PrivateKey.generate().public_key()
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        with services.database.transaction() as session:
            device_id = bootstrap_key(session, MEI, raw, services.clock())
        key = SoftAuthenticator(RP.id, RP.origins[0])
        security = credentials.NewCredential(
            SAM, credentials.WEBAUTHN, key.cose_public_key(), "blue key", key.credential_id
        )
        with services.database.transaction() as session:
            credentials.insert(
                session, security, now=services.clock(), counts_from=services.clock()
            )
    finally:
        services.database.dispose()

    code, out, err = run(data_dir, "staff", "revoke-key", device_id)
    assert code == 0, err
    assert f"revoked device key {device_id} of {MEI}" in out
    code, out, err = run(data_dir, "staff", "revoke-key", security.key_id)
    assert code == 0, err
    assert f"revoked security key {security.key_id} of {SAM}" in out
    for bad in (device_id, "0" * 16, "not-a-key"):
        code, out, err = run(data_dir, "staff", "revoke-key", bad)
        assert code == 2
        assert err.startswith("foureyes: ")
        assert "Traceback" not in err + out

    services = services_for(Settings.load(data_dir))
    try:
        with services.database.transaction() as session:
            rows = [
                session.get(StepUpKeyRow, device_id),
                session.get(WebAuthnCredentialRow, security.key_id),
            ]
            assert all(row is not None and row.revoked_at is not None for row in rows)
            kinds = list(
                session.scalars(
                    select(EventRow.kind).where(
                        EventRow.kind.in_(
                            ["staff.step_up_key_revoked", "staff.security_key_revoked"]
                        )
                    )
                )
            )
            assert sorted(kinds) == ["staff.security_key_revoked", "staff.step_up_key_revoked"]
    finally:
        services.database.dispose()


# --- bad enrolments are refused when they are asked for --------------------------------------


def test_an_enrolment_that_could_never_be_carried_out_is_refused_at_submit(api: Api) -> None:
    """Garbage public keys, an unknown person, a security key without a credential id or with
    a public key that is no COSE key, a credential enrolled already: 422, and no request."""
    sams = SoftAuthenticator(RP.id, RP.origins[0])
    bootstrap_security_key(api.world, SAM, "Sam's key", sams)
    fresh = SoftAuthenticator(RP.id, RP.origins[0])
    good = new_key(MEI, fresh, "fine").to_params()
    enrolled_public = api.world.keys[MEI].public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device = credentials.NewCredential(
        MEI, credentials.DEVICE_KEY, enrolled_public, "again"
    ).to_params()
    bad: list[dict[str, Any]] = [
        {**device, "public_key": "AAAA"},  # 3 bytes
        {**device, "public_key": b64url(b"x" * 33)},
        {**good, "staff": "nobody"},
        {key: value for key, value in good.items() if key != "credential_id"},
        {**good, "public_key": b64url(b"not cbor at all")},
        device,  # Mei's device key, enrolled at init
        {**good, "credential_id": b64url(sams.credential_id)},  # Sam's key's id
        {**good, "public_key": b64url(sams.cose_public_key())},  # Sam's key's public key
    ]
    for params in bad:
        answer = api.submit(
            JO, action=credentials.ENROL_ACTION, account=credentials.STAFF_ACCOUNT, params=params
        )
        assert_problem(answer, 422, "bad-input")
    assert enrolment_requests(api.world) == []
    fine = api.submit(
        JO, action=credentials.ENROL_ACTION, account=credentials.STAFF_ACCOUNT, params=good
    )
    assert fine.status_code == 201, fine.text


def test_enroll_key_with_a_bad_file_is_one_line(tmp_path: Path) -> None:
    """Not PEM, an empty file, a missing path, a directory, another kind of key: a one-line
    diagnosis and exit 2, never a traceback, and no request."""
    data_dir = initialised(tmp_path)
    junk = tmp_path / "junk.pub"
    junk.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI nobody@example\n")
    empty = tmp_path / "empty.pub"
    empty.write_bytes(b"")
    for path in (junk, empty, tmp_path / "missing.pub", tmp_path):
        code, out, err = run(data_dir, "staff", "enroll-key", KIM, str(path))
        assert code == 2, (path, out, err)
        assert err.startswith("foureyes: ")
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in out + err
    services = services_for(Settings.load(data_dir))
    try:
        with services.database.transaction() as session:
            asked = session.scalars(
                select(RequestRow).where(RequestRow.action == credentials.ENROL_ACTION)
            )
            assert list(asked) == []
    finally:
        services.database.dispose()


def test_the_demo_binds_security_keys_to_the_port_it_serves_on(tmp_path: Path) -> None:
    """`serve --demo --port N`: keys are bound to http://localhost:N, unless the demo's
    settings file names a relying party itself (then it stands)."""
    default = Settings.load(tmp_path / "none")
    assert as_served(default, 8123).webauthn.origins == ["http://localhost:8123"]
    root = tmp_path / "chosen"
    root.mkdir()
    (root / "foureyes.toml").write_text(
        '[webauthn]\nrp_id = "localhost"\norigins = ["http://localhost:9000"]\n'
    )
    chosen = Settings.load(root)
    assert as_served(chosen, 8123).webauthn.origins == ["http://localhost:9000"]
