"""Requests submitted before salted digests (version 2) keep working after the upgrade.

Their rows and `request.submitted` events are written here as the previous version wrote them
(an unsalted digest, the plain `params_sha256`, no `digest_version`), with the salt the
migration gives existing rows, or none (a row a process of the previous version inserted during
the upgrade). Approvals and step-up signatures given on their digest count, they execute, the
undo params they leave are committed to salted, and they can be undone; a DBA's edit is still
caught. The checks read the version from the event, never from the row (docs/digests.md).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from tests.dba import tamper
from tests.unit.workflow.test_undo_params import NEW, policy_with_email_rule
from tests.worlds import World, make_world

from foureyes import worker
from foureyes.core.commitments import UNDO_PARAMS, new_salt
from foureyes.core.events import (
    move,
    params_digest,
    record,
    salted_digest,
    v2_request_digest,
)
from foureyes.core.services import Actor
from foureyes.errors import Conflict
from foureyes.model import RequestState
from foureyes.store.database import Database
from foureyes.store.tables import EventRow, RequestRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission

VIT_REVIEWERS = ("e-3003", "e-3001", "e-4001")


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, policy_with_email_rule())


def _events(world: World, request_id: str, kind: str) -> list[dict[str, Any]]:
    with world.services.database.read() as session:
        bodies = session.scalars(
            select(EventRow.body).where(EventRow.request_id == request_id, EventRow.kind == kind)
        ).all()
    return [json.loads(bytes(body)) for body in bodies]


def _row(world: World, request_id: str) -> RequestRow:
    with world.services.database.read() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row


def as_version_2(world: World, actor: Actor, submission: Submission, salt: str | None) -> str:
    """A request as the previous version recorded it: the request submitted now is the model
    (its decision, state and times); a copy under a new id gets the unsalted digest and the
    submitted event of version 2, and `salt` (what the migration gave it, or None)."""
    model_id = operations.submit(world.services, actor, submission)
    with world.services.database.transaction() as session:
        model = session.get(RequestRow, model_id)
        assert model is not None
        # Unset columns stay unset (a JSON column given None would hold JSON null, not NULL).
        columns = {
            c.key: getattr(model, c.key)
            for c in RequestRow.__table__.columns
            if getattr(model, c.key) is not None
        }
        row = RequestRow(**{**columns, "id": str(uuid.uuid4()), "salt": salt})
        row.digest = v2_request_digest(
            action=row.action,
            account=row.account_ref,
            params=row.params,
            justification=row.justification,
            policy_version=row.policy_version,
            requester=row.requester_id,
            break_glass=row.break_glass,
            reverts=row.reverts_id,
        )
        session.add(row)
        session.flush()
        (submitted,) = [
            json.loads(bytes(body))
            for body in session.scalars(
                select(EventRow.body).where(
                    EventRow.request_id == model_id, EventRow.kind == "request.submitted"
                )
            )
        ]
        payload = {
            key: submitted[key]
            for key in (
                "identity",
                "credential",
                "state",
                "justification",
                "policy_version",
                "decision",
                "client",
                "reverts",
            )
        }
        record(
            world.services,
            session,
            kind="request.submitted",
            actor=actor.id,
            row=row,
            payload={**payload, "params_sha256": params_digest(row.params)},
            now=world.clock.now,
        )
        # The model is not what this test is about: out of the way.
        move(
            world.services,
            session,
            model,
            RequestState.CANCELLED,
            actor=actor.id,
            kind="request.cancelled",
            now=world.clock.now,
            reason="the model of a version 2 request",
        )
    return row.id


def _president_email_change_v2(world: World, salt: str | None) -> str:
    """Mei's change of the president's address, pending, as version 2 recorded it."""
    submission = Submission("account.change_email", "chirp:president", {"email": NEW}, "CASE-7")
    request_id = as_version_2(world, world.actor("e-3002"), submission, salt)
    assert operations.show(world.services, request_id)["state"] == "pending"
    return request_id


@pytest.mark.parametrize("salt", ["migrated", None], ids=["salt-from-migration", "no-salt"])
def test_a_version_2_request_is_approved_with_step_up_executed_and_undone(
    world: World, salt: str | None
) -> None:
    old = world.chirp("president")["email"]
    request_id = _president_email_change_v2(world, None if salt is None else new_salt())
    (submitted,) = _events(world, request_id, "request.submitted")
    assert "digest_version" not in submitted
    assert submitted["params_sha256"] == params_digest({"email": NEW})

    # Reviews bound to its (unsalted) digest, each confirmed by the reviewer's key over it.
    for reviewer in VIT_REVIEWERS:
        world.review(reviewer, request_id)
    world.clock.advance(minutes=11)
    assert worker.run_once(world.services).executed == [request_id]
    assert world.chirp("president")["email"] == NEW

    # What it stored for its undo is committed to salted (given a salt at execution if it had
    # none); never by the plain hash.
    row = _row(world, request_id)
    assert row.salt is not None
    assert row.undo_params == {"email": old}
    (executed,) = _events(world, request_id, "request.executed")
    assert "undo_params_sha256" not in executed
    assert executed["undo_params_salted_sha256"] == salted_digest(
        row.salt, UNDO_PARAMS, {"email": old}
    )

    undo_id = operations.undo(world.services, world.actor("e-3002"), request_id, "CASE-8")
    (undo_submitted,) = _events(world, undo_id, "request.submitted")
    assert undo_submitted["digest_version"] == 3
    for reviewer in VIT_REVIEWERS:
        world.review(reviewer, undo_id)
    world.clock.advance(minutes=11)
    assert worker.run_once(world.services).executed == [undo_id]
    assert world.chirp("president")["email"] == old
    assert operations.show(world.services, request_id)["state"] == "reverted"


def test_a_dba_edit_of_a_version_2_request_is_still_caught(world: World) -> None:
    request_id = _president_email_change_v2(world, new_salt())
    for reviewer in VIT_REVIEWERS:
        world.review(reviewer, request_id)
    tamper(
        world.services.database,
        "UPDATE requests SET params = :params WHERE id = :id",
        params=json.dumps({"email": "dba@evil.example"}),
        id=request_id,
    )
    world.clock.advance(minutes=11)
    assert worker.run_once(world.services).executed == []
    shown = operations.show(world.services, request_id)
    assert shown["state"] == "cancelled"
    assert "params" in shown["reason"]
    assert world.chirp("president")["email"] != "dba@evil.example"


def test_undo_params_vouched_for_by_a_plain_hash_before_salts_are_still_checked(
    world: World,
) -> None:
    """An original executed before salts: its execution event holds the plain
    `undo_params_sha256`. Its undo still uses the stored params when they match it, and a DBA's
    rewrite of them is refused."""
    mei = world.actor("e-3002")
    request_id = as_version_2(
        world,
        mei,
        Submission("account.change_email", "chirp:alice", {"email": NEW}),
        new_salt(),
    )
    old = world.chirp("alice")["email"]
    undo_params = {"email": old}
    with world.services.database.transaction() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        assert row.state == RequestState.APPROVED.value
        row.undo_params = undo_params
        for to, kind in (
            (RequestState.EXECUTING, "request.executing"),
            (RequestState.EXECUTED, "request.executed"),
        ):
            details = (
                {"attempt": 1, "summary": {}, "undo_params_sha256": params_digest(undo_params)}
                if to == RequestState.EXECUTED
                else {"attempt": 1}
            )
            move(
                world.services,
                session,
                row,
                to,
                actor=None,
                kind=kind,
                now=world.clock.now,
                details=details,
            )
    undo_id = operations.undo(world.services, mei, request_id, None)
    assert _row(world, undo_id).params == undo_params

    tamper(
        world.services.database,
        "UPDATE requests SET undo_params = :params WHERE id = :id",
        params=json.dumps({"email": "dba@evil.example"}),
        id=request_id,
    )
    with pytest.raises(Conflict, match="undo params"):
        operations.undo(world.services, mei, request_id, None)
