"""The harness of the browser tests (tests/console/test_*_browser.py and
tests/e2e/test_console_story.py): foureyes served for real by uvicorn in a thread on a loopback
port, Debian's Chromium driven by Playwright, Chromium's virtual security key, and signing in with
a token.

The console is addressed as http://localhost:<port>, never 127.0.0.1: "localhost" is the WebAuthn
relying party's ID, and browsers send Secure cookies to localhost without TLS.

`browser` and `page` are fixtures; a conftest imports them
(`from tests.browser import browser, page  # noqa: F401`).
Each test module keeps its own `served` fixture (what is served differs), built with `serving`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, CDPSession, Page, sync_playwright

from foureyes.auth import webauthn
from foureyes.bootstrap import create_app
from foureyes.config import WebAuthnSettings
from foureyes.config.oidc import OidcSettings
from foureyes.workflow import operations
from tests.api.conftest import make_settings
from tests.http_server import free_port, serving_app
from tests.worlds import World

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Served:
    world: World
    base: str  # http://localhost:<port>


@contextmanager
def serving(
    world: World,
    data_dir: Path,
    *,
    security_keys: bool = False,
    oidc: OidcSettings | None = None,
) -> Iterator[Served]:
    """`world` served by uvicorn in a thread until the block ends, with settings for a data
    directory `data_dir` holding a log signing key. With `security_keys`, step-up is WebAuthn
    with the relying party `localhost` at this port's origin; with `oidc`, those `[oidc]`
    settings."""
    port = free_port()
    base = f"http://localhost:{port}"
    update: dict[str, Any] = {}
    if security_keys:
        relying = WebAuthnSettings(rp_id="localhost", origins=[base])
        update["webauthn"] = relying
        world.services.step_up = webauthn.step_up_verifier(
            webauthn.RelyingParty.from_settings(relying), world.clock
        )
    if oidc is not None:
        update["oidc"] = oidc
    settings = make_settings(data_dir).model_copy(update=update)
    with serving_app(create_app(world.services, settings), port):
        yield Served(world, base)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless. Missing, the test fails: CI installs it (scripts/test)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/test to install it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a browser context of its own (its own cookies), closed after the test."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


def plug_in_security_key(page: Page) -> tuple[CDPSession, str]:
    """Plug a virtual CTAP2 security key (with a PIN that is always entered) into the page's
    browser context; the DevTools session that controls it, and the authenticator's id."""
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


def plug_in_passkey(page: Page) -> tuple[CDPSession, str]:
    """Plug a virtual *platform* authenticator into the page's browser context: a passkey
    provider built into the device (as Touch ID or Windows Hello are: transport `internal`,
    discoverable credentials, the user verified). The DevTools session and its id."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def artifacts_dir(kind: str = "console") -> Path:
    """Where browser tests keep what they save (screenshots): `test-artifacts/<kind>/` at the
    repository's root (git-ignored), or under $FOUREYES_TEST_ARTIFACTS when set (CI may collect
    it elsewhere). Made if missing."""
    root = os.environ.get("FOUREYES_TEST_ARTIFACTS")
    base = Path(root) if root else Path(__file__).resolve().parent.parent / "test-artifacts"
    where = base / kind
    where.mkdir(parents=True, exist_ok=True)
    return where


def screenshot(page: Page, name: str, kind: str = "console") -> Path:
    """Save the whole page as `<artifacts_dir(kind)>/<name>.png`; its path."""
    path = artifacts_dir(kind) / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_with_token(page: Page, served: Served, staff_id: str) -> None:
    """On the console's sign-in page: paste a fresh token for `staff_id` and sign in (the caller
    checks where that lands)."""
    token = operations.issue_token(served.world.services, staff_id)
    page.get_by_label("Your token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def add_security_key(page: Page, name: str = "virtual key") -> None:
    """On the Security keys page: add the plugged-in key as `name` (the caller checks that it
    was added)."""
    page.get_by_label("Name it").fill(name)
    page.get_by_role("button", name="Add a security key").click()
