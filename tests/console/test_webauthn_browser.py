"""Security keys in a real browser: headless Chromium (Debian's, driven by Playwright) with the
DevTools protocol's virtual authenticator (a CTAP2 key with a PIN that is always entered), against
foureyes served on a loopback port. A reviewer signs in and adds a key on the Security keys page:
her first, so security approves it; once its cool-down is over she approves a step-up request
from the inbox with it (the review event holds the key's assertion), adds a second key that the
first vouches for (it starts its own cool-down), then revokes the first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from foureyes import worker
from foureyes.auth import webauthn
from foureyes.store.database import Database
from foureyes.store.tables import EventRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.browser import (
    Served,
    add_security_key,
    plug_in_security_key,
    serving,
    sign_in_with_token,
)
from tests.worlds import make_world

KIM, MEI, INES = "c-1001", "e-3002", "e-4001"


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    """foureyes (the demo world) served on a loopback port, its step-up with security keys."""
    with serving(make_world(database), tmp_path / "data", security_keys=True) as served:
        yield served


# The store's part is tested on both databases in tests/unit/workflow/test_webauthn.py; this one
# is about the browser and the key, so it runs once, on SQLite.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_reviewer_adds_a_security_key_and_approves_with_it(served: Served, page: Page) -> None:
    cdp, authenticator = plug_in_security_key(page)
    page.goto(f"{served.base}/console/login")
    sign_in_with_token(page, served, MEI)
    page.wait_for_url(f"{served.base}/console/**")

    page.goto(f"{served.base}/console/security-keys")
    expect(page.locator("[data-wrong-address]")).to_have_count(0)
    add_security_key(page, "virtual key")
    # Her first key: a request that security approves, not a key yet.
    page.wait_for_url("**/console/requests/*")
    enrolment = page.url.rsplit("/", 1)[1]
    assert webauthn.list_keys(served.world.services, MEI) == []
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(stored["credentials"]) == 1
    served.world.review(INES, enrolment)  # with her device key: the rule asks for step-up
    assert worker.run_once(served.world.services).executed == [enrolment]
    [enrolled] = webauthn.list_keys(served.world.services, MEI)
    assert enrolled.name == "virtual key"
    page.goto(f"{served.base}/console/security-keys")
    expect(page.locator(f'tr[data-key-id="{enrolled.id}"] [data-cooling]')).to_be_visible()

    # A day later it counts (the console session is new: the old one has aged out).
    served.world.clock.advance(hours=24, minutes=1)
    page.goto(f"{served.base}/console/login")
    sign_in_with_token(page, served, MEI)
    page.wait_for_url(f"{served.base}/console/**")
    request_id = operations.submit(
        served.world.services,
        served.world.actor(KIM),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )
    page.goto(f"{served.base}/console/inbox")
    card = page.locator(f'article[data-request-id="{request_id}"]')
    expect(card.locator("form[data-step-up='1']")).to_be_visible()
    card.get_by_label("type the account's handle").fill("president")  # destructive: typed
    card.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"**/console/inbox?reviewed={request_id}")  # on to the next card

    view = operations.show(served.world.services, request_id)
    assert [r["reviewer"] for r in view["reviews"]] == [MEI]
    with served.world.services.database.transaction() as session:
        bodies = session.scalars(
            select(EventRow.body).where(
                EventRow.kind == "review.recorded", EventRow.request_id == request_id
            )
        )
        [event] = [json.loads(body) for body in bodies]
    evidence = event["step_up"]
    assert evidence["method"] == "webauthn"
    assert evidence["key_id"] == enrolled.id
    assert evidence["user_verified"] is True
    client = json.loads(webauthn.base64url_to_bytes(evidence["client_data_json"]))
    assert client["origin"] == served.base
    assert client["type"] == "webauthn.get"

    # A second key: the first (which counts) vouches for it in the browser; it cools down.
    # The new key is another authenticator; the first answers only once it is asked to vouch
    # (as a person would touch one key, then the other).
    _, second = plug_in_security_key(page)

    def touch(authenticator_id: str, present: bool) -> None:
        cdp.send(
            "WebAuthn.setAutomaticPresenceSimulation",
            {"authenticatorId": authenticator_id, "enabled": present},
        )

    def vouch_with_the_first(route: Route) -> None:
        touch(second, False)
        touch(authenticator, True)
        route.continue_()

    touch(authenticator, False)
    page.route("**/console/webauthn/registration/proof-options", vouch_with_the_first)
    page.goto(f"{served.base}/console/security-keys")
    add_security_key(page, "backup key")
    page.wait_for_url("**/console/security-keys?done=enrolled")
    backup = next(
        k for k in webauthn.list_keys(served.world.services, MEI) if k.name != "virtual key"
    )
    assert backup.name == "backup key"
    assert backup.counts_from is not None
    assert backup.counts_from > served.world.clock.now
    expect(page.locator(f'tr[data-key-id="{backup.id}"] [data-cooling]')).to_be_visible()

    page.get_by_role("button", name="Revoke virtual key").click()
    page.wait_for_url("**/console/security-keys?done=revoked")
    expect(page.locator(f'tr[data-key-id="{enrolled.id}"]')).to_contain_text("revoked")
    revoked = next(k for k in webauthn.list_keys(served.world.services, MEI) if k.id == enrolled.id)
    assert revoked.revoked_at is not None
