"""The CLI's client of a foureyes server's HTTP API: one method per call, one place for errors.

The staff commands (`foureyes request|review|…`) act only through the API, with the person's own
token: they never hold the database or the credentials behind foureyes. Every failure becomes
a `ServerError` (a `FoureyesError`, so `diagnosed` prints it as one line and exits 2): a
problem+json answer as its title and detail (and the request it names, and for a policy denial
its rules), a connection error, a timeout or an answer that is not JSON as what happened and
where. The token goes only into the `Authorization` header: never into a message.

Every call that makes a request (a submit, an undo) sends an `Idempotency-Key`: the one given
(`--idempotency-key`) or a fresh one. When its outcome is not known — no answer (a timeout, a
dropped connection) or a 5xx (`outcome-unknown`: the request may be recorded) — the message
says how to try again safely: the same command with `--idempotency-key <that key>`, which
answers the request the first call made instead of making a second (docs/idempotency.md).
"""

from __future__ import annotations

import ipaddress
import ssl
import sys
import uuid
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

# `import httpx` also imports its own command-line client (`httpx._main`: click, pygments and
# rich's syntax and progress), a third of a staff command's start-up, which foureyes never runs.
# A `None` entry makes that one import fail, and httpx then defines a stub `main` in its place
# (its `__init__` catches the ImportError); nothing else of httpx imports it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import httpx  # noqa: E402  (after the line above)
import typer  # noqa: E402

from foureyes.errors import BadInput, FoureyesError, Unauthenticated  # noqa: E402

__all__ = [
    "DEFAULT_SERVER",
    "Client",
    "InsecureHttpOpt",
    "ServerError",
    "ServerOpt",
    "check_server_url",
    "connect",
    "every_page",
]

# The most items the server gives in one page of a list.
PAGE_LIMIT = 200
# `foureyes serve`'s default address (and the demo's).
DEFAULT_SERVER = "http://127.0.0.1:8400"
# Connecting is quick or not at all; an operation may wait on a platform (a read, an execute).
TIMEOUT = httpx.Timeout(60.0, connect=5.0)

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="FOUREYES_SERVER",
        help=(
            "The foureyes server (or FOUREYES_SERVER). https://, or http:// to a loopback "
            "address only, unless --insecure-http."
        ),
    ),
]
InsecureHttpOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-http",
        help=(
            "Allow a plain http:// server that is not on this machine. Your token then "
            "crosses the network in clear: anyone on the path can act as you."
        ),
    ),
]


class ServerError(FoureyesError):
    """The server refused the call, could not be reached, or answered something unreadable.
    `details["answered"]` is the HTTP status when the server answered (absent when it did not)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def check_server_url(server: str, *, insecure_http: bool = False) -> httpx.URL:
    """The server's base URL; BadInput unless it is https, or http to a loopback address (a
    token must not cross a network in clear) or `insecure_http` allows it."""
    try:
        url = httpx.URL(server.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise BadInput(f"--server {server!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise BadInput(f"--server takes an http:// or https:// URL, not {server!r}")
    if url.scheme == "http" and not insecure_http and not _is_loopback(url.host):
        raise BadInput(
            f"refusing to send your token in clear to {url.host}: use https://, "
            "or --insecure-http if you accept that"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _tls_for(base: httpx.URL) -> ssl.SSLContext | bool:
    """What verifies TLS for `base`: httpx's default (certifi's CAs) for https://. For an
    http:// server no connection ever uses TLS (redirects are not followed), and loading
    certifi's CAs cost a staff command a tenth of its start: a context that trusts no CA
    stands in, so that a TLS connection, were one ever made, would fail closed."""
    if base.scheme == "https":
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and names; trusts none


class Client:
    """Calls to one foureyes server as the person whose token it is."""

    def __init__(self, base: httpx.URL, token: str) -> None:
        self.base = base
        self.where = str(base).rstrip("/")
        self._http = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=TIMEOUT,
            follow_redirects=False,
            verify=_tls_for(base),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the calls ------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """`GET /v1/me`: the token's owner (id, identity, name, groups)."""
        return self._call("GET", "/v1/me")

    def submit(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """`POST /v1/requests` with an `Idempotency-Key` (a fresh one unless given)."""
        return self._keyed("/v1/requests", body, idempotency_key)

    def list_requests(self, params: dict[str, Any]) -> dict[str, Any]:
        """`GET /v1/requests`: one page, `{"items", "next"}`."""
        return self._call("GET", "/v1/requests", params=params)

    def show(self, request_id: str) -> dict[str, Any]:
        """`GET /v1/requests/{id}`."""
        return self._call("GET", f"/v1/requests/{_segment(request_id)}")

    def review(self, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/requests/{id}/reviews`."""
        return self._call("POST", f"/v1/requests/{_segment(request_id)}/reviews", json=body)

    def post_review(self, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/requests/{id}/post-reviews`."""
        return self._call("POST", f"/v1/requests/{_segment(request_id)}/post-reviews", json=body)

    def cancel(self, request_id: str, reason: str) -> dict[str, Any]:
        """`POST /v1/requests/{id}/cancel`."""
        path = f"/v1/requests/{_segment(request_id)}/cancel"
        return self._call("POST", path, json={"reason": reason})

    def undo(
        self, request_id: str, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """`POST /v1/requests/{id}/undo` with an `Idempotency-Key` (a fresh one unless given):
        the new, reverse request."""
        return self._keyed(f"/v1/requests/{_segment(request_id)}/undo", body, idempotency_key)

    def execute(self, request_id: str) -> dict[str, Any]:
        """`POST /v1/requests/{id}/execute`: the request, with a read's `data` this once."""
        return self._call("POST", f"/v1/requests/{_segment(request_id)}/execute")

    def account(self, ref: str) -> dict[str, Any]:
        """`GET /v1/accounts/{ref}`: the account, its pins and tier."""
        return self._call("GET", f"/v1/accounts/{_segment(ref)}")

    def list_pins(self, params: dict[str, Any]) -> dict[str, Any]:
        """`GET /v1/pins`: the pinned accounts, `{"items", "next"}`."""
        return self._call("GET", "/v1/pins", params=params)

    def away(self, body: dict[str, Any] | None) -> dict[str, Any]:
        """`PUT /v1/me/away` with `body` (your away), or `DELETE` it when None."""
        if body is None:
            return self._call("DELETE", "/v1/me/away")
        return self._call("PUT", "/v1/me/away", json=body)

    def list_alerts(self, params: dict[str, Any]) -> dict[str, Any]:
        """`GET /v1/alerts`: one page, `{"items", "next"}`."""
        return self._call("GET", "/v1/alerts", params=params)

    def acknowledge_alert(self, alert_id: int, comment: str) -> dict[str, Any]:
        """`POST /v1/alerts/{id}/ack`: the alert, acknowledged."""
        return self._call("POST", f"/v1/alerts/{alert_id}/ack", json={"comment": comment})

    # --- batches ---------------------------------------------------------------------------

    def submit_batch(
        self, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """`POST /v1/batches` with an `Idempotency-Key` (a fresh one unless given)."""
        return self._keyed("/v1/batches", body, idempotency_key)

    def show_batch(self, batch_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/batches/{_segment(batch_id)}")

    def list_batches(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._call("GET", "/v1/batches", params=params)

    def review_batch(self, batch_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/v1/batches/{_segment(batch_id)}/reviews", json=body)

    def batch_proof(self, batch_id: str, position: int) -> dict[str, Any]:
        return self._call("GET", f"/v1/batches/{_segment(batch_id)}/proofs/{int(position)}")

    def undo_batch(
        self, batch_id: str, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """`POST /v1/batches/{id}/undo` with an `Idempotency-Key` (a fresh one unless given)."""
        return self._keyed(f"/v1/batches/{_segment(batch_id)}/undo", body, idempotency_key)

    def cancel_batch(self, batch_id: str, reason: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/v1/batches/{_segment(batch_id)}/cancel", json={"reason": reason}
        )

    # --- the one place answers and failures are read ----------------------------------------

    def _keyed(self, path: str, body: dict[str, Any], key: str | None) -> dict[str, Any]:
        """POST `body` to `path` with an `Idempotency-Key` (`key`, or a fresh one); a failure
        whose outcome is unknown says how to retry it safely, with that key."""
        key = key or str(uuid.uuid4())
        try:
            return self._call("POST", path, json=body, headers={"Idempotency-Key": key})
        except ServerError as exc:
            answered = exc.details.get("answered")
            if isinstance(answered, int) and answered < 500:
                raise  # refused: nothing was made (or a denial, recorded and named)
            raise ServerError(
                f"{exc.message}; to try again safely, repeat the command with "
                f"--idempotency-key {key} (it answers the request this call may have made "
                "instead of making a second)",
                **exc.details,
            ) from None

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServerError(f"the server at {self.where} did not answer in time") from None
        except httpx.ConnectError as exc:
            raise ServerError(
                f"cannot reach the server at {self.where} ({_one_line(str(exc)) or 'refused'}); "
                "is `foureyes serve` running there? (--server or FOUREYES_SERVER)"
            ) from None
        except httpx.HTTPError as exc:
            raise ServerError(
                f"the call to {self.where} failed: {_one_line(str(exc)) or type(exc).__name__}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise ServerError(
                f"the server at {self.where} answered {response.status_code} with {kind}, "
                "not JSON: is it a foureyes server?",
                answered=response.status_code,
            ) from None
        if response.is_success and isinstance(body, dict):
            return body
        raise _diagnosis(response.status_code, body, self.where)


def _segment(value: str) -> str:
    """`value` as one path segment (an id never reaches another route)."""
    return quote(value, safe="")


def _diagnosis(status: int, body: Any, where: str) -> FoureyesError:
    """The error of a non-2xx answer: its problem's title and detail, and for a policy denial
    the recorded request and its rules."""
    if not isinstance(body, dict) or "detail" not in body:
        return ServerError(
            f"the server at {where} answered {status} without a problem+json body",
            answered=status,
        )
    title = _one_line(str(body.get("title") or status))
    detail = _one_line(str(body.get("detail")))
    message = f"{title}: {detail}"
    request_id = body.get("request_id")
    # The request the problem is about (a denial's, an outcome-unknown's), unless the detail
    # already names it.
    extra = [f"request {request_id}"] if request_id and str(request_id) not in detail else []
    decision = body.get("decision")
    if isinstance(decision, dict):
        rules = ", ".join(
            str(rule.get("id")) for rule in decision.get("rules", []) if isinstance(rule, dict)
        )
        extra += [f"rules: {rules}"] if rules else []
    if extra:
        message += f" ({'; '.join(extra)})"
    if status == 401:
        return Unauthenticated(message)
    errors = body.get("errors")
    if isinstance(errors, list):  # a manifest's bad lines, one each (`foureyes batch request`)
        return ServerError(message, answered=status, errors=errors)
    return ServerError(message, answered=status)


def connect(server: str, token: str | None, *, insecure_http: bool = False) -> Client:
    """A client of `server` acting with `token`; refused before any call when there is no
    token or the URL would carry it in clear."""
    url = check_server_url(server, insecure_http=insecure_http)
    if not token:
        raise Unauthenticated("give your token with --token or FOUREYES_TOKEN")
    return Client(url, token)


def every_page(
    fetch: Callable[[dict[str, Any]], dict[str, Any]], query: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` items of a paged list (`{"items", "next"}` pages), following the server's
    cursors: `fetch(params)` asks for one page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while len(items) < limit:
        page = fetch(
            {**query, "limit": min(PAGE_LIMIT, limit - len(items))}
            | ({"cursor": cursor} if cursor else {})
        )
        items.extend(page.get("items", []))
        cursor = page.get("next")
        if not cursor:
            break
    return items[:limit]
