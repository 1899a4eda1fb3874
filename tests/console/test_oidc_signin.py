"""Console sign-in through a real OpenID provider (oidc-provider-mock): the browser's redirects
followed by hand, from the console to the provider's authorization page and back."""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from foureyes.bootstrap import create_app
from foureyes.console import throttle
from foureyes.console.sessions import COOKIE
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, LoginFailureRow
from foureyes.workflow import operations
from tests.api.conftest import make_settings
from tests.conftest import EXAMPLES
from tests.oidc_provider import CLIENT_ID, OidcServer, oidc_server  # noqa: F401 (a fixture)
from tests.worlds import World, make_world

BASE = "https://testserver"
# Tests refused before the database matters run once (on PostgreSQL); the rest run on both.
NO_DATABASE_IN_PLAY = pytest.mark.pg_only
CALLBACK = f"{BASE}/console/auth/callback"


@dataclass
class Console:
    client: TestClient
    world: World
    provider: OidcServer

    def start(self, next_url: str = "/console/") -> str:
        """Click "Sign in with Test SSO": the provider's authorization URL we are sent to."""
        response = self.client.get("/console/login/oidc", params={"next": next_url})
        assert response.status_code == 302, response.text
        location: str = response.headers["location"]
        return location

    def callback(self, url: str) -> httpx2.Response:
        """The browser arriving back at the console from the provider."""
        assert url.startswith(CALLBACK), url
        return self.client.get(url.removeprefix(BASE))

    def sign_in(self, sub: str, next_url: str = "/console/") -> httpx2.Response:
        return self.callback(self.provider.authorize(self.start(next_url), sub))


@pytest.fixture
def sso(
    database: Database,
    tmp_path: Path,
    oidc_server: OidcServer,  # noqa: F811
) -> Iterator[Console]:
    world = make_world(database)
    world.clock.now = datetime.now(UTC)  # the provider stamps its tokens with the real time
    settings = make_settings(tmp_path / "data").model_copy(update={"oidc": oidc_server.settings()})
    app = create_app(world.services, settings)
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        yield Console(client, world, oidc_server)


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def assert_refused(response: httpx2.Response, reason: str, status: int = 401) -> None:
    """The sign-in page again, saying why; no session cookie."""
    assert response.status_code == status, response.text
    alert = re.search(r'<p class="error" role="alert">([^<]*)</p>', response.text)
    assert alert is not None, response.text
    message = html.unescape(alert.group(1))
    assert message.startswith("Signing in with your identity provider did not work: ")
    assert reason in message
    assert COOKIE not in response.cookies


@NO_DATABASE_IN_PLAY
def test_the_login_page_offers_the_provider(sso: Console) -> None:
    page = sso.client.get("/console/login")
    assert page.status_code == 200
    assert "Sign in with Test SSO" in page.text


def test_signing_in_through_the_provider_opens_a_session(sso: Console) -> None:
    authorize = sso.start("/console/")
    params = query(authorize)
    assert authorize.startswith(f"{sso.provider.issuer}/oauth2/authorize?")
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == CALLBACK
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert params["code_challenge"]
    assert params["state"]
    assert params["nonce"]
    assert set(params["scope"].split()) == {"openid", "profile", "email"}
    back = sso.provider.authorize(authorize, "sub-mei")
    assert query(back)["state"] == params["state"]
    response = sso.callback(back)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/"
    assert COOKIE in response.cookies
    home = sso.client.get("/console/")
    assert home.status_code == 200
    assert "Mei Chen" in home.text
    services = sso.world.services
    with services.database.transaction() as session:
        [event] = services.audit.events(session, kind="console.signed_in")
    assert event.actor == "e-3002"
    assert event.data()["method"] == "oidc", event.data()


def test_a_callback_with_a_state_this_browser_was_not_given_is_refused(sso: Console) -> None:
    back = sso.provider.authorize(sso.start(), "sub-mei")
    params = query(back)
    forged = f"{CALLBACK}?{urlencode({**params, 'state': 'not-the-state'})}"
    assert_refused(sso.callback(forged), "state mismatch")
    # The genuine answer still works once; replayed, its state is spent.
    assert sso.callback(back).status_code == 303
    assert_refused(sso.callback(back), "state mismatch")


@NO_DATABASE_IN_PLAY
def test_a_callback_in_another_browser_is_refused(sso: Console) -> None:
    """An attacker's own code and state, planted in the victim's browser (login CSRF)."""
    back = sso.provider.authorize(sso.start(), "sub-tomas")
    sso.client.cookies.clear()  # the victim's browser never started this sign-in
    assert_refused(sso.callback(back), "state mismatch")


@NO_DATABASE_IN_PLAY
def test_the_provider_refusing_is_shown(sso: Console) -> None:
    authorize = sso.start()
    with httpx2.Client(timeout=10) as http:
        denied = http.post(authorize, data={"action": "deny"})
    assert denied.status_code == 302
    assert_refused(sso.callback(denied.headers["location"]), "Test SSO answered access_denied")


@NO_DATABASE_IN_PLAY
def test_an_error_link_does_not_put_words_in_foureyes_mouth(sso: Console) -> None:
    text = "Your account is locked: call +1 555 0100"
    response = sso.client.get(
        "/console/auth/callback", params={"error": text, "error_description": text}
    )
    assert_refused(response, "Test SSO answered an error")
    assert "555" not in response.text


def test_someone_not_on_the_staff_gets_no_session(sso: Console) -> None:
    assert_refused(sso.sign_in("sub-mallory"), "is not the identity of anyone on the staff")


def test_a_terminated_person_gets_no_session(sso: Console) -> None:
    directory = load_directory(EXAMPLES / "staff.yaml")
    without_mei = {k: v for k, v in directory.staff.items() if k != "e-3002"}
    operations.import_directory(
        sso.world.services, dataclasses.replace(directory, staff=without_mei)
    )
    assert_refused(sso.sign_in("sub-mei"), "staff e-3002 is terminated")


def test_failed_answers_to_sign_ins_started_here_count_toward_the_login_throttle(
    sso: Console,
) -> None:
    """A sign-in this browser started that fails (the provider vouches for nobody on the
    staff) tried a credential: it counts, and `ADDRESS_LIMIT` of them lock the address."""
    for _ in range(throttle.ADDRESS_LIMIT):
        assert_refused(sso.sign_in("sub-mallory"), "is not the identity of anyone on the staff")
    throttled = sso.client.get("/console/login/oidc")
    assert throttled.status_code == 429
    assert "too many failed sign-in attempts" in throttled.text
    assert "Retry-After" in throttled.headers
    with sso.world.services.database.transaction() as session:
        keys = list(session.scalars(select(LoginFailureRow.key)))
    assert keys == ["address:testclient"] * throttle.ADDRESS_LIMIT


def test_a_cross_site_callback_locks_nobody_out(
    sso: Console, caplog: pytest.LogCaptureFixture
) -> None:
    """The attack: a page any staff member visits fires `<img src=".../console/auth/callback?
    error=access_denied">` many times from their browser (no cookie goes with a cross-site
    image, and none is needed). Each answers the sign-in page and counts nothing: it answers
    no sign-in this browser started, so no credential was tried. The address stays open."""
    caplog.set_level(logging.INFO, logger="foureyes.console.oidc_routes")
    forged = (
        {"error": "access_denied"},
        {"error": "access_denied", "state": "made-up"},
        {"code": "x", "state": "y"},
        {},
    )
    page = TestClient(sso.client.app, base_url=BASE, follow_redirects=False)  # the same address
    for _ in range(throttle.ADDRESS_LIMIT):
        for params in forged:
            page.cookies.clear()
            answer = page.get("/console/auth/callback", params=params)
            assert answer.status_code == 401
            assert COOKIE not in answer.cookies
    # Everyone at that address still signs in, with the provider or a token.
    assert sso.sign_in("sub-mei").status_code == 303
    assert sso.client.get("/console/").status_code == 200
    # Nothing was counted or alerted; the log file says what happened.
    with sso.world.services.database.transaction() as session:
        assert session.scalars(select(LoginFailureRow)).all() == []
        assert session.scalars(select(AlertRow)).all() == []
    uncounted = [r for r in caplog.records if "(not counted)" in r.getMessage()]
    assert len(uncounted) == throttle.ADDRESS_LIMIT * len(forged)
    assert "answers no sign-in started in this browser" in uncounted[0].getMessage()


@NO_DATABASE_IN_PLAY
def test_the_providers_refusal_of_a_sign_in_started_here_counts_once(sso: Console) -> None:
    """The provider's `error` with this browser's state is the answer to its sign-in: counted
    once, and the state is spent (replaying the answer counts nothing more). (The test
    provider's refusal leaves the state out; a provider sends it back, RFC 6749 4.1.2.1.)"""
    state = query(sso.start())["state"]
    denied = f"{CALLBACK}?{urlencode({'error': 'access_denied', 'state': state})}"
    assert_refused(sso.callback(denied), "Test SSO answered access_denied")
    assert_refused(sso.callback(denied), "Test SSO answered access_denied")
    with sso.world.services.database.transaction() as session:
        assert len(session.scalars(select(LoginFailureRow)).all()) == 1


@NO_DATABASE_IN_PLAY
def test_an_unreachable_provider_is_a_503_page_and_no_redirect(
    database: Database,
    tmp_path: Path,
    oidc_server: OidcServer,  # noqa: F811
) -> None:
    world = make_world(database)
    settings = make_settings(tmp_path / "data").model_copy(
        update={"oidc": oidc_server.settings(issuer="http://localhost:9")}  # nothing listens
    )
    with TestClient(create_app(world.services, settings), base_url=BASE) as client:
        response = client.get("/console/login/oidc", follow_redirects=False)
    assert response.status_code == 503
    assert "Test SSO cannot be reached to sign in" in response.text


@NO_DATABASE_IN_PLAY
def test_a_missing_client_secret_is_logged_not_shown(
    database: Database,
    tmp_path: Path,
    oidc_server: OidcServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = make_world(database)
    oidc = oidc_server.settings(client_secret_env="FOUREYES_TEST_UNSET_SECRET")
    settings = make_settings(tmp_path / "data").model_copy(update={"oidc": oidc})
    with TestClient(create_app(world.services, settings), base_url=BASE) as client:
        response = client.get("/console/login/oidc", follow_redirects=False)
    assert response.status_code == 503
    assert "not set up correctly" in response.text
    assert "FOUREYES_TEST_UNSET_SECRET" not in response.text
    # The log names the option, never its value (it may be the secret itself, pasted there).
    assert "oidc.client_secret_env is not the name of a set environment variable" in caplog.text
    assert "FOUREYES_TEST_UNSET_SECRET" not in caplog.text
