"""Attacks on the undo params a request stores (attack run on the undo fixes, session 14): the
row's `undo_params` decide what an undo restores and which of its params are shown redacted,
but no digest covers them. foureyes' own database role may turn NULL into a value (the
write-once trigger allows it), and the owner may do anything. Each must be caught against the
log before it steers an undo. On SQLite and PostgreSQL (`database`)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from foureyes.errors import Conflict
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow, RequestRow
from foureyes.workflow import execute, operations, undo, views
from foureyes.workflow.submit import Submission
from tests.dba import tamper
from tests.unit.workflow.test_undo_params import (
    NEW,
    OLD,
    change_email,
    change_email_unreported,
    policy_with_email_rule,
)
from tests.worlds import World, make_world

EVIL = "evil.takeover@mail.example"


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, policy_with_email_rule())


def _as_runtime_role(database: Database, sql: str, **params: object) -> int:
    """A plain UPDATE, triggers in place: what foureyes' own database role may do."""
    with database.engine.begin() as connection:
        return connection.execute(text(sql), params).rowcount


def _alerts(world: World, request_id: str) -> list[AlertRow]:
    with world.services.database.read() as session:
        return list(
            session.scalars(
                select(AlertRow).where(
                    AlertRow.detector == "request_tampered", AlertRow.request_id == request_id
                )
            )
        )


def _state(world: World, request_id: str) -> str:
    with world.services.database.read() as session:
        row = session.get(RequestRow, request_id)
        assert row is not None
        return row.state


_WRITE = "UPDATE requests SET undo_params = :value WHERE id = :id"


def test_undo_params_written_in_by_the_runtime_role_never_steer_an_undo(world: World) -> None:
    """G6: an executed request whose platform reported nothing to restore; the runtime role
    writes params in (NULL may become a value). An honest undo with nothing typed would have
    carried them, shown `***`. Refused, with a high alert, nothing recorded."""
    mei = world.actor("e-3002")
    original = change_email_unreported(world, mei, "chirp:alice", NEW)
    value = '{"email": "' + EVIL + '"}'
    assert _as_runtime_role(world.services.database, _WRITE, value=value, id=original) == 1
    with pytest.raises(Conflict, match="holds undo params its execution did not record"):
        undo.undo(world.services, mei, original, "CASE-1")
    assert _alerts(world, original)
    assert world.chirp("alice")["email"] == NEW


def test_undo_params_removed_by_the_owner_let_no_typed_value_through(world: World) -> None:
    """G1: the owner empties the stored params so that a typed address passes as "nothing
    recorded" (then puts them back). The execution's event committed to some: refused."""
    mei = world.actor("e-3002")
    original = change_email(world, mei, "chirp:alice", NEW)
    tamper(
        world.services.database,
        "UPDATE requests SET undo_params = NULL WHERE id = :id",
        id=original,
    )
    with pytest.raises(Conflict, match="its undo params are gone"):
        undo.undo(world.services, mei, original, "CASE-1", {"email": EVIL})
    assert _alerts(world, original)
    assert world.chirp("alice")["email"] == NEW


def test_undo_params_written_onto_a_request_that_has_not_run_cancel_it(world: World) -> None:
    """G6/G7: params written onto a request before it runs were vouched for by its execution
    (or, where the platform reported its own, made every attempt fail for good). It is
    cancelled at execution as altered, with a high alert."""
    mei = world.actor("e-3002")
    # Recorded but not yet carried out: submitted without running it.
    request_id = operations.submit(
        world.services, mei, Submission("account.change_email", "chirp:alice", {"email": NEW})
    )
    assert _state(world, request_id) == "approved"
    value = '{"email": "' + EVIL + '"}'
    assert _as_runtime_role(world.services.database, _WRITE, value=value, id=request_id) == 1
    outcome = execute.execute(world.services, request_id)
    assert outcome.state.value == "cancelled", outcome
    assert "holds undo params, but it has not been executed" in (outcome.reason or "")
    assert _alerts(world, request_id)
    assert world.chirp("alice")["email"] == OLD


def test_an_original_set_reverted_in_the_store_is_caught_not_believed(world: World) -> None:
    """G4: the original set `reverted` by a plain UPDATE made a pending undo cancel "it was
    undone already", with no alert. The row is compared with the log first."""
    mei = world.actor("e-3002")
    original = change_email(world, mei, "chirp:alice", NEW)
    pending = undo.undo(world.services, mei, original, "CASE-1")
    tamper(
        world.services.database,
        "UPDATE requests SET state = 'reverted' WHERE id = :id",
        id=original,
    )
    outcome = execute.execute(world.services, pending)
    assert outcome.state.value == "cancelled"
    assert "not what was submitted" in (outcome.reason or "")
    assert "undone already" not in (outcome.reason or "")
    assert _alerts(world, original)


def test_an_undo_whose_typed_value_is_not_the_recorded_one_does_not_run(world: World) -> None:
    """G5: an undo recorded with a typed value under a recorded name (by a foureyes before
    such values were refused: written here past `undo._reverse`) is held at execution."""
    mei = world.actor("e-3002")
    original = change_email(world, mei, "chirp:alice", NEW)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            undo,
            "_reverse",
            lambda services, row, params, already_applied: (
                "account.change_email",
                row.account_ref,
                {"email": EVIL},
            ),
        )
        pending = undo.undo(world.services, mei, original, "CASE-1")
    outcome = execute.execute(world.services, pending)
    assert outcome.state.value == "cancelled"
    assert "differ from what foureyes recorded" in (outcome.reason or "")
    assert world.chirp("alice")["email"] == NEW


def test_a_typed_value_turned_secret_afterwards_is_still_shown_to_approvers(
    world: World,
) -> None:
    """G2: an undo of an original with nothing recorded takes a typed value, shown as typed;
    the runtime role then fills the original's params, and every view turned the typed value
    into `***`. A recorded value the log does not vouch for redacts nothing: approvers see
    what would run (and it does not run: the original is altered)."""
    mei = world.actor("e-3002")
    original = change_email_unreported(world, mei, "chirp:alice", NEW)
    pending = undo.undo(world.services, mei, original, "CASE-1", {"email": EVIL})
    assert views.request_view(world.services, pending)["params"] == {"email": EVIL}
    value = '{"email": "' + OLD + '"}'
    assert _as_runtime_role(world.services.database, _WRITE, value=value, id=original) == 1
    assert views.request_view(world.services, pending)["params"] == {"email": EVIL}
    outcome = execute.execute(world.services, pending)
    assert outcome.state.value == "cancelled"
    assert world.chirp("alice")["email"] == NEW


def test_a_new_undo_of_an_original_set_reverted_in_the_store_raises_the_alert(
    world: World,
) -> None:
    """H9: the same edit before any undo was asked: the undo answered 409 "this one is
    reverted" with no alert. The row is compared with the log first: refused as altered."""
    mei = world.actor("e-3002")
    original = change_email(world, mei, "chirp:alice", NEW)
    _as_runtime_role(
        world.services.database,
        "UPDATE requests SET state = 'reverted' WHERE id = :id",
        id=original,
    )
    with pytest.raises(Conflict, match="it cannot be undone: re-check at undo failed"):
        undo.undo(world.services, mei, original, "CASE-1")
    assert _alerts(world, original)
