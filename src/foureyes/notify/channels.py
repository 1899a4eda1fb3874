"""The channels a notification can go out through: a signed JSON webhook and email over SMTP
(Slack and Matrix: `foureyes.notify.slack`, `foureyes.notify.matrix`; all of them built from
the settings by `foureyes.notify.configured`). Each `send` either delivers or raises `DeliveryError`
with a message fit for `outbox.last_error` (never a secret: no webhook URL, no password)."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

import httpx

from foureyes.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

__all__ = [
    "Channel",
    "DeliveryError",
    "EmailChannel",
    "Notification",
    "WebhookChannel",
    "absolute",
    "bounded_request",
]

USER_AGENT = "foureyes-notify/1"


class DeliveryError(Exception):
    """This attempt did not deliver; the message says why (it goes into `last_error`)."""


@dataclass(frozen=True)
class Notification:
    """One outbox row as a channel sees it. `to_email` is set for a message to a person."""

    id: int
    kind: str
    subject: str
    body: str
    link: str | None
    channel: str | None
    to_staff: str | None
    to_email: str | None
    created_at: datetime
    # The request card chat channels render (`foureyes.notify.card.Card.from_json`), if any.
    details: Mapping[str, Any] | None = None

    def to_json(self, link: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "body": self.body,
            "link": link,
            "channel": self.channel,
            "to_staff": self.to_staff,
            "created_at": self.created_at.isoformat(),
        }


class Channel(Protocol):
    """Somewhere notifications go. `people`: this channel carries messages to staff members."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def people(self) -> bool: ...

    def send(self, message: Notification) -> None: ...


def absolute(link: str | None, base_url: str | None) -> str | None:
    """`link` made absolute against the console's `base_url` when it is a path."""
    if link is None or base_url is None or not link.startswith("/"):
        return link
    return base_url.rstrip("/") + link


# What is read of a receiver's answer: its status and error code are all a delivery needs.
MAX_ANSWER = 64 * 1024


def bounded_request(
    kind: str,
    method: str,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,
) -> httpx.Response:
    """One request whose answer is read by `timeout` after it was sent (checked at each chunk:
    httpx's timeouts are per read, so a receiver trickling its answer a byte at a time would
    otherwise hold the worker's delivery pass for as long as it likes), and at most
    `MAX_ANSWER` bytes of it. DeliveryError when the deadline passes; httpx.HTTPError as
    httpx raises it (the caller names its type alone: its text may hold a secret URL)."""
    until = time.monotonic() + timeout
    with httpx.stream(method, url, content=content, headers=headers, timeout=timeout) as answer:
        body = bytearray()
        for chunk in answer.iter_bytes():
            if time.monotonic() > until:
                raise DeliveryError(f"{kind}: the receiver did not answer within {timeout:g} s")
            body += chunk[: MAX_ANSWER - len(body)]
            if len(body) >= MAX_ANSWER:
                break
        kept = {"content-type": answer.headers.get("content-type", "application/octet-stream")}
        return httpx.Response(answer.status_code, headers=kept, content=bytes(body))


def _post(kind: str, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
    try:
        answer = bounded_request(
            kind,
            "POST",
            url,
            content=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        # The exception text may hold the URL, which for Slack is the secret: name the type.
        raise DeliveryError(
            f"{kind}: could not reach the receiver ({type(exc).__name__})"
        ) from None
    if not 200 <= answer.status_code < 300:
        raise DeliveryError(f"{kind}: the receiver answered HTTP {answer.status_code}")


@dataclass(frozen=True)
class WebhookChannel:
    """POSTs the notification as JSON, signed with HMAC-SHA256 (`Foureyes-Signature`, verified
    with `foureyes.webhook.verify`); `Idempotency-Key: notify-<id>` is the same on retries."""

    name: str
    url: str
    secret: str
    base_url: str | None = None
    timeout: float = 10.0
    kind: str = "webhook"
    people: bool = False

    def send(self, message: Notification) -> None:
        body = json.dumps(message.to_json(absolute(message.link, self.base_url))).encode()
        headers = {
            SIGNATURE_HEADER: sign("POST", _target(self.url), body, self.secret),
            IDEMPOTENCY_HEADER: f"notify-{message.id}",
        }
        _post("webhook", self.url, body, headers, self.timeout)


@dataclass(frozen=True)
class EmailChannel:
    """Email over SMTP (stdlib smtplib): to the person for a message to staff, else `to`."""

    name: str
    host: str
    port: int
    sender: str
    to: tuple[str, ...] = ()
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    base_url: str | None = None
    timeout: float = 10.0
    kind: str = "email"
    people: bool = False

    def message(self, message: Notification) -> EmailMessage:
        recipients = [message.to_email] if message.to_email else list(self.to)
        if not recipients:
            raise DeliveryError(f"email channel {self.name} has no smtp_to to send to")
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(recipients)
        mail["Date"] = format_datetime(message.created_at)
        mail["Message-ID"] = make_msgid(f"notify-{message.id}")
        link = absolute(message.link, self.base_url)
        mail.set_content(message.body + (f"\n\n{link}\n" if link else "\n"))
        return mail

    def send(self, message: Notification) -> None:
        mail = self.message(message)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(mail)
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"email: the SMTP server refused: {exc}") from None
        except OSError as exc:
            raise DeliveryError(
                f"email: cannot reach {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None


def _target(url: str) -> str:
    """The request target (path and query, as sent) that the receiver verifies the signature
    against: the one httpx puts on the request line for `url`."""
    return httpx.URL(url).raw_path.decode("ascii")
