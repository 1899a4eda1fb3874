"""A request card: the facts a chat message about a request shows, kept in the outbox row
(`details`) and rendered by each chat channel in its own format.

Everything on a card but the labels and the link comes from people (the requester's
justification, a ticket's subject, an alert's summary, account names) and is shown to a chat
room whose clients turn text into mentions, links and formatting. So each channel escapes it
for its format (HTML for Matrix, Slack's `&<>` and plain_text objects for Slack), and
`defang` first breaks what a client would linkify or treat as a room-wide mention on its own:
a URL scheme (`https://` → `https[:]//`, `mailto:` → `mailto[:]`), a dot between two word
characters (`evil.example` → `evil[.]example`) and the `@` of `@room`, `@channel`, `@here`,
`@everyone` (→ `[@]room`). The link to the review page is foureyes' own (made from the
request id and digest), never text from a person.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from foureyes.text.names import person_label

__all__ = ["ON_CARDS", "ON_CHANNEL_CARDS", "AlertLine", "Card", "Ticket", "defang", "review_link"]

# Long enough for any justification the API accepts to be read whole in a chat message;
# longer text is cut with an ellipsis (the console shows it all).
MAX_TEXT = 1000
MAX_ALERTS = 5
MAX_PARAMS = 10

# The detectors whose alerts describe a request for its reviewers (`foureyes.detect`): the only
# alerts a card (and a non-overseer's review page: `workflow.alerts.on_request`) shows. Any
# other alert on a request (a reviewer's failed step-up, a tampered row, a routing problem) is
# about a person or the system and stays with oversight: a chat room is read by whoever is in
# it, possibly the very person the alert is about.
ON_CARDS = frozenset(
    {
        "protected_touched",
        "departing_staff",
        "velocity",
        "denial_burst",
        "break_glass",
        "generic_justification",
        "fast_approval",
        "pair_affinity",
        "off_hours",
    }
)

# Of those, the ones a chat *room* card shows (`notify.hooks`, the policy's `notify` channels):
# a room's readers are not people foureyes checks (anyone in it, maybe the staff member an
# alert names). Risk about the request and its account stays; what is about a person's
# employment (`departing_staff`: notice, last day) or relationships between people
# (`pair_affinity`: who approves whom) goes only to the approvers' own cards and the console.
ON_CHANNEL_CARDS = ON_CARDS - {"departing_staff", "pair_affinity"}

# A scheme before `//`, or one that links without it.
_SCHEME = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]{1,20}):(?=//)|\b(mailto|javascript|data|tel|sms|matrix|file):"
)
_DOT = re.compile(r"(?<=\w)\.(?=\w)")
_ROOM_MENTION = re.compile(r"(?i)@(room|channel|here|everyone)\b")


def defang(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to `limit` characters, with what chat clients linkify or treat as a mention
    of everyone broken (module docstring). Escaping for the format comes after, per channel."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _ROOM_MENTION.sub(lambda m: "[@]" + m.group(1), text)
    text = _SCHEME.sub(lambda m: (m.group(1) or m.group(2)) + "[:]", text)
    return _DOT.sub("[.]", text)


def review_link(request_id: str, digest: str) -> str:
    """The console's review page for this exact request: the page warns, and offers no
    review, when `digest` is not the request's (a link to something else than was asked)."""
    return f"/console/requests/{request_id}?digest={digest}"


@dataclass(frozen=True)
class Ticket:
    reference: str
    subject: str | None = None
    url: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class AlertLine:
    severity: str
    summary: str


@dataclass(frozen=True)
class Card:
    """What a chat message about one request shows. `link` is a path in foureyes (made
    absolute with the channel's `base_url`)."""

    title: str
    request_id: str
    state: str
    action: str
    account: str
    requester: str
    link: str
    requester_name: str | None = None
    tier: str | None = None
    justification: str | None = None
    ticket: Ticket | None = None
    alerts: tuple[AlertLine, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    expires_at: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "title": self.title,
            "request_id": self.request_id,
            "state": self.state,
            "action": self.action,
            "account": self.account,
            "requester": self.requester,
            "requester_name": self.requester_name,
            "link": self.link,
            "tier": self.tier,
            "justification": self.justification,
            "ticket": None
            if self.ticket is None
            else {
                "reference": self.ticket.reference,
                "subject": self.ticket.subject,
                "url": self.ticket.url,
                "status": self.ticket.status,
            },
            "alerts": [{"severity": a.severity, "summary": a.summary} for a in self.alerts],
            "params": [list(pair) for pair in self.params],
            "expires_at": self.expires_at,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Card | None:
        """The card an outbox row holds; None when it holds none, or one this version cannot
        read (the channel then shows the row's subject and body)."""
        if not isinstance(data, Mapping) or data.get("v") != 1:
            return None
        try:
            ticket = data.get("ticket")
            return cls(
                title=str(data["title"]),
                request_id=str(data["request_id"]),
                state=str(data["state"]),
                action=str(data["action"]),
                account=str(data["account"]),
                requester=str(data["requester"]),
                requester_name=_opt(data.get("requester_name")),
                link=str(data["link"]),
                tier=_opt(data.get("tier")),
                justification=_opt(data.get("justification")),
                ticket=None
                if not isinstance(ticket, Mapping)
                else Ticket(
                    reference=str(ticket["reference"]),
                    subject=_opt(ticket.get("subject")),
                    url=_opt(ticket.get("url")),
                    status=_opt(ticket.get("status")),
                ),
                alerts=tuple(
                    AlertLine(str(a["severity"]), str(a["summary"])) for a in data["alerts"]
                ),
                params=tuple((str(k), str(v)) for k, v in data["params"]),
                expires_at=_opt(data.get("expires_at")),
                reason=_opt(data.get("reason")),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) in the order every channel shows them; values are raw (escape and
        `defang` them for the format)."""
        who = person_label(self.requester_name, self.requester)
        rows = [
            ("Requested by", who),
            ("Action", self.action),
            ("Account", self.account),
            ("Tier", self.tier or "(none)"),
            ("State", self.state),
        ]
        if self.expires_at:
            rows.append(("Expires", self.expires_at))
        if self.ticket is not None:
            shown = self.ticket.reference
            if self.ticket.subject:
                shown += f": {self.ticket.subject}"
            if self.ticket.status:
                shown += f" ({self.ticket.status})"
            rows.append(("Ticket", shown))
        if self.reason:
            rows.append(("Reason", self.reason))
        return rows


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
