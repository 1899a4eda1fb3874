"""Security keys in a real browser: headless Chromium (Debian's, driven by Playwright) with the
DevTools protocol's virtual authenticator (a CTAP2 key with a PIN that is always entered), against
foureyes served on a loopback port. A reviewer signs in, adds the key on the Security keys page,
approves a step-up request from the inbox (the review event holds the key's assertion), then
revokes the key."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from foureyes.api import create_app
from foureyes.config import WebAuthnSettings
from foureyes.store.database import Database
from foureyes.store.tables import EventRow
from foureyes.workflow import operations, webauthn
from foureyes.workflow.submit import Submission
from tests.api.conftest import make_settings
from tests.worlds import World, make_world

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KIM, MEI = "c-1001", "e-3002"


@dataclass
class Served:
    world: World
    base: str  # http://localhost:<port>: the RP ID is "localhost", so not 127.0.0.1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(database: Database, tmp_path: Path) -> Iterator[Served]:
    """foureyes (the demo world) served by uvicorn in a thread, its WebAuthn relying party being
    `localhost` with this port's origin."""
    world = make_world(database)
    port = _free_port()
    base = f"http://localhost:{port}"
    relying = WebAuthnSettings(rp_id="localhost", origins=[base])
    settings = make_settings(tmp_path / "data").model_copy(update={"webauthn": relying})
    world.services.step_up = webauthn.step_up_verifier(
        webauthn.RelyingParty.from_settings(relying), world.clock
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(world.services, settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while thread.is_alive() and not server.started:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    yield Served(world, base)
    server.should_exit = True
    thread.join()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def with_security_key(page: Page) -> tuple[Any, str]:
    """Plug a virtual CTAP2 security key (with a PIN that is always entered) into the page."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def sign_in(page: Page, served: Served, staff_id: str) -> None:
    token = operations.issue_token(served.world.services, staff_id)
    page.goto(f"{served.base}/console/login")
    page.get_by_label("Your token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{served.base}/console/**")


# The store's part is tested on both databases in tests/unit/workflow/test_webauthn.py; this one
# is about the browser and the key, so it runs once, on SQLite.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_reviewer_adds_a_security_key_and_approves_with_it(
    served: Served, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    cdp, authenticator = with_security_key(page)
    sign_in(page, served, MEI)

    page.goto(f"{served.base}/console/security-keys")
    expect(page.locator("[data-wrong-address]")).to_have_count(0)
    page.get_by_label("Name it").fill("virtual key")
    page.get_by_role("button", name="Add a security key").click()
    page.wait_for_url("**/console/security-keys?done=enrolled")
    expect(page.locator("#security-keys")).to_contain_text("virtual key")
    [enrolled] = webauthn.list_keys(served.world.services, MEI)
    assert enrolled.name == "virtual key"
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(stored["credentials"]) == 1

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
    page.wait_for_url(f"**/console/requests/{request_id}?reviewed=1")

    view = operations.show(served.world.services, request_id)
    assert [r["reviewer"] for r in view["reviews"]] == [MEI]
    with served.world.services.database.transaction() as session:
        bodies = session.scalars(select(EventRow.body).where(EventRow.kind == "review.recorded"))
        [event] = [json.loads(body) for body in bodies]
    evidence = event["step_up"]
    assert evidence["method"] == "webauthn"
    assert evidence["key_id"] == enrolled.id
    assert evidence["user_verified"] is True
    client = json.loads(webauthn.base64url_to_bytes(evidence["client_data_json"]))
    assert client["origin"] == served.base
    assert client["type"] == "webauthn.get"

    page.goto(f"{served.base}/console/security-keys")
    page.get_by_role("button", name="Revoke virtual key").click()
    page.wait_for_url("**/console/security-keys?done=revoked")
    expect(page.locator(f'tr[data-key-id="{enrolled.id}"]')).to_contain_text("revoked")
    [revoked] = webauthn.list_keys(served.world.services, MEI)
    assert revoked.revoked_at is not None
    context.close()
