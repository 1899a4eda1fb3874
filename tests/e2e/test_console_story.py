"""The 2017 story clicked through in the console, in a real headless Chromium (Debian's, driven by
Playwright), each person in their own browser context against foureyes served by uvicorn on a
loopback port (the console at http://localhost:<port>, the WebAuthn relying party `localhost`).

On her contract's last day, contractor Kim asks to deactivate `president` and the console shows
the policy's refusal. Tomas, a trust & safety employee, asks for the same with a case number,
after checking what would happen. The policy wants two trust & safety employees and one person
from security, each confirming with a security key (Chromium's virtual authenticator, holding a
key set up as the operator's bootstrap sets keys up, so it counts at once; adding keys on the
Security keys page is tests/console/test_webauthn_browser.py's): Mei, Sam and Ines approve from
their inboxes, typing the account's handle. The request waits out its ten-minute delay and the
worker carries it out.

Screenshots of an inbox and of the timeline go to test-artifacts/console/ (git-ignored).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from playwright.sync_api import Browser, Page, expect

from foureyes import worker
from foureyes.store import migrate
from foureyes.store.database import Database
from foureyes.workflow import operations
from tests.browser import (
    Served,
    plug_in_security_key,
    serving,
    sign_in_with_token,
)
from tests.conftest import ROOT
from tests.webauthn_authenticator import SoftAuthenticator
from tests.worlds import bootstrap_security_key, make_world

ARTIFACTS = ROOT / "test-artifacts" / "console"
# How long a page may take to show what is expected: generous, for a loaded CI machine (it is
# well under a second when idle). Not a timing assertion: nothing waits longer than it must.
PATIENCE_MS = 30_000
KIMS_LAST_DAY = datetime(2027, 6, 30, 9, 0, tzinfo=UTC)
KIM, TOMAS, MEI, SAM, INES = "c-1001", "e-3001", "e-3002", "e-3003", "e-4001"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The demo world on SQLite, served in a thread; its clock on Kim's last day."""
    database = Database(f"sqlite:///{tmp_path / 'story.db'}")
    migrate.upgrade(database)
    world = make_world(database)
    world.clock.now = KIMS_LAST_DAY
    with serving(world, tmp_path / "data", security_keys=True) as served:
        yield served
    database.dispose()


def person(browser: Browser, served: Served, staff_id: str) -> Page:
    """A new browser context for `staff_id`, signed in with a token pasted on the login page."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(PATIENCE_MS)
    page.goto(f"{served.base}/console/")
    expect(page).to_have_url(f"{served.base}/console/login?next=/console/")
    sign_in_with_token(page, served, staff_id)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Hello")
    return page


def enrol_security_key(page: Page, served: Served, staff_id: str) -> None:
    """Plug Chromium's virtual authenticator in, holding a key stored for `staff_id` as the
    bootstrap stores keys (it counts at once); the Security keys page lists it."""
    cdp, authenticator = plug_in_security_key(page)
    key = SoftAuthenticator("localhost", served.base)
    bootstrap_security_key(served.world, staff_id, "virtual key", key)
    private = key.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    cdp.send(
        "WebAuthn.addCredential",
        {
            "authenticatorId": authenticator,
            "credential": {
                "credentialId": base64.b64encode(key.credential_id).decode(),
                "isResidentCredential": False,
                "rpId": "localhost",
                "privateKey": base64.b64encode(private).decode(),
                "signCount": 0,
            },
        },
    )
    page.get_by_role("link", name="Security keys").click()
    expect(page.locator("#security-keys")).to_contain_text("virtual key")


def ask_for_deactivation(page: Page) -> None:
    page.get_by_role("link", name="Request an action").first.click()
    page.get_by_label("Account (platform:id)").fill("chirp:president")
    page.get_by_label("Action").select_option("account.deactivate")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Justification").fill("CASE-1234")
    page.get_by_role("button", name="Check").click()


def approve_from_inbox(page: Page, served: Served, comment: str, screenshot: str = "") -> None:
    page.get_by_role("link", name="Inbox").click()
    item = page.locator("article.inbox-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Tomas Berg")
    expect(item).to_contain_text("CASE-1234")
    expect(item.locator("table.change")).to_contain_text("deactivated")
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
        # On a phone the same page reflows: nothing wider than the screen.
        page.set_viewport_size({"width": 390, "height": 844})
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(ARTIFACTS / screenshot.replace(".png", "-phone.png")))
        page.set_viewport_size({"width": 1280, "height": 900})
        assert fits, "the inbox is wider than a phone's screen"
    item.get_by_label("Comment").fill(comment)
    item.get_by_label("To approve, type the account's handle").fill("president")
    item.get_by_role("button", name="Approve").click()  # webauthn.js asks the key, then posts
    expect(page.get_by_role("status")).to_have_text("Your review is recorded.")


def test_the_2017_story_clicked_through_by_everyone_involved(
    served: Served, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=PATIENCE_MS)
    world = served.world

    # Kim, on her last day, is refused, and sees why.
    kim = person(browser, served, KIM)
    ask_for_deactivation(kim)
    expect(kim.locator(".decision")).to_have_attribute("data-outcome", "denied")
    kim.get_by_role("button", name="Submit request").click()
    refusal = kim.locator("[data-refused]")
    expect(refusal).to_contain_text("The policy refuses this request.")
    expect(refusal).to_contain_text("departing-contractors-read-only")

    # Tomas checks first: pending, three approvals with security keys, what changes; submits.
    tomas = person(browser, served, TOMAS)
    ask_for_deactivation(tomas)
    decision = tomas.locator(".decision")
    expect(decision).to_have_attribute("data-outcome", "pending")
    expect(decision).to_contain_text("Approvals need a security key.")
    expect(tomas.locator("table.change")).to_contain_text("active")
    tomas.get_by_role("button", name="Submit request").click()
    expect(tomas.get_by_role("heading", level=1)).to_contain_text("pending")
    request_id = tomas.url.rsplit("/", 1)[1]

    # Two trust & safety employees and one person from security approve, each with their key.
    for staff_id, comment, shot in (
        (MEI, "Checked CASE-1234.", "inbox.png"),
        (SAM, "Agree.", ""),
        (INES, "Security sign-off.", ""),
    ):
        reviewer = person(browser, served, staff_id)
        enrol_security_key(reviewer, served, staff_id)
        approve_from_inbox(reviewer, served, comment, shot)
    tomas.reload()
    expect(tomas.get_by_role("heading", level=1)).to_contain_text("scheduled")

    # Nothing happens during the delay; after it, the worker carries it out.
    assert worker.run_once(world.services).executed == []
    assert world.chirp("president")["status"] == "active"
    world.clock.advance(minutes=11)
    assert worker.run_once(world.services).executed == [request_id]
    assert world.chirp("president")["status"] == "deactivated"
    tomas.reload()
    expect(tomas.get_by_role("heading", level=1)).to_contain_text("executed")
    timeline = tomas.locator("ol.timeline > li")
    expect(timeline).to_have_count(7)
    expect(timeline.last).to_contain_text("request executed")
    reviews = tomas.locator("table.responsive tbody tr")
    expect(reviews).to_have_count(3)
    for row in range(3):
        expect(reviews.nth(row)).to_contain_text("yes")  # confirmed with a security key
    tomas.screenshot(path=str(ARTIFACTS / "timeline.png"), full_page=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    view = operations.show(world.services, request_id)
    assert [r["reviewer"] for r in view["reviews"]] == [MEI, SAM, INES]
    assert all(r["step_up"] for r in view["reviews"])
