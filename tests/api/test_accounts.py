"""`GET /v1/accounts/{ref}`: attributes (private ones redacted), pins and tier."""

from __future__ import annotations

from datetime import UTC, datetime

from foureyes.store.tables import PinRow
from tests.api.conftest import Api, assert_problem


def test_an_account_with_its_tier_under_the_policy_in_force(api: Api) -> None:
    response = api.get("e-2001", "/v1/accounts/chirp:president")
    assert response.status_code == 200, response.text
    account = response.json()
    assert (account["ref"], account["platform"], account["id"]) == (
        "chirp:president",
        "chirp",
        "president",
    )
    assert account["tier"] == "vit"
    assert account["tier_error"] is None
    assert account["pins"] == []
    assert account["policy_version"] == 1
    assert account["attributes"]["followers"] == 41700000
    assert account["attributes"]["verified"] is True
    assert account["attributes"]["status"] == "active"
    assert api.get("e-2001", "/v1/accounts/chirp:bob").json()["tier"] == "standard"
    assert api.get("e-2001", "/v1/accounts/chirp:newsdesk").json()["tier"] == "verified"


def test_private_attributes_are_redacted(api: Api) -> None:
    clear = api.world.chirp("alice")
    shown = api.get("e-2001", "/v1/accounts/chirp:alice").json()["attributes"]
    assert clear["email"]
    assert clear["email"] not in str(shown)
    assert shown["email"].startswith(clear["email"][0] + "***@")
    if clear.get("phone"):
        assert clear["phone"] not in str(shown)
        assert shown["phone"].startswith("***")


def test_a_protected_pin_raises_the_tier(api: Api) -> None:
    with api.world.services.database.transaction() as session:
        session.add(PinRow(account_ref="chirp:bob", pin="protected", created_at=datetime.now(UTC)))
    account = api.get("e-2001", "/v1/accounts/chirp:bob").json()
    assert (account["pins"], account["tier"]) == (["protected"], "vit")


def test_unknown_and_malformed_accounts(api: Api) -> None:
    assert_problem(api.get("e-2001", "/v1/accounts/chirp:nobody"), 404, "not-found")
    assert_problem(api.get("e-2001", "/v1/accounts/mastodon:bob"), 404, "not-found")
    assert_problem(api.get("e-2001", "/v1/accounts/nocolon"), 422, "bad-input")
