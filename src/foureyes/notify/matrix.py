"""Matrix: an `m.room.message` in a room, sent through the client-server API with a bot's
access token (`PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`).

The message has a plain `body` and an HTML `formatted_body` (`org.matrix.custom.html`).
Text from people is HTML-escaped in the one and `card.defang`ed in both, so it cannot make a
link, a pill or formatting; and the content carries an empty `m.mentions` (Matrix 1.7
intentional mentions), which tells clients and the homeserver's push rules that the message
mentions nobody, `@room` included, whatever its text says. The transaction id is
`foureyes-notify-<outbox id>`: a retry of a send whose answer was lost is the same event
(the homeserver deduplicates per access token).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from foureyes.notify.card import Card, defang
from foureyes.notify.channels import Notification, absolute
from foureyes.notify.http import send_json

__all__ = ["MatrixChannel", "content"]

HTML_FORMAT = "org.matrix.custom.html"


def _text(value: str) -> str:
    """Text from people, for the HTML body."""
    return escape(defang(value), quote=True).replace("\n", "<br>")


def _card(card: Card, link: str | None) -> tuple[str, str]:
    plain = [card.title, ""]
    html = [f"<p><strong>{_text(card.title)}</strong></p>", "<ul>"]
    for label, value in card.facts():
        plain.append(f"{label}: {defang(value)}")
        html.append(f"<li><strong>{escape(label)}</strong>: {_text(value)}</li>")
    html.append("</ul>")
    why = card.justification or "(none given)"
    plain.append(f"Why: {defang(why)}")
    html.append(f"<p><strong>Why</strong></p><blockquote>{_text(why)}</blockquote>")
    if card.params:
        plain.append("Parameters: " + ", ".join(f"{k}: {defang(v)}" for k, v in card.params))
        html.append(
            "<p><strong>Parameters</strong>: "
            + ", ".join(f"{_text(k)}: {_text(v)}" for k, v in card.params)
            + "</p>"
        )
    if card.alerts:
        plain.append("Alerts on it:")
        html.append("<p><strong>Alerts on it</strong></p><ul>")
        for alert in card.alerts:
            plain.append(f"- [{defang(alert.severity)}] {defang(alert.summary)}")
            html.append(f"<li>[{_text(alert.severity)}] {_text(alert.summary)}</li>")
        html.append("</ul>")
    target = link or card.link
    plain.append(f"Review it in the console (your security key applies there): {target}")
    if target.startswith(("https://", "http://")):
        anchor = f'<a href="{escape(target, quote=True)}">Review it in the console</a>'
    else:
        anchor = f"Review it in the console: <code>{escape(target)}</code>"
    html.append(f"<p>{anchor} (your security key applies there).</p>")
    return "\n".join(plain), "".join(html)


def _plain(message: Notification, link: str | None) -> tuple[str, str]:
    plain = [message.subject, "", defang(message.body)]
    html = [f"<p><strong>{_text(message.subject)}</strong></p>"]
    if message.body:
        html.append(f"<p>{_text(message.body)}</p>")
    if link:
        plain.append(link)
        if link.startswith(("https://", "http://")):
            html.append(f'<p><a href="{escape(link, quote=True)}">Open in foureyes</a></p>')
        else:
            html.append(f"<p><code>{escape(link)}</code></p>")
    return "\n".join(plain), "".join(html)


def content(message: Notification, base_url: str | None) -> dict[str, Any]:
    """The event content for `message`: its card when it has one, else subject and body."""
    card = Card.from_json(message.details)
    if card is not None:
        body, html = _card(card, absolute(card.link, base_url))
    else:
        body, html = _plain(message, absolute(message.link, base_url))
    return {
        "msgtype": "m.text",
        "body": body,
        "format": HTML_FORMAT,
        "formatted_body": html,
        "m.mentions": {},
    }


@dataclass(frozen=True)
class MatrixChannel:
    """A Matrix room (`room_id`, which the bot has joined) on `homeserver`; `token` is the
    bot's access token (never in a message, an error or the outbox)."""

    name: str
    homeserver: str
    room_id: str
    token: str = field(repr=False)
    base_url: str | None = None
    timeout: float = 10.0
    kind: str = "matrix"
    people: bool = False

    def send(self, message: Notification) -> None:
        path = (
            f"/_matrix/client/v3/rooms/{quote(self.room_id, safe='')}"
            f"/send/m.room.message/foureyes-notify-{message.id}"
        )
        send_json(
            "matrix",
            "PUT",
            self.homeserver.rstrip("/") + path,
            content(message, self.base_url),
            token=self.token,
            timeout=self.timeout,
        )
