"""The `http` connector: a platform that foureyes reaches through a signed webhook.

`POST {url}/actions` carries an approved action under its idempotency key, `GET
{url}/accounts/{id}` looks an account up, and `GET {url}/actions/{key}` tells reconciliation
whether a key was applied; every request is signed (`foureyes.webhook`). The protocol, the
answers and the retry rules: docs/webhooks.md. The HTTP plumbing here (`RetryPolicy`, `send`)
is shared with the `synapse` connector.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from foureyes.connectors.base import (
    Connector,
    ConnectorContext,
    ExecutionOrder,
    ExecutionResult,
    Reconciliation,
)
from foureyes.connectors.demo_catalog import DEMO_ACTIONS
from foureyes.connectors.memory import action_spec, check_params, settings_problem
from foureyes.errors import BadInput, ConnectorError, NotFound
from foureyes.model import Account, ActionKind, ActionSpec
from foureyes.policy.catalog import Attribute, declared, parse_attribute
from foureyes.policy.celtypes import (
    BOOL,
    DOUBLE,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    CelType,
    ListType,
    MapType,
    Nullable,
)
from foureyes.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

Sleep = Callable[[float], None]
USER_AGENT = "foureyes"
_MAX_MESSAGE = 300
# Requests that failed before any byte reached the server: safe to retry whatever they do.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


# --- shared HTTP plumbing ----------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient failures inside one connector call: `tries` requests in
    all, waiting `backoff` seconds before the second and twice as long before each next one,
    never more than `max_delay` (a server's `Retry-After` is honoured up to that)."""

    tries: int = 3
    backoff: float = 0.25
    max_delay: float = 2.0

    def delay(self, attempt: int, hint: float | None = None) -> float:
        wait = self.backoff * float(2 ** (attempt - 1))
        if hint is not None:
            wait = max(wait, hint)
        return max(0.0, min(wait, self.max_delay))


@functools.cache
def default_tls() -> ssl.SSLContext:
    """httpx's default TLS settings, built once: loading the CA bundle costs tens of
    milliseconds, and one context serves every client and thread."""
    return httpx.create_ssl_context()


def transient_status(status: int) -> bool:
    """A status that says "not now" rather than "no": 429 and every 5xx."""
    return status == 429 or status >= 500


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    who: str,
    retry: RetryPolicy,
    idempotent: bool = True,
    sleep: Sleep = time.sleep,
    headers: Callable[[], Mapping[str, str]] | None = None,
    content: bytes | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send one request, retrying transient failures as `retry` allows. Answers the last
    response, whatever its status (the caller translates it); raises ConnectorError for a
    request that got no response.

    A request that is not `idempotent` is retried only when it cannot have reached the server
    (the connection failed) or the server said 429. `headers` is called for each try, so that
    a signature carries the time it is sent. Messages name `who` and the failure, never a
    header (they carry credentials).
    """
    for attempt in range(1, retry.tries + 1):
        last = attempt == retry.tries
        try:
            response = client.request(
                method,
                url,
                content=content,
                params=params,
                headers=dict(headers()) if headers is not None else None,
            )
        except httpx.HTTPError as exc:
            error = transport_error(exc, who)
            if last or not error.transient or not (idempotent or isinstance(exc, _UNSENT)):
                raise error from None
            sleep(retry.delay(attempt))
            continue
        status = response.status_code
        if not last and transient_status(status) and (idempotent or status == 429):
            sleep(retry.delay(attempt, _retry_after(response)))
            continue
        return response
    raise AssertionError("unreachable: the last try returns or raises")  # pragma: no cover


def transport_error(exc: httpx.HTTPError, who: str) -> ConnectorError:
    """A request that got no response, as a ConnectorError: transient unless retrying cannot
    help (a URL with an unsupported scheme, redirect loops, an undecodable answer)."""
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


def url_setting(settings: Mapping[str, Any], connector: str, key: str = "url") -> str:
    """An http(s) base URL from the settings, without a trailing slash."""
    value = settings.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(f"connector {connector}: {key} is required (an http or https URL)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"connector {connector}: {key} must be an http or https URL")
    if parts.username or parts.password:
        raise BadInput(f"connector {connector}: {key} must not carry credentials")
    return value.rstrip("/")


def number_setting(
    settings: Mapping[str, Any], connector: str, key: str, default: float, *, low: float = 0.0
) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise BadInput(f"connector {connector}: {key} must be a number ≥ {low:g}")
    return float(value)


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


# --- the webhook connector ---------------------------------------------------------------------


_STANDARD_ACTIONS = {spec.name: spec for spec in DEMO_ACTIONS}
_NO_KEY_RECORD = (
    "keeps no record of idempotency keys that foureyes can ask (GET /actions/{key} answered "
    "404), so whether this request was applied cannot be told"
)


class HttpConnector(Connector):
    """A platform behind a signed webhook. Safe to call from several threads (one pooled
    `httpx.Client`). The secret lives only in this object's signing closure: it is in no
    repr, log line or error message."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        platform: str,
        actions: Sequence[ActionSpec],
        attributes: Mapping[str, Attribute | CelType],
        effects: Mapping[str, Mapping[str, Any]] | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.platform = platform
        self.url = url.rstrip("/")
        self._actions = tuple(actions)
        self._by_name = {spec.name: spec for spec in self._actions}
        if len(self._by_name) != len(self._actions):
            raise BadInput(f"connector {platform}: an action is declared twice")
        # A bare type declares a private attribute (fail closed: `declared`).
        self._attributes = {name: declared(entry) for name, entry in attributes.items()}
        self._effects = {name: dict(values) for name, values in (effects or {}).items()}
        for name, values in self._effects.items():
            if name not in self._by_name:
                raise BadInput(f"connector {platform}: effects name an unknown action {name!r}")
            unknown = sorted(set(values) - set(self._attributes))
            if unknown:
                raise BadInput(
                    f"connector {platform}: effects of {name} set undeclared attribute "
                    f"{unknown[0]!r}"
                )
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._sign: Callable[[str, str, bytes], str] = lambda method, url, body: sign(
            method, _target(url), body, secret, timestamp=int(self._clock())
        )
        self._client = httpx.Client(
            timeout=timeout,
            verify=default_tls(),
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    def __repr__(self) -> str:
        return f"HttpConnector(platform={self.platform!r}, url={self.url!r})"

    # --- the contract --------------------------------------------------------------------------

    def actions(self) -> tuple[ActionSpec, ...]:
        return self._actions

    def account_attributes(self) -> Mapping[str, Attribute]:
        return self._attributes

    def lookup(self, account_id: str) -> Account | None:
        """GET {url}/accounts/{id}: the declared attributes, or None on 404. Raises
        ConnectorError when the receiver fails or answers attributes of the wrong type."""
        attributes = self._get_attributes(account_id)
        if attributes is None:
            return None
        return Account(platform=self.platform, id=account_id, attributes=attributes)

    def execute(self, order: ExecutionOrder) -> ExecutionResult:
        """POST the order to {url}/actions. The receiver applies it once per idempotency key.
        NotFound on 404; ConnectorError(transient=True) for 5xx, 429, timeouts and connection
        failures once the retries are spent; ConnectorError(transient=False) for other 4xx."""
        spec = self.action(order.action)
        check_params(spec, order.params)
        body = _canonical(
            {
                "idempotency_key": order.idempotency_key,
                "platform": self.platform,
                "action": order.action,
                "account": order.account_id,
                "params": dict(order.params),
                "approvers": list(order.approvers),
                "requester": order.requester,
            }
        )
        url = f"{self.url}/actions"
        response = send(
            self._client,
            "POST",
            url,
            who=self._who,
            retry=self.retry,
            sleep=self._sleep,
            content=body,
            headers=lambda: {
                SIGNATURE_HEADER: self._sign("POST", url, body),
                IDEMPOTENCY_HEADER: order.idempotency_key,
                "Content-Type": "application/json",
            },
        )
        answer = self._answer(response, f"{order.action} on {order.account_id}")
        if answer is None:
            raise NotFound(f"{self.platform} has no account {order.account_id!r}")
        summary = answer.get("summary", {})
        data = answer.get("data")
        undo = answer.get("undo_params")
        if not isinstance(summary, Mapping) or not all(
            v is None or isinstance(v, Mapping) for v in (data, undo)
        ):
            raise ConnectorError(
                f"{self._who} answered {order.action} with a summary, data or undo_params that "
                "is not a JSON object (it was applied: check the platform)",
                transient=False,
            )
        return ExecutionResult(
            summary=dict(summary),
            data=None if data is None else dict(data),
            undo_params=None if undo is None else dict(undo),
        )

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        """Reads: not applied (do them again). Writes: what the receiver's record of the key
        says, `GET {url}/actions/{key}` (see the module docstring): True or False only from its
        explicit `applied`, else cannot tell (None, saying why). ConnectorError(transient=True)
        when it cannot be asked now."""
        spec = self.action(order.action)
        if spec.kind is ActionKind.READ:
            return Reconciliation(applied=False)
        key = order.idempotency_key
        url = f"{self.url}/actions/{quote(key, safe='')}"
        response = self._signed_get(url)
        try:
            answer = self._answer(response, f"the record of idempotency key {key}")
        except ConnectorError as exc:
            if exc.transient:
                raise
            return Reconciliation(applied=None, why=exc.message)
        if answer is None:
            return Reconciliation(applied=None, why=f"{self._who} {_NO_KEY_RECORD}")
        applied = answer.get("applied")
        if answer.get("idempotency_key") != key or not isinstance(applied, bool):
            return Reconciliation(
                applied=None,
                why=(
                    f"{self._who} answered GET /actions/{{key}} without "
                    '{"idempotency_key": <this key>, "applied": true|false}'
                ),
            )
        if not applied:
            return Reconciliation(applied=False)
        summary, undo = answer.get("summary"), answer.get("undo_params")
        return Reconciliation(
            applied=True,
            summary=dict(summary) if isinstance(summary, Mapping) else None,
            undo_params=dict(undo) if isinstance(undo, Mapping) else None,
        )

    def validate(self, order: ExecutionOrder) -> None:
        try:
            check_params(self.action(order.action), order.params)
        except ConnectorError as exc:
            raise BadInput(exc.message) from None

    def preview(self, order: ExecutionOrder) -> Mapping[str, Any]:
        """{attribute: [now, after]} for an action with declared effects; else empty."""
        effects = self._effects.get(order.action)
        if not effects:
            return {}
        attributes = self._get_attributes(order.account_id)
        if attributes is None:
            raise NotFound(f"{self.platform} has no account {order.account_id!r}")
        return {
            key: [attributes.get(key), value]
            for key, value in effects.items()
            if attributes.get(key) != value
        }

    def close(self) -> None:
        self._client.close()

    # --- inside --------------------------------------------------------------------------------

    def _signed_get(self, url: str) -> httpx.Response:
        """GET `url` signed (an empty body), retried as every call is (`send`)."""
        return send(
            self._client,
            "GET",
            url,
            who=self._who,
            retry=self.retry,
            sleep=self._sleep,
            headers=lambda: {SIGNATURE_HEADER: self._sign("GET", url, b"")},
        )

    @property
    def _who(self) -> str:
        return f"{self.platform} ({urlsplit(self.url).netloc})"

    def _get_attributes(self, account_id: str) -> dict[str, Any] | None:
        url = f"{self.url}/accounts/{quote(account_id, safe='')}"
        response = self._signed_get(url)
        answer = self._answer(response, f"the account {account_id}")
        if answer is None:
            return None
        reported = answer.get("attributes")
        if not isinstance(reported, Mapping):
            raise ConnectorError(
                f"{self._who} answered the account {account_id} without an attributes object",
                transient=False,
            )
        attributes: dict[str, Any] = {}
        for name, declaration in self._attributes.items():
            if name not in reported:
                raise ConnectorError(
                    f"{self._who} did not report the declared attribute {name!r}",
                    transient=False,
                )
            try:
                attributes[name] = coerce(reported[name], declaration.type)
            except (TypeError, ValueError) as exc:
                raise ConnectorError(
                    f"{self._who} reported attribute {name!r} as {exc}", transient=False
                ) from None
        return attributes

    def _answer(self, response: httpx.Response, what: str) -> dict[str, Any] | None:
        """The one place where the receiver's answers are translated: the JSON object of a 2xx
        (empty if there is none), None for 404, ConnectorError for everything else."""
        status = response.status_code
        if 200 <= status < 300:
            try:
                decoded = response.json() if response.content else {}
            except ValueError:
                decoded = {}
            return decoded if isinstance(decoded, dict) else {}
        if status == 404:
            return None
        reason = _short(_error_text(response))
        suffix = f": {reason}" if reason else ""
        if transient_status(status):
            raise ConnectorError(f"{self._who} failed on {what} ({status}){suffix}", transient=True)
        if status in (401, 403):
            raise ConnectorError(
                f"{self._who} refused foureyes' signature ({status}){suffix}: check that both "
                "sides hold the same secret and that the clocks agree",
                transient=False,
            )
        raise ConnectorError(f"{self._who} refused {what} ({status}){suffix}", transient=False)


def _error_text(response: httpx.Response) -> str:
    try:
        decoded = response.json()
    except ValueError:
        return ""
    if isinstance(decoded, dict):
        for key in ("error", "message", "detail"):
            if isinstance(decoded.get(key), str):
                return str(decoded[key])
    return ""


def _canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def coerce(value: Any, kind: CelType) -> Any:
    """`value` (decoded JSON) as the declared type; TypeError/ValueError naming what it is.
    Timestamps come as ISO 8601 strings."""
    if isinstance(kind, Nullable):
        return None if value is None else coerce(value, kind.inner)
    if kind == DYN:
        return value
    if kind == BOOL and isinstance(value, bool):
        return value
    if kind == INT and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == DOUBLE and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == STRING and isinstance(value, str):
        return value
    if kind == TIMESTAMP and isinstance(value, str):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a timestamp without a time zone")
        return moment
    if isinstance(kind, ListType) and isinstance(value, list):
        return [coerce(item, kind.elem) for item in value]
    if isinstance(kind, MapType) and isinstance(value, dict):
        return {coerce(k, kind.key): coerce(v, kind.value) for k, v in value.items()}
    raise TypeError(f"{type(value).__name__}, not {kind}")


_SETTINGS = (
    "url",
    "secret",
    "actions",
    "attributes",
    "effects",
    "timeout",
    "tries",
    "backoff",
    "max_delay",
)


def _action(entry: Any, connector: str) -> ActionSpec:
    if isinstance(entry, str):
        spec = _STANDARD_ACTIONS.get(entry)
        if spec is None:
            known = ", ".join(sorted(_STANDARD_ACTIONS))
            raise BadInput(
                f"connector {connector}: {entry!r} is not a standard action (known: {known}); "
                "declare it as a table"
            )
        return spec
    if not isinstance(entry, Mapping):
        raise BadInput(f"connector {connector}: each action is a name or a table")
    return action_spec(entry)


def create(name: str, settings: Mapping[str, Any], context: ConnectorContext) -> HttpConnector:
    """The `http` entry point. Settings: `url` (the receiver's base URL), `secret` (from
    `secret_file` or `secret_env`), `actions` (each the name of a standard action, e.g.
    `"account.suspend"`, with the same meaning as on the demo platform, or a table {name, kind,
    reversible_by, irreversible, reveals_private, params, description}), `attributes` ({name:
    type or {type, sensitivity, redacted_as}}, e.g. `followers = {type = "int", sensitivity =
    "public"}`; one whose sensitivity is not declared is private: `parse_attribute`), and
    optionally `effects` ({action: {attribute: value}}, for previews), `timeout` (seconds, 10),
    `tries` (3), `backoff` (seconds, 0.25), `max_delay` (2)."""
    del context  # everything is on the other side of the webhook
    problem = settings_problem(settings, _SETTINGS)
    if problem:
        raise BadInput(f"connector {name}: {problem}")
    entries = settings.get("actions")
    if not isinstance(entries, list) or not entries:
        raise BadInput(f"connector {name}: actions must list at least one action")
    written = settings.get("attributes", {})
    if not isinstance(written, Mapping):
        raise BadInput(f"connector {name}: attributes must be a table of name = type")
    try:
        attributes = {str(key): parse_attribute(spec) for key, spec in written.items()}
    except ValueError as exc:
        raise BadInput(f"connector {name}: attributes: {exc}") from None
    effects = settings.get("effects")
    if effects is not None and not (
        isinstance(effects, Mapping) and all(isinstance(v, Mapping) for v in effects.values())
    ):
        raise BadInput(
            f"connector {name}: effects must be a table of action = {{attribute = value}}"
        )
    return HttpConnector(
        url_setting(settings, name),
        secret_setting(settings, name, "secret"),
        platform=name,
        actions=[_action(entry, name) for entry in entries],
        attributes=attributes,
        effects=effects,
        timeout=number_setting(settings, name, "timeout", 10.0, low=0.1),
        retry=retry_setting(settings, name),
    )


def _target(url: str) -> str:
    """The request target httpx puts on the request line for `url` (path and query, encoded as
    sent), which is what the receiver sees and verifies."""
    return httpx.URL(url).raw_path.decode("ascii")
