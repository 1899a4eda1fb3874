"""The console's forms that make a request carry an idempotency key (a hidden field, new with
each page): the same form posted twice makes one request; after an outcome-unknown answer the
page links the request and keeps the key, so posting it again is safe."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from foureyes.store.tables import RequestRow
from tests.console.conftest import Browser, Console
from tests.outage import Outage
from tests.worlds import as_remote

KEY_FIELD = re.compile(r'name="idempotency_key" value="([^"]+)"')
LOCK = {"account": "chirp:alice", "action": "account.lock", "justification": ""}
DEACTIVATE = {
    "account": "chirp:president",
    "action": "account.deactivate",
    "justification": "CASE-1234",
}


@pytest.fixture
def outage(console: Console) -> Iterator[Outage]:
    stop = Outage(console.world.services.database.engine)
    yield stop
    stop.end()
    stop.close()


def key_of(html: str) -> str:
    found = KEY_FIELD.findall(html)
    assert len(found) == 1, "expected one idempotency key on the page"
    return str(found[0])


def requests(console: Console) -> int:
    with console.world.services.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(RequestRow)) or 0)


def asking_form(browser: Browser, account: str, action: str) -> str:
    page = browser.get(f"/console/requests/new?account={account}&action={action}")
    assert page.status_code == 200
    return key_of(page.text)


def test_every_asking_page_has_a_new_key(console: Console) -> None:
    ana = console.signed_in("e-2001")
    assert asking_form(ana, "chirp:alice", "account.lock") != asking_form(
        ana, "chirp:alice", "account.lock"
    )


def test_the_asking_form_posted_twice_makes_one_request(console: Console) -> None:
    ana = console.signed_in("e-2001")
    form = {**LOCK, "idempotency_key": asking_form(ana, "chirp:alice", "account.lock")}

    first = ana.post("/console/requests/new", {**form, "do": "submit"})
    second = ana.post("/console/requests/new", {**form, "do": "submit"})  # a double click

    assert (first.status_code, second.status_code) == (303, 303), second.text
    assert first.headers["location"] == second.headers["location"]
    assert requests(console) == 1


def test_a_checked_form_keeps_its_key(console: Console) -> None:
    ana = console.signed_in("e-2001")
    key = asking_form(ana, "chirp:alice", "account.lock")
    checked = ana.post("/console/requests/new", {**LOCK, "idempotency_key": key, "do": "check"})
    assert key_of(checked.text) == key


def test_after_a_denial_the_form_gets_a_new_key(console: Console) -> None:
    console.world.clock.now = datetime(2027, 6, 30, 9, 0, tzinfo=UTC)  # Kim's last day
    kim = console.signed_in("c-1001")
    key = asking_form(kim, "chirp:president", "account.deactivate")
    form = {**DEACTIVATE, "idempotency_key": key, "do": "submit"}

    refused = kim.post("/console/requests/new", form)
    again = kim.post("/console/requests/new", form)  # the same form again: the same denial

    assert (refused.status_code, again.status_code) == (403, 403)
    assert requests(console) == 1
    assert key_of(refused.text) != key  # a new post from this page is a new request


def test_the_undo_form_posted_twice_makes_one_undo(console: Console) -> None:
    ana = console.signed_in("e-2001")
    form = {**LOCK, "idempotency_key": asking_form(ana, "chirp:alice", "account.lock")}
    locked = ana.post("/console/requests/new", {**form, "do": "submit"}).headers["location"]
    undo_key = key_of(ana.get(locked).text)  # the page's one key is its undo form's
    undo = {"justification": "mistake", "idempotency_key": undo_key}

    first = ana.post(f"{locked}/undo", undo)
    second = ana.post(f"{locked}/undo", undo)

    assert (first.status_code, second.status_code) == (303, 303), second.text
    assert first.headers["location"] == second.headers["location"]
    assert requests(console) == 2
    assert console.world.chirp("alice")["status"] == "active"


def test_an_outcome_unknown_links_the_request_and_keeps_the_key(
    console: Console, outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A platform outside foureyes' database, so that the request commits before it is carried
    # out (the demo's is carried out in the submit's own transaction: nothing is left unknown).
    as_remote(monkeypatch, console.world.services.connectors["chirp"])
    ana = console.signed_in("e-2001")
    key = asking_form(ana, "chirp:alice", "account.lock")
    form = {**LOCK, "idempotency_key": key, "do": "submit"}
    outage.after(r"INSERT INTO requests")

    answer = ana.post("/console/requests/new", form)

    outage.end()
    assert answer.status_code == 503
    assert 'data-outcome="unknown"' in answer.text
    link = re.search(r'href="/console/requests/([0-9a-f-]{36})"', answer.text)
    assert link is not None
    assert key_of(answer.text) == key
    again = ana.post("/console/requests/new", form)  # posting the page's form again
    assert again.headers["location"] == f"/console/requests/{link.group(1)}"
    assert requests(console) == 1
