"""Local tokens: listing them (never their secrets) and revoking one at once, with its event."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.worlds import World

from foureyes.auth.tokens import split_token
from foureyes.errors import BadInput, NotFound, Unauthenticated
from foureyes.store.tables import EventRow
from foureyes.workflow import operations


def events(world: World, kind: str) -> list[dict[str, Any]]:
    with world.services.database.transaction() as session:
        bodies = session.scalars(
            select(EventRow.body).where(EventRow.kind == kind).order_by(EventRow.seq)
        )
        return [json.loads(body) for body in bodies]


def test_tokens_are_listed_without_their_secrets(world: World) -> None:
    services = world.services
    kim = operations.issue_token(services, "c-1001", identity="kim.vendor", label="laptop")
    world.clock.advance(minutes=1)
    mei = operations.issue_token(services, "e-3002", lifetime=None)
    world.clock.advance(minutes=1)
    kim_again = operations.issue_token(services, "c-1001", lifetime=timedelta(hours=1))

    listed = operations.list_tokens(services)
    ids = [split_token(t)[0] for t in (kim, kim_again, mei)]
    assert [t.id for t in listed] == ids  # by person, then oldest first
    first = listed[0]
    assert (first.staff_id, first.identity, first.label) == ("c-1001", "kim.vendor", "laptop")
    assert first.created_at == world.clock.now - timedelta(minutes=2)
    assert first.expires_at == first.created_at + timedelta(days=90)
    assert first.revoked_at is None
    assert listed[2].expires_at is None
    # Neither the secret nor its hash is in what is listed.
    fields = {f.name for f in dataclasses.fields(first)}
    assert not any("secret" in name or "sha" in name for name in fields)
    for view, token in zip(listed, (kim, kim_again, mei), strict=True):
        assert split_token(token)[1] not in repr(view)

    assert [t.id for t in operations.list_tokens(services, "c-1001")] == ids[:2]
    assert operations.list_tokens(services, "e-2001") == []
    with pytest.raises(NotFound, match="no staff member"):
        operations.list_tokens(services, "e-0000")


def test_a_tokens_state_is_active_expired_or_revoked(world: World) -> None:
    services = world.services
    token = operations.issue_token(services, "e-3002", lifetime=timedelta(hours=1))
    [view] = operations.list_tokens(services)
    assert view.state(world.clock.now) == "active"
    assert view.state(world.clock.now + timedelta(hours=1)) == "expired"
    revoked = operations.revoke_token(services, split_token(token)[0])
    assert revoked.state(world.clock.now) == "revoked"
    assert revoked.state(world.clock.now + timedelta(hours=2)) == "revoked"


def test_revoking_a_token_ends_it_at_once_with_its_event(world: World) -> None:
    services = world.services
    token = operations.issue_token(services, "c-1001", identity="kim.vendor", label="phished")
    other = operations.issue_token(services, "c-1001")
    assert operations.authenticate(services, token).id == "c-1001"
    token_id = split_token(token)[0]
    world.clock.advance(minutes=3)

    revoked = operations.revoke_token(services, token_id)

    assert (revoked.id, revoked.revoked_at) == (token_id, world.clock.now)
    states = {t.id: t.revoked_at for t in operations.list_tokens(services)}
    assert states == {token_id: world.clock.now, split_token(other)[0]: None}
    [event] = events(world, "token.revoked")
    assert event["kind"] == "token.revoked"
    assert {k: event[k] for k in ("staff", "identity", "token_id", "label")} == {
        "staff": "c-1001",
        "identity": "kim.vendor",
        "token_id": token_id,
        "label": "phished",
    }
    assert split_token(token)[1] not in json.dumps(event)
    with pytest.raises(Unauthenticated, match="this token was revoked"):
        operations.authenticate(services, token)
    # Only that token: the person's other token still works.
    assert operations.authenticate(services, other).id == "c-1001"


def test_a_second_revocation_is_refused_and_changes_nothing(world: World) -> None:
    services = world.services
    token_id = split_token(operations.issue_token(services, "e-3002"))[0]
    first = operations.revoke_token(services, token_id)
    world.clock.advance(hours=1)
    with pytest.raises(BadInput, match="already revoked"):
        operations.revoke_token(services, token_id)
    [view] = operations.list_tokens(services)
    assert view.revoked_at == first.revoked_at
    assert len(events(world, "token.revoked")) == 1


def test_an_unknown_token_cannot_be_revoked(world: World) -> None:
    operations.issue_token(world.services, "e-3002")
    with pytest.raises(NotFound, match="no token '0123456789abcdef'"):
        operations.revoke_token(world.services, "0123456789abcdef")
    assert events(world, "token.revoked") == []
    assert [t.revoked_at for t in operations.list_tokens(world.services)] == [None]
