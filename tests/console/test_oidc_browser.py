"""Signing in to the console through the OpenID provider in a real browser: headless Chromium
(Debian's, driven by Playwright) against foureyes served on a loopback port and the test
provider (oidc-provider-mock) on another. The person clicks "Sign in with Test SSO", picks who
they are on the provider's page, and lands in the console signed in; someone the staff
directory does not know lands back on the sign-in page with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from foureyes.console.sessions import COOKIE
from foureyes.store.database import Database
from tests.browser import Served, serving
from tests.oidc_provider import OidcServer, oidc_server  # noqa: F401 (a fixture)
from tests.worlds import make_world


@pytest.fixture
def served(
    database: Database,
    tmp_path: Path,
    oidc_server: OidcServer,  # noqa: F811
) -> Iterator[Served]:
    """foureyes (the demo world, `[oidc]` pointing at the test provider) served by uvicorn."""
    world = make_world(database)
    world.clock.now = datetime.now(UTC)  # the provider stamps its tokens with the real time
    with serving(world, tmp_path / "data", oidc=oidc_server.settings()) as served:
        yield served


def _offline(route: Route) -> None:
    route.abort()  # the provider's page links a stylesheet on a CDN: tests stay off the network


def sign_in_at_the_provider(page: Page, served: Served, provider: OidcServer, sub: str) -> None:
    page.context.route("https://**/*", _offline)
    page.goto(f"{served.base}/console/login")
    page.get_by_role("link", name="Sign in with Test SSO").click()
    page.wait_for_url(f"{provider.issuer}/oauth2/authorize?**")
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize").click()


@pytest.mark.pg_only  # the browser adds nothing per database; the flow tests run on both
def test_a_person_signs_in_through_the_provider(
    served: Served,
    page: Page,
    oidc_server: OidcServer,  # noqa: F811
) -> None:
    sign_in_at_the_provider(page, served, oidc_server, "sub-mei")
    page.wait_for_url(f"{served.base}/console/")
    expect(page.locator("body")).to_contain_text("Mei Chen")
    [session] = [cookie for cookie in page.context.cookies() if cookie["name"] == COOKIE]
    assert session["httpOnly"]
    assert session["secure"]


@pytest.mark.pg_only
def test_someone_the_directory_does_not_know_is_sent_back_with_the_reason(
    served: Served,
    page: Page,
    oidc_server: OidcServer,  # noqa: F811
) -> None:
    sign_in_at_the_provider(page, served, oidc_server, "sub-mallory")
    page.wait_for_url(f"{served.base}/console/auth/callback?**")
    expect(page.get_by_role("alert")).to_contain_text(
        "'mallory' is not the identity of anyone on the staff"
    )
    assert COOKIE not in [cookie["name"] for cookie in page.context.cookies()]
