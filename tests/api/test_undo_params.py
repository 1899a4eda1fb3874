"""`POST /v1/requests/{id}/undo` of an email change: with no params the previous address is
restored (the platform reported it when the change executed); a value typed over it is
refused; the
address is in no response nor audit event."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from foureyes.store.database import Database
from foureyes.store.tables import EventRow
from tests.api.conftest import Api, assert_problem
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


def change_email(api: Api, email: str = NEW) -> str:
    view = api.submitted(
        "e-3002", action="account.change_email", account="chirp:alice", params={"email": email}
    )
    assert view["state"] == "executed"
    request_id: str = view["id"]
    return request_id


def test_undo_with_no_params_restores_the_previous_address(api: Api) -> None:
    original = change_email(api)
    assert api.world.chirp("alice")["email"] == NEW

    response = api.post("e-3002", f"/v1/requests/{original}/undo", {"justification": "CASE-2020"})

    assert response.status_code == 201, response.text
    undo = response.json()
    assert (undo["action"], undo["reverts"], undo["state"]) == (
        "account.change_email",
        original,
        "executed",
    )
    assert "undo_params" not in undo
    assert api.world.chirp("alice")["email"] == OLD
    shown = api.show("e-3002", original)
    assert shown["state"] == "reverted"
    assert "undo_params" not in shown
    assert OLD not in json.dumps(shown)
    listed = api.get("e-3002", "/v1/requests").text
    assert "undo_params" not in listed
    with api.world.services.database.transaction() as session:
        bodies = [bytes(b).decode() for b in session.scalars(select(EventRow.body))]
    assert not [b for b in bodies if OLD in b]


def test_a_value_typed_over_the_recorded_one_is_refused(api: Api) -> None:
    # Shown redacted like the recorded address, a typed one would reach approvers looking
    # exactly like it (attack F5): refused, whatever it is, and nothing is recorded.
    original = change_email(api)
    chosen = {"email": "alice.back@mail.example"}
    body = {"justification": "CASE-2020", "params": chosen}
    response = api.post("e-3002", f"/v1/requests/{original}/undo", body)
    assert_problem(response, 422, "bad-input")
    assert "alice.back" not in response.text
    assert api.get("e-3002", f"/v1/requests/{original}").json()["state"] == "executed"
    assert api.world.chirp("alice")["email"] == NEW


def test_without_stored_params_the_problem_says_what_to_give(api: Api) -> None:
    # An original executed by a platform that does not report them (or before foureyes kept
    # them).
    original = change_email_unreported(api.world, api.world.actor("e-3002"), "chirp:alice", NEW)
    response = api.post("e-3002", f"/v1/requests/{original}/undo", {})
    detail = assert_problem(response, 422, "bad-input")["detail"]
    assert "needs email" in detail
    assert "give email with the undo" in detail
