"""Login throttling: failures counted per identity and per address in the database (so every
server sees them), a clear "try again in N" answer, and an alert when a limit is reached."""

from __future__ import annotations

from sqlalchemy import select

from foureyes.console import throttle
from foureyes.store.tables import AlertRow, ConsoleSessionRow
from tests.console.conftest import Console, console_for


def _try(console: Console, token: str, browser_of: Console | None = None) -> int:
    browser = (browser_of or console).browser()
    response = browser.post("/console/login", {"token": token}, csrf_from="/console/login")
    return response.status_code


def test_an_identity_is_locked_after_repeated_failures_even_with_the_right_token(
    console: Console, tmp_path: object
) -> None:
    good = console.token("e-3001")
    token_id = good.split("_")[1]
    for _ in range(throttle.IDENTITY_LIMIT):
        assert _try(console, f"fey_{token_id}_wrong") == 401
    browser = console.browser()
    refused = browser.post("/console/login", {"token": good}, csrf_from="/console/login")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "900"
    assert "too many failed sign-in attempts: try again in 15 minutes" in refused.text
    # A second server on the same database refuses too: the count is in the database.
    other = console_for(console.world, console.settings.data_dir.parent / "other")
    assert _try(console, good, browser_of=other) == 429
    with console.world.services.database.transaction() as session:
        assert session.scalar(select(ConsoleSessionRow.id)) is None
        alerts = list(session.scalars(select(AlertRow.detector)))
    assert alerts == [throttle.ALERT_DETECTOR]
    # Once the failures leave the window, the right token works again.
    console.world.clock.advance(minutes=15, seconds=1)
    assert _try(console, good) == 303


def test_an_address_is_locked_after_many_failures_across_identities(console: Console) -> None:
    for n in range(throttle.ADDRESS_LIMIT):
        assert _try(console, f"fey_{n:016x}_guess") == 401
    assert _try(console, console.token("e-3002")) == 429
    with console.world.services.database.transaction() as session:
        assert len(list(session.scalars(select(AlertRow.id)))) == 1  # deduplicated
