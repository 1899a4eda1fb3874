"""Step-up with security keys (WebAuthn), on SQLite and PostgreSQL, against the software
authenticator of tests/webauthn_authenticator.py: enrolment and revocation (with their audit
events), a review confirmed by an assertion bound to that exact review, and everything an
attacker or a broken key could try instead."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.webauthn_authenticator import SoftAuthenticator, unb64url
from tests.worlds import World, bootstrap_security_key

from foureyes.auth import webauthn
from foureyes.bootstrap import services_for
from foureyes.config import Settings
from foureyes.errors import BadInput, Conflict, Forbidden, NotFound
from foureyes.model import ReviewDecision
from foureyes.store.tables import AlertRow, EventRow, ReviewRow, WebAuthnCredentialRow
from foureyes.workflow import operations
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Submission

RP = webauthn.DEMO_RELYING_PARTY
DEACTIVATE = Submission("account.deactivate", "chirp:president", justification="CASE-1234")
KIM, MEI, SAM = "c-1001", "e-3002", "e-3003"  # requester; two trust & safety reviewers


def enrol(world: World, staff_id: str, name: str = "blue key") -> SoftAuthenticator:
    """A key stored as the bootstrap stores them (counting at once): these tests are about
    using keys; adding them is tests/adversarial/test_enrolment.py's."""
    return bootstrap_security_key(world, staff_id, name)


def assertion(
    world: World, key: SoftAuthenticator, staff_id: str, request_id: str, decision: str, **how: Any
) -> dict[str, Any]:
    actor = world.actor(staff_id)
    options = webauthn.assertion_options(world.services, actor, request_id, decision)
    return {"method": "webauthn", "credential": key.get(options, **how)}


def review(
    world: World, staff_id: str, request_id: str, step_up: dict[str, Any], decision: str = "approve"
) -> str:
    digest = operations.show(world.services, request_id)["digest"]
    return operations.review(
        world.services,
        world.actor(staff_id),
        request_id,
        ReviewInput(ReviewDecision(decision), digest, "", step_up),
    )


def events(world: World, kind: str) -> list[dict[str, Any]]:
    with world.services.database.transaction() as session:
        bodies = session.scalars(
            select(EventRow.body).where(EventRow.kind == kind).order_by(EventRow.seq)
        )
        return [json.loads(body) for body in bodies]


def review_count(world: World) -> int:
    with world.services.database.transaction() as session:
        return session.scalar(select(func.count()).select_from(ReviewRow)) or 0


def test_a_review_confirmed_with_a_security_key_records_what_an_auditor_can_verify(
    world: World,
) -> None:
    key = enrol(world, MEI)
    enrolled = events(world, webauthn.ENROLLED)
    assert [(e["staff"], e["name"]) for e in enrolled] == [(MEI, "blue key")]
    request_id = operations.submit(world.services, world.actor(KIM), DEACTIVATE)

    assert review(world, MEI, request_id, assertion(world, key, MEI, request_id, "approve")) == (
        "pending"
    )

    [event] = [e for e in events(world, "review.recorded") if e["step_up"] is not None]
    evidence = event["step_up"]
    assert evidence["method"] == "webauthn"
    assert evidence["key_id"] == enrolled[0]["key_id"]
    assert evidence["user_verified"] is True
    assert evidence["sign_count"] == 1
    client = json.loads(unb64url(evidence["client_data_json"]))
    assert client["origin"] == RP.origins[0]
    # Offline, from the log alone: the enrolment event's public key confirms this review only.
    review_of = {
        "public_key": unb64url(enrolled[0]["public_key"]),
        "request_id": event["request"],
        "digest": event["digest"],
        "reviewer_id": MEI,
        "rp_id": RP.id,
        "origins": list(RP.origins),
    }
    assert webauthn.evidence_confirms(evidence, decision="approve", **review_of)
    assert not webauthn.evidence_confirms(evidence, decision="deny", **review_of)
    assert not webauthn.evidence_confirms(
        evidence, decision="approve", **{**review_of, "reviewer_id": SAM}
    )
    [kept] = webauthn.list_keys(world.services, MEI)
    assert kept.last_used_at == world.clock.now
    with world.services.database.transaction() as session:
        row = session.get(WebAuthnCredentialRow, kept.id)
        assert row is not None
        assert row.sign_count == 1


def test_device_keys_still_confirm_reviews_and_an_unknown_method_is_refused(world: World) -> None:
    request_id = operations.submit(world.services, world.actor(KIM), DEACTIVATE)
    with pytest.raises(BadInput, match="unknown step-up method"):
        review(world, MEI, request_id, {"method": "sms", "code": "123456"})
    assert world.review(MEI, request_id) == "pending"  # an Ed25519 device-key signature
    [event] = events(world, "review.recorded")
    assert event["step_up"]["method"] == "device-key"


def test_an_assertion_approves_its_own_review_and_nothing_else(world: World) -> None:
    mei, sam = enrol(world, MEI), enrol(world, SAM)
    first = operations.submit(world.services, world.actor(KIM), DEACTIVATE)
    # (The challenge binds the request's id and digest; the next test takes a second request
    # for the very same thing.)
    other = Submission("account.deactivate", "chirp:president", justification="CASE-1235")
    second = operations.submit(world.services, world.actor(KIM), other)
    for_first = assertion(world, mei, MEI, first, "approve")

    with pytest.raises(Forbidden, match="another review"):
        review(world, MEI, second, for_first)  # replayed on another request
    with pytest.raises(Forbidden, match="another review"):
        review(world, MEI, first, for_first, decision="deny")  # or for the other verdict
    with pytest.raises(Forbidden, match="not enrolled for you"):
        review(world, SAM, first, for_first)  # or by another person
    sams_key_for_mei = {"method": "webauthn", "credential": sam.get({"challenge": "AAAA"})}
    with pytest.raises(Forbidden, match="not enrolled for you"):
        review(world, MEI, first, sams_key_for_mei)  # someone else's credential
    with pytest.raises(Forbidden, match="needs step-up"):
        review(world, MEI, first, {})
    with pytest.raises(BadInput, match="malformed"):
        review(world, MEI, first, {"method": "webauthn", "credential": {"id": "x"}})
    assert review_count(world) == 0

    assert review(world, MEI, first, for_first) == "pending"


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"user_verified": False}, "did not verify you"),
    ],
    ids=["wrong-origin", "wrong-rp-id", "no-user-verification"],
)
def test_an_assertion_from_elsewhere_or_without_user_verification_is_refused(
    world: World, how: dict[str, Any], why: str
) -> None:
    key = enrol(world, MEI)
    request_id = operations.submit(world.services, world.actor(KIM), DEACTIVATE)
    with pytest.raises(Forbidden, match=why):
        review(world, MEI, request_id, assertion(world, key, MEI, request_id, "approve", **how))
    assert review_count(world) == 0


def test_a_cloned_authenticator_is_refused_when_its_counter_goes_backwards(world: World) -> None:
    key = enrol(world, MEI)
    first = operations.submit(world.services, world.actor(KIM), DEACTIVATE)
    second = operations.submit(world.services, world.actor(KIM), DEACTIVATE)
    key.sign_count = 41
    review(world, MEI, first, assertion(world, key, MEI, first, "approve"))  # counter 42
    key.sign_count = 10  # the clone has been used less than the original
    with pytest.raises(Forbidden, match="counter went backwards"):
        review(world, MEI, second, assertion(world, key, MEI, second, "approve"))
    assert review_count(world) == 1
    # Refused, and security hears of it: the refusal rolled back, the alert did not.
    with world.services.database.transaction() as session:
        [alert] = session.scalars(select(AlertRow)).all()
        assert (alert.detector, alert.staff_id, alert.request_id) == (
            "step_up_failed",
            MEI,
            second,
        )
        assert "counter went backwards" in alert.details["reason"]


def test_a_revoked_key_confirms_nothing(world: World) -> None:
    key = enrol(world, MEI)
    request_id = operations.submit(world.services, world.actor(KIM), DEACTIVATE)
    made_before = assertion(world, key, MEI, request_id, "approve")
    [view] = webauthn.list_keys(world.services, MEI)
    with pytest.raises(NotFound):
        webauthn.revoke(world.services, world.actor(SAM), view.id)  # not Sam's key
    webauthn.revoke(world.services, world.actor(MEI), view.id)
    with pytest.raises(Conflict, match="already revoked"):
        webauthn.revoke(world.services, world.actor(MEI), view.id)
    assert [e["key_id"] for e in events(world, webauthn.REVOKED)] == [view.id]

    with pytest.raises(Forbidden, match="revoked"):
        review(world, MEI, request_id, made_before)
    with pytest.raises(Conflict, match="no security key"):
        webauthn.assertion_options(world.services, world.actor(MEI), request_id, "approve")
    assert review_count(world) == 0


def test_enrolment_checks_the_response_against_its_challenge_person_and_origin(
    world: World,
) -> None:
    mei = world.actor(MEI)
    options, pending = webauthn.registration_options(world.services, mei)
    assert options["authenticatorSelection"]["userVerification"] == "required"
    key = SoftAuthenticator(RP.id, RP.origins[0])

    def refused(error: type[Exception], match: str, **how: Any) -> None:
        actor, use = how.pop("actor", mei), how.pop("pending", pending)
        with pytest.raises(error, match=match):
            operations.enrol_security_key(
                world.services, actor, use, name="k", credential=key.create(options, **how)
            )

    refused(Forbidden, "origin", origin="https://evil.example")
    refused(Forbidden, "RP ID", rp_id="evil.example")
    refused(Forbidden, "verif", user_verified=False)
    refused(BadInput, "not yours", actor=world.actor(SAM))
    _, other = webauthn.registration_options(world.services, mei)
    refused(Forbidden, "challenge", pending=other)
    world.clock.advance(minutes=6)
    refused(BadInput, "expired")
    world.clock.now -= timedelta(minutes=6)
    with pytest.raises(BadInput, match="name the key"):
        operations.enrol_security_key(
            world.services, mei, pending, name=" ", credential=key.create(options)
        )
    assert webauthn.list_keys(world.services, MEI) == []
    assert events(world, webauthn.ENROLLED) == []

    new = webauthn.verified_registration(
        world.services, mei, pending, name="  blue   key ", credential=key.create(options)
    )
    assert new.name == "blue key"
    assert new.key_id == webauthn.key_id_of(key.credential_id)
    bootstrap_security_key(world, MEI, "other key")
    again, _ = webauthn.registration_options(world.services, mei)
    assert len(again["excludeCredentials"]) == 1


def test_an_assertion_does_not_carry_over_to_an_identical_request(world: World) -> None:
    """Two requests for exactly the same thing: the challenge names the request's id (and each
    digest is salted with its own request's salt, so theirs differ too), so even a passkey that
    keeps no signature counter cannot have its assertion replayed on the duplicate. A fresh
    confirmation of the duplicate counts."""
    key = enrol(world, MEI)
    key.counter = False
    first = operations.submit(world.services, world.actor(KIM), DEACTIVATE)
    duplicate = operations.submit(world.services, world.actor(KIM), DEACTIVATE)
    digests = {operations.show(world.services, r)["digest"] for r in (first, duplicate)}
    assert len(digests) == 2
    made = assertion(world, key, MEI, first, "approve")
    assert review(world, MEI, first, made) == "pending"

    with pytest.raises(Forbidden, match="another review"):
        review(world, MEI, duplicate, made)  # replayed
    fresh = assertion(world, key, MEI, duplicate, "approve")
    assert review(world, MEI, duplicate, fresh) == "pending"


def test_the_relying_party_comes_from_the_settings(tmp_path: Path) -> None:
    (tmp_path / "foureyes.toml").write_text(
        '[webauthn]\nrp_id = "example.org"\norigins = ["https://foureyes.example.org"]\n'
    )
    settings = Settings.load(tmp_path, env={})
    services = services_for(settings)
    try:
        assert webauthn.relying_party(services) == webauthn.RelyingParty(
            "example.org", "foureyes", ("https://foureyes.example.org",)
        )
    finally:
        services.database.dispose()
    for wrong, why in [
        ('origins = ["http://foureyes.example.org"]', "must use https"),
        ('origins = ["https://evil.example"]', "is not on rp_id"),
        ('origins = ["https://example.org/console"]', "no path"),
        ("origins = []", "at least 1"),
    ]:
        (tmp_path / "foureyes.toml").write_text(f'[webauthn]\nrp_id = "example.org"\n{wrong}\n')
        with pytest.raises(BadInput, match=why):
            Settings.load(tmp_path, env={})
