"""Account search is rate-limited per person (issue #19: a signed-in session could list every
account by walking handle prefixes). Past the limit the console says so (429, `Retry-After`),
the API answers a 429 problem, nothing is searched, and an `accounts.search` alert is raised
once per window; other people are not affected, and waiting ends it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from foureyes.core.ratelimit import SlidingWindow
from foureyes.core.services import ACCOUNT_SEARCH_LIMIT, ACCOUNT_SEARCH_WINDOW
from foureyes.errors import TooManyAttempts
from foureyes.store.tables import AlertRow, EventRow
from foureyes.workflow import account_search, operations
from tests.console.conftest import Console
from tests.worlds import World

ANA, TOMAS = "e-2001", "e-3001"
LIMIT = 3
WINDOW = timedelta(minutes=10)


def _alerts(world: World, staff_id: str) -> int:
    with world.services.database.transaction() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    AlertRow.detector == account_search.ALERT_DETECTOR,
                    AlertRow.staff_id == staff_id,
                )
            )
            or 0
        )


def _small(world: World) -> None:
    world.services.account_searches = SlidingWindow(LIMIT, WINDOW)


def test_past_the_limit_the_console_refuses_every_search_form_until_the_window_passes(
    console: Console,
) -> None:
    _small(console.world)
    ana = console.signed_in(ANA)
    probes = ["pr", "pre", "@president"]  # typeahead, page, exact: all count
    assert ana.get("/console/account-suggestions", params={"q": probes[0]}).status_code == 200
    assert ana.get("/console/accounts", params={"q": probes[1]}).status_code == 200
    exact = ana.get("/console/accounts", params={"q": probes[2]}, follow_redirects=False)
    assert exact.status_code == 303

    for path, q in [
        ("/console/accounts", "pre"),
        ("/console/account-suggestions", "ne"),
        ("/console/accounts", "chirp:president"),  # an exact platform:id counts too
        ("/console/account-suggestions", "  @ne"),
    ]:
        refused = ana.get(path, params={"q": q}, follow_redirects=False)
        assert refused.status_code == 429, (path, q)
        assert "too many account searches" in refused.text
        assert "chirp:newsdesk" not in refused.text
        assert "chirp:president" not in refused.text
        assert 0 < int(refused.headers["Retry-After"]) <= WINDOW.total_seconds()
    # One alert, in the log, however many refusals.
    assert _alerts(console.world, ANA) == 1
    with console.world.services.database.transaction() as session:
        assert session.scalar(select(func.count()).where(EventRow.kind == "alert.raised"))

    # Someone else is not held up by Ana's searches.
    tomas = console.signed_in(TOMAS)
    found = tomas.get("/console/account-suggestions", params={"q": "ne"}).json()
    assert found == {"items": ["chirp:newsdesk"]}

    # Refusals were not counted: once the first search leaves the window she searches again.
    console.world.clock.advance(seconds=WINDOW.total_seconds() + 1)
    again = ana.get("/console/account-suggestions", params={"q": "ne"})
    assert again.json() == {"items": ["chirp:newsdesk"]}


def test_an_empty_query_is_not_a_search_and_does_not_count(console: Console) -> None:
    _small(console.world)
    ana = console.signed_in(ANA)
    for _ in range(LIMIT * 3):
        assert ana.get("/console/account-suggestions", params={"q": "  "}).status_code == 200
    assert ana.get("/console/account-suggestions", params={"q": "ne"}).status_code == 200


def test_the_default_limit_holds_for_a_script_walking_prefixes(console: Console) -> None:
    """The limit as shipped: a script asking every two-letter prefix stops at it."""
    services = console.world.services
    actor = operations.authenticate(services, operations.issue_token(services, ANA))
    letters = "abcdefghijklmnopqrstuvwxyz"
    prefixes = [a + b for a in letters for b in letters]
    for prefix in prefixes[:ACCOUNT_SEARCH_LIMIT]:
        account_search.find_accounts(services, actor, prefix)
    with pytest.raises(TooManyAttempts) as stopped:
        account_search.find_accounts(services, actor, prefixes[ACCOUNT_SEARCH_LIMIT])
    assert stopped.value.details["retry_after"] <= ACCOUNT_SEARCH_WINDOW.total_seconds()


def test_a_sliding_window_refuses_bad_settings() -> None:
    for limit, window in ((0, WINDOW), (1, timedelta(0)), (-1, WINDOW)):
        with pytest.raises(ValueError, match="positive"):
            SlidingWindow(limit, window)
