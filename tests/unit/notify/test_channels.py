"""Each channel against a real receiver: a signed webhook, a Slack-compatible hook, SMTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message

import pytest

from foureyes.notify import (
    DeliveryError,
    EmailChannel,
    Notification,
    SlackChannel,
    WebhookChannel,
)
from foureyes.webhook import SignatureError, verify
from tests.unit.notify.conftest import Mailbox, Receiver, free_port

SECRET = "s3cret-for-tests"


def note(**changes: object) -> Notification:
    values: dict[str, object] = {
        "id": 7,
        "kind": "review.needed",
        "subject": "foureyes: your review is asked",
        "body": "Action: account.deactivate on chirp:president <b>&</b>",
        "link": "/v1/requests/abc",
        "channel": "security",
        "to_staff": None,
        "to_email": None,
        "created_at": datetime(2026, 11, 25, 15, 0, tzinfo=UTC),
    }
    values.update(changes)
    return Notification(**values)  # type: ignore[arg-type]


class TestWebhook:
    def test_delivers_signed_json_that_verifies(self, receiver: Receiver) -> None:
        channel = WebhookChannel("security", receiver.url, SECRET, base_url="https://fe.example/")
        channel.send(note())
        [(headers, body)] = receiver.posts
        verify(headers, "POST", "/hook", body, SECRET)  # raises if the signature does not hold
        payload = json.loads(body)
        assert payload["id"] == 7
        assert payload["kind"] == "review.needed"
        assert payload["link"] == "https://fe.example/v1/requests/abc"
        assert headers["Idempotency-Key"] == "notify-7"
        with pytest.raises(SignatureError):
            verify(headers, "POST", "/hook", body, "another secret")
        with pytest.raises(SignatureError):
            verify(headers, "POST", "/hook", body + b" ", SECRET)

    def test_a_failing_receiver_is_a_delivery_error(self, receiver: Receiver) -> None:
        receiver.statuses = [503]
        with pytest.raises(DeliveryError, match="HTTP 503"):
            WebhookChannel("security", receiver.url, SECRET).send(note())

    def test_an_unreachable_receiver_is_a_delivery_error(self) -> None:
        url = f"http://127.0.0.1:{free_port()}/hook"
        with pytest.raises(DeliveryError, match="could not reach"):
            WebhookChannel("security", url, SECRET, timeout=2).send(note())


class TestSlack:
    def test_posts_block_kit_with_a_button_to_the_request(self, receiver: Receiver) -> None:
        SlackChannel("ops", receiver.url, base_url="https://fe.example").send(note())
        [(_, body)] = receiver.posts
        payload = json.loads(body)
        assert payload["text"].startswith("foureyes: your review is asked")
        types = [block["type"] for block in payload["blocks"]]
        assert types == ["header", "section", "actions"]
        section = payload["blocks"][1]["text"]["text"]
        assert "&lt;b&gt;&amp;&lt;/b&gt;" in section  # request text cannot make Slack markup
        button = payload["blocks"][2]["elements"][0]
        assert button["url"] == "https://fe.example/v1/requests/abc"

    def test_a_relative_link_is_shown_as_text(self) -> None:
        payload = SlackChannel("ops", "http://unused").payload(note())
        assert payload["blocks"][-1]["type"] == "context"

    def test_the_secret_url_is_not_in_the_error(self) -> None:
        url = f"http://127.0.0.1:{free_port()}/services/T000/B000/secret-token"
        with pytest.raises(DeliveryError) as caught:
            SlackChannel("ops", url, timeout=2).send(note())
        assert "secret-token" not in str(caught.value)


def received(mailbox: Mailbox) -> list[Message]:
    return [message_from_bytes(raw) for _, _, raw in mailbox.messages]


class TestEmail:
    def test_a_channel_message_goes_to_its_recipients(self, smtp: Mailbox) -> None:
        channel = EmailChannel(
            "security", smtp.host, smtp.port, "foureyes@example.org", ("sec@example.org",)
        )
        channel.send(note())
        [(sender, recipients, _)] = smtp.messages
        assert sender == "foureyes@example.org"
        assert recipients == ["sec@example.org"]
        [mail] = received(smtp)
        assert mail["Subject"] == "foureyes: your review is asked"
        assert "/v1/requests/abc" in mail.get_payload()  # type: ignore[operator]

    def test_a_message_to_a_person_goes_to_their_address(self, smtp: Mailbox) -> None:
        channel = EmailChannel("mail", smtp.host, smtp.port, "foureyes@example.org", people=True)
        channel.send(note(channel=None, to_staff="e-3001", to_email="tomas@chirp.example"))
        assert smtp.messages[0][1] == ["tomas@chirp.example"]

    def test_no_recipient_is_a_delivery_error(self, smtp: Mailbox) -> None:
        channel = EmailChannel("mail", smtp.host, smtp.port, "foureyes@example.org")
        with pytest.raises(DeliveryError, match="no smtp_to"):
            channel.send(note())

    def test_no_server_is_a_delivery_error(self) -> None:
        channel = EmailChannel(
            "mail", "127.0.0.1", free_port(), "f@example.org", ("a@example.org",), timeout=2
        )
        with pytest.raises(DeliveryError, match="cannot reach"):
            channel.send(note())
