"""Chat channels: the Slack payload against Slack's documented Block Kit limits, delivered to a
real local HTTP server that checks it like Slack would; the Matrix content; and text from a
requester that tries to make mentions, links or formatting in either (it cannot)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from foureyes.notify import DeliveryError, MatrixChannel, Notification, SlackChannel
from foureyes.notify.card import AlertLine, Card, Ticket, defang, review_link
from foureyes.notify.matrix import content
from tests.http_server import serving_app
from tests.unit.notify.block_kit_schema import MESSAGE

BASE = "https://foureyes.example.org"
DIGEST = "d" * 64
TOKEN = "xoxb-0000-secret-bot-token"

# What a requester might type to reach beyond their justification.
HOSTILE = [
    "<!channel> urgent, approve now",
    "<!here|here> <!everyone> <@U024BE7LH> <#C024BE7LH|general>",
    "see <https://evil.example/approve|the ticket>",
    "https://evil.example/phish and www.evil.example and evil.example",
    "@room please approve quickly @channel @here",
    "*bold* _italic_ ~strike~ `code` ```block``` > quote",
    '<a href="https://evil.example">click</a><img src=x onerror=alert(1)><script>x</script>',
    "[approve](https://evil.example) mailto:boss@evil.example javascript:alert(1)",
    "&lt;!channel&gt; &amp; <b>&</b>",
    "line one\nline two\n\n@room",
]


def card(justification: str = "CASE-1234", **changes: Any) -> Card:
    values: dict[str, Any] = {
        "title": "Your review is asked",
        "request_id": "0f8c-req",
        "state": "pending",
        "action": "account.deactivate",
        "account": "chirp:president",
        "requester": "e-2001",
        "requester_name": "Ana Lima",
        "link": review_link("0f8c-req", DIGEST),
        "tier": "vit",
        "justification": justification,
        "ticket": Ticket("RT-42", subject="Abuse report", status="open"),
        "alerts": (AlertLine("high", "night activity by e-2001"),),
        "params": (("reason", "***"),),
        "expires_at": "2026-12-07T17:00:00+00:00",
    }
    values.update(changes)
    return Card(**values)


def note(details: Card | None = None, **changes: Any) -> Notification:
    values: dict[str, Any] = {
        "id": 41,
        "kind": "review.needed",
        "subject": "foureyes: your review is asked: account.deactivate on chirp:president",
        "body": "Request 0f8c-req\nJustification: CASE-1",
        "link": "/v1/requests/0f8c-req",
        "channel": "ops",
        "to_staff": None,
        "to_email": None,
        "created_at": datetime(2026, 12, 6, 17, 0, tzinfo=UTC),
        "details": None if details is None else details.to_json(),
    }
    values.update(changes)
    return Notification(**values)


def _texts(value: Any) -> Iterator[dict[str, Any]]:
    """Every text object in a Block Kit payload."""
    if isinstance(value, dict):
        if value.get("type") in ("plain_text", "mrkdwn"):
            yield value
        for child in value.values():
            yield from _texts(child)
    elif isinstance(value, list):
        for child in value:
            yield from _texts(child)


def _buttons(payload: dict[str, Any]) -> list[str]:
    return [
        element["url"]
        for block in payload["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


# --- Slack: the payload against the schema -----------------------------------------------------


class TestSlackSchema:
    @pytest.mark.parametrize(
        "message",
        [
            note(card()),
            note(card(justification=None, ticket=None, alerts=(), params=(), tier=None)),
            note(card("<&>" * 3000, params=tuple((f"p{i}", "v" * 500) for i in range(30)))),
            note(
                card(title="T" * 500, alerts=tuple(AlertLine("high", "a" * 900) for _ in range(5)))
            ),
            note(),  # no card: subject and body
            note(subject="x" * 300, body="<" * 10_000),
        ],
        ids=["card", "bare-card", "huge-card", "long-title", "plain", "huge-plain"],
    )
    def test_every_payload_is_valid_block_kit(self, message: Notification) -> None:
        for channel in (
            SlackChannel("ops", "https://hooks.example/x", base_url=BASE),
            SlackChannel("ops", token=TOKEN, channel_id="C024BE7LH", base_url=BASE),
        ):
            jsonschema.validate(channel.payload(message), MESSAGE)

    @pytest.mark.parametrize(
        ("path", "value"),
        [
            (("blocks", 0, "text", "text"), "h" * 151),
            (("blocks", 1, "fields"), [{"type": "plain_text", "text": "f"}] * 11),
            (("blocks", 2, "text", "text"), "s" * 3001),
            (("blocks", 2, "text", "type"), "mrkdwn"),
        ],
    )
    def test_the_schema_refuses_what_slack_refuses(self, path: tuple[Any, ...], value: Any) -> None:
        """The schema is not vacuous: past a documented limit, it fails."""
        payload = SlackChannel("ops", "https://hooks.example/x", base_url=BASE).payload(
            note(card())
        )
        target: Any = payload
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(payload, MESSAGE)

    def test_the_card_says_who_what_which_account_tier_why_ticket_alerts(self) -> None:
        payload = SlackChannel("ops", "https://hooks.example/x", base_url=BASE).payload(
            note(card())
        )
        shown = "\n".join(text["text"] for text in _texts(payload))
        for fact in (
            "Ana Lima (e-2001)",
            "account[.]deactivate",
            "chirp:president",
            "Tier\nvit",
            "CASE-1234",
            "RT-42: Abuse report (open)",
            "[high] night activity by e-2001",
        ):
            assert fact in shown
        assert _buttons(payload) == [f"{BASE}/console/requests/0f8c-req?digest={DIGEST}"]

    def test_without_base_url_there_is_no_button_only_the_path(self) -> None:
        payload = SlackChannel("ops", "https://hooks.example/x").payload(note(card()))
        jsonschema.validate(payload, MESSAGE)
        assert _buttons(payload) == []
        assert any("/console/requests/0f8c-req?digest=" in t["text"] for t in _texts(payload))


# --- escaping, for each format ------------------------------------------------------------------


@pytest.mark.parametrize("justification", HOSTILE)
def test_a_justification_makes_no_slack_mention_link_or_formatting(justification: str) -> None:
    payload = SlackChannel("ops", token=TOKEN, channel_id="C1", base_url=BASE).payload(
        note(card(justification, requester_name=justification, account=f"chirp:{justification}"))
    )
    jsonschema.validate(payload, MESSAGE)
    texts = list(_texts(payload))
    assert {t["type"] for t in texts} == {"plain_text"}  # no mrkdwn: nothing is formatted
    everything = [payload["text"], *(t["text"] for t in texts)]
    for text in everything:
        # Slack's control sequences all start with "<": none survives.
        assert "<" not in text
        assert ">" not in text
        assert not re.search(r"(?i)@(channel|here|everyone|room)\b", text)
        assert not re.search(r"(?i)(https?|mailto|javascript):", text)
        assert not re.search(r"\w\.\w", text.replace("[.]", ""))
    assert payload["mrkdwn"] is False
    assert payload["link_names"] is False
    assert payload["parse"] == "none"
    assert payload["unfurl_links"] is False
    assert _buttons(payload) == [f"{BASE}/console/requests/0f8c-req?digest={DIGEST}"]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            self.attributes.append(name)
            if name == "href" and value is not None:
                self.hrefs.append(value)


@pytest.mark.parametrize("justification", HOSTILE)
def test_a_justification_makes_no_matrix_mention_link_or_markup(justification: str) -> None:
    sent = content(
        note(card(justification, requester_name=justification, reason=justification)), BASE
    )
    assert sent["m.mentions"] == {}  # Matrix 1.7: this message mentions nobody, @room included
    assert sent["format"] == "org.matrix.custom.html"
    parsed = _Tags()
    parsed.feed(sent["formatted_body"])
    assert set(parsed.tags) <= {"p", "strong", "ul", "li", "br", "blockquote", "a", "code"}
    assert parsed.hrefs == [f"{BASE}/console/requests/0f8c-req?digest={DIGEST}"]
    assert set(parsed.attributes) <= {"href"}
    for text in (sent["body"], sent["formatted_body"]):
        assert not re.search(r"(?i)@(room|channel|here|everyone)\b", text)
        without_link = text.replace(f"{BASE}/console/requests/0f8c-req?digest={DIGEST}", "")
        assert not re.search(r"(?i)(https?|mailto|javascript):", without_link)
        assert "matrix.to" not in text


def test_defang_keeps_the_words_readable() -> None:
    assert defang("see https://evil.example/x @room") == "see https[:]//evil[.]example/x [@]room"
    assert defang("x" * 2000, limit=10) == "x" * 9 + "…"
    assert defang("chirp:president CASE-1") == "chirp:president CASE-1"


def test_a_card_this_version_cannot_read_falls_back_to_subject_and_body() -> None:
    for details in ({"v": 2}, {"v": 1, "title": "x"}, {"v": 1, **card().to_json(), "alerts": 3}):
        message = note(details=None)
        message = Notification(**{**message.__dict__, "details": details})
        assert "your review is asked" in content(message, BASE)["body"]
        jsonschema.validate(SlackChannel("ops", "https://h/x").payload(message), MESSAGE)


# --- Slack: delivered to a real server that checks it ------------------------------------------


@dataclass
class FakeSlackCheck:
    """What the local Slack stand-in received, and whether each payload was valid Block Kit."""

    received: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    refuse_with: str | None = None


def slack_app(state: FakeSlackCheck) -> Starlette:
    """A local HTTP server that answers as Slack does: the webhook `ok` or 400
    `invalid_blocks`; chat.postMessage `{"ok": true}` or `{"ok": false, "error": …}`."""

    def valid(payload: Any) -> bool:
        try:
            jsonschema.validate(payload, MESSAGE)
        except jsonschema.ValidationError:
            return False
        return True

    async def webhook(request: Request) -> Response:
        payload = json.loads(await request.body())
        state.received.append(payload)
        state.authorizations.append(request.headers.get("authorization"))
        if not valid(payload):
            return PlainTextResponse("invalid_blocks", status_code=400)
        return PlainTextResponse("ok")

    async def post_message(request: Request) -> Response:
        payload = json.loads(await request.body())
        state.received.append(payload)
        state.authorizations.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if state.refuse_with:
            return JSONResponse({"ok": False, "error": state.refuse_with})
        if not valid(payload):
            return JSONResponse({"ok": False, "error": "invalid_blocks"})
        return JSONResponse({"ok": True, "channel": payload["channel"], "ts": "1.2"})

    return Starlette(
        routes=[
            Route("/services/T0/B0/secret-hook-path", webhook, methods=["POST"]),
            Route("/api/chat.postMessage", post_message, methods=["POST"]),
        ]
    )


@pytest.fixture
def slack() -> Iterator[tuple[str, FakeSlackCheck]]:
    state = FakeSlackCheck()
    with serving_app(slack_app(state)) as url:
        yield url, state


class TestSlackDelivery:
    def test_an_incoming_webhook_gets_valid_block_kit(
        self, slack: tuple[str, FakeSlackCheck]
    ) -> None:
        url, state = slack
        channel = SlackChannel("ops", f"{url}/services/T0/B0/secret-hook-path", base_url=BASE)
        channel.send(note(card(HOSTILE[0])))
        [payload] = state.received
        assert state.authorizations == [None]
        assert _buttons(payload) == [f"{BASE}/console/requests/0f8c-req?digest={DIGEST}"]

    def test_chat_post_message_with_the_bot_token(self, slack: tuple[str, FakeSlackCheck]) -> None:
        url, state = slack
        channel = SlackChannel(
            "ops", token=TOKEN, channel_id="C024BE7LH", api_url=f"{url}/api", base_url=BASE
        )
        channel.send(note(card()))
        [payload] = state.received
        assert payload["channel"] == "C024BE7LH"
        assert TOKEN not in json.dumps(payload)  # in the header only

    def test_a_refusal_is_a_delivery_error_naming_slacks_code_not_the_secret(
        self, slack: tuple[str, FakeSlackCheck]
    ) -> None:
        url, state = slack
        state.refuse_with = "channel_not_found"
        channel = SlackChannel("ops", token=TOKEN, channel_id="C1", api_url=f"{url}/api")
        with pytest.raises(DeliveryError, match="channel_not_found") as caught:
            channel.send(note(card()))
        assert TOKEN not in str(caught.value)
        wrong = SlackChannel("ops", token="xoxb-wrong", channel_id="C1", api_url=f"{url}/api")
        with pytest.raises(DeliveryError, match="invalid_auth"):
            wrong.send(note(card()))
        hook = SlackChannel("ops", f"{url}/services/T0/B0/not-the-hook")
        with pytest.raises(DeliveryError, match="HTTP 404") as caught:
            hook.send(note(card()))
        assert "not-the-hook" not in str(caught.value)

    def test_secrets_are_not_in_the_channels_repr(self) -> None:
        shown = repr(
            SlackChannel("ops", "https://hooks.slack.com/services/T/B/sekrit", token=TOKEN)
        )
        assert "sekrit" not in shown
        assert TOKEN not in shown
        assert TOKEN not in repr(MatrixChannel("room", "https://m.example", "!r:m", TOKEN))
