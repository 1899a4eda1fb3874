"""Ticket systems: the contract, the in-memory one, and the check a ticket must pass.

A rule may require its justification to name a ticket (`justification: {ticket: rt}`). The
ticket system configured under that name (`[tickets.rt]` in foureyes.toml) is asked for the
ticket, and the request goes on only if the ticket exists, is open and names the request's
account (`check_ticket`). A system that cannot answer (down, slow past its timeout, erroring,
refusing foureyes' credentials) raises `TicketSystemUnavailable`: the request is refused, never
let through unchecked. The implementations: `tickets_rt` (Request Tracker's REST 2 API) and
`tickets_http` (a generic JSON endpoint, docs/tickets.md).

How a ticket names an account: its accounts list (RT: the `Accounts` custom field) holds the
account's id on its platform (`did:plc:…`) or its full reference (`atproto:did:plc:…`), one
value each, compared exactly. Never a handle, never a substring: a handle can be re-registered
by someone else, and `did:plc:ab` is not `did:plc:abc`.

What a ticket system answers in words (its subject, often an outsider's email subject, and its
status) is someone else's text that reviewers read on the console and in chat rooms: a `Ticket`
keeps it on one line, without control or invisible characters (no forged extra line, no bidi
override reversing what follows) and bounded (`shown_text`). Its link must be http(s), without
spaces or controls (`plain_link`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from foureyes.errors import BadInput, Unavailable
from foureyes.text import unseen, without_unseen

__all__ = [
    "MemoryTicketSystem",
    "Ticket",
    "TicketSystem",
    "TicketSystemUnavailable",
    "check_ticket",
    "mentioned_references",
    "plain_link",
    "plain_reference",
    "shown_text",
]

# What a reference may look like before any system sees it: letters, digits, `.`, `_`, `-`,
# starting with a letter or digit (so never `..`, a `/`, a `?`, a `%` or a space). Each
# system narrows it further (RT: a number).
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# How much of a ticket's subject and status is kept (the ticket itself is a link away).
MAX_SUBJECT = 200
MAX_STATUS = 40
MAX_LINK = 2000


def shown_text(text: str, limit: int) -> str:
    """`text` as foureyes keeps and shows it: controls and line or paragraph separators become
    a space, every other character a reader would not see is dropped and stacked combining
    marks are cut (`foureyes.text.without_unseen`); runs of spaces are one; cut to `limit`
    characters with an ellipsis."""
    shown = " ".join(without_unseen(text).split())
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def plain_link(url: str) -> bool:
    """Whether `url` may be shown as a ticket's link: http(s), bounded, and nothing in it a
    reader would not see (no space, control or invisible character)."""
    return (
        url.startswith(("https://", "http://"))
        and len(url) <= MAX_LINK
        and not any(unicodedata.category(c)[0] in "CZ" or unseen(c) for c in url)
    )


@dataclass(frozen=True)
class Ticket:
    """A ticket as its system answered: `status` in its own words, `open` whether that status
    counts as open, the accounts it names, and the link people follow to read it."""

    system: str
    reference: str
    status: str
    open: bool
    subject: str
    accounts: tuple[str, ...]
    url: str

    def __post_init__(self) -> None:
        # Every system's answer is kept as reviewers may read it (module docstring): this is
        # the one place all of them pass through.
        object.__setattr__(self, "subject", shown_text(self.subject, MAX_SUBJECT))
        object.__setattr__(self, "status", shown_text(self.status, MAX_STATUS))

    def summary(self) -> dict[str, Any]:
        """What the request keeps of the check (API view, audit event, review card)."""
        return {
            "system": self.system,
            "reference": self.reference,
            "status": self.status,
            "open": self.open,
            "subject": self.subject,
            "url": self.url,
        }


class TicketSystemUnavailable(Unavailable):
    """The ticket system could not answer (unreachable, timed out, an error, refused foureyes'
    credentials): the ticket cannot be checked, so the request is refused."""


class TicketSystem(Protocol):
    """A ticket system foureyes asks. `lookup` answers the ticket `reference` names, None when
    the system has no such ticket, and raises TicketSystemUnavailable when it cannot say.
    `reference` has passed `valid_reference` (callers check it first)."""

    name: str

    def valid_reference(self, reference: str) -> bool: ...

    def lookup(self, reference: str) -> Ticket | None: ...

    def close(self) -> None: ...


def plain_reference(reference: str) -> bool:
    """The form every system's references share (see `_REFERENCE`)."""
    return _REFERENCE.fullmatch(reference) is not None


def mentioned_references(system: str, justification: str | None) -> list[str]:
    """Every `<system>#<reference>` the justification holds, in order, duplicates dropped. The
    reference runs to the next space, so `rt#1/../2` is read whole (and refused), never as 1."""
    found: list[str] = []
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(system)}#(\S*)")
    for match in pattern.finditer(justification or ""):
        reference = match.group(1).rstrip(".,;:)")  # sentence punctuation after the reference
        if reference not in found:
            found.append(reference)
    return found


def check_ticket(
    system: TicketSystem, justification: str | None, account_ids: Iterable[str]
) -> Ticket:
    """The one ticket of `system` the justification names, if it exists, is open and names one
    of `account_ids` (the account's platform id and full reference). BadInput otherwise, saying
    why; TicketSystemUnavailable when the system cannot answer."""
    name = system.name
    references = mentioned_references(name, justification)
    if not references:
        raise BadInput(f"this request needs a {name} ticket: write {name}#<number> in the reason")
    if len(references) > 1:
        raise BadInput(f"the reason names several {name} tickets; name the one for this request")
    reference = references[0]
    if not plain_reference(reference) or not system.valid_reference(reference):
        raise BadInput(f"{name}#{_shown(reference)} is not a valid {name} ticket reference")
    ticket = system.lookup(reference)
    if ticket is None:
        # The same words whether the ticket does not exist or foureyes may not read it (the
        # operator's log says which): no oracle for tickets in queues the reader cannot see.
        raise BadInput(f"{name} has no ticket {reference} that foureyes may read")
    if not ticket.open:
        if ticket.status.strip().lower() == "open":  # never "is open, not open"
            raise BadInput(f"{name} ticket {reference} is not open (though its status reads open)")
        raise BadInput(f"{name} ticket {reference} is {ticket.status}, not open")
    wanted = set(account_ids)
    if not wanted.intersection(ticket.accounts):
        raise BadInput(f"{name} ticket {reference} does not name this account")
    return ticket


def _shown(reference: str) -> str:
    """A refused reference as the error quotes it: printable ASCII, bounded."""
    text = "".join(c if 32 < ord(c) < 127 else "?" for c in reference)
    return text[:40] + ("…" if len(text) > 40 else "")


@dataclass
class MemoryTicketSystem:
    """Tickets kept in a dict: the tests' and the demo's system. `down` makes every lookup
    fail as an unreachable system does."""

    name: str = "memory"
    tickets: dict[str, Ticket] = field(default_factory=dict)
    down: bool = False

    def valid_reference(self, reference: str) -> bool:
        return plain_reference(reference)

    def lookup(self, reference: str) -> Ticket | None:
        if self.down:
            raise TicketSystemUnavailable(f"ticket system {self.name} is down")
        return self.tickets.get(reference)

    def add(
        self, reference: str, subject: str, accounts: Iterable[str], *, open: bool = True
    ) -> Ticket:
        ticket = Ticket(
            self.name,
            reference,
            "open" if open else "closed",
            open,
            subject,
            tuple(accounts),
            f"memory://{self.name}/{reference}",
        )
        self.tickets[reference] = ticket
        return ticket

    def close(self) -> None:
        return None
