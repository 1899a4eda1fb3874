"""The `rt` ticket system: Request Tracker 5 through its REST 2 API.

`GET {url}/REST/2.0/ticket/{number}` with `Authorization: token <auth token>` (an RT auth token
of a user who may see the queue's tickets and the accounts field, nothing more). A ticket is
open when its RT status is one of `open_statuses` (default new and open: stalled, resolved,
rejected and deleted are not). The accounts it names are the values of its custom field
`accounts_field` (default `Accounts`). A merged ticket (RT answers with the ticket it was
merged into) is refused as merged (BadInput: a refusal, not an outage; at execution it cancels
the request): the reference given is not the ticket that would be checked. A ticket foureyes'
user may not see (RT's 403: a queue it has no rights on) reads as no such ticket, so that
requesters cannot tell hidden tickets from none; the operator's log says which. References are
numbers only: `1/../2`, `1?x=`, `%2e` never reach the URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from foureyes.connectors.tickets import Ticket, TicketSystemUnavailable
from foureyes.connectors.tickets_http import (
    TicketClient,
    timeout_setting,
    token_setting,
    url_setting,
)
from foureyes.errors import BadInput

__all__ = ["RtTicketSystem", "create"]

_LOG = logging.getLogger(__name__)
_NUMBER = re.compile(r"[1-9][0-9]{0,9}")
DEFAULT_OPEN = ("new", "open")


class RtTicketSystem:
    """See the module's docstring."""

    def __init__(
        self,
        name: str,
        url: str,
        token: str,
        *,
        web_url: str | None = None,
        accounts_field: str = "Accounts",
        open_statuses: tuple[str, ...] = DEFAULT_OPEN,
        timeout: float = 5.0,
    ) -> None:
        self.name = name
        self._url = url.rstrip("/")
        self._web_url = (web_url or url).rstrip("/")
        self._field = accounts_field
        self._open = frozenset(status.lower() for status in open_statuses)
        self._headers = {"Authorization": f"token {token}", "Accept": "application/json"}
        self._client = TicketClient(f"ticket system {name} (RT)", timeout)

    def __repr__(self) -> str:  # never the token
        return f"RtTicketSystem({self.name!r}, {self._url!r})"

    def valid_reference(self, reference: str) -> bool:
        return _NUMBER.fullmatch(reference) is not None

    def lookup(self, reference: str) -> Ticket | None:
        if not self.valid_reference(reference):  # the URL is built from numbers only
            raise BadInput(f"{reference[:40]!r} is not an RT ticket number")
        who = f"ticket system {self.name} (RT)"
        status, body = self._client.get_json(
            f"{self._url}/REST/2.0/ticket/{reference}", self._headers
        )
        if status == 404:
            return None
        if status == 403:
            # RT's ACLs doing their job (a queue foureyes' user may not see): to the requester
            # the same as no such ticket, so that no answer tells hidden tickets from none.
            _LOG.warning(
                "%s: ticket %s is not visible to foureyes' RT user (HTTP 403): refused as "
                "if it did not exist",
                who,
                reference,
            )
            return None
        if status == 401:
            raise TicketSystemUnavailable(f"{who} refused foureyes' token (HTTP {status})")
        if status != 200:
            raise TicketSystemUnavailable(f"{who} answered HTTP {status}")
        return self._ticket(reference, body, who)

    def _ticket(self, reference: str, body: Any, who: str) -> Ticket:
        if not isinstance(body, dict):
            raise TicketSystemUnavailable(f"{who} answered no JSON object")
        answered = str(body.get("id"))
        if answered != reference:
            # RT answers a merged ticket with the ticket it was merged into: a refusal (the
            # reference given is not the ticket that would be checked), not an outage.
            if _NUMBER.fullmatch(answered) is None:
                raise TicketSystemUnavailable(f"{who} answered a ticket without a valid id")
            raise BadInput(
                f"{self.name} ticket {reference} was merged into {answered}: not this "
                f"ticket (name {self.name}#{answered} if that one is for this request)"
            )
        status, subject = body.get("Status"), body.get("Subject")
        if not isinstance(status, str) or not isinstance(subject, str):
            raise TicketSystemUnavailable(f"{who} answered a ticket without Status and Subject")
        effective = body.get("EffectiveId")
        merged_into = str(effective.get("id")) if isinstance(effective, dict) else reference
        if merged_into != reference:
            status = f"merged into {merged_into}"
        return Ticket(
            self.name,
            reference,
            status,
            merged_into == reference and status.lower() in self._open,
            subject,
            self._accounts(body.get("CustomFields")),
            f"{self._web_url}/Ticket/Display.html?id={reference}",
        )

    def _accounts(self, fields: Any) -> tuple[str, ...]:
        """The values of the accounts field, each stripped; () when the ticket has none."""
        if not isinstance(fields, list):
            return ()
        values: list[str] = []
        for entry in fields:
            if isinstance(entry, dict) and entry.get("name") == self._field:
                for value in entry.get("values") or ():
                    if isinstance(value, str) and value.strip():
                        values.append(value.strip())
        return tuple(values)

    def close(self) -> None:
        self._client.close()


def create(name: str, settings: Mapping[str, Any]) -> RtTicketSystem:
    """`[tickets.<name>]` with `kind = "rt"`: `url` (RT's base URL, REST 2 under it), `token`
    (as `token_file` or `token_env`), optional `web_url` (for links; default `url`),
    `accounts_field` (default Accounts), `open_statuses` (default ["new", "open"]), `timeout`
    (seconds, default 5)."""
    known = {"url", "token", "web_url", "accounts_field", "open_statuses", "timeout"}
    unknown = set(settings) - known
    if unknown:
        raise BadInput(f"tickets.{name}: unknown options {', '.join(sorted(unknown))}")
    field = settings.get("accounts_field", "Accounts")
    if not isinstance(field, str) or not field:
        raise BadInput(f"tickets.{name}: accounts_field must be a custom field's name")
    statuses = settings.get("open_statuses", list(DEFAULT_OPEN))
    if (
        not isinstance(statuses, list)
        or not statuses
        or not all(isinstance(status, str) and status for status in statuses)
    ):
        raise BadInput(f"tickets.{name}: open_statuses must be a list of RT statuses")
    token = token_setting(name, settings, required=True)
    assert token is not None  # required=True
    return RtTicketSystem(
        name,
        url_setting(name, settings),
        token,
        web_url=url_setting(name, settings, "web_url") if "web_url" in settings else None,
        accounts_field=field,
        open_statuses=tuple(statuses),
        timeout=timeout_setting(name, settings),
    )
