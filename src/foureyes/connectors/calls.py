"""HTTP calls to platforms: the plumbing the `http` and `synapse` connectors share.

Every platform call runs under one overall deadline (settings' `platform_call_deadline`, 30 s by
default, or a connector's own `deadline`): a look-up, an execution or a reconciliation, with its
retries and back-offs. httpx's timeouts are per read and per write, so a platform that trickles
its answer a byte at a time, or keeps a connection open and never answers, would hold the
worker that called it for as long as it likes. So each HTTP request runs on an event loop (one
per process, on a daemon thread) and is cancelled when the deadline passes, whatever it is
waiting for (the connection, TLS, the headers, the body): the connection is closed and the
caller gets `DeadlineExceeded`, a transient `ConnectorError` whose outcome is unknown. An
execution cut short is reconciled from the platform's record (`workflow.reconcile`), never taken
as done or as not done; the worker goes on with other requests.

An order's tries are settled together (`send(order=True)`): once one of them may have reached
the platform unanswered, the call's outcome is unknown unless a later try is answered with a
success, whatever else the later tries are told.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import inspect
import ipaddress
import os
import re
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from foureyes.errors import BadInput, ConnectorError

T = TypeVar("T")
# A back-off between tries: `asyncio.sleep` (the default), or a plain callable in tests.
Sleep = Callable[[float], Awaitable[None] | None]
USER_AGENT = "foureyes"
_MAX_MESSAGE = 300
# Requests that failed before any byte reached the server: safe to retry whatever they do.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# How long past the deadline a caller waits for the cancelled request to wind down before it
# stops waiting anyway (the loop is never blocked for long: this is a last resort).
_GRACE = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient failures inside one connector call: `tries` requests in
    all, waiting `backoff` seconds before the second and twice as long before each next one,
    never more than `max_delay` (a server's `Retry-After` is honoured up to that). The call's
    deadline bounds them all."""

    tries: int = 3
    backoff: float = 0.25
    max_delay: float = 2.0

    def delay(self, attempt: int, hint: float | None = None) -> float:
        wait = self.backoff * float(2 ** (attempt - 1))
        if hint is not None:
            wait = max(wait, hint)
        return max(0.0, min(wait, self.max_delay))


class NotSent(ConnectorError):
    """A request that failed before any byte of it reached the platform (the connection was
    refused or could not be made): whatever it asked, nothing was done."""


class DeadlineExceeded(ConnectorError):
    """A platform call that did not finish within its deadline and was abandoned (its
    connection closed). Transient, and its outcome is unknown: an order may have been applied."""

    def __init__(self, who: str, deadline: float) -> None:
        super().__init__(
            f"{who} did not finish the call within its deadline ({deadline:g} s): abandoned",
            transient=True,
            outcome_unknown=True,
        )


@functools.cache
def default_tls() -> ssl.SSLContext:
    """httpx's default TLS settings, built once: loading the CA bundle costs tens of
    milliseconds, and one context serves every client and thread."""
    return httpx.create_ssl_context()


def transient_status(status: int) -> bool:
    """A status that says "not now" rather than "no": 429 and every 5xx."""
    return status == 429 or status >= 500


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    who: str,
    retry: RetryPolicy,
    idempotent: bool = True,
    sleep: Sleep = asyncio.sleep,
    headers: Callable[[], Mapping[str, str]] | None = None,
    content: bytes | None = None,
    params: Mapping[str, str] | None = None,
    order: bool = False,
    doubt: Callable[[httpx.Response], str | None] | None = None,
) -> httpx.Response:
    """Send one request, retrying transient failures as `retry` allows. Answers the last
    response, whatever its status (the caller translates it); raises ConnectorError for a
    request that got no response (`NotSent` when none of it left).

    A request that is not `idempotent` is retried only when it cannot have reached the server
    (the connection failed) or the server said 429. `headers` is called for each try, so that
    a signature carries the time it is sent. Messages name `who` and the failure, never a
    header (they carry credentials). No deadline here: `PlatformClient.send` puts one around.

    An `order` (a request that changes something) is settled by its tries together: once one
    of them may have reached the server without an answer that can be believed (sent, then
    the connection timed out or dropped; or answered with a response `doubt` gives a reason
    not to believe, such as a missing signature), what that try did is unknown whatever a
    later try is told: a 5xx, a 429, a refusal or a connection refused say nothing of it.
    Only a believed 2xx then settles the call (the server applies a key once and answers a
    repeat with its first answer); anything else raises ConnectorError(outcome_unknown=True).
    """
    unanswered: tuple[int, str] | None = None  # the first try that may have arrived unanswered
    for attempt in range(1, retry.tries + 1):
        last = attempt == retry.tries
        try:
            response = await client.request(
                method,
                url,
                content=content,
                params=params,
                headers=dict(headers()) if headers is not None else None,
            )
        except httpx.HTTPError as exc:
            error = transport_error(exc, who)
            if unanswered is None and may_have_arrived(exc):
                unanswered = (attempt, error.message)
            if last or not error.transient or not (idempotent or isinstance(error, NotSent)):
                if order and unanswered is not None:
                    raise _unknown(who, unanswered, attempt, error.message) from None
                raise error from None
            await _pause(sleep, retry.delay(attempt))
            continue
        status = response.status_code
        why_not = doubt(response) if doubt is not None else None
        if why_not is not None and unanswered is None:
            unanswered = (attempt, why_not)
        if not last and transient_status(status) and (idempotent or status == 429):
            await _pause(sleep, retry.delay(attempt, _retry_after(response)))
            continue
        if order and unanswered is not None and (why_not is not None or not 200 <= status < 300):
            raise _unknown(who, unanswered, attempt, why_not or f"{who} answered {status}")
        return response
    raise AssertionError("unreachable: the last try returns or raises")  # pragma: no cover


def may_have_arrived(exc: httpx.HTTPError) -> bool:
    """Whether a request that failed with `exc` may have reached the server (and been acted
    on): every failure but a connection that was never made, or a URL that cannot be sent."""
    return not isinstance(exc, (*_UNSENT, httpx.UnsupportedProtocol))


def _unknown(who: str, unanswered: tuple[int, str], tries: int, last: str) -> ConnectorError:
    """An order whose outcome the call cannot tell (`send`): `unanswered` is the first try that
    may have reached `who` unanswered (its number, what happened), `last` the last of `tries`."""
    first, what = unanswered
    if first == tries:
        said = f"{what} (try {first}): the order may have reached it; whether it was applied"
    else:
        said = (
            f"try {first} of the order may have reached {who} unanswered ({what}); the last, "
            f"try {tries}: {last}. The later tries' answers say nothing of that one: whether "
            "the order was applied"
        )
    return ConnectorError(f"{said} is unknown", transient=True, outcome_unknown=True)


async def _pause(sleep: Sleep, seconds: float) -> None:
    waited = sleep(seconds)
    if inspect.isawaitable(waited):
        await waited


def transport_error(exc: httpx.HTTPError, who: str) -> ConnectorError:
    """A request that got no response, as a ConnectorError: `NotSent` when it never left,
    transient unless retrying cannot help (a URL with an unsupported scheme, redirect loops,
    an undecodable answer)."""
    if isinstance(exc, _UNSENT):
        detail = _short(str(exc)) or type(exc).__name__
        return NotSent(f"{who} cannot be reached: {detail}", transient=True)
    if isinstance(exc, httpx.TimeoutException):
        return ConnectorError(
            f"{who} did not answer in time ({type(exc).__name__})", transient=True
        )
    detail = _short(str(exc)) or type(exc).__name__
    if isinstance(exc, _TRANSIENT):
        return ConnectorError(f"{who} cannot be reached: {detail}", transient=True)
    return ConnectorError(f"{who}: the request failed: {detail}", transient=False)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


# --- the deadline ------------------------------------------------------------------------------


class _Loop:
    """The process's event loop for platform calls, on a daemon thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        threading.Thread(
            target=self.loop.run_forever, name="foureyes platform calls", daemon=True
        ).start()

    def run(self, work: Coroutine[Any, Any, T], seconds: float) -> T:
        """`work`'s result, cancelling it after `seconds` (TimeoutError)."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(work, seconds), self.loop)
        try:
            return future.result(timeout=seconds + _GRACE)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError from None


_LOOPS: list[_Loop] = []  # the one loop of this process (a list: no `global` to rebind)
_LOOP_LOCK = threading.Lock()


def _the_loop() -> _Loop:
    with _LOOP_LOCK:
        if not _LOOPS or _LOOPS[-1].pid != os.getpid():  # a forked child makes its own
            _LOOPS[:] = [_Loop()]
        return _LOOPS[-1]


def run_within(work: Coroutine[Any, Any, T], seconds: float) -> T:
    """`work` run on the process's loop for outside calls and cancelled (its connections
    closed) once `seconds` have passed, whatever it waits for: TimeoutError then. The overall
    deadline httpx's per-read timeouts are not (also used by the ticket systems)."""
    return _the_loop().run(work, seconds)


class PlatformClient:
    """An HTTP client for one platform whose calls each run under one overall deadline of
    `deadline` seconds (module docstring). Safe to use from several threads.

    `send` bounds one request with its retries; `call()` opens a scope in which every `send`
    of this thread shares one deadline (a connector call that makes several requests)."""

    def __init__(
        self,
        *,
        who: str,
        deadline: float,
        timeout: float,
        headers: Mapping[str, str],
        verify: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.who = who
        self.deadline = deadline
        self._sleep: Sleep = sleep or asyncio.sleep
        self._client = httpx.AsyncClient(
            timeout=timeout,
            verify=verify or default_tls(),
            transport=transport,
            headers=dict(headers),
        )
        self._scope = threading.local()

    def __repr__(self) -> str:
        return f"PlatformClient(who={self.who!r}, deadline={self.deadline!r})"

    @contextmanager
    def call(self) -> Iterator[None]:
        """Everything this thread sends inside the block shares one deadline (an inner block
        keeps the outer one's)."""
        if getattr(self._scope, "until", None) is not None:
            yield
            return
        self._scope.until = time.monotonic() + self.deadline
        try:
            yield
        finally:
            self._scope.until = None

    def send(
        self,
        method: str,
        url: str,
        *,
        retry: RetryPolicy,
        idempotent: bool = True,
        headers: Callable[[], Mapping[str, str]] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        order: bool = False,
        doubt: Callable[[httpx.Response], str | None] | None = None,
    ) -> httpx.Response:
        """`send` (the module function) within the deadline: DeadlineExceeded once it has
        passed, the request cancelled and its connection closed."""
        until = getattr(self._scope, "until", None)
        left = self.deadline if until is None else until - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(self.who, self.deadline)
        request = send(
            self._client,
            method,
            url,
            who=self.who,
            retry=retry,
            idempotent=idempotent,
            sleep=self._sleep,
            headers=headers,
            content=content,
            params=params,
            order=order,
            doubt=doubt,
        )
        try:
            return _the_loop().run(request, left)
        except TimeoutError:
            raise DeadlineExceeded(self.who, self.deadline) from None

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError, httpx.HTTPError):  # best effort
            _the_loop().run(self._client.aclose(), _GRACE)


# --- settings ----------------------------------------------------------------------------------

# Plain http is allowed only to this machine: anywhere else the answers (and the orders) would
# cross the network without TLS.
_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_setting(settings: Mapping[str, Any], connector: str, key: str = "url") -> str:
    """An https base URL from the settings (plain http only to a loopback host), without a
    trailing slash."""
    value = settings.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(f"connector {connector}: {key} is required (an https URL)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"connector {connector}: {key} must be an http or https URL")
    if parts.username or parts.password:
        raise BadInput(f"connector {connector}: {key} must not carry credentials")
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise BadInput(
            f"connector {connector}: {key} must be an https URL: plain http is allowed only to "
            "a loopback host (127.0.0.0/8, ::1, localhost), since orders and answers would "
            "otherwise cross the network without TLS"
        )
    return value.rstrip("/")


def number_setting(
    settings: Mapping[str, Any], connector: str, key: str, default: float, *, low: float = 0.0
) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise BadInput(f"connector {connector}: {key} must be a number ≥ {low:g}")
    return float(value)


def deadline_setting(settings: Mapping[str, Any], connector: str, default: float) -> float:
    """The connector's `deadline` (seconds, 0.1 to 3600), else `default` (settings'
    `platform_call_deadline`)."""
    value = number_setting(settings, connector, "deadline", default, low=0.1)
    if value > 3600:
        raise BadInput(f"connector {connector}: deadline must be at most 3600 seconds")
    return value


def retry_setting(settings: Mapping[str, Any], connector: str) -> RetryPolicy:
    tries = settings.get("tries", RetryPolicy.tries)
    if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= 10:
        raise BadInput(f"connector {connector}: tries must be a whole number from 1 to 10")
    return RetryPolicy(
        tries=tries,
        backoff=number_setting(settings, connector, "backoff", RetryPolicy.backoff),
        max_delay=number_setting(settings, connector, "max_delay", RetryPolicy.max_delay),
    )


def secret_setting(settings: Mapping[str, Any], connector: str, key: str) -> str:
    value = settings.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(
            f"connector {connector}: {key} is required (give {key}_file or {key}_env, "
            "so that it is not written in the configuration)"
        )
    return value


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's body as a JSON object; empty for no body, one that is not JSON, or JSON
    that is not an object (a platform's error page, a proxy's answer)."""
    try:
        decoded = response.json() if response.content else {}
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


_CREDENTIAL = re.compile(r"(?i)\b(basic|bearer|token)(\s*[:=]?\s*)[A-Za-z0-9+/=._~-]{8,}")


# A form shorter than this is not masked: it would match unrelated text.
_MIN_CORE = 8


class SecretMask:
    """A connector's own secrets (an admin password, a token, a shared secret), in every form it
    sends them in, to mask in text a platform answers: a platform or a proxy in front of it may
    echo a secret back bare (`"bad password hunter2"`), not only as a header would carry it.
    Masked forms: the secret itself, its URL-encoded forms (every byte `%XX` too), its hex, and
    its base64 and base64url, and those of `user:secret` for each `basic_user` (HTTP Basic), at
    each of the three alignments it may have inside a longer encoded blob (a proxy echoing a
    whole request base64-encoded). Its repr shows none."""

    def __init__(self, *secrets: str, basic_users: tuple[str, ...] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            raw_secret = secret.encode()
            forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
            every_byte = "".join(f"%{b:02X}" for b in raw_secret)
            forms.update({every_byte, every_byte.lower()})
            forms.update({raw_secret.hex(), raw_secret.hex().upper()})
            for raw in (secret, *(f"{user}:{secret}" for user in basic_users)):
                forms.update(_base64_forms(raw.encode()))
        # Longest first, so that a form inside a longer one never leaves the rest of it; one
        # pass, so "[redacted]" itself is never masked again. A form shorter than _MIN_CORE is
        # left out: it would mangle every message (a real token or password is longer).
        self._forms = tuple(
            sorted((f for f in forms if len(f) >= _MIN_CORE), key=len, reverse=True)
        )
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in self._forms)) if self._forms else None
        )

    def __repr__(self) -> str:
        return f"SecretMask({len(self._forms)} forms)"

    def __call__(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub("[redacted]", text)


NO_SECRETS = SecretMask()


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 and base64url text that stands for `raw` whatever bytes come before or after
    it: for each alignment (0, 1 or 2 bytes before it), the characters that only `raw`'s own
    bits decide; also the whole encoding, padded and not, for `raw` alone."""
    found: set[str] = set()
    whole = base64.b64encode(raw).decode()
    found.update({whole, whole.rstrip("=")})
    for offset in (0, 1, 2):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        first = (offset * 8 + 5) // 6  # characters touched by the bytes before
        last = ((offset + len(raw)) * 8) // 6  # characters decided by these bytes alone
        core = encoded[first:last]
        if len(core) >= _MIN_CORE:
            found.add(core)
    found.update({f.replace("+", "-").replace("/", "_") for f in found})
    return found


def platform_text(text: str, mask: SecretMask = NO_SECRETS, *, limit: int = _MAX_MESSAGE) -> str:
    """Text a platform answered (an error's message), fit to become a request's reason, a log
    line or an audit event: the connector's own secrets (`mask`) are masked wherever they
    appear, and so are credentials written the way an Authorization header carries them
    (`Basic …`, `Bearer …`, `token=…`), since a proxy or a debugging platform may echo the
    request's own header back (attack run: `init` printed the PDS admin password). Then
    whitespace is collapsed and the text cut to `limit` characters: masking comes first, so a
    cut never leaves part of a secret unmasked."""
    masked = _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", mask(text))
    masked = " ".join(masked.split())
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"
