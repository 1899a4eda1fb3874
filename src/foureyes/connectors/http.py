"""The `http` connector: a platform that foureyes reaches through a signed webhook.

`POST {url}/actions` carries an approved action under its idempotency key and attempt number,
`GET {url}/accounts/{id}` looks an account up, and `POST {url}/actions/{key}/void` reconciles an
interrupted execution: the receiver answers "applied", or voids the key's attempts so far (a late
delivery of one is then refused), or "in progress". Every request is signed, and so is every
answer (`foureyes.webhook`): an answer without a valid signature is a platform failure, never a
success. The protocol, the answers and the retry rules: docs/webhooks.md. The HTTP plumbing
(`PlatformClient`, the deadline of every call) is in `connectors.calls`, shared with `synapse`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from foureyes.config import DEFAULT_PLATFORM_CALL_DEADLINE
from foureyes.connectors.base import (
    Connector,
    ConnectorContext,
    ExecutionOrder,
    ExecutionResult,
    Reconciliation,
    call_deadline,
)
from foureyes.connectors.calls import (
    NotSent,
    PlatformClient,
    RetryPolicy,
    SecretMask,
    Sleep,
    deadline_setting,
    json_object,
    number_setting,
    platform_text,
    retry_setting,
    secret_setting,
    transient_status,
    url_setting,
)
from foureyes.connectors.demo_catalog import DEMO_ACTIONS
from foureyes.connectors.memory import action_spec, check_params, settings_problem
from foureyes.connectors.setup import ConnectorSetup, SetupOption
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
from foureyes.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    sign,
    verify_answer,
)

__all__ = ["HttpConnector", "RetryPolicy", "coerce", "create"]


# --- the webhook connector ---------------------------------------------------------------------


_STANDARD_ACTIONS = {spec.name: spec for spec in DEMO_ACTIONS}
_NO_VOID = (
    "does not answer POST /actions/{key}/void (404), so this request cannot be fenced: whether "
    "it was applied, or still will be, cannot be told"
)
_VOID_SHAPE = (
    'answered POST /actions/{key}/void without {"idempotency_key": <this key>, "outcome": '
    '"applied" | "void" | "in_progress"} (and, for "void", the "attempt" voided through)'
)


class HttpConnector(Connector):
    """A platform behind a signed webhook. Safe to call from several threads (one pooled
    client). The secret lives only in this object's signing and checking closures: it is in no
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
        deadline: float = DEFAULT_PLATFORM_CALL_DEADLINE,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep | None = None,
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
        # Each try is signed afresh, with a nonce of its own: the receiver's signed answer
        # covers it, so an answer holds for that one request.
        self._sign: Callable[[str, str, bytes], str] = lambda method, url, body: sign(
            method,
            _target(url),
            body,
            secret,
            timestamp=int(self._clock()),
            nonce=secrets.token_hex(16),
        )
        self._check: Callable[[httpx.Response], None] = lambda response: _check_answer(
            response, secret
        )
        # The secret, in every form, masked in whatever text the receiver answers.
        self._mask = SecretMask(secret)
        self._http = PlatformClient(
            who=self._who,
            deadline=deadline,
            timeout=timeout,
            transport=transport,
            sleep=sleep,
            headers={"User-Agent": "foureyes"},
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
        """POST the order to {url}/actions. The receiver applies it once per idempotency key
        and answers a repeat (a retry of this call's tries, all of the same attempt) with its
        first answer. NotFound on 404; ConnectorError(transient=True) for 5xx and 429 once the
        retries are spent, and when the connection could not be made;
        ConnectorError(transient=False) for other 4xx. When the order may have reached the
        receiver and its answer is missing, late (the deadline) or not signed — on any try, not
        only the last: a later try's 5xx, 429, refusal or refused connection says nothing of an
        earlier one that may still be applied (`calls.send`, `order`) — or the receiver says it
        is in progress: ConnectorError(outcome_unknown=True), for reconciliation to void."""
        spec = self.action(order.action)
        check_params(spec, order.params)
        body = _canonical(
            {
                "idempotency_key": order.idempotency_key,
                "attempt": order.attempt,
                "platform": self.platform,
                "action": order.action,
                "account": order.account_id,
                "params": dict(order.params),
                "approvers": list(order.approvers),
                "requester": order.requester,
            }
        )
        what = f"{order.action} on {order.account_id}"
        try:
            response = self._post(
                f"{self.url}/actions", body, key=order.idempotency_key, order=True
            )
        except NotSent:  # no try of it reached the receiver (else `send` says unknown)
            raise
        except ConnectorError as exc:
            if exc.outcome_unknown:
                raise
            raise ConnectorError(
                f"{exc.message}; the order may have reached the receiver",
                transient=True,
                outcome_unknown=True,
            ) from None
        answer = self._answer(response, what, order=True)
        if answer is None:
            raise NotFound(f"{self.platform} has no account {order.account_id!r}")
        summary = answer.get("summary", {})
        data = answer.get("data")
        undo = answer.get("undo_params")
        if not isinstance(summary, Mapping) or not all(
            v is None or isinstance(v, Mapping) for v in (data, undo)
        ):
            # A write it says it applied, in a shape that cannot be kept: settled from the
            # receiver's record of the key (reconciliation), never ended `failed` while applied.
            write = spec.kind is ActionKind.WRITE
            raise ConnectorError(
                f"{self._who} answered {order.action} with a summary, data or undo_params that "
                "is not a JSON object" + (": it says it applied it" if write else ""),
                transient=write,
                outcome_unknown=write,
            )
        return ExecutionResult(
            summary=dict(summary),
            data=None if data is None else dict(data),
            undo_params=None if undo is None else dict(undo),
        )

    def reconcile(self, order: ExecutionOrder) -> Reconciliation:
        """Reads: not applied (do them again). Writes: `POST {url}/actions/{key}/void` with the
        attempt reconciled, which the receiver answers atomically: "applied" (True, with the
        first answer's summary and undo parameters), or "void" (False: it records the key's
        attempts through this one as void and will refuse any of them that arrives later), or
        "in progress" (ConnectorError(transient=True): asked again later). Anything else,
        a 404 (a receiver that cannot void) included, is None, saying why.
        ConnectorError(transient=True) when it cannot be asked now (5xx, 429, no answer, an
        answer without a valid signature)."""
        spec = self.action(order.action)
        if spec.kind is ActionKind.READ:
            return Reconciliation(applied=False)
        key = order.idempotency_key
        body = _canonical({"idempotency_key": key, "attempt": order.attempt})
        response = self._post(f"{self.url}/actions/{quote(key, safe='')}/void", body)
        try:
            answer = self._answer(response, f"the void of idempotency key {key}")
        except ConnectorError as exc:
            if exc.transient:
                raise
            return Reconciliation(applied=None, why=exc.message)
        if answer is None:
            return Reconciliation(applied=None, why=f"{self._who} {_NO_VOID}")
        outcome = answer.get("outcome")
        voided = answer.get("attempt")
        if answer.get("idempotency_key") != key or (
            outcome == "void" and not (isinstance(voided, int) and not isinstance(voided, bool))
        ):
            return Reconciliation(applied=None, why=f"{self._who} {_VOID_SHAPE}")
        if outcome == "in_progress":
            raise ConnectorError(
                f"{self._who}: the order with idempotency key {key} is still in progress at "
                "the receiver",
                transient=True,
            )
        if outcome == "void":
            assert isinstance(voided, int)
            if voided < order.attempt:
                return Reconciliation(
                    applied=None,
                    why=(
                        f"{self._who} voided attempts through {voided} only, not attempt "
                        f"{order.attempt}"
                    ),
                )
            return Reconciliation(applied=False)
        if outcome != "applied":
            return Reconciliation(applied=None, why=f"{self._who} {_VOID_SHAPE}")
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

    def probe(self) -> None:
        """One signed read (`GET {url}/accounts/foureyes-probe`): a signed answer, found or
        not, says the receiver is there and shares the secret."""
        self._get_attributes(PROBE_ACCOUNT)

    def close(self) -> None:
        self._http.close()

    # --- inside --------------------------------------------------------------------------------

    def _signed_get(self, url: str) -> httpx.Response:
        """GET `url` signed (an empty body), retried and bounded as every call is."""
        return self._http.send(
            "GET",
            url,
            retry=self.retry,
            headers=lambda: {SIGNATURE_HEADER: self._sign("GET", url, b"")},
        )

    def _post(
        self, url: str, body: bytes, *, key: str | None = None, order: bool = False
    ) -> httpx.Response:
        """POST `body` (JSON) to `url` signed, with its idempotency key when it has one. An
        `order`'s tries are settled together, an unsigned answer counting as none (`_doubt`)."""

        def headers() -> dict[str, str]:
            sent = {
                SIGNATURE_HEADER: self._sign("POST", url, body),
                "Content-Type": "application/json",
            }
            if key is not None:
                sent[IDEMPOTENCY_HEADER] = key
            return sent

        return self._http.send(
            "POST",
            url,
            retry=self.retry,
            content=body,
            headers=headers,
            order=order,
            doubt=self._doubt if order else None,
        )

    def _doubt(self, response: httpx.Response) -> str | None:
        """Why `response` is not the receiver's own answer (its signature is missing or
        wrong), or None when it is."""
        try:
            self._check(response)
        except SignatureError as exc:
            return (
                f"{self._who} answered ({response.status_code}) without a valid answer "
                f"signature ({exc}): not believed"
            )
        return None

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

    def _answer(
        self, response: httpx.Response, what: str, *, order: bool = False
    ) -> dict[str, Any] | None:
        """The one place where the receiver's answers are translated: the JSON object of a 2xx
        (empty if there is none), None for 404, ConnectorError for everything else. Only a
        signed answer is believed: one whose signature is missing or wrong is a failure
        (transient; for an `order`, whose fate it leaves unknown, outcome-unknown too), and so
        is an order the receiver says is in progress."""
        status = response.status_code
        try:
            self._check(response)
        except SignatureError as exc:
            raise ConnectorError(
                f"{self._who} answered {what} ({status}) without a valid answer signature "
                f"({exc}): not believed (do both sides hold the same secret?)",
                transient=True,
                outcome_unknown=order,
            ) from None
        if 200 <= status < 300:
            decoded = json_object(response)
            return decoded if isinstance(decoded, dict) else {}
        if status == 404:
            return None
        reason = platform_text(_error_text(response), self._mask)
        suffix = f": {reason}" if reason else ""
        if order and status == 409 and json_object(response).get("in_progress") is True:
            raise ConnectorError(
                f"{self._who}: {what} is in progress at the receiver{suffix}",
                transient=True,
                outcome_unknown=True,
            )
        if transient_status(status):
            raise ConnectorError(f"{self._who} failed on {what} ({status}){suffix}", transient=True)
        if status in (401, 403):
            raise ConnectorError(
                f"{self._who} refused foureyes' signature ({status}){suffix}: check that both "
                "sides hold the same secret and that the clocks agree",
                transient=False,
            )
        raise ConnectorError(f"{self._who} refused {what} ({status}){suffix}", transient=False)


def _check_answer(response: httpx.Response, secret: str) -> None:
    """SignatureError unless `response` carries the receiver's signature of this answer to
    this request (`foureyes.webhook.verify_answer`)."""
    request = response.request
    verify_answer(
        response.headers,
        response.status_code,
        response.content,
        secret,
        method=request.method,
        target=request.url.raw_path.decode("ascii"),
        request_body=request.content,
        request_signature=request.headers.get(SIGNATURE_HEADER, ""),
    )


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
    "deadline",
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


# The account `probe` asks the receiver for: any answer it signs will do.
PROBE_ACCOUNT = "foureyes-probe"

SETUP = ConnectorSetup(
    kind="http",
    platform="shop",
    summary="any platform, through a signed webhook receiver (docs/webhooks.md)",
    options=(
        SetupOption("url", "the receiver's base URL, e.g. https://shop.example/foureyes", True),
        SetupOption("secret", "the secret shared with the receiver", True, True),
        SetupOption("actions", 'the actions, as TOML: ["account.view", "account.suspend"]', True),
        SetupOption("attributes", 'the attributes, as TOML, e.g. {followers = "int"}'),
    ),
)


def create(name: str, settings: Mapping[str, Any], context: ConnectorContext) -> HttpConnector:
    """The `http` entry point. Settings: `url` (the receiver's base URL), `secret` (from
    `secret_file` or `secret_env`), `actions` (each the name of a standard action, e.g.
    `"account.suspend"`, with the same meaning as on the demo platform, or a table {name, kind,
    reversible_by, irreversible, reveals_private, params, description}), `attributes` ({name:
    type or {type, sensitivity, redacted_as}}, e.g. `followers = {type = "int", sensitivity =
    "public"}`; one whose sensitivity is not declared is private: `parse_attribute`), and
    optionally `effects` ({action: {attribute: value}}, for previews), `timeout` (seconds per
    read or write, 10), `deadline` (seconds per call in all, settings' `platform_call_deadline`),
    `tries` (3), `backoff` (seconds, 0.25), `max_delay` (2). `url` is https (plain http only to
    a loopback host)."""
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
        deadline=deadline_setting(settings, name, call_deadline(context)),
        retry=retry_setting(settings, name),
    )


def _target(url: str) -> str:
    """The request target httpx puts on the request line for `url` (path and query, encoded as
    sent), which is what the receiver sees and verifies."""
    return httpx.URL(url).raw_path.decode("ascii")
