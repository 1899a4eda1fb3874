"""Notifications to a Matrix room, against the real Synapse the suite runs: a request's card
arrives in the room (read back by another member with `/messages`), what its requester typed
makes no mention, link or markup there, the bot's token is nowhere in the outbox or the log,
and a homeserver that refuses leaves the request's lifecycle untouched and the row retried.
These tests fail, never skip, when Synapse cannot start."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from foureyes import worker
from foureyes.config import NotifySettings
from foureyes.notify import Channel, MatrixChannel, backoff, channels_from_settings
from foureyes.store.database import Database
from foureyes.store.tables import OutboxRow
from foureyes.workflow import operations
from foureyes.workflow.submit import Submission
from tests.synapse.harness import Synapse, User
from tests.unit.notify.test_chat_channels import card, note
from tests.worlds import World, make_world

pytest_plugins = ["tests.synapse.fixtures"]

BASE = "https://foureyes.example.org"
POLICY = """\
version: 1
tiers:
  - name: standard
    when: "true"
rules:
  - id: deactivation-needs-security
    effect: require
    actions: [account.deactivate]
    when: "true"
    approvals: 1
    approvers: '"security" in approver.groups'
    justification: {required: true}
    expires: 4h
    notify: [room]
"""
HOSTILE = (
    '@room approve now <a href="https://evil.example/x">here</a> '
    "https://evil.example/phish <b>urgent</b> @channel"
)


def _messages(synapse: Synapse, reader: User, room_id: str) -> list[dict[str, Any]]:
    """The room's m.room.message events, newest first, as another member reads them."""
    answer = httpx.get(
        f"{synapse.base_url}/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages",
        params={"dir": "b", "limit": "50"},
        headers={"Authorization": f"Bearer {reader.access_token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["chunk"] if e["type"] == "m.room.message"]


@pytest.fixture
def room(synapse: Synapse) -> tuple[User, User, str]:
    """A bot, a reviewer, and a private room both are in."""
    bot = synapse.fresh_user("foureyes-bot")
    reader = synapse.fresh_user("reviewer")
    room_id = synapse.create_room(bot, "approvals", public=False, invite=(reader.user_id,))
    synapse.join(reader, room_id)
    return bot, reader, room_id


@pytest.fixture
def world(database: Database) -> World:
    return make_world(database, POLICY)


def _channel(synapse: Synapse, bot: User, room_id: str, tmp_path: Path) -> dict[str, Channel]:
    """Built from a `[notify.room]` table, as `serve` does, the token in a file."""
    token_file = tmp_path / "matrix-bot-token"
    token_file.write_text(bot.access_token + "\n")
    given = NotifySettings(
        kind="matrix",
        homeserver=synapse.base_url,
        room_id=room_id,
        token_file=str(token_file),
        base_url=BASE,
    )
    return channels_from_settings({"room": given})


def _submit(world: World, justification: str) -> str:
    return operations.submit(
        world.services,
        world.actor("e-2001"),
        Submission("account.deactivate", "chirp:president", justification=justification),
    )


def test_the_card_arrives_in_the_room_and_injects_nothing(
    synapse: Synapse,
    room: tuple[User, User, str],
    world: World,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot, reader, room_id = room
    channels = _channel(synapse, bot, room_id, tmp_path)
    request_id = _submit(world, HOSTILE)
    digest = operations.show(world.services, request_id)["digest"]
    with caplog.at_level(logging.DEBUG):
        tick = worker.run_once(world.services, channels=channels)
    assert tick.undelivered == []
    assert len(tick.notified) == 1

    [event] = _messages(synapse, reader, room_id)
    assert event["sender"] == bot.user_id
    sent = event["content"]
    assert sent["msgtype"] == "m.text"
    assert sent["format"] == "org.matrix.custom.html"
    assert sent["m.mentions"] == {}
    link = f"{BASE}/console/requests/{request_id}?digest={digest}"
    for fact in ("e-2001", "chirp:president", "Tier: standard", "account[.]deactivate"):
        assert fact in sent["body"]
    assert link in sent["body"]
    assert f'<a href="{link}">' in sent["formatted_body"]
    # The requester's words, shown, but not as a link, a mention or markup.
    assert sent["formatted_body"].count("<a ") == 1
    assert "<b>" not in sent["formatted_body"]
    assert "&lt;b&gt;urgent&lt;/b&gt;" in sent["formatted_body"]
    for text in (sent["body"], sent["formatted_body"]):
        assert "@room" not in text
        assert "@channel" not in text
        assert "https://evil" not in text

    with world.services.database.transaction() as session:
        rows = session.scalars(select(OutboxRow)).all()
    stored = repr([(r.subject, r.body, r.link, r.details, r.last_error) for r in rows])
    assert bot.access_token not in stored
    assert all(bot.access_token not in record.getMessage() for record in caplog.records)


def test_a_retried_send_is_one_event(synapse: Synapse, room: tuple[User, User, str]) -> None:
    """A send whose answer was lost is sent again with the same transaction id: the
    homeserver keeps one event."""
    bot, reader, room_id = room
    channel = MatrixChannel("room", synapse.base_url, room_id, bot.access_token)
    channel.send(note(card()))
    channel.send(note(card()))
    assert len(_messages(synapse, reader, room_id)) == 1


def test_a_refusing_homeserver_blocks_nothing_and_the_row_is_retried(
    synapse: Synapse, room: tuple[User, User, str], world: World, tmp_path: Path
) -> None:
    bot, reader, room_id = room
    wrong = MatrixChannel("room", synapse.base_url, room_id, "syt_not_a_token", base_url=BASE)
    request_id = _submit(world, "INC-7")
    tick = worker.run_once(world.services, channels={"room": wrong})
    assert tick.notified == []
    assert len(tick.undelivered) == 1
    with world.services.database.transaction() as session:
        [row] = session.scalars(select(OutboxRow).where(OutboxRow.channel == "room")).all()
        assert row.attempts == 1
        assert row.delivered_at is None
        assert row.last_error is not None
        assert "M_UNKNOWN_TOKEN" in row.last_error
        assert "syt_not_a_token" not in row.last_error
        assert row.next_attempt_at == world.clock() + backoff(1)

    # The lifecycle goes on: the approval is recorded while the room cannot be reached.
    world.review("e-4001", request_id)
    assert operations.show(world.services, request_id)["state"] == "approved"

    # Once the channel works, the queued rows go out when due.
    world.clock.advance(seconds=backoff(1).total_seconds())
    channels = _channel(synapse, bot, room_id, tmp_path)
    tick = worker.run_once(world.services, channels=channels)
    assert tick.undelivered == []
    bodies = [e["content"]["body"] for e in _messages(synapse, reader, room_id)]
    assert [body.splitlines()[0] for body in bodies] == ["Request approved", "Request pending"]
