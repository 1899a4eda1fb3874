"""Undoing an email change restores the previous address without anyone typing it: the platform
reports it when the change executes (`ExecutionResult.undo_params`), foureyes keeps it with the
request (never in a view or the audit log), and `undo` with no params uses it. The 2020
takeover: an attacker's email change on a prominent account is one approved undo away from
reverted."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import EXAMPLES
from tests.worlds import World, make_world

from foureyes import worker
from foureyes.connectors.base import ExecutionOrder
from foureyes.core.services import Actor
from foureyes.errors import BadInput
from foureyes.model import RequestState
from foureyes.store.database import Database
from foureyes.store.tables import EventRow, RequestRow
from foureyes.workflow import execute, operations
from foureyes.workflow.submit import Submission

OLD = "alice@mail.example"  # the seeded address (examples/staff.yaml has none for alice)
NEW = "attacker@evil.example"

# The example policy allows no email change on a standard account; trust & safety may here.
CHANGE_EMAIL_RULE = """rules:
  - id: trust-safety-changes-standard-emails
    effect: allow
    actions: [account.change_email]
    when: '"trust-safety" in staff.groups && account.tier == "standard"'
"""


def policy_with_email_rule() -> str:
    text = (EXAMPLES / "policy.yaml").read_text()
    assert text.count("rules:\n") == 1
    return text.replace("rules:\n", CHANGE_EMAIL_RULE, 1)


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, policy_with_email_rule())


def change_email(world: World, actor: Actor, account: str, email: str) -> str:
    request_id, _ = operations.submit_and_run(
        world.services, actor, Submission("account.change_email", account, {"email": email})
    )
    return request_id


def change_email_unreported(world: World, actor: Actor, account: str, email: str) -> str:
    """`change_email` on a platform that does not report the undo's params (or by a foureyes
    before it kept them): executed with none stored and none recorded in its event."""
    settle = execute._settle_success

    def unreported(*args: Any) -> Any:
        *rest, result = args
        return settle(*rest, dataclasses.replace(result, undo_params=None))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execute, "_settle_success", unreported)
        request_id = change_email(world, actor, account, email)
    assert stored_undo_params(world, request_id) is None
    return request_id


def stored_undo_params(world: World, request_id: str) -> dict[str, object] | None:
    with world.services.database.transaction() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row.undo_params


def event_bodies(world: World) -> list[str]:
    with world.services.database.transaction() as session:
        return [bytes(b).decode() for b in session.scalars(select(EventRow.body))]


def submitted_event(world: World, request_id: str) -> dict[str, object]:
    with world.services.database.transaction() as session:
        body = session.scalars(
            select(EventRow.body).where(
                EventRow.request_id == request_id, EventRow.kind == "request.submitted"
            )
        ).one()
    loaded: dict[str, object] = json.loads(bytes(body))
    return loaded


def assert_salted(event: dict[str, object]) -> None:
    """A submitted event commits to the params salted (docs/digests.md), never by a plain hash
    a reader could test a guess against."""
    assert event["digest_version"] == 3
    assert len(str(event["params_salted_sha256"])) == 64
    assert "params_sha256" not in event
    assert not [key for key in event if "salt" in key and not key.endswith("_salted_sha256")]


def test_an_email_change_is_undone_with_no_params_and_the_old_address_is_back(
    world: World,
) -> None:
    mei = world.actor("e-3002")
    assert world.chirp("alice")["email"] == OLD
    original = change_email(world, mei, "chirp:alice", NEW)
    assert operations.show(world.services, original)["state"] == "executed"
    assert world.chirp("alice")["email"] == NEW
    assert stored_undo_params(world, original) == {"email": OLD}

    undo_id = operations.undo(world.services, mei, original, "CASE-2020 restore")
    with world.services.database.transaction() as session:
        reverse = session.get(RequestRow, undo_id)
        assert reverse is not None
        assert (reverse.action, reverse.params, reverse.reverts_id) == (
            "account.change_email",
            {"email": OLD},
            original,
        )
    operations.run_if_allowed(world.services, mei, undo_id)

    assert operations.show(world.services, undo_id)["state"] == "executed"
    assert operations.show(world.services, original)["state"] == "reverted"
    assert world.chirp("alice")["email"] == OLD
    # The undo of the undo would bring the attacker's address back: it is stored as well.
    assert stored_undo_params(world, undo_id) == {"email": NEW}


def test_the_old_address_is_in_no_audit_event_and_no_view_of_the_original(world: World) -> None:
    mei = world.actor("e-3002")
    original = change_email(world, mei, "chirp:alice", NEW)
    undo_id = operations.undo(world.services, mei, original, "CASE-2020")
    operations.run_if_allowed(world.services, mei, undo_id)
    assert world.chirp("alice")["email"] == OLD

    bodies = event_bodies(world)
    assert bodies
    assert not [b for b in bodies if OLD in b]
    assert_salted(submitted_event(world, undo_id))
    view = operations.show_to(world.services, mei, original)
    assert OLD not in json.dumps(view)
    assert "undo_params" not in view
    assert "undo_params" not in operations.show_to(world.services, mei, undo_id)
    listed, _ = operations.list_requests(
        world.services, mei, operations.ListFilter(mine=True, limit=50)
    )
    assert all("undo_params" not in item for item in listed)


def test_a_value_typed_over_the_stored_one_is_refused(world: World) -> None:
    mei = world.actor("e-3002")
    original = change_email(world, mei, "chirp:alice", NEW)
    for chosen in ("alice.recovered@mail.example", OLD):  # wrong or right: the same refusal
        with pytest.raises(BadInput, match="restores the email it recorded") as refused:
            operations.undo(world.services, mei, original, "CASE-2020", {"email": chosen})
        assert chosen not in refused.value.message
    assert operations.show(world.services, original)["state"] == "executed"
    assert world.chirp("alice")["email"] == NEW


def test_a_replayed_execution_still_yields_the_undo_params(world: World) -> None:
    # The platform applied the change under the request id, but its answer was lost: foureyes
    # executes again, the platform replays its first answer, undo params included.
    mei = world.actor("e-3002")
    request_id = operations.submit(
        world.services, mei, Submission("account.change_email", "chirp:alice", {"email": NEW})
    )
    assert operations.show(world.services, request_id)["state"] == "approved"
    first = world.services.connector("chirp").execute(
        ExecutionOrder("account.change_email", "alice", {"email": NEW}, request_id)
    )
    assert first.undo_params == {"email": OLD}
    assert world.chirp("alice")["email"] == NEW

    operations.run_if_allowed(world.services, mei, request_id)

    assert operations.show(world.services, request_id)["state"] == "executed"
    assert stored_undo_params(world, request_id) == {"email": OLD}
    undo_id = operations.undo(world.services, mei, request_id, "CASE-2020")
    operations.run_if_allowed(world.services, mei, undo_id)
    assert world.chirp("alice")["email"] == OLD


def test_without_stored_params_the_undo_says_what_to_give(world: World) -> None:
    # A request executed before foureyes kept undo params (or on a platform that does not
    # report them).
    mei = world.actor("e-3002")
    original = change_email_unreported(world, mei, "chirp:alice", NEW)
    with pytest.raises(BadInput, match=r"needs email.*give email with the undo"):
        operations.undo(world.services, mei, original, "CASE-2020")
    undo_id = operations.undo(world.services, mei, original, "CASE-2020", {"email": OLD})
    operations.run_if_allowed(world.services, mei, undo_id)
    assert world.chirp("alice")["email"] == OLD


def test_actions_whose_reverse_takes_no_params_store_none(world: World) -> None:
    ana = world.actor("e-2001")
    original, _ = operations.submit_and_run(
        world.services, ana, Submission("account.lock", "chirp:bob")
    )
    assert stored_undo_params(world, original) is None
    undo_id = operations.undo(world.services, ana, original, None)
    assert operations.show(world.services, undo_id)["params"] == {}


def test_the_2020_takeover_is_one_approved_undo_away_from_reverted(world: World) -> None:
    # The attacker's change went through the full VIT process (or around it); restoring it is
    # decided by the policy as any change_email of a VIT account: approvals with step-up.
    tomas = world.actor("e-3001")
    original = operations.submit(
        world.services,
        tomas,
        Submission("account.change_email", "chirp:president", {"email": NEW}, "CASE-1"),
    )
    old = world.chirp("president")["email"]
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        world.review(reviewer, original)
    world.clock.advance(minutes=11)
    assert worker.run_once(world.services).executed == [original]
    assert world.chirp("president")["email"] == NEW

    undo_id = operations.undo(world.services, tomas, original, "INC-2020")
    view = operations.show(world.services, undo_id)
    assert view["state"] == RequestState.PENDING.value
    assert [(f["rule"], f["missing"]) for f in view["decision"]["factors"]] == [
        ("vit-significant-changes", 2),
        ("vit-security-sign-off", 1),
    ]
    assert view["decision"]["options"]["step_up"] is True
    for reviewer in ("e-3002", "e-3003", "e-4001"):
        world.review(reviewer, undo_id)
    world.clock.advance(minutes=11)
    assert worker.run_once(world.services).executed == [undo_id]

    assert world.chirp("president")["email"] == old
    assert operations.show(world.services, original)["state"] == "reverted"
    assert not [b for b in event_bodies(world) if old in b]
    assert_salted(submitted_event(world, undo_id))
