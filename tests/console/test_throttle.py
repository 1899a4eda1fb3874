"""Login throttling: failures counted per client address in the database (so every server sees
them), a clear "try again in N" answer, and an alert when the limit is reached; never per token
id, so naming someone's token id locks nobody but the guesser's own address out."""

from __future__ import annotations

from sqlalchemy import select

from foureyes.console import throttle
from foureyes.store.tables import AlertRow, ConsoleSessionRow, LoginFailureRow
from tests.console.conftest import Console, console_for

ATTACKER, VICTIM = "203.0.113.66", "198.51.100.7"


def _try(console: Console, token: str, address: str = "testclient") -> int:
    browser = console.browser(address)
    response = browser.post("/console/login", {"token": token}, csrf_from="/console/login")
    return response.status_code


def test_an_address_is_locked_after_many_failures_across_identities(console: Console) -> None:
    for n in range(throttle.ADDRESS_LIMIT):
        assert _try(console, f"fey_{n:016x}_guess") == 401
    good = console.token("e-3002")
    browser = console.browser()
    refused = browser.post("/console/login", {"token": good}, csrf_from="/console/login")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "900"
    assert "too many failed sign-in attempts: try again in 15 minutes" in refused.text
    # A second server on the same database refuses too: the count is in the database.
    other = console_for(console.world, console.settings.data_dir.parent / "other")
    assert _try(other, good) == 429
    with console.world.services.database.transaction() as session:
        assert session.scalar(select(ConsoleSessionRow.id)) is None
        alerts = list(session.scalars(select(AlertRow.detector)))
    assert alerts == [throttle.ALERT_DETECTOR]  # deduplicated over the window
    # Once the failures leave the window, the right token works again.
    console.world.clock.advance(minutes=15, seconds=1)
    assert _try(console, good) == 303


def test_naming_someones_token_id_does_not_lock_them_out(console: Console) -> None:
    """The attack: token ids are no secret to oversight (alerts, `token.issued` events), so
    an attacker sends wrong secrets with Tomas's token id, each with their own CSRF token,
    until the throttle answers. It locks the attacker's own address, never the token."""
    token = console.token("e-3001")
    token_id = token.split("_")[1]
    attempts = 0
    while _try(console, f"fey_{token_id}_wrong{attempts}", ATTACKER) == 401:
        attempts += 1
    assert attempts == throttle.ADDRESS_LIMIT  # then 429, for the attacker's address

    # Tomas, elsewhere, signs in with his token; so does anyone else.
    assert _try(console, token, VICTIM) == 303
    assert _try(console, console.token("e-3002"), VICTIM) == 303
    # Even from the attacker's address the lock is the address's, not the token's.
    assert _try(console, token, ATTACKER) == 429

    # What is left: the count by address only (nothing names the token), and one alert.
    with console.world.services.database.transaction() as session:
        keys = set(session.scalars(select(LoginFailureRow.key)))
        [alert] = session.scalars(select(AlertRow)).all()
    assert keys == {f"address:{ATTACKER}"}
    assert (alert.detector, alert.details["throttled"]) == (
        throttle.ALERT_DETECTOR,
        [f"address:{ATTACKER}"],
    )
