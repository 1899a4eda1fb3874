"""The `http` ticket system: a generic JSON endpoint (contract in docs/tickets.md).

`GET {url}/tickets/{reference}` with `Authorization: Bearer <token>` (when a token is set) and
`Accept: application/json`. 200 answers one JSON object:

    {"reference": "ABUSE-12", "status": "open", "open": true, "subject": "…",
     "accounts": ["did:plc:…"], "url": "https://tickets.example/ABUSE-12"}

404 means no such ticket. Anything else (another status, a redirect, an answer that is not that
object, a different `reference`, a timeout) makes the system unavailable: the request is refused.
The reference reaches the URL only after passing the contract's form (letters, digits, `.`, `_`,
`-`; never `/`, `?`, `%` or `..` alone) and is percent-encoded anyway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from foureyes.connectors.tickets import (
    Ticket,
    TicketSystemUnavailable,
    plain_reference,
)
from foureyes.errors import BadInput

__all__ = ["HttpTicketSystem", "create", "get_json"]

MAX_ANSWER = 1 << 20  # a ticket's JSON; a bigger answer is an error, not something to parse
DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 60.0


def get_json(
    client: httpx.Client, url: str, headers: Mapping[str, str], who: str
) -> tuple[int, Any]:
    """GET `url`: its status and, for 200, its JSON body (None otherwise). Transport errors,
    timeouts, redirects, oversized or non-JSON 200 answers raise TicketSystemUnavailable
    naming `who`, never the headers (they carry the token)."""
    try:
        with client.stream("GET", url, headers=dict(headers)) as response:
            if response.status_code != 200:
                return response.status_code, None
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER:
                    raise TicketSystemUnavailable(f"{who} answered more than {MAX_ANSWER} bytes")
    except httpx.TimeoutException:
        raise TicketSystemUnavailable(f"{who} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise TicketSystemUnavailable(f"{who} cannot be reached: {type(exc).__name__}") from None
    try:
        return 200, json.loads(bytes(body))
    except ValueError:
        raise TicketSystemUnavailable(f"{who} answered something that is not JSON") from None


def timeout_setting(name: str, settings: Mapping[str, Any]) -> float:
    value = settings.get("timeout", DEFAULT_TIMEOUT)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_TIMEOUT
    ):
        raise BadInput(f"tickets.{name}: timeout must be a number of seconds in (0, {MAX_TIMEOUT}]")
    return float(value)


def url_setting(name: str, settings: Mapping[str, Any], key: str = "url") -> str:
    value = settings.get(key)
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise BadInput(f"tickets.{name}: {key} must be an http(s) URL")
    return value.rstrip("/")


def token_setting(name: str, settings: Mapping[str, Any], *, required: bool) -> str | None:
    value = settings.get("token")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or any(c in value for c in "\r\n"):
        raise BadInput(f"tickets.{name}: token (token_file or token_env) must be set")
    return value


class HttpTicketSystem:
    """See the module's docstring."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self._url = url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def __repr__(self) -> str:  # never the token
        return f"HttpTicketSystem({self.name!r}, {self._url!r})"

    def valid_reference(self, reference: str) -> bool:
        return plain_reference(reference)

    def lookup(self, reference: str) -> Ticket | None:
        who = f"ticket system {self.name}"
        url = f"{self._url}/tickets/{quote(reference, safe='')}"
        status, body = get_json(self._client, url, self._headers, who)
        if status == 404:
            return None
        if status != 200:
            raise TicketSystemUnavailable(f"{who} answered HTTP {status}")
        return self._ticket(reference, body, who)

    def _ticket(self, reference: str, body: Any, who: str) -> Ticket:
        if not isinstance(body, dict):
            raise TicketSystemUnavailable(f"{who} answered no JSON object")
        texts = {key: body.get(key) for key in ("reference", "status", "subject", "url")}
        accounts = body.get("accounts")
        if (
            not all(isinstance(value, str) for value in texts.values())
            or not isinstance(body.get("open"), bool)
            or not isinstance(accounts, list)
            or not all(isinstance(account, str) for account in accounts)
        ):
            raise TicketSystemUnavailable(
                f"{who} answered a ticket without reference, status, open, subject, accounts "
                "and url of the documented types"
            )
        if not str(texts["url"]).startswith(("https://", "http://")):
            raise TicketSystemUnavailable(f"{who} answered a ticket link that is not http(s)")
        if texts["reference"] != reference:
            raise TicketSystemUnavailable(f"{who} answered for another ticket than {reference}")
        return Ticket(
            self.name,
            reference,
            str(texts["status"]),
            bool(body["open"]),
            str(texts["subject"]),
            tuple(accounts),
            str(texts["url"]),
        )

    def close(self) -> None:
        self._client.close()


def create(name: str, settings: Mapping[str, Any]) -> HttpTicketSystem:
    """`[tickets.<name>]` with `kind = "http"`: `url`, optional `token` (as `token_file` or
    `token_env`), optional `timeout` (seconds, default 5)."""
    unknown = set(settings) - {"url", "token", "timeout"}
    if unknown:
        raise BadInput(f"tickets.{name}: unknown options {', '.join(sorted(unknown))}")
    return HttpTicketSystem(
        name,
        url_setting(name, settings),
        token=token_setting(name, settings, required=False),
        timeout=timeout_setting(name, settings),
    )
