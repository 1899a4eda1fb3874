"""Slack: a Block Kit message through an incoming webhook (the URL is the secret) or the Web
API's `chat.postMessage` (a bot token and a channel id).

What a person typed (the justification, names, summaries) goes into `plain_text` objects
(never `mrkdwn`, whose `*_~` cannot be escaped), with Slack's three escapes (`&<>`, so no
`<!channel>`, `<@U…>` or `<url|label>`) and `card.defang`; the fallback `text` is sent with
`mrkdwn: false`, links are not unfurled, names not linked. The one link is the button to
the console's review page, built by foureyes from the request id and digest. The button only
opens that page: foureyes has no endpoint for Slack's interactions, so nothing is approved in
Slack. Limits from Slack's Block Kit reference are applied when the message is built
(`LIMITS`); tests check each payload against a JSON schema of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from foureyes.notify.card import Card, defang
from foureyes.notify.channels import DeliveryError, Notification, absolute
from foureyes.notify.http import send_json

__all__ = ["LIMITS", "SlackChannel", "escape", "payload"]

SLACK_API = "https://slack.com/api"

# https://api.slack.com/reference/block-kit/blocks (header, section, context, actions) and
# https://api.slack.com/reference/block-kit/block-elements#button.
LIMITS = {
    "blocks": 50,
    "header": 150,
    "section_text": 3000,
    "section_fields": 10,
    "field_text": 2000,
    "context_elements": 10,
    "button_text": 75,
    "button_url": 3000,
    "fallback_text": 3000,
}


def escape(text: str) -> str:
    """Slack's escapes (https://api.slack.com/reference/surfaces/formatting#escaping): what a
    person typed cannot make a mention, a channel link or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object of text from people: defanged, escaped, within `limit`."""
    shown = escape(defang(text, limit=limit))
    if len(shown) > limit:  # the escapes lengthened it
        shown = shown[: limit - 1].rsplit("&", 1)[0] + "…"
    return {"type": "plain_text", "text": shown or " ", "emoji": False}


def _button(link: str | None, label: str = "Review in foureyes") -> list[dict[str, Any]]:
    if not link or not link.startswith(("https://", "http://")) or len(link) > 3000:
        return []
    return [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": label, "emoji": False},
                    "url": link,
                }
            ],
        }
    ]


def _card_blocks(card: Card, link: str | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(card.title, LIMITS["header"])},
        {
            "type": "section",
            "fields": [
                _plain(f"{label}\n{value}", LIMITS["field_text"])
                for label, value in card.facts()[: LIMITS["section_fields"]]
            ],
        },
        {
            "type": "section",
            "text": _plain(f"Why: {card.justification or '(none given)'}", 3000),
        },
    ]
    if card.params:
        shown = "\n".join(f"{name}: {value}" for name, value in card.params)
        blocks.append({"type": "section", "text": _plain(f"Parameters\n{shown}", 3000)})
    if card.alerts:
        shown = "\n".join(f"[{a.severity}] {a.summary}" for a in card.alerts)
        blocks.append({"type": "section", "text": _plain(f"Alerts on it\n{shown}", 3000)})
    blocks += _button(link)
    where = "Review it in the console (your security key applies there)"
    if not _button(link):
        where = f"Review it in the console: {link or card.link}"
    blocks.append(
        {
            "type": "context",
            "elements": [_plain(f"Request {card.request_id}. {where}.", LIMITS["field_text"])],
        }
    )
    return blocks


def _plain_blocks(message: Notification, link: str | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(message.subject, LIMITS["header"])}
    ]
    if message.body:
        blocks.append({"type": "section", "text": _plain(message.body, 3000)})
    blocks += _button(link, "Open in foureyes")
    if link and not _button(link):
        blocks.append({"type": "context", "elements": [_plain(link, LIMITS["field_text"])]})
    return blocks


def payload(message: Notification, base_url: str | None) -> dict[str, Any]:
    """The message's Block Kit payload (without `channel`): its card when it has one, else
    its subject and body."""
    link = absolute(message.link, base_url)
    card = Card.from_json(message.details)
    if card is not None:
        link = absolute(card.link, base_url)
        blocks = _card_blocks(card, link)
        fallback = f"{card.title}: {card.action} on {card.account}"
    else:
        blocks = _plain_blocks(message, link)
        fallback = message.subject
    return {
        # Shown in notifications, where blocks are not: plain text, escaped.
        "text": escape(defang(fallback, limit=LIMITS["fallback_text"])),
        "mrkdwn": False,
        "unfurl_links": False,
        "unfurl_media": False,
        "blocks": blocks[: LIMITS["blocks"]],
    }


@dataclass(frozen=True)
class SlackChannel:
    """An incoming webhook (`url`, the secret) or, with `token` and `channel_id`,
    `chat.postMessage` on `api_url`. Neither the URL nor the token is ever in a message,
    an error or the outbox."""

    name: str
    url: str | None = field(default=None, repr=False)
    base_url: str | None = None
    timeout: float = 10.0
    token: str | None = field(default=None, repr=False)
    channel_id: str | None = None
    api_url: str = SLACK_API
    kind: str = "slack"
    people: bool = False

    def payload(self, message: Notification) -> dict[str, Any]:
        body = payload(message, self.base_url)
        if self.token is not None:
            # chat.postMessage's own switches: no @name linking, no markup parsing.
            body |= {"channel": self.channel_id, "link_names": False, "parse": "none"}
        return body

    def send(self, message: Notification) -> None:
        body = self.payload(message)
        if self.token is None:
            send_json("slack", "POST", self.url or "", body, timeout=self.timeout)
            return
        url = self.api_url.rstrip("/") + "/chat.postMessage"
        answer = send_json("slack", "POST", url, body, token=self.token, timeout=self.timeout)
        # The Web API answers 200 with {"ok": false, "error": …} when it refuses.
        try:
            result = answer.json()
        except ValueError:
            raise DeliveryError("slack: chat.postMessage answered something not JSON") from None
        if not isinstance(result, dict) or result.get("ok") is not True:
            error = result.get("error") if isinstance(result, dict) else None
            code = error[:80] if isinstance(error, str) and self.token not in error else "?"
            raise DeliveryError(f"slack: chat.postMessage refused it ({code})")
