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

import contextlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from foureyes.connectors.calls import is_loopback, run_within
from foureyes.connectors.tickets import (
    Ticket,
    TicketSystemUnavailable,
    plain_link,
    plain_reference,
)
from foureyes.errors import BadInput

__all__ = ["HttpTicketSystem", "TicketClient", "create", "strict_json"]

MAX_ANSWER = 1 << 20  # a ticket's JSON; a bigger answer is an error, not something to parse
DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 60.0
# Statuses whose plain meaning `open` must agree with (any other status is shown as given).
OPEN_WORDS = frozenset({"open", "opened", "new", "reopened", "active", "in progress"})
CLOSED_WORDS = frozenset(
    {"closed", "resolved", "done", "rejected", "deleted", "cancelled", "canceled", "merged"}
)


class TicketClient:
    """HTTP GETs to one ticket system, each under one overall deadline of `timeout` seconds:
    connection, headers and body together (`calls.run_within`), so that a system that
    trickles its answer a byte at a time holds nobody longer than that. Safe to use from
    several threads."""

    def __init__(
        self, who: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.who = who
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, transport=transport
        )

    def get_json(self, url: str, headers: Mapping[str, str]) -> tuple[int, Any]:
        """GET `url`: its status and, for 200, its JSON body (None otherwise). Transport
        errors, the deadline, redirects, and 200 answers that are oversized, not
        `application/json` or not strict JSON (`strict_json`) raise TicketSystemUnavailable
        naming the system, never the headers (they carry the token)."""
        try:
            status, body = run_within(self._get(url, headers), self.timeout)
        except TimeoutError:
            raise TicketSystemUnavailable(
                f"{self.who} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.TimeoutException:
            raise TicketSystemUnavailable(
                f"{self.who} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise TicketSystemUnavailable(
                f"{self.who} cannot be reached: {type(exc).__name__}"
            ) from None
        return status, (None if body is None else strict_json(body, self.who))

    async def _get(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes | None]:
        async with self._client.stream("GET", url, headers=dict(headers)) as response:
            if response.status_code != 200:
                return response.status_code, None
            media = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                raise TicketSystemUnavailable(
                    f"{self.who} answered {media[:60] or 'no content type'}, not application/json"
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER:
                    raise TicketSystemUnavailable(
                        f"{self.who} answered more than {MAX_ANSWER} bytes"
                    )
            return 200, bytes(body)

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError, httpx.HTTPError):  # best effort
            run_within(self._client.aclose(), self.timeout)


def strict_json(raw: bytes, who: str) -> Any:
    """`raw` parsed as JSON that means one thing: no key twice in an object (a reader taking
    the first would see another ticket than we do), no NaN or Infinity (not JSON)."""
    try:
        return json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _Ambiguous as exc:
        raise TicketSystemUnavailable(f"{who} answered ambiguous JSON: {exc}") from None
    except ValueError:
        raise TicketSystemUnavailable(f"{who} answered something that is not JSON") from None


class _Ambiguous(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Ambiguous(f"the key {key[:40]!r} appears twice in an object")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _Ambiguous(f"{name} is not a JSON value")


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
    """An https URL (plain http only to this machine: the token would cross the network in
    clear), without a trailing slash."""
    value = settings.get(key)
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"tickets.{name}: {key} must be an http(s) URL")
    if parts.username or parts.password:
        raise BadInput(f"tickets.{name}: {key} must not carry credentials")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise BadInput(
            f"tickets.{name}: {key} must be an https URL: plain http is allowed only to a "
            "loopback host (127.0.0.0/8, ::1, localhost), since the token would cross the "
            "network in clear"
        )
    return str(value).rstrip("/")


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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._url = url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client = TicketClient(f"ticket system {name}", timeout, transport)

    def __repr__(self) -> str:  # never the token
        return f"HttpTicketSystem({self.name!r}, {self._url!r})"

    def valid_reference(self, reference: str) -> bool:
        return plain_reference(reference)

    def lookup(self, reference: str) -> Ticket | None:
        who = f"ticket system {self.name}"
        url = f"{self._url}/tickets/{quote(reference, safe='')}"
        status, body = self._client.get_json(url, self._headers)
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
        if not plain_link(str(texts["url"])):
            raise TicketSystemUnavailable(
                f"{who} answered a ticket link that is not a plain http(s) link"
            )
        if texts["reference"] != reference:
            raise TicketSystemUnavailable(f"{who} answered for another ticket than {reference}")
        word = str(texts["status"]).strip().lower()
        if (word in OPEN_WORDS and body["open"] is not True) or (
            word in CLOSED_WORDS and body["open"] is not False
        ):
            # A reviewer reads the status on the card: it must not say the opposite of `open`.
            raise TicketSystemUnavailable(
                f"{who} answered a ticket whose status {word[:40]!r} contradicts "
                f"open: {str(body['open']).lower()}"
            )
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
