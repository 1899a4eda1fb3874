#!/usr/bin/env python3
"""A reference receiver for foureyes' `http` connector, on the standard library alone.

It shows what a platform has to do to take foureyes' approved actions over a webhook:

1. verify every request's `Foureyes-Signature` (HMAC-SHA256 over the timestamp, the method, the
   request target and the body, with a replay window) before reading anything in it:
   `foureyes.webhook.verify` (a receiver without foureyes installed copies
   src/foureyes/webhook.py, which needs only the standard library);
2. apply each action at most once per idempotency key, kept across restarts (`--state`), and
   answer a repeat of the key with the first answer (foureyes retries, and a retry must not
   apply twice; an order replayed within the signature's window is such a repeat); refuse a
   key reused for a different order (409); answer a repeat that arrives while the first is
   still being applied with 409 `{"in_progress": true}`. The tries of one call carry the same
   attempt and may arrive in any order (a slow first try after a retry): whichever comes first
   is applied, the others get its answer. Answer 5xx or 429 only for an order that was not
   applied and will not be (nothing of it kept to apply later);
3. answer `GET /accounts/{id}` with the account's attributes, which is what foureyes' policy
   sees (tiers);
4. answer `POST /actions/{idempotency_key}/void` (`{"idempotency_key", "attempt"}`), which is
   how foureyes reconciles an execution interrupted mid-call, atomically with the orders:
   "applied" (with the first answer's `summary` and `undo_params`) if the key was applied;
   "in_progress" while an order of the key is being applied; else "void": the key's attempts up
   to `attempt` are recorded as void (kept across restarts, like the applied keys), and an order
   of one of them that arrives later is refused (409), never applied. foureyes then runs the
   request again as the next attempt, or ends it; either way the late order cannot apply
   (docs/reconciliation.md). `GET /actions/{idempotency_key}` says the same without voiding;
5. sign every answer, refusals included (`foureyes.webhook.sign_answer`: the status, the request
   it answers with its nonce, and the body), so that foureyes believes only what it said.

Its accounts live in memory: this is a reference and a test double, not a platform. Run it:

    FOUREYES_WEBHOOK_SECRET=… python examples/webhook_receiver.py --port 8088 \
        --account alice --account president:41700000

and connect foureyes to it in foureyes.toml (plain http only because it is on this machine:
anywhere else, put it behind https):

    [connectors.shop]
    kind = "http"
    url = "http://127.0.0.1:8088"
    secret_env = "FOUREYES_WEBHOOK_SECRET"
    actions = ["account.view", "account.lock", "account.unlock", "account.suspend",
               "account.unsuspend", "account.deactivate", "account.reactivate"]

    [connectors.shop.attributes]   # a type alone would be private: shown to staff redacted
    status = {type = "string", sensitivity = "public"}
    followers = {type = "int", sensitivity = "public"}

    [connectors.shop.effects]   # for previews: what each action would change
    "account.lock" = {status = "locked"}
    "account.unlock" = {status = "active"}
    "account.suspend" = {status = "suspended"}
    "account.unsuspend" = {status = "active"}
    "account.deactivate" = {status = "deactivated"}
    "account.reactivate" = {status = "active"}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from foureyes.webhook import (
    ANSWER_SIGNATURE_HEADER,
    DEFAULT_TOLERANCE,
    IDEMPOTENCY_HEADER,
    SignatureError,
    request_signature,
    sign_answer,
    verify,
)

MAX_BODY = 1_000_000

# action → (the status it applies to, the status it leaves)
STATUS_CHANGES: dict[str, tuple[str, str]] = {
    "account.lock": ("active", "locked"),
    "account.unlock": ("locked", "active"),
    "account.suspend": ("active", "suspended"),
    "account.unsuspend": ("suspended", "active"),
    "account.deactivate": ("active", "deactivated"),
    "account.reactivate": ("deactivated", "active"),
}
READS = {"account.view"}
_OUTAGE = "the receiver is broken (rehearsing an outage)"


@dataclass
class _Applied:
    order: tuple[str, str, str]  # action, account, canonical params: what the key was used for
    status: int
    answer: dict[str, Any]


@dataclass
class Receiver:
    """The receiver: `start()` serves it on a thread, `stop()` ends it. Thread-safe."""

    secret: str
    accounts: dict[str, dict[str, Any]]
    host: str = "127.0.0.1"
    port: int = 0
    tolerance: int = DEFAULT_TOLERANCE
    # Answer `broken_status` (500, or 429 to rehearse rate limiting) to every action and void
    # without doing it, to rehearse an outage. Such an answer means "not applied, and never
    # will be": nothing of the order is kept to be applied later.
    broken: bool = False
    broken_status: int = 500
    applied: dict[str, _Applied] = field(default_factory=dict)
    # The highest attempt voided, by idempotency key: an order of the key whose attempt is up
    # to it is refused. Kept in `state` with the applied keys.
    voided: dict[str, int] = field(default_factory=dict)
    # Where the applied and voided keys are kept across restarts (None: in memory only, for
    # tests). A receiver that forgot them on restart would apply a replayed or late order.
    state: Path | None = None
    in_progress: dict[str, int] = field(default_factory=dict)  # key → attempt, being applied
    refused_void: list[str] = field(default_factory=list)  # keys of orders refused as voided
    rejected: list[str] = field(default_factory=list)  # why each refused signature failed
    calls: int = 0
    # Test hook, to stage a slow platform: while the gate is shut (`hold()`), orders wait, in
    # progress, before they are applied, until `release()`.
    held: int = 0  # orders waiting at the gate now
    _gate: threading.Event = field(default_factory=threading.Event, repr=False)
    _waiting: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the receiver first"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> Receiver:
        self._gate.set()
        if self.state is not None and self.state.exists():
            saved = json.loads(self.state.read_text(encoding="utf-8"))
            self.applied = {
                key: _Applied(tuple(entry["order"]), entry["status"], entry["answer"])  # type: ignore[arg-type]
                for key, entry in saved["applied"].items()
            }
            self.voided = {key: int(n) for key, n in saved.get("voided", {}).items()}
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def hold(self) -> None:
        """From now on, orders wait in progress before they are applied (a slow platform)."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def wait_held(self, count: int = 1, timeout: float = 30.0) -> None:
        """Return once `count` orders wait at the gate (AssertionError after `timeout`)."""
        self.wait_until(lambda: self.held >= count, f"{count} order(s) never reached it", timeout)

    def wait_until(self, done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Return once `done()` holds, checked whenever an order or a void is answered
        (AssertionError saying `what` after `timeout`)."""
        with self._waiting:
            if not self._waiting.wait_for(done, timeout):
                raise AssertionError(what)

    def _changed(self) -> None:
        with self._waiting:
            self._waiting.notify_all()

    # --- what a platform does ------------------------------------------------------------------

    def account(self, account_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            found = self.accounts.get(account_id)
            if found is None:
                return 404, {"error": f"no account {account_id}"}
            return 200, {"id": account_id, "attributes": dict(found)}

    def record(self, key: str) -> tuple[int, dict[str, Any]]:
        """What the kept keys say of `key`, changing nothing: applied (a 2xx was answered for
        it) or not (yet), and whether an order of it is being applied."""
        with self._lock:
            done = self.applied.get(key)
            if done is not None and 200 <= done.status < 300:
                return 200, _applied_answer(key, done)
            return 200, {
                "idempotency_key": key,
                "applied": False,
                "in_progress": key in self.in_progress,
            }

    def void(self, key: str, attempt: int) -> tuple[int, dict[str, Any]]:
        """Reconciliation's question, answered atomically with the orders (module docstring):
        "applied", "in_progress", or "void" through `attempt`, kept before it is answered."""
        with self._lock:
            done = self.applied.get(key)
            if done is not None and 200 <= done.status < 300:
                return 200, {**_applied_answer(key, done), "outcome": "applied"}
            if key in self.in_progress:
                return 200, {"idempotency_key": key, "outcome": "in_progress"}
            if self.broken:
                return self.broken_status, {"error": _OUTAGE}
            fence = max(self.voided.get(key, 0), attempt)
            self.voided[key] = fence
            self._save()
        self._changed()
        return 200, {"idempotency_key": key, "outcome": "void", "attempt": fence}

    def act(self, order: Mapping[str, Any], header_key: str | None) -> tuple[int, dict[str, Any]]:
        """Apply one order once per idempotency key; a repeat gets the first answer; an order
        of a voided attempt is refused, and one that arrives while its key is being applied is
        told so (409 `in_progress`)."""
        key = order.get("idempotency_key")
        action, account_id = order.get("action"), order.get("account")
        attempt = order.get("attempt", 0)
        if not isinstance(key, str) or not key or (header_key and header_key != key):
            return 400, {"error": "missing or inconsistent idempotency key"}
        if not isinstance(action, str) or not isinstance(account_id, str):
            return 400, {"error": "an order names an action and an account"}
        if isinstance(attempt, bool) or not isinstance(attempt, int):
            return 400, {"error": "attempt must be a whole number"}
        params = json.dumps(order.get("params", {}), sort_keys=True)
        fingerprint = (action, account_id, params)
        with self._lock:
            self.calls += 1
            if attempt <= self.voided.get(key, -1):  # refused, whatever happened since
                self.refused_void.append(key)
                return 409, {
                    "error": (
                        f"attempt {attempt} of this idempotency key was voided by foureyes' "
                        "reconciliation: not applied"
                    ),
                    "voided": True,
                }
            done = self.applied.get(key)
            if done is not None:
                if done.order != fingerprint:
                    return 409, {"error": "this idempotency key was used for another order"}
                return done.status, done.answer
            if key in self.in_progress:
                return 409, {"error": "an order with this key is in progress", "in_progress": True}
            if self.broken:
                return self.broken_status, {"error": _OUTAGE}
            self.in_progress[key] = attempt
        try:
            self._wait_at_gate()
            with self._lock:
                status, answer = self._apply(action, account_id)
                if status < 500:  # a server error may go better next time: not remembered
                    self.applied[key] = _Applied(fingerprint, status, answer)
                    self._save()
                del self.in_progress[key]  # with the record: a void sees one or the other
            return status, answer
        finally:
            with self._lock:
                self.in_progress.pop(key, None)
            self._changed()

    def _wait_at_gate(self) -> None:
        if self._gate.is_set():
            return
        with self._waiting:
            self.held += 1
            self._waiting.notify_all()
        try:
            self._gate.wait()
        finally:
            with self._waiting:
                self.held -= 1

    def _save(self) -> None:
        """Write the applied and voided keys to `state` (atomically: a crash leaves the old or
        the new file, never half of one) before answering, so a restart still knows them."""
        if self.state is None:
            return
        entries = {
            key: {"order": list(done.order), "status": done.status, "answer": done.answer}
            for key, done in self.applied.items()
        }
        partial = self.state.with_suffix(".tmp")
        with partial.open("w", encoding="utf-8") as out:
            json.dump({"applied": entries, "voided": self.voided}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.state)

    def _apply(self, action: str, account_id: str) -> tuple[int, dict[str, Any]]:
        account = self.accounts.get(account_id)
        if account is None:
            return 404, {"error": f"no account {account_id}"}
        summary: dict[str, Any] = {"action": action, "account": account_id}
        if action in READS:
            return 200, {"summary": summary, "data": dict(account)}
        change = STATUS_CHANGES.get(action)
        if change is None:
            return 422, {"error": f"this platform does not know {action}"}
        before, after = change
        if account.get("status") != before:
            return 409, {"error": f"cannot {action}: the account is {account.get('status')}"}
        account["status"] = after
        summary["changes"] = {"status": [before, after]}
        return 200, {"summary": summary}


def _applied_answer(key: str, done: _Applied) -> dict[str, Any]:
    answer: dict[str, Any] = {"idempotency_key": key, "applied": True}
    answer.update({k: v for k, v in done.answer.items() if k in ("summary", "undo_params")})
    return answer


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "foureyes-reference-receiver"

        def log_message(self, format: str, *args: Any) -> None:
            if os.environ.get("RECEIVER_LOG"):
                super().log_message(format, *args)

        request_body = b""

        def _answer(self, status: int, body: Mapping[str, Any]) -> None:
            """Every answer is signed: its status and body, for the request it answers."""
            content = json.dumps(body).encode()
            signed = sign_answer(
                status,
                content,
                receiver.secret,
                method=self.command,
                target=self.path,
                request_body=self.request_body,
                request_signature=request_signature(self.headers),
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.send_header(ANSWER_SIGNATURE_HEADER, signed)
            self.end_headers()
            self.wfile.write(content)

        def _verified_body(self) -> bytes | None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": "too large"})
                return None
            body = self.rfile.read(length) if length else b""
            self.request_body = body
            try:
                verify(
                    self.headers,
                    self.command,
                    self.path,
                    body,
                    receiver.secret,
                    tolerance=receiver.tolerance,
                )
            except SignatureError as exc:
                with receiver._lock:
                    receiver.rejected.append(str(exc))
                self._answer(401, {"error": f"bad signature: {exc}"})
                return None
            return body

        def do_GET(self) -> None:
            if self._verified_body() is None:
                return
            path = urlsplit(self.path).path
            if path.startswith("/actions/"):
                self._answer(*receiver.record(unquote(path.removeprefix("/actions/"))))
                return
            if not path.startswith("/accounts/"):
                self._answer(404, {"error": "not found"})
                return
            self._answer(*receiver.account(unquote(path.removeprefix("/accounts/"))))

        def do_POST(self) -> None:
            body = self._verified_body()
            if body is None:
                return
            path = urlsplit(self.path).path
            void = path.startswith("/actions/") and path.endswith("/void")
            if path != "/actions" and not void:
                self._answer(404, {"error": "not found"})
                return
            try:
                order = json.loads(body)
            except ValueError:
                self._answer(400, {"error": "the body is not JSON"})
                return
            if not isinstance(order, dict):
                self._answer(400, {"error": "the body is not a JSON object"})
                return
            if not void:
                self._answer(*receiver.act(order, self.headers.get(IDEMPOTENCY_HEADER)))
                return
            key = unquote(path.removeprefix("/actions/").removesuffix("/void"))
            attempt = order.get("attempt")
            if (
                order.get("idempotency_key") != key
                or isinstance(attempt, bool)
                or not isinstance(attempt, int)
            ):
                self._answer(400, {"error": "a void names its idempotency key and attempt"})
                return
            self._answer(*receiver.void(key, attempt))

    return Handler


def _accounts(specs: Iterable[str]) -> dict[str, dict[str, Any]]:
    accounts = {}
    for spec in specs:
        name, _, followers = spec.partition(":")
        accounts[name] = {"status": "active", "followers": int(followers or 0)}
    return accounts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--secret-env", default="FOUREYES_WEBHOOK_SECRET")
    parser.add_argument(
        "--state",
        type=Path,
        default=Path("webhook-receiver-state.json"),
        help="where applied and voided idempotency keys are kept across restarts",
    )
    parser.add_argument(
        "--account", action="append", default=[], help="an account, `id` or `id:followers`"
    )
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env)
    if not secret:
        print(f"set {args.secret_env} to the secret shared with foureyes", file=sys.stderr)
        return 2
    receiver = Receiver(
        secret, _accounts(args.account), host=args.host, port=args.port, state=args.state
    ).start()
    print(f"receiving foureyes' actions at {receiver.url} (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
