"""The console's away page (your own only) and a pending request's routing card: the request
it waits for, the others pending on its account, and the flag when nobody reachable can
approve it."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
import yaml

from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.away import my_away, set_away
from foureyes.workflow.submit import Submission
from tests.conftest import EXAMPLES
from tests.console.conftest import Console, console_for
from tests.worlds import World, make_world


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _one_at_a_time() -> str:
    document = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    document["one_pending_per_account"] = {"actions": "all", "mode": "wait"}
    return yaml.safe_dump(document, sort_keys=False, width=1_000_000)


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, _one_at_a_time())


def test_you_mark_yourself_away_and_back_in_the_console(console: Console) -> None:
    mei = console.signed_in("e-3002")
    today = console.world.clock.now.date()
    until = today + timedelta(days=2)
    form = {"from": today.isoformat(), "until": until.isoformat(), "delegate": "e-3003"}
    response = mei.post("/console/away", form, csrf_from="/console/away")
    assert response.status_code == 303, response.text
    page = _text(mei.get("/console/away").text)
    assert f"You are marked away from {today.isoformat()} until {until.isoformat()}" in page
    assert "e-3003" in page
    # Someone else's form fields do not reach anyone else's record.
    mine = mei.post("/console/away", {**form, "staff": "e-9001"}, csrf_from="/console/away")
    assert mine.status_code == 303
    assert my_away(console.world.services, console.world.actor("e-9001")) is None
    response = mei.post("/console/away", {"clear": "1"}, csrf_from="/console/away")
    assert response.status_code == 303
    assert "You are marked away" not in _text(mei.get("/console/away").text)


def test_the_away_form_without_a_csrf_token_changes_nothing(console: Console) -> None:
    mei = console.signed_in("e-3002")
    today = console.world.clock.now.date().isoformat()
    response = mei.client.post(
        "/console/away", data={"from": today, "until": today}, follow_redirects=False
    )
    assert response.status_code == 403
    assert my_away(console.world.services, console.world.actor("e-3002")) is None


def test_the_review_page_shows_what_a_request_waits_for(console: Console) -> None:
    services, world = console.world.services, console.world
    first = operations.submit(
        services,
        world.actor("c-1001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )
    second = operations.submit(
        services,
        world.actor("e-2001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-1235"),
    )
    ines = console.signed_in("e-4001")  # security: approves both
    page = _text(ines.get(f"/console/requests/{second}").text)
    assert f"It waits for request {first} on the same account" in page
    assert "Also pending on this account" in page
    page = _text(ines.get(f"/console/requests/{first}").text)
    assert "(waits for this one)" in page
    assert "It waits for request" not in page


def test_an_unreachable_request_is_flagged_on_its_page(database: Database, tmp_path: Path) -> None:
    world = make_world(database)
    console = console_for(world, tmp_path / "data")
    request_id = operations.submit(
        world.services,
        world.actor("c-1001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )
    # The only security person (whose sign-off the vit rule needs) is away.
    today = world.clock.now.date()
    set_away(world.services, world.actor("e-4001"), today, today + timedelta(days=1))
    page = _text(console.signed_in("e-3002").get(f"/console/requests/{request_id}").text)
    assert "Nobody reachable can approve this request." in page


def test_the_review_page_names_no_request_the_reader_may_not_see(console: Console) -> None:
    # Ana's request waits for Kim's, which Ana may not see (she neither asked for it nor may
    # approve it): her page says another request is pending, never which (routing attack M2).
    services, world = console.world.services, console.world
    first = operations.submit(
        services,
        world.actor("c-1001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-1234"),
    )
    second = operations.submit(
        services,
        world.actor("e-2001"),
        Submission("account.deactivate", "chirp:president", justification="CASE-1235"),
    )
    ana = console.signed_in("e-2001")
    assert ana.get(f"/console/requests/{first}").status_code == 404
    html = ana.get(f"/console/requests/{second}").text
    page = _text(html)
    assert "It waits for another request pending on the same account" in page
    assert "Another request is pending on this account (one you may not see)" in page
    assert first not in html
    assert "c-1001" not in html
