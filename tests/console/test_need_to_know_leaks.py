"""The need-to-know leaks of tests/adversarial/test_need_to_know_leaks.py, through the console:
a scheduled request an `allow` rule delays is the unknown id's page to strangers (and theirs
to cancel nowhere); an undo's page shows the address it restores redacted; a stranger's undo of
a request they may not see is the unknown id's page and files nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from foureyes.connectors.demo_catalog import redact_email
from foureyes.store.database import Database
from foureyes.store.tables import RequestRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.adversarial.test_need_to_know_leaks import POLICY
from tests.console.conftest import Console, console_for
from tests.console.test_need_to_know import _error
from tests.unit.workflow.test_undo_params import NEW, OLD
from tests.worlds import World, make_world


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, POLICY)


@pytest.fixture
def console(world: World, tmp_path: Path) -> Console:
    return console_for(world, tmp_path / "data")


def _request_count(console: Console) -> int:
    with console.world.services.database.read() as session:
        return int(session.scalar(select(func.count()).select_from(RequestRow)) or 0)


def test_a_scheduled_allowed_with_delay_request_is_the_unknown_id_page_to_strangers(
    console: Console,
) -> None:
    ana = console.signed_in("e-2001")
    response = ana.post(
        "/console/requests/new",
        {"account": "chirp:bob", "action": "account.lock", "justification": "", "do": "submit"},
    )
    assert response.status_code == 303, response.text
    request_id = response.headers["location"].rsplit("/", 1)[1]
    assert operations.show(console.world.services, request_id)["state"] == "scheduled"
    for stranger in ("c-1001", "e-3002", "c-3004"):
        browser = console.signed_in(stranger)
        page = browser.get(f"/console/requests/{request_id}")
        assert page.status_code == 404
        assert _error(page.text) == f"no request {request_id!r}"
        assert request_id not in browser.get("/console/inbox").text
        assert request_id not in browser.get("/console/accounts/chirp:bob").text
        assert request_id not in browser.get("/console/").text
        cancel = browser.post(f"/console/requests/{request_id}/cancel", {"reason": "x"})
        assert cancel.status_code == 404
        assert _error(cancel.text) == f"no request {request_id!r}"
    assert operations.show(console.world.services, request_id)["state"] == "scheduled"
    assert "account.lock" in console.signed_in("e-4001").get(f"/console/requests/{request_id}").text


def _alice_email_changed(console: Console) -> str:
    request_id, _ = operations.submit_and_run(
        console.world.services,
        console.world.actor("e-3002"),
        Submission("account.change_email", "chirp:alice", {"email": NEW}),
    )
    assert console.world.chirp("alice")["email"] == NEW
    return request_id


def test_an_undos_page_shows_the_restored_address_redacted(console: Console) -> None:
    original = _alice_email_changed(console)
    mei = console.signed_in("e-3002")
    undone = mei.post(f"/console/requests/{original}/undo", {"justification": "CASE-2020"})
    assert undone.status_code == 303, undone.text
    undo_id = undone.headers["location"].rsplit("/", 1)[1]
    assert console.world.chirp("alice")["email"] == OLD  # the platform got it in the clear
    for reader in ("e-3002", "e-4001", "e-9001"):
        browser = console.signed_in(reader)
        page = browser.get(f"/console/requests/{undo_id}").text
        assert redact_email(OLD) in page
        assert OLD not in page
        for listing in ("/console/requests", "/console/inbox", "/console/accounts/chirp:alice"):
            assert OLD not in browser.get(listing).text


@pytest.mark.parametrize(
    "form",
    [{"justification": "CASE-1"}, {"justification": "CASE-1", "param.email": "x@evil.example"}],
    ids=["no-params", "params"],
)
def test_a_strangers_console_undo_is_the_unknown_id_page_and_files_nothing(
    console: Console, form: dict[str, str]
) -> None:
    original = _alice_email_changed(console)
    before = _request_count(console)
    for stranger in ("c-3004", "e-2001"):
        browser = console.signed_in(stranger)
        unknown = str(uuid.uuid4())
        hidden = browser.post(f"/console/requests/{original}/undo", form)
        random = browser.post(f"/console/requests/{unknown}/undo", form)
        assert hidden.status_code == random.status_code == 404
        assert _error(hidden.text) == f"no request {original!r}"
        assert _error(random.text) == f"no request {unknown!r}"
        assert "change_email" not in hidden.text
        assert "change email" not in hidden.text
    assert _request_count(console) == before
    assert console.world.chirp("alice")["email"] == NEW
