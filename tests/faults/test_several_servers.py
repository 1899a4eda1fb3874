"""Two `foureyes serve --no-worker` processes and one `foureyes worker` process on one fresh
PostgreSQL database, under a bounded load for about a minute, from a few client threads on
loopback that submit and review through both servers at once.

The load, per thread, cycles through units of work on accounts of its own (seeded on the demo
platform before it starts):

- *approve*: suspending a VIT account (two trust & safety approvals) or restoring it (one), the
  deciding approval sent by the same reviewer to both servers at the same moment: exactly one
  counts (200) and carries the request out, the other is refused (409);
- *deny*: a reviewer denies;
- *cancel race*: after the first approval, the second approval and the requester's cancel go to
  the two servers at the same moment: whichever wins, the request ends in one final state;
- *at once*: support locks or unlocks a standard account, carried out by the server itself.

Then whatever is still approved drains, and: every request is in exactly one final state, with
a chain of state events from its submission to it and enough approvals before it ran
(`checks.lifecycle_problems`); the platform's own record of applied writes (`chirp_applied`)
holds exactly the executed requests; `audit verify` passes and the log's size is the number of
event rows; no response was a 5xx, and none was unexpected. The throughput is
printed (the README's benchmark section quotes a run).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import select

from foureyes.connectors.demo_tables import ChirpAppliedRow
from foureyes.model import RequestState
from foureyes.store.tables import EventRow, RequestRow
from tests.faults.checks import lifecycle_problems
from tests.faults.servers import (
    FOUREYES,
    Process,
    Server,
    child_env,
    server_argv,
    services_of,
    start_server,
    verify_audit,
    wait_until,
)

# Bounds of the load: seconds (FAULTS_LOAD_SECONDS overrides, e.g. for a longer local run),
# units of work in all, client threads.
LOAD_SECONDS = float(os.environ.get("FAULTS_LOAD_SECONDS", "45"))
MAX_UNITS = 4000
THREADS = 4
ACCOUNTS_PER_THREAD = 6

TRUST_SAFETY = ["e-3001", "e-3002", "e-3003", "e-9001"]  # employees: may restore a VIT account
SUPPORT = ["e-2001", "c-1001"]


@dataclass
class Tally:
    """What the load did and saw; shared by the client threads (under `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: int = 0
    reviews: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    races: Counter[str] = field(default_factory=Counter)

    def saw(self, response: httpx.Response, expected: set[int], what: str) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code not in expected:
                self.unexpected.append(f"{what}: {response.status_code} {response.text[:300]}")


class Client:
    """One load thread: an HTTP client per server, the demo tokens, accounts of its own."""

    def __init__(self, number: int, servers: list[Server], tally: Tally) -> None:
        self.number = number
        self.servers = servers
        self.tokens = servers[0].tokens
        self.tally = tally
        self.http = [httpx.Client(base_url=s.base_url, timeout=60) for s in servers]
        self.vip = [f"vip{number}x{k}" for k in range(ACCOUNTS_PER_THREAD)]
        self.std = [f"std{number}x{k}" for k in range(ACCOUNTS_PER_THREAD)]
        self.last: dict[str, str] = {}  # account -> the last request that may change it
        self.locked: dict[str, bool] = dict.fromkeys(self.std, False)
        self.turn = itertools.count(number)
        self.pool = ThreadPoolExecutor(2)

    def close(self) -> None:
        self.pool.shutdown()
        for client in self.http:
            client.close()

    def _send(
        self, side: int, staff_id: str, method: str, path: str, body: Any, expected: set[int]
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[staff_id]}"}
        response = self.http[side % 2].request(method, path, headers=headers, json=body)
        self.tally.saw(response, expected, f"{method} {path} as {staff_id}")
        return response

    def _submit(self, side: int, staff_id: str, action: str, account: str) -> dict[str, Any]:
        body = {"action": action, "account": f"chirp:{account}"}
        response = self._send(side, staff_id, "POST", "/v1/requests", body, {201})
        response.raise_for_status()
        with self.tally.lock:
            self.tally.submitted += 1
        view: dict[str, Any] = response.json()
        return view

    def _review(
        self, side: int, staff_id: str, view: dict[str, Any], decision: str, expected: set[int]
    ) -> httpx.Response:
        body = {"decision": decision, "digest": view["digest"]}
        path = f"/v1/requests/{view['id']}/reviews"
        response = self._send(side, staff_id, "POST", path, body, expected)
        if response.status_code == 200:
            with self.tally.lock:
                self.tally.reviews += 1
        return response

    def _free_vip(self) -> tuple[str, str] | None:
        """A VIT account whose last request has finished, and its status (else None)."""
        for account in self.vip:
            last = self.last.get(account)
            if last is not None:
                view = self._send(0, "e-4001", "GET", f"/v1/requests/{last}", None, {200}).json()
                if not RequestState(view["state"]).final:
                    continue
            shown = self._send(1, "e-4001", "GET", f"/v1/accounts/chirp:{account}", None, {200})
            return account, shown.json()["attributes"]["status"]
        return None

    def unit(self) -> None:
        turn = next(self.turn)
        kind = ("approve", "at_once", "deny", "approve", "cancel_race")[turn % 5]
        side = turn % 2
        people = TRUST_SAFETY[turn % 4 :] + TRUST_SAFETY[: turn % 4]
        requester, first, second = people[0], people[1], people[2]
        if kind == "at_once":
            account = self.std[turn % ACCOUNTS_PER_THREAD]
            action = "account.unlock" if self.locked[account] else "account.lock"
            view = self._submit(side, SUPPORT[turn % 2], action, account)
            if view["state"] == "executed":
                self.locked[account] = not self.locked[account]
            return
        if kind == "deny":
            view = self._submit(side, requester, "account.suspend", self.vip[turn % 6])
            self._review(side + 1, first, view, "deny", {200})
            return
        free = self._free_vip()
        if free is None:  # the worker has not caught up with this thread's accounts: deny
            view = self._submit(side, requester, "account.suspend", self.vip[turn % 6])
            self._review(side + 1, first, view, "deny", {200})
            return
        account, status = free
        action = "account.unsuspend" if status == "suspended" else "account.suspend"
        view = self._submit(side, requester, action, account)
        self.last[account] = view["id"]
        approvers = [first, second] if action == "account.suspend" else [first]
        *early, deciding = approvers
        for staff_id in early:
            self._review(side + 1, staff_id, view, "approve", {200})
        if kind == "approve":
            both = [
                self.pool.submit(self._review, s, deciding, view, "approve", {200, 409})
                for s in (0, 1)
            ]
            codes = sorted(f.result().status_code for f in both)
            with self.tally.lock:
                self.tally.races[f"double review {codes}"] += 1
                if codes != [200, 409]:
                    self.tally.unexpected.append(f"double review of {view['id']}: {codes}")
            return
        # cancel race: the deciding approval and the requester's cancel, at once. A reviewer
        # who loses to the cancel may no longer act on it and never took part: to them it no
        # longer exists (404, foureyes.workflow.access); else the loser is a conflict.
        path = f"/v1/requests/{view['id']}/cancel"
        review = self.pool.submit(self._review, side, deciding, view, "approve", {200, 404, 409})
        cancel = self.pool.submit(
            self._send, side + 1, requester, "POST", path, {"reason": "race"}, {200, 409}
        )
        outcome = (review.result().status_code, cancel.result().status_code)
        with self.tally.lock:
            self.tally.races[f"approve/cancel {outcome}"] += 1


def _run_load(servers: list[Server]) -> tuple[Tally, float]:
    tally = Tally()
    clients = [Client(n, servers, tally) for n in range(THREADS)]
    units = itertools.count()
    started = time.monotonic()
    deadline = started + LOAD_SECONDS
    failures: list[BaseException] = []

    def drive(client: Client) -> None:
        try:
            while time.monotonic() < deadline and next(units) < MAX_UNITS:
                client.unit()
        except BaseException as exc:  # reported by the test, with the tally
            failures.append(exc)

    threads = [threading.Thread(target=drive, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LOAD_SECONDS + 120)
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()
    assert not failures, (failures, tally.unexpected[:10])
    return tally, elapsed


def test_two_servers_and_a_worker_on_one_postgresql(tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "demo"
    processes: list[Process] = []
    try:
        began = time.monotonic()
        first = start_server("serve-a", data, tmp_path, database_url=pg_url)  # makes the demo
        processes.append(first)
        # The second server and the worker start together (each takes seconds to import).
        worker = Process.start(
            "worker",
            [str(FOUREYES), "worker", "--interval", "0.2", "--data-dir", str(data)],
            child_env(pg_url),
            tmp_path,
        )
        processes.append(worker)
        second = Server.start(
            "serve-b", server_argv(data, worker=False), child_env(pg_url), tmp_path
        )
        processes.append(second)
        services = services_of(data, pg_url)
        seeded = services.connector("chirp").seed(  # type: ignore[attr-defined]
            [
                {"id": f"{prefix}{n}x{k}", "followers": followers, "verified": False}
                for prefix, followers in (("vip", 2_000_000), ("std", 10))
                for n in range(THREADS)
                for k in range(ACCOUNTS_PER_THREAD)
            ]
        )
        assert len(seeded) == 2 * THREADS * ACCOUNTS_PER_THREAD
        second.wait_ready()

        ready = time.monotonic()
        tally, elapsed = _run_load([first, second])
        loaded = time.monotonic()

        def drained() -> bool:
            with services.database.transaction() as session:
                open_states = [RequestState.APPROVED.value, RequestState.EXECUTING.value]
                waiting = session.scalars(
                    select(RequestRow.id).where(RequestRow.state.in_(open_states)).limit(1)
                ).first()
            return waiting is None

        wait_until(drained, "the worker to carry out what was approved")
        drained_after = time.monotonic()
        assert worker.alive(), worker.output()
        # Quiet before counting: the worker's detector pass goes on appending events
        # (`alert.raised`) after the requests have drained.
        for process in processes:
            process.stop()

        with services.database.transaction() as session:
            rows = list(session.scalars(select(RequestRow)))
            events = list(session.scalars(select(EventRow).order_by(EventRow.seq)))
            applied = set(session.scalars(select(ChirpAppliedRow.idempotency_key)))
        states = Counter(row.state for row in rows)
        executed = {row.id for row in rows if row.state == RequestState.EXECUTED.value}
        print(  # the figures the README quotes
            f"\nload {elapsed:.1f} s, {THREADS} threads: {tally.submitted} submitted "
            f"({tally.submitted / elapsed:.1f}/s), {tally.reviews} reviews "
            f"({tally.reviews / elapsed:.1f}/s), {len(executed)} executed "
            f"({len(executed) / elapsed:.1f}/s); states {dict(states)}; "
            f"HTTP {dict(tally.statuses)}; races {dict(tally.races)}; {len(events)} events; "
            f"start-up {ready - began:.1f} s, drain {drained_after - loaded:.1f} s"
        )

        assert not [s for s in tally.statuses if s >= 500], tally.unexpected[:10]
        assert tally.unexpected == []
        assert tally.submitted == len(rows) > 0
        assert all(RequestState(row.state).final for row in rows), states
        with services.database.transaction() as session:
            assert lifecycle_problems(session) == []  # includes: platform applied == executed
        assert applied == executed
        assert states[RequestState.EXECUTED.value] > 0
        assert states[RequestState.DENIED.value] > 0
        assert verify_audit(data, services).size == len(events)
        # Who carried requests out: the servers themselves, in the call that allowed it (a
        # submit) or completed its approvals (the deciding review) ("inline"); nothing on the
        # demo platform is left for the worker process, and `serve --no-worker` ran no worker.
        runners = Counter(
            json.loads(event.body)["worker"]
            for event in events
            if event.kind == "request.executing"
        )
        assert set(runners) == {"inline"}, runners
        services.database.dispose()
    finally:
        for process in processes:
            process.stop()
