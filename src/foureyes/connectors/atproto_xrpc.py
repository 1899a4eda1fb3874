"""The one place the `atproto` connector talks to a PDS: XRPC calls with the admin password, under
the connector call's deadline, with retries, and the PDS's answers translated into foureyes'
errors (`Xrpc.translate`, described in `foureyes.connectors.atproto`)."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from foureyes.connectors.calls import (
    USER_AGENT,
    PlatformClient,
    RetryPolicy,
    SecretMask,
    Sleep,
    json_object,
    platform_text,
    transient_status,
)
from foureyes.errors import ConnectorError, NotFound

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_FOUND_ERRORS = ("NotFound", "HandleNotFound")
_NOT_FOUND_MESSAGES = ("account not found", "subject not found", "account does not exist")


def is_did(text: str) -> bool:
    """Whether `text` has the shape of a DID (`did:plc:…`, `did:web:…`)."""
    parts = text.split(":", 2)
    return (
        len(text) <= 2048
        and len(parts) == 3
        and parts[0] == "did"
        and parts[1].isalnum()
        and parts[1].islower()
        and bool(parts[2])
        and not any(c.isspace() or c in "/?#" for c in text)
    )


def timestamp(value: Any) -> datetime:
    """A PDS date (`2026-01-02T03:04:05.000Z`) as a UTC time; the epoch when missing or bad."""
    if not isinstance(value, str):
        return _EPOCH
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Xrpc:
    """XRPC calls to one PDS as its admin. Safe to use from several threads."""

    def __init__(
        self,
        url: str,
        admin_password: str,
        *,
        platform: str,
        timeout: float,
        deadline: float,
        retry: RetryPolicy,
        verify: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.platform = platform
        self.url = url
        self.retry = retry
        self.who = f"{platform} ({urlsplit(url).netloc})"
        basic = base64.b64encode(f"admin:{admin_password}".encode()).decode()
        # The password is in the client's default header, and in the mask of the text the PDS
        # answers (a PDS or proxy may echo it back bare), and nowhere else.
        self._mask = SecretMask(admin_password, basic_users=("admin",))
        self._http = PlatformClient(
            who=self.who,
            deadline=deadline,
            timeout=timeout,
            verify=verify,
            transport=transport,
            sleep=sleep,
            headers={"Authorization": f"Basic {basic}", "User-Agent": USER_AGENT},
        )

    @contextmanager
    def call(self) -> Iterator[None]:
        """One connector call: every request inside shares its deadline."""
        with self._http.call():
            yield

    def query(self, nsid: str, what: str, **params: str) -> dict[str, Any]:
        """A GET of `nsid` (`what` names it in errors)."""
        return self._send("GET", nsid, what, params=params)

    def procedure(self, nsid: str, what: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A POST of `nsid`: a write, whose tries are settled together (`calls.send`)."""
        return self._send("POST", nsid, what, body=body)

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        nsid: str,
        what: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        content = None if body is None else json.dumps(dict(body), separators=(",", ":")).encode()
        write = method != "GET"
        response = self._http.send(
            method,
            f"{self.url}/xrpc/{nsid}",
            retry=self.retry,
            order=write,
            doubt=_doubted if write else None,
            content=content,
            params=params,
            headers=(lambda: {"Content-Type": "application/json"}) if content else None,
        )
        return self.translate(response, what)

    def translate(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The PDS's answer as a JSON object, or the error it means: NotFound; transient for
        429 and 5xx; refused otherwise (a 401: the admin password)."""
        status = response.status_code
        body = json_object(response)
        if 200 <= status < 300:
            return body
        error = str(body.get("error", ""))
        error = platform_text(error, self._mask, limit=100)
        message = platform_text(str(body.get("message", "")), self._mask)
        said = platform_text(
            f"{status} {error}".strip() + (f": {message}" if message else ""), self._mask
        )
        if error in _NOT_FOUND_ERRORS or message.lower() in _NOT_FOUND_MESSAGES:
            raise NotFound(f"{self.platform}: {what} does not exist ({said})")
        if transient_status(status):
            raise ConnectorError(
                f"{self.who} failed on {what} ({said})", transient=True, status=status
            )
        if status == 401:
            raise ConnectorError(
                f"{self.who} refused foureyes' admin password ({said}): check the connector's "
                "admin_password_file or admin_password_env",
                transient=False,
                status=status,
            )
        raise ConnectorError(f"{self.who} refused {what} ({said})", transient=False, status=status)


def _doubted(response: httpx.Response) -> str | None:
    """A 5xx to a write: it may have been applied (the PDS's own answer, or a proxy's after
    forwarding it), so it settles nothing."""
    if response.status_code >= 500:
        return f"an answer {response.status_code} to a write, which may have been applied"
    return None
