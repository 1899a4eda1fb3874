"""The console's undo of an email change: nothing to type but the justification when foureyes
kept the previous address; the reverse action's inputs when it did not."""

from __future__ import annotations

from pathlib import Path

import pytest

from foureyes.store.database import Database
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.console.conftest import Console, console_for
from tests.unit.workflow.test_undo_params import (
    NEW,
    OLD,
    change_email_unreported,
    policy_with_email_rule,
)
from tests.worlds import World, make_world


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, policy_with_email_rule())


@pytest.fixture
def console(world: World, tmp_path: Path) -> Console:
    return console_for(world, tmp_path / "data")


def change_email(console: Console) -> str:
    request_id, _ = operations.submit_and_run(
        console.world.services,
        console.world.actor("e-3002"),
        Submission("account.change_email", "chirp:alice", {"email": NEW}),
    )
    assert console.world.chirp("alice")["email"] == NEW
    return request_id


def test_the_undo_form_needs_nothing_but_the_justification(console: Console) -> None:
    original = change_email(console)
    mei = console.signed_in("e-3002")
    page = mei.get(f"/console/requests/{original}")
    assert "Undo (account.change_email)" in page.text
    assert 'name="param.email"' not in page.text
    assert OLD not in page.text

    undone = mei.post(f"/console/requests/{original}/undo", {"justification": "CASE-2020"})

    assert undone.status_code == 303
    undo_id = undone.headers["location"].rsplit("/", 1)[1]
    assert operations.show(console.world.services, undo_id)["state"] == "executed"
    assert operations.show(console.world.services, original)["state"] == "reverted"
    assert console.world.chirp("alice")["email"] == OLD
    assert OLD not in mei.get(f"/console/requests/{original}").text


def test_without_stored_params_the_form_asks_for_them(console: Console) -> None:
    # An original executed by a platform that does not report them (or before foureyes kept
    # them): nothing stored, nothing recorded in its event.
    world = console.world
    original = change_email_unreported(world, world.actor("e-3002"), "chirp:alice", NEW)
    mei = console.signed_in("e-3002")
    page = mei.get(f"/console/requests/{original}")
    assert 'name="param.email"' in page.text
    assert "does not know what was there before" in page.text

    refused = mei.post(f"/console/requests/{original}/undo", {"justification": "CASE-2020"})
    assert refused.status_code == 422
    assert "give email with the undo" in refused.text
    assert console.world.chirp("alice")["email"] == NEW

    undone = mei.post(
        f"/console/requests/{original}/undo",
        {"justification": "CASE-2020", "param.email": "alice@mail.example"},
    )
    assert undone.status_code == 303
    assert console.world.chirp("alice")["email"] == OLD
