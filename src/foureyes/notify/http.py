"""One JSON request of a chat channel, with errors that never carry a secret: the URL (a
Slack webhook's is the secret) and the token stay out of every message."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from foureyes.notify.channels import USER_AGENT, DeliveryError, bounded_request

__all__ = ["send_json"]


def send_json(
    kind: str,
    method: str,
    url: str,
    payload: Mapping[str, Any],
    *,
    token: str | None = None,
    timeout: float,
) -> httpx.Response:
    """Send `payload` as JSON; the 2xx answer, or DeliveryError saying why (the receiver's
    HTTP status and, when it gave one, its error code, cut short)."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        answer = bounded_request(
            kind,
            method,
            url,
            content=json.dumps(payload).encode(),
            headers=headers,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        # The exception's text may hold the URL: name its type alone.
        raise DeliveryError(
            f"{kind}: could not reach the receiver ({type(exc).__name__})"
        ) from None
    if not 200 <= answer.status_code < 300:
        raise DeliveryError(
            f"{kind}: the receiver answered HTTP {answer.status_code}{_code(answer, token)}"
        )
    return answer


def _code(answer: httpx.Response, token: str | None) -> str:
    """The error code a JSON answer gives (Matrix `errcode`, Slack `error`), never an echo of
    the token."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    code = body.get("errcode") or body.get("error")
    if not isinstance(code, str):
        return ""
    code = code[:80]
    if token and token in code:
        return ""
    return f" ({code})"
