"""The `http` connector: signed webhooks, bounded retries, one place translating answers; and
the reference receiver (examples/webhook_receiver.py), against which foureyes' lifecycle runs
for real over loopback HTTP."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from foureyes import bootstrap, worker
from foureyes.connectors.base import ExecutionOrder, make_connector
from foureyes.connectors.calls import NotSent, RetryPolicy, send
from foureyes.connectors.demo_catalog import DEMO_ACTIONS
from foureyes.connectors.http import HttpConnector, create
from foureyes.core.services import Actor, Services
from foureyes.errors import BadInput, ConnectorError, NotFound
from foureyes.model import ActionSpec, ReviewDecision
from foureyes.policy.catalog import private
from foureyes.policy.celtypes import INT, STRING, TIMESTAMP, Nullable
from foureyes.policy.directory import load_directory
from foureyes.store.database import Database
from foureyes.store.tables import AlertRow
from foureyes.webhook import (
    ANSWER_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    sign,
    sign_answer,
    verify,
    verify_answer,
)
from foureyes.workflow import operations
from foureyes.workflow.execute import MAX_ATTEMPTS
from foureyes.workflow.review import ReviewInput
from foureyes.workflow.submit import Submission
from tests.conftest import EXAMPLES

SECRET = "webhook-secret-0123456789"
SUSPEND = ExecutionOrder("account.suspend", "alice", {}, idempotency_key="req-1", requester="e-1")


def _load_receiver() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "webhook_receiver", EXAMPLES / "webhook_receiver.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["webhook_receiver"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


receiver_module = _load_receiver()


# --- against a scripted transport ----------------------------------------------------------------


def signed(request: httpx.Request, answer: httpx.Response, secret: str = SECRET) -> httpx.Response:
    """`answer` to `request`, signed as a receiver holding `secret` signs it."""
    header = sign_answer(
        answer.status_code,
        answer.content,
        secret,
        method=request.method,
        target=request.url.raw_path.decode("ascii"),
        request_body=request.content,
        request_signature=request.headers.get(SIGNATURE_HEADER, ""),
    )
    headers = {**answer.headers, ANSWER_SIGNATURE_HEADER: header}
    return httpx.Response(answer.status_code, headers=headers, content=answer.content)


@dataclass
class Script:
    """Answers requests from a list (the last one repeats), signed as the receiver signs them
    (unless `signing` is off), and records them."""

    answers: list[httpx.Response | Exception]
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    signing: bool = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return signed(request, answer) if self.signing else answer

    def connector(self, **kwargs: Any) -> HttpConnector:
        options: dict[str, Any] = {
            "platform": "shop",
            "actions": [create_spec("account.suspend"), create_spec("account.view")],
            "attributes": {"status": STRING, "followers": INT},
            "effects": {"account.suspend": {"status": "suspended"}},
        }
        options.update(kwargs)
        return HttpConnector(
            "http://shop.test/hooks/",
            SECRET,
            transport=httpx.MockTransport(self),
            sleep=self.sleeps.append,
            **options,
        )


def create_spec(name: str) -> ActionSpec:
    return next(spec for spec in DEMO_ACTIONS if spec.name == name)


@dataclass
class _Context:
    database: Any = None


def ok(body: dict[str, Any] | None = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {})


def test_an_order_is_posted_signed_with_its_idempotency_key() -> None:
    script = Script([ok({"summary": {"changes": {"status": ["active", "suspended"]}}})])
    order = ExecutionOrder(
        "account.suspend",
        "alice",
        {"reason": "spam"},
        idempotency_key="req-7",
        approvers=("e-3002", "e-3003"),
        requester="c-1001",
    )
    result = script.connector().execute(order)
    assert result.summary == {"changes": {"status": ["active", "suspended"]}}
    assert result.data is None
    (request,) = script.requests
    assert request.method == "POST"
    assert str(request.url) == "http://shop.test/hooks/actions"
    assert request.headers["Idempotency-Key"] == "req-7"
    assert verify(request.headers, "POST", "/hooks/actions", request.content, SECRET) <= time.time()
    assert json.loads(request.content) == {
        "idempotency_key": "req-7",
        "attempt": 0,
        "platform": "shop",
        "action": "account.suspend",
        "account": "alice",
        "params": {"reason": "spam"},
        "approvers": ["e-3002", "e-3003"],
        "requester": "c-1001",
    }


def test_a_lookup_is_a_signed_get_with_the_declared_attributes_typed() -> None:
    script = Script([ok({"attributes": {"status": "active", "followers": 12, "extra": "x"}})])
    account = script.connector().lookup("al ice/1")
    assert account is not None
    assert account.ref == "shop:al ice/1"
    assert dict(account.attributes) == {"status": "active", "followers": 12}
    (request,) = script.requests
    assert request.method == "GET"
    assert request.url.raw_path == b"/hooks/accounts/al%20ice%2F1"
    assert verify(request.headers, "GET", "/hooks/accounts/al%20ice%2F1", b"", SECRET) > 0
    # The signature is for that method on that path only: replayed elsewhere it fails.
    for method, target in (("GET", "/hooks/accounts/president"), ("POST", "/hooks/actions")):
        with pytest.raises(SignatureError, match="does not match"):
            verify(request.headers, method, target, b"", SECRET)


def test_a_missing_account_is_none_on_lookup_and_not_found_on_execute() -> None:
    script = Script([httpx.Response(404, json={"error": "no account"})])
    assert script.connector().lookup("ghost") is None
    with pytest.raises(NotFound, match="shop has no account 'ghost'"):
        script.connector().execute(
            ExecutionOrder("account.suspend", "ghost", {}, idempotency_key="k")
        )


@pytest.mark.parametrize(
    ("reported", "problem"),
    [
        ({"status": "active"}, "did not report the declared attribute 'followers'"),
        ({"status": "active", "followers": "12"}, "'followers' as str, not int"),
        ({"status": "active", "followers": True}, "'followers' as bool, not int"),
        ({"status": 1, "followers": 1}, "'status' as int, not string"),
    ],
)
def test_attributes_of_the_wrong_shape_are_refused(reported: dict[str, Any], problem: str) -> None:
    script = Script([ok({"attributes": reported})])
    with pytest.raises(ConnectorError, match=problem) as refused:
        script.connector().lookup("alice")
    assert not refused.value.transient


def test_timestamps_and_nullable_attributes() -> None:
    script = Script([ok({"attributes": {"created": "2020-05-01T10:00:00+00:00", "vendor": None}})])
    connector = script.connector(
        attributes={"created": TIMESTAMP, "vendor": Nullable(STRING)}, effects={}
    )
    account = connector.lookup("alice")
    assert account is not None
    assert account.attributes == {"created": datetime(2020, 5, 1, 10, tzinfo=UTC), "vendor": None}


def test_transient_failures_are_retried_with_a_short_doubling_backoff() -> None:
    script = Script([httpx.Response(503), httpx.Response(502), ok({"summary": {"n": 1}})])
    result = script.connector().execute(SUSPEND)
    assert result.summary == {"n": 1}
    assert len(script.requests) == 3
    assert script.sleeps == [0.25, 0.5]
    # every try is signed afresh and carries the same key
    assert {r.headers["Idempotency-Key"] for r in script.requests} == {"req-1"}


def test_retries_are_bounded_and_the_failure_is_transient() -> None:
    script = Script([httpx.Response(500, json={"error": "database is down"})])
    with pytest.raises(ConnectorError, match=r"failed on .* \(500\): database is down") as failed:
        script.connector(retry=RetryPolicy(tries=4, backoff=0.1, max_delay=0.3)).execute(SUSPEND)
    assert failed.value.transient
    assert len(script.requests) == 4
    assert script.sleeps == [0.1, 0.2, 0.3]


@pytest.mark.parametrize(
    ("error", "may_have_arrived"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), False),
        (httpx.ReadTimeout("timed out"), True),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), True),
    ],
)
def test_network_failures_are_transient_after_the_retries(
    error: Exception, may_have_arrived: bool
) -> None:
    """An order whose answer was lost may have been applied: its outcome is unknown (it is
    reconciled); one that never left was not."""
    script = Script([error])
    with pytest.raises(ConnectorError) as failed:
        script.connector().execute(SUSPEND)
    assert failed.value.transient
    assert failed.value.outcome_unknown is may_have_arrived
    assert "shop (shop.test)" in failed.value.message
    assert len(script.requests) == 3
    with pytest.raises(ConnectorError) as looked_up:
        Script([error]).connector().lookup("alice")
    assert looked_up.value.transient


LOST = httpx.ReadTimeout("timed out")  # a try that was sent and never answered
REFUSED = httpx.ConnectError("[Errno 111] Connection refused")


@pytest.mark.parametrize(
    ("answers", "tries"),
    [
        ([LOST, httpx.Response(500, json={"error": "database is down"})], 3),
        ([LOST, httpx.Response(429)], 3),
        ([LOST, REFUSED], 3),
        ([httpx.RemoteProtocolError("Server disconnected"), httpx.Response(503), REFUSED], 3),
        ([httpx.Response(500), LOST, httpx.Response(500)], 3),
        ([LOST, httpx.Response(409, json={"error": "cannot suspend: it is locked"})], 2),
        ([LOST, httpx.Response(404, json={"error": "no account alice"})], 2),
    ],
    ids=[
        "lost-then-500",
        "lost-then-429",
        "lost-then-refused",
        "dropped-503-refused",
        "500-lost-500",
        "lost-then-refusal",
        "lost-then-404",
    ],
)
def test_a_try_that_may_have_arrived_leaves_the_order_unknown_whatever_later_tries_get(
    answers: list[httpx.Response | Exception], tries: int
) -> None:
    """attack-p2 F1: a try sent and not answered may still be applied; a later try's 5xx,
    429, refusal, 404 or refused connection says nothing of it. The order's outcome is
    unknown (it is reconciled: voided), never a transient failure run again later as a fresh
    attempt, nor a refusal that ends the request."""
    script = Script(answers)
    with pytest.raises(ConnectorError) as failed:
        script.connector().execute(SUSPEND)
    assert failed.value.outcome_unknown
    assert failed.value.transient
    assert not isinstance(failed.value, (NotSent, NotFound))
    assert "of the order may have reached shop (shop.test) unanswered" in failed.value.message
    assert len(script.requests) == tries  # a refusal ends the tries, as before
    assert {r.headers["Idempotency-Key"] for r in script.requests} == {"req-1"}
    assert {json.loads(r.content)["attempt"] for r in script.requests} == {SUSPEND.attempt}


def test_an_unsigned_answer_to_an_earlier_try_leaves_the_order_unknown_too() -> None:
    """A proxy's 502 (unsigned) may come after the receiver got the order: that try was not
    answered either, whatever the receiver says to the next ones."""
    calls: list[httpx.Request] = []

    def proxy_then_receiver(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(502, text="<html>502 Bad Gateway</html>")
        return signed(request, httpx.Response(500, json={"error": "database is down"}))

    connector = HttpConnector(
        "http://shop.test/hooks/",
        SECRET,
        platform="shop",
        actions=[create_spec("account.suspend")],
        attributes={},
        transport=httpx.MockTransport(proxy_then_receiver),
        sleep=lambda _: None,
    )
    with pytest.raises(ConnectorError, match="without a valid answer signature") as failed:
        connector.execute(SUSPEND)
    assert failed.value.outcome_unknown
    assert len(calls) == 3


@pytest.mark.parametrize(
    "answers",
    [
        [LOST, ok({"summary": {"n": 1}})],  # the receiver's answer to a repeat: applied
        [
            httpx.RemoteProtocolError("Server disconnected"),
            httpx.Response(503),
            ok({"summary": {"n": 1}}),
        ],
    ],
)
def test_a_later_try_answered_with_success_settles_the_order(
    answers: list[httpx.Response | Exception],
) -> None:
    """The tries carry the same key and attempt: the receiver applies one of them and answers
    the others with that first answer, so a signed 2xx settles the call whatever came before."""
    script = Script(answers)
    assert script.connector().execute(SUSPEND).summary == {"n": 1}
    assert len(script.requests) == len(answers)


@pytest.mark.parametrize(
    "answers",
    [
        [REFUSED, httpx.Response(500), REFUSED],
        [httpx.Response(503), httpx.Response(429), httpx.Response(500)],
    ],
)
def test_tries_that_could_not_have_arrived_or_were_answered_are_a_plain_failure(
    answers: list[httpx.Response | Exception],
) -> None:
    """No try may have reached the receiver unanswered (each was refused at connection, or
    answered "not now" by the receiver itself): nothing was applied, the attempt failed and is
    run again later."""
    script = Script(answers)
    with pytest.raises(ConnectorError) as failed:
        script.connector().execute(SUSPEND)
    assert failed.value.transient
    assert not failed.value.outcome_unknown


def test_a_lookup_is_not_an_order() -> None:
    """A look-up changes nothing: a lost try before a 500 is a plain transient failure."""
    script = Script([LOST, httpx.Response(500)])
    with pytest.raises(ConnectorError) as failed:
        script.connector().lookup("alice")
    assert failed.value.transient
    assert not failed.value.outcome_unknown


def test_429_honours_retry_after_up_to_the_cap() -> None:
    script = Script([httpx.Response(429, headers={"Retry-After": "30"}), ok()])
    script.connector().execute(SUSPEND)
    assert script.sleeps == [2.0]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, r"refused account.suspend on alice \(400\): no such reason"),
        (409, r"refused account.suspend on alice \(409\): no such reason"),
        (422, r"\(422\): no such reason"),
        (401, "refused foureyes' signature"),
        (403, "refused foureyes' signature"),
    ],
)
def test_other_4xx_are_refusals_and_never_retried(status: int, message: str) -> None:
    script = Script([httpx.Response(status, json={"error": "no such reason"})])
    with pytest.raises(ConnectorError, match=message) as refused:
        script.connector().execute(SUSPEND)
    assert not refused.value.transient
    assert len(script.requests) == 1


def test_the_answer_may_carry_undo_params_and_they_must_be_an_object() -> None:
    script = Script([ok({"summary": {}, "undo_params": {"email": "old@shop.example"}})])
    assert script.connector().execute(SUSPEND).undo_params == {"email": "old@shop.example"}
    assert Script([ok({"summary": {}})]).connector().execute(SUSPEND).undo_params is None
    wrong = Script([ok({"summary": {}, "undo_params": ["old@shop.example"]})])
    with pytest.raises(ConnectorError, match="undo_params") as raised:
        wrong.connector().execute(SUSPEND)
    # applied, in a shape that cannot be kept: settled from the receiver's record of the key
    # (reconciled), never ended `failed` while the platform has it
    assert raised.value.outcome_unknown


def test_a_2xx_without_json_is_applied_with_an_empty_summary() -> None:
    script = Script([httpx.Response(204), httpx.Response(200, text="done")])
    assert script.connector().execute(SUSPEND).summary == {}
    assert script.connector().execute(SUSPEND).summary == {}


def test_a_non_idempotent_request_is_retried_only_when_it_cannot_have_arrived() -> None:
    sleeps: list[float] = []

    def post(script: Script) -> httpx.Response:
        client = httpx.AsyncClient(transport=httpx.MockTransport(script))
        call = send(client, "POST", "http://x/", who="x", retry=RetryPolicy(), idempotent=False,
                    sleep=sleeps.append)  # fmt: skip
        return asyncio.run(call)

    with pytest.raises(ConnectorError, match="did not answer in time"):
        post(Script([httpx.ReadTimeout("t")]))
    assert sleeps == []
    refused = Script([httpx.ConnectError("refused"), httpx.Response(503), ok()], signing=False)
    answer = post(refused)
    assert answer.status_code == 503  # connection refused: retried; 503: handed back
    assert len(refused.requests) == 2


def test_the_secret_is_in_no_repr_and_no_error() -> None:
    script = Script([httpx.Response(401, json={"error": "bad signature"})])
    connector = script.connector()
    assert SECRET not in repr(connector)
    assert SECRET not in repr(vars(connector))
    with pytest.raises(ConnectorError) as refused:
        connector.execute(SUSPEND)
    assert SECRET not in str(refused.value)


def test_preview_follows_the_declared_effects() -> None:
    suspended = ok({"attributes": {"status": "suspended", "followers": 1}})
    active = ok({"attributes": {"status": "active", "followers": 1}})
    assert Script([active]).connector().preview(SUSPEND) == {"status": ["active", "suspended"]}
    assert Script([suspended]).connector().preview(SUSPEND) == {}


def voided(outcome: str, key: str = "req-1", **rest: Any) -> httpx.Response:
    return ok({"idempotency_key": key, "outcome": outcome, **rest})


INTERRUPTED = ExecutionOrder(
    "account.suspend", "alice", {}, idempotency_key="req-1", requester="e-1", attempt=2
)


def test_reconcile_voids_the_key_at_the_receiver_never_asks_the_account() -> None:
    """Whether an interrupted order was applied comes from the receiver's record of its
    idempotency key, not from the account showing the action's effects (another request may
    have suspended it); and asking fences: `POST {url}/actions/{key}/void` with the attempt
    reconciled makes the receiver refuse that attempt (and earlier ones) if it arrives later."""
    script = Script([voided("void", attempt=2)])
    found = script.connector().reconcile(INTERRUPTED)
    assert found.applied is False
    (request,) = script.requests  # the account was not looked at
    assert request.method == "POST"
    assert str(request.url) == "http://shop.test/hooks/actions/req-1/void"
    verify(request.headers, "POST", "/hooks/actions/req-1/void", request.content, SECRET)
    assert json.loads(request.content) == {"idempotency_key": "req-1", "attempt": 2}
    applied = Script(
        [
            voided(
                "applied",
                summary={"changes": {"status": ["active", "suspended"]}},
                undo_params={},
            )
        ]
    ).connector()
    found = applied.reconcile(INTERRUPTED)
    assert found.applied is True
    assert found.summary == {"changes": {"status": ["active", "suspended"]}}
    assert found.undo_params == {}
    view = ExecutionOrder("account.view", "alice", {}, idempotency_key="r")
    reads = Script([voided("applied")])
    assert reads.connector().reconcile(view).applied is False  # a read runs again
    assert reads.requests == []


def test_an_order_in_progress_at_the_receiver_is_asked_about_again_later() -> None:
    with pytest.raises(ConnectorError, match="still in progress") as later:
        Script([voided("in_progress")]).connector().reconcile(INTERRUPTED)
    assert later.value.transient


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (httpx.Response(404, json={"error": "not found"}), "cannot be fenced"),
        (ok({"attributes": {"status": "suspended"}}), '"outcome"'),
        (ok({"outcome": "applied"}), '"outcome"'),  # whose key?
        (voided("applied", key="req-2"), '"outcome"'),
        (voided("yes"), '"outcome"'),
        (voided("void"), '"outcome"'),  # voided through which attempt?
        (voided("void", attempt=1), "voided attempts through 1 only, not attempt 2"),
        (ok({"idempotency_key": "req-1", "applied": False}), '"outcome"'),  # only asked
        (httpx.Response(401, json={"error": "bad signature"}), "refused foureyes' signature"),
    ],
)
def test_reconcile_without_an_explicit_answer_cannot_tell(answer: httpx.Response, why: str) -> None:
    found = Script([answer]).connector().reconcile(INTERRUPTED)
    assert found.applied is None
    assert why in found.why


def test_reconcile_when_the_receiver_is_down_is_asked_again_later() -> None:
    script = Script([httpx.Response(503)])
    with pytest.raises(ConnectorError) as failed:
        script.connector().reconcile(INTERRUPTED)
    assert failed.value.transient
    assert len(script.requests) == RetryPolicy().tries


# --- answers are signed --------------------------------------------------------------------------


def test_an_unsigned_or_forged_answer_is_never_a_success() -> None:
    """Someone between foureyes and the receiver (a proxy, or who can write to the connection)
    answers in the receiver's name: an order's "done", a reconciliation's "applied" or "void",
    an account's attributes. Unsigned, signed with another secret, or signed for another
    request, none is believed: the order's outcome is unknown (reconciled), the
    reconciliation is asked again later, the look-up fails."""
    done = ok({"summary": {"changes": {"status": ["active", "suspended"]}}})

    def forged(request: httpx.Request) -> httpx.Response:
        return signed(request, done, secret="not-the-shared-secret")

    captured: list[httpx.Response] = []

    def replayed(request: httpx.Request) -> httpx.Response:
        if not captured:  # the first answer is genuine, and captured
            captured.append(signed(request, done))
        return captured[0]

    for transport in (Script([done], signing=False), forged, replayed):
        connector = HttpConnector(
            "http://shop.test/hooks/",
            SECRET,
            platform="shop",
            actions=[create_spec("account.suspend")],
            attributes={"status": STRING},
            transport=httpx.MockTransport(transport),
            sleep=lambda _: None,
            retry=RetryPolicy(tries=1),
        )
        if transport is replayed:
            connector.execute(SUSPEND)  # the genuine answer, to another request
        with pytest.raises(ConnectorError, match="without a valid answer signature") as order:
            connector.execute(SUSPEND)
        assert order.value.transient
        assert order.value.outcome_unknown
        with pytest.raises(ConnectorError, match="without a valid answer signature") as asked:
            connector.reconcile(INTERRUPTED)
        assert asked.value.transient
        with pytest.raises(ConnectorError, match="without a valid answer signature"):
            connector.lookup("alice")


def test_an_answer_signature_covers_the_status_the_request_and_the_body() -> None:
    script = Script([ok({"summary": {}})])
    script.connector().execute(SUSPEND)
    (request,) = script.requests
    answer = signed(request, ok({"summary": {}}))
    seen = {
        "method": "POST",
        "target": "/hooks/actions",
        "request_body": request.content,
        "request_signature": request.headers[SIGNATURE_HEADER],
    }
    verify_answer(answer.headers, 200, answer.content, SECRET, **seen)
    assert ",n=" in request.headers[SIGNATURE_HEADER]  # a fresh nonce in every request
    for changed in (
        {"status": 202},
        {"body": b'{"summary":{"x":1}}'},
        {"request_body": request.content.replace(b"alice", b"bob")},
        {"target": "/hooks/actions/req-1/void"},
        {"request_signature": sign("POST", "/hooks/actions", request.content, SECRET)},
    ):
        args = {"status": 200, "body": answer.content, **seen, **changed}
        status, body = args.pop("status"), args.pop("body")
        with pytest.raises(SignatureError, match="does not match"):
            verify_answer(answer.headers, status, body, SECRET, **args)


def test_validate_checks_the_params_schema() -> None:
    connector = Script([ok()]).connector()
    connector.validate(SUSPEND)
    with pytest.raises(BadInput, match=r"bad parameters for account\.suspend"):
        connector.validate(ExecutionOrder("account.suspend", "a", {"bogus": 1}, idempotency_key=""))


# --- settings ------------------------------------------------------------------------------------


BASE = {"url": "https://hooks.shop.test/foureyes/", "secret": SECRET, "actions": ["account.view"]}


def test_create_from_settings() -> None:
    connector = create(
        "shop",
        {
            **BASE,
            "actions": [
                "account.suspend",
                {"name": "shop.refund", "kind": "write", "irreversible": True},
            ],
            "attributes": {"status": "string", "followers": "int"},
            "effects": {"account.suspend": {"status": "suspended"}},
            "tries": 5,
            "backoff": 0.5,
            "timeout": 3,
        },
        _Context(),
    )
    assert connector.platform == "shop"
    assert connector.url == "https://hooks.shop.test/foureyes"
    assert [a.name for a in connector.actions()] == ["account.suspend", "shop.refund"]
    # Declared by type alone: private (foureyes shows them redacted; docs/writing-a-connector.md).
    assert connector.account_attributes() == {"status": private(STRING), "followers": private(INT)}
    assert connector.retry == RetryPolicy(tries=5, backoff=0.5)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"secret": SECRET, "actions": ["account.view"]}, "url is required"),
        ({**BASE, "url": "ftp://x"}, "must be an http or https URL"),
        ({**BASE, "url": "https://user:pw@x"}, "must not carry credentials"),
        ({k: v for k, v in BASE.items() if k != "secret"}, "give secret_file or secret_env"),
        ({**BASE, "actions": []}, "at least one action"),
        ({**BASE, "actions": ["account.frobnicate"]}, "not a standard action"),
        ({**BASE, "attributes": {"n": "integer"}}, "unknown type"),
        ({**BASE, "effects": {"account.lock": {}}}, "unknown action 'account.lock'"),
        ({**BASE, "effects": {"account.view": {"n": 1}}}, "undeclared attribute 'n'"),
        ({**BASE, "tries": 0}, "tries must be"),
        ({**BASE, "backoff": -1}, "backoff must be"),
        ({**BASE, "retries": 3}, "unknown setting 'retries'"),
        ({**BASE, "deadline": 0}, "deadline must be a number"),
        ({**BASE, "deadline": 7200}, "deadline must be at most 3600"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(BadInput, match=problem) as refused:
        create("shop", settings, _Context())
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.shop.test/foureyes",
        "http://10.0.0.7:8088",
        "http://[fe80::1]:8088",
        "http://localhost.shop.test",
        "http://127.0.0.1.nip.io",
    ],
)
def test_plain_http_to_another_host_is_refused_at_load_naming_the_setting(url: str) -> None:
    """Orders, and the receiver's answers, would cross the network without TLS."""
    with pytest.raises(BadInput, match=r"connector shop: url must be an https URL") as refused:
        create("shop", {**BASE, "url": url}, _Context())
    assert "loopback" in refused.value.message
    assert SECRET not in refused.value.message


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8088", "http://127.3.2.1", "http://[::1]:8088", "http://localhost:8088/x"],
)
def test_plain_http_to_this_machine_is_allowed(url: str) -> None:
    assert create("shop", {**BASE, "url": url}, _Context()).url == url.rstrip("/")


def test_the_deadline_comes_from_the_settings_or_the_connector() -> None:
    @dataclass
    class Configured:
        database: Any = None
        call_deadline: float = 12.5

    assert create("shop", BASE, _Context())._http.deadline == 30.0
    assert create("shop", BASE, Configured())._http.deadline == 12.5
    assert create("shop", {**BASE, "deadline": 3}, Configured())._http.deadline == 3.0


def test_the_entry_point_builds_it() -> None:
    assert isinstance(make_connector("http", "shop", BASE, _Context()), HttpConnector)


# --- against the reference receiver --------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Any]:
    running = receiver_module.Receiver(
        SECRET,
        {
            "alice": {"status": "active", "followers": 120},
            "president": {"status": "active", "followers": 41_700_000},
        },
    ).start()
    yield running
    running.stop()


SHOP_SETTINGS: dict[str, Any] = {
    "actions": [
        "account.view",
        "account.suspend",
        "account.unsuspend",
        "account.deactivate",
        "account.reactivate",
    ],
    "attributes": {"status": "string", "followers": "int"},
    "effects": {
        "account.suspend": {"status": "suspended"},
        "account.unsuspend": {"status": "active"},
        "account.deactivate": {"status": "deactivated"},
        "account.reactivate": {"status": "active"},
    },
    "backoff": 0.01,
}


def shop(receiver: Any, **overrides: Any) -> HttpConnector:
    settings = {**SHOP_SETTINGS, "url": receiver.url, "secret": SECRET, **overrides}
    return create("shop", settings, _Context())


def test_the_receiver_applies_an_order_once_per_key(receiver: Any) -> None:
    connector = shop(receiver)
    first = connector.execute(SUSPEND)
    again = connector.execute(SUSPEND)
    assert (
        first.summary
        == again.summary
        == {
            "action": "account.suspend",
            "account": "alice",
            "changes": {"status": ["active", "suspended"]},
        }
    )
    assert receiver.accounts["alice"]["status"] == "suspended"
    assert list(receiver.applied) == ["req-1"]
    account = connector.lookup("alice")
    assert account is not None
    assert account.attributes == {"status": "suspended", "followers": 120}
    found = connector.reconcile(SUSPEND)
    assert found.applied is True
    assert found.summary == first.summary
    assert connector.lookup("nobody") is None


def test_the_receiver_answers_reconciliation_from_its_kept_keys(receiver: Any) -> None:
    """The account suspended by another order is not this order applied."""
    connector = shop(receiver)
    other = ExecutionOrder("account.suspend", "alice", {}, idempotency_key="req-other")
    connector.execute(other)
    assert receiver.accounts["alice"]["status"] == "suspended"
    assert connector.reconcile(SUSPEND).applied is False
    assert connector.reconcile(other).applied is True
    refused = ExecutionOrder("account.reactivate", "alice", {}, idempotency_key="req-refused")
    with pytest.raises(ConnectorError, match=r"\(409\)"):
        connector.execute(refused)  # alice is suspended, not deactivated
    assert connector.reconcile(refused).applied is False


def test_the_receiver_refuses_a_key_reused_for_another_order(receiver: Any) -> None:
    connector = shop(receiver)
    connector.execute(SUSPEND)
    other = ExecutionOrder("account.suspend", "president", {}, idempotency_key="req-1")
    with pytest.raises(ConnectorError, match=r"\(409\): this idempotency key was used") as refused:
        connector.execute(other)
    assert not refused.value.transient
    assert receiver.accounts["president"]["status"] == "active"


def test_a_wrong_secret_is_rejected_by_the_receiver(receiver: Any) -> None:
    """The receiver refuses the forger's requests; and its refusals, signed with the real
    secret, do not verify for the forger either: nothing it says is believed."""
    forger = shop(receiver, secret="not-the-shared-secret")
    with pytest.raises(ConnectorError, match="without a valid answer signature") as refused:
        forger.execute(SUSPEND)
    assert refused.value.outcome_unknown
    with pytest.raises(ConnectorError, match=r"\(401\) without a valid answer signature"):
        forger.lookup("alice")
    assert receiver.accounts["alice"]["status"] == "active"
    assert receiver.applied == {}
    assert receiver.rejected == ["the signature does not match"] * 2


def _post(receiver: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{receiver.url}/actions", content=body, headers=headers)


def test_the_receiver_rejects_unsigned_tampered_and_replayed_requests(receiver: Any) -> None:
    body = json.dumps(
        {"idempotency_key": "k1", "action": "account.suspend", "account": "alice", "params": {}}
    ).encode()
    assert _post(receiver, body, {}).status_code == 401
    signed = {SIGNATURE_HEADER: sign("POST", "/actions", body, SECRET), "Idempotency-Key": "k1"}
    tampered = body.replace(b"alice", b"president")
    assert _post(receiver, tampered, signed).status_code == 401
    stale = {
        SIGNATURE_HEADER: sign("POST", "/actions", body, SECRET, timestamp=int(time.time()) - 301)
    }
    assert _post(receiver, body, stale).status_code == 401
    assert receiver.accounts["president"]["status"] == "active"
    assert receiver.accounts["alice"]["status"] == "active"
    assert len(receiver.rejected) == 3
    # the genuine request, and a replay of it inside the window: applied once
    assert _post(receiver, body, signed).status_code == 200
    replay = _post(receiver, body, signed)
    assert replay.status_code == 200
    assert replay.json()["summary"]["changes"] == {"status": ["active", "suspended"]}
    assert list(receiver.applied) == ["k1"]


def test_a_captured_signed_lookup_does_not_verify_on_another_path(receiver: Any) -> None:
    """An attacker who captured foureyes' signed `GET /accounts/alice` replays its header,
    within the window, on the president's account and on the actions endpoint."""
    captured = {SIGNATURE_HEADER: sign("GET", "/accounts/alice", b"", SECRET)}
    assert httpx.get(f"{receiver.url}/accounts/alice", headers=captured).status_code == 200
    assert httpx.get(f"{receiver.url}/accounts/president", headers=captured).status_code == 401
    assert httpx.get(f"{receiver.url}/accounts/alice?x=1", headers=captured).status_code == 401
    assert _post(receiver, b"", captured).status_code == 401
    assert receiver.rejected == ["the signature does not match"] * 3


def test_the_receiver_keeps_applied_keys_across_a_restart(tmp_path: Path) -> None:
    """A signed order replayed within its window after the receiver restarted is answered
    from the kept keys, not applied again."""
    state = tmp_path / "receiver.json"
    accounts = {"alice": {"status": "active", "followers": 1}}
    body = json.dumps(
        {"idempotency_key": "k9", "action": "account.suspend", "account": "alice", "params": {}}
    ).encode()
    signed = {SIGNATURE_HEADER: sign("POST", "/actions", body, SECRET), "Idempotency-Key": "k9"}
    first = receiver_module.Receiver(SECRET, accounts, state=state).start()
    try:
        assert _post(first, body, signed).status_code == 200
    finally:
        first.stop()
    accounts["alice"]["status"] = "active"  # the platform reopened the account meanwhile
    second = receiver_module.Receiver(SECRET, accounts, state=state).start()
    try:
        replay = _post(second, body, signed)
    finally:
        second.stop()
    assert replay.status_code == 200
    assert accounts["alice"]["status"] == "active"  # not suspended a second time
    assert second.calls == 1
    assert list(second.applied) == ["k9"]


# --- the lifecycle, on the reference receiver ----------------------------------------------------

SHOP_POLICY = """
version: 1
tiers:
  - {name: vit, when: 'account.followers >= 1000000'}
  - {name: standard, when: "true"}
rules:
  - id: support-suspends-standard-accounts
    effect: allow
    actions: [account.view, account.suspend, account.unsuspend]
    when: '"support" in staff.groups && account.tier == "standard"'
  - id: vit-deactivation
    effect: require
    actions: [account.deactivate]
    when: 'account.tier == "vit"'
    approvals: 2
    approvers: '"trust-safety" in approver.groups && approver.employment == "employee"'
  - id: restore
    effect: require
    actions: [account.reactivate]
    when: '"trust-safety" in staff.groups'
    approvals: 1
    approvers: '"trust-safety" in approver.groups && approver.employment == "employee"'
"""


@dataclass
class Clock:
    now: datetime = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Shop:
    services: Services
    clock: Clock

    def actor(self, staff_id: str) -> Actor:
        with self.services.database.transaction() as session:
            person = self.services.staff(session, staff_id)
        return Actor(person, person.identities[0])

    def approve(self, staff_id: str, request_id: str) -> str:
        digest = operations.show(self.services, request_id)["digest"]
        return operations.review(
            self.services,
            self.actor(staff_id),
            request_id,
            ReviewInput(ReviewDecision.APPROVE, digest),
        )

    def run_until_settled(self, request_id: str, step: Callable[[], None]) -> dict[str, Any]:
        for _ in range(MAX_ATTEMPTS + 2):
            worker.run_once(self.services)
            view = operations.show(self.services, request_id)
            if view["state"] not in ("approved", "executing"):
                return view
            step()
        raise AssertionError("the request never settled")


def make_shop(database: Database, receiver: Any, **overrides: Any) -> Shop:
    clock = Clock()
    settings = {**SHOP_SETTINGS, "url": receiver.url, "secret": SECRET, **overrides}
    services = bootstrap.build_services(
        database, connectors={"shop": ("http", settings)}, clock=clock
    )
    operations.seed(
        services, policy_text=SHOP_POLICY, directory=load_directory(EXAMPLES / "staff.yaml")
    )
    return Shop(services, clock)


def test_a_vit_deactivation_runs_through_the_webhook_and_is_undone(
    database: Database, receiver: Any
) -> None:
    world = make_shop(database, receiver)
    kim = world.actor("c-1001")
    request_id = operations.submit(
        world.services, kim, Submission("account.deactivate", "shop:president")
    )
    assert world.approve("e-3002", request_id) == "pending"
    assert world.approve("e-3003", request_id) == "approved"
    assert worker.run_once(world.services).executed == [request_id]
    assert receiver.accounts["president"]["status"] == "deactivated"
    order = json.loads(json.dumps(receiver.applied[request_id].order))
    assert order[:2] == ["account.deactivate", "president"]

    # Mei, who approved it, undoes it (an undo is for those who may see the request).
    undo_id = operations.undo(world.services, world.actor("e-3002"), request_id, "CASE-1")
    assert world.approve("e-3003", undo_id) == "approved"
    worker.run_once(world.services)
    assert receiver.accounts["president"]["status"] == "active"
    assert operations.show(world.services, request_id)["state"] == "reverted"


def test_a_receiver_answering_500_ends_failed_after_bounded_retries(
    database: Database, receiver: Any
) -> None:
    world = make_shop(database, receiver)
    receiver.broken = True
    ana = world.actor("e-2001")
    request_id = operations.submit(world.services, ana, Submission("account.suspend", "shop:alice"))

    def later() -> None:
        world.clock.now += timedelta(hours=1)  # past any back-off

    view = world.run_until_settled(request_id, later)
    assert view["state"] == "failed"
    assert "(500)" in view["reason"]
    assert "transient, out of retries" in view["reason"]
    kinds = [event["kind"] for event in view["timeline"]]
    assert kinds.count("execution.retry") == MAX_ATTEMPTS - 1
    assert "request.executed" not in kinds
    assert receiver.calls == MAX_ATTEMPTS * 3  # each attempt: the connector's three tries
    assert receiver.accounts["alice"]["status"] == "active"
    assert receiver.applied == {}


def test_a_bad_signature_refuses_the_request_before_anything_is_recorded(
    database: Database, receiver: Any
) -> None:
    world = make_shop(database, receiver)
    receiver.secret = "rotated-on-the-receiver-only"  # foureyes' signatures no longer verify
    ana = world.actor("e-2001")
    with pytest.raises(ConnectorError, match=r"\(401\) without a valid answer signature"):
        operations.submit(world.services, ana, Submission("account.suspend", "shop:alice"))
    items, _ = operations.list_requests(world.services, ana, operations.ListFilter())
    assert items == []
    assert receiver.applied == {}
    assert receiver.rejected == ["the signature does not match"]


@pytest.mark.parametrize("asks_the_record", [True, False])
def test_an_interrupted_order_is_never_credited_with_another_requests_change(
    database: Database, receiver: Any, monkeypatch: pytest.MonkeyPatch, asks_the_record: bool
) -> None:
    """Issue #15 item 4, over the webhook: a suspension's process dies in the call before the
    receiver heard of it; another request suspends the same account; reconciliation must not
    call the first one executed. A receiver that answers `POST /actions/{key}/void` voids it
    ("not applied", and a late delivery of it would be refused): the request runs again as
    attempt 2 and is refused (the account is suspended already). One that does not (an older
    receiver) leaves it unknown: failed, with the reason. Both alert."""
    world = make_shop(database, receiver)
    if not asks_the_record:
        monkeypatch.setattr(receiver, "void", lambda key, n: (404, {"error": "not found"}))
    shop_connector = world.services.connectors["shop"]
    ana, kim = world.actor("e-2001"), world.actor("c-1001")  # both support
    first = operations.submit(world.services, ana, Submission("account.suspend", "shop:alice"))

    def dies(order: ExecutionOrder) -> None:
        raise SystemExit("killed during the platform call")

    with monkeypatch.context() as patched:
        patched.setattr(shop_connector, "execute", dies)
        with pytest.raises(SystemExit):
            operations.execute(world.services, first, worker="doomed")
    second = operations.submit(world.services, kim, Submission("account.suspend", "shop:alice"))
    assert worker.run_once(world.services).executed == [second]
    assert receiver.accounts["alice"]["status"] == "suspended"

    world.clock.now += world.services.execution_lease + timedelta(seconds=1)
    assert worker.run_once(world.services).reconciled == [first]
    if asks_the_record:
        assert operations.show(world.services, first)["state"] == "approved"
        worker.run_once(world.services)
    view = operations.show(world.services, first)
    assert view["state"] == "failed"
    if asks_the_record:
        assert "cannot account.suspend: the account is suspended" in view["reason"]
        assert receiver.voided == {first: 1}  # attempt 1 can never apply now
    else:
        assert "cannot be fenced" in view["reason"]
        assert "Check the platform by hand" in view["reason"]
    kinds = [event["kind"] for event in view["timeline"]]
    assert "request.executed" not in kinds
    assert list(receiver.applied) == [second, first] if asks_the_record else [second]
    with world.services.database.transaction() as session:
        (alert,) = session.scalars(
            select(AlertRow).where(
                AlertRow.request_id == first, AlertRow.detector == "execution_interrupted"
            )
        )
    assert alert.severity == ("medium" if asks_the_record else "high")
