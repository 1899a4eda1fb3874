"""The console's inbox with 200 requests waiting for the reviewer: latency of its GET.

The bench starts the real server (`foureyes serve --demo` on a fresh data directory, SQLite or
PostgreSQL as `bench/api.py`, 1 serving process by default), has the support agent `e-2001`
ask `account.suspend` on `--pending` (default 200) very important accounts of the chirp demo
platform (each pending: rule `vit-suspension` wants two approvals by trust & safety), and signs
two people in to the console as a browser does (`GET /console/login` for the login-state cookie
and its CSRF token, then `POST /console/login` with a token from `foureyes staff token`): the
reviewer `e-3001` (trust & safety: all of them wait for him) and `e-5001` (legal: nothing waits
for her). Then, `--gets` times each, interleaved (one of each per round, one at a time, on
keep-alive connections), after `--warmup` rounds:

- `GET /console/inbox` as the reviewer: the page (the first 20 of the 200, each with its
  context: requester, account, what will change, the review form), checked to hold 20 cards
  and to say that more wait;
- `GET /console/` as the reviewer: the home page (counts what waits, lists his own);
- `GET /console/inbox` as `e-5001`: the same page with nothing waiting (the page's fixed cost);
- `GET /v1/requests?reviewable=true&limit=20` as the reviewer: the same list as JSON, from
  the API;
- `GET /v1/me` as the reviewer: a token check and a small answer (the floor).

Reported: the latency seen by the client (from sending the request to the whole body read;
client and server on the same machine, one request at a time, so it is the server's time plus
loopback and httpx), p50, p90, p99 and max, and the server's CPU per GET (user + system of its
processes around each call, summed per row). The target: p99 < 100 ms for the inbox with 200
waiting.

Browsers send the session cookie (`Secure`) to http://localhost; httpx sends Secure cookies
over https only, so the bench sends the console's cookies itself, in a `Cookie` header.

    uv run python bench/inbox.py                    # SQLite and PostgreSQL
    uv run python bench/inbox.py --no-pg --gets 200
    uv run python bench/inbox.py --no-pg --profile  # then the inbox's CPU by layer (py-spy)

The machine, the settings and a Markdown table go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _common import (
    DEFAULT_PG_URL,
    REQUESTER,
    STORY_ACTION,
    DemoServer,
    demo_server,
    header,
    issue_tokens,
    load_average,
    maybe_pg,
    note,
    now_utc,
    percentile,
    vit_accounts,
)
from api import group_cpu_seconds, settle
from stories import Profile, profiling, py_spy, read_profile

REVIEWER = "e-3001"  # trust & safety: every pending suspension waits for him
NOBODY_WAITS = "e-5001"  # legal: nothing waits for her
TARGET_P99_MS = 100.0
PAGE = 20  # the inbox shows the first 20
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">|name="csrf" value="([^"]+)"')
CARD = 'class="card inbox-item"'
INBOX_200 = "GET /console/inbox (200 waiting)"


@dataclass
class Row:
    label: str
    database: str
    fetch: Callable[[], httpx.Response]
    check: Callable[[httpx.Response], str | None]  # what is wrong with the answer, or None
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0


def _cookies(response: httpx.Response) -> dict[str, str]:
    """The cookies a response sets (name → value), whatever their attributes."""
    found = {}
    for line in response.headers.get_list("set-cookie"):
        name, _, value = line.split(";", 1)[0].partition("=")
        found[name.strip()] = value.strip()
    return found


def console_session(base: str, token: str) -> httpx.Client:
    """A client signed in to the console with `token`, as a browser signs in: its cookie sent
    in a `Cookie` header on every request."""
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    page = client.get("/console/login")
    found = _CSRF.search(page.text)
    if page.status_code != 200 or found is None:
        raise RuntimeError(f"GET /console/login: {page.status_code}, no CSRF token")
    jar = _cookies(page)
    signed = client.post(
        "/console/login",
        data={"csrf": found.group(1) or found.group(2), "token": token, "next": "/console/"},
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())},
    )
    jar.update(_cookies(signed))
    if signed.status_code != 303 or "foureyes_session" not in jar:
        raise RuntimeError(f"POST /console/login: {signed.status_code} {signed.text[:300]}")
    client.headers["Cookie"] = f"foureyes_session={jar['foureyes_session']}"
    return client


def api_client(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def make_pending(base: str, token: str, accounts: list[str]) -> None:
    """A pending request on each account, asked by the requester (4 at a time)."""

    def ask(client: httpx.Client, account: str) -> None:
        body = {"action": STORY_ACTION, "account": f"chirp:{account}", "params": {}}
        answer = client.post(
            "/v1/requests", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        if answer.status_code != 201 or answer.json().get("state") != "pending":
            raise RuntimeError(f"submit on {account}: {answer.status_code} {answer.text[:300]}")

    with api_client(base, token) as client, ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda a: ask(client, a), accounts))


def _status_ok(response: httpx.Response) -> str | None:
    return None if response.status_code == 200 else f"{response.status_code}"


def _inbox_full(response: httpx.Response) -> str | None:
    cards = response.text.count(CARD)
    if response.status_code != 200 or cards != PAGE or "More requests wait" not in response.text:
        return f"{response.status_code}, {cards} cards"
    return None


def _inbox_empty(response: httpx.Response) -> str | None:
    if response.status_code != 200 or 'data-empty="1"' not in response.text:
        return f"{response.status_code}, not the empty inbox"
    return None


def _twenty(response: httpx.Response) -> str | None:
    if response.status_code != 200 or len(response.json().get("items", [])) != PAGE:
        return f"{response.status_code}, not {PAGE} items"
    return None


@dataclass
class Plan:
    pending: int
    gets: int
    warmup: int
    workers: int
    workdir: Path
    profile: list[str] | None = None
    rows: list[Row] = field(default_factory=list)
    # Per database: the inbox's profiled GETs, their server CPU and py-spy's samples by layer.
    profiles: list[tuple[str, int, float, Profile]] = field(default_factory=list)


def measure(plan: Plan, demo: DemoServer, tokens: Mapping[str, str]) -> None:
    accounts = vit_accounts(plan.pending, prefix="inbox")
    note(f"  {plan.pending} pending requests by {REQUESTER}")
    make_pending(demo.base, tokens[REQUESTER], accounts)
    reviewer = console_session(demo.base, tokens[REVIEWER])
    nobody = console_session(demo.base, tokens[NOBODY_WAITS])
    api = api_client(demo.base, tokens[REVIEWER])
    db = demo.database
    rows = [
        Row(INBOX_200, db, lambda: reviewer.get("/console/inbox"), _inbox_full),
        Row("GET /console/ (home, 200 waiting)", db, lambda: reviewer.get("/console/"), _status_ok),
        Row(
            "GET /console/inbox (nothing waiting)",
            db,
            lambda: nobody.get("/console/inbox"),
            _inbox_empty,
        ),
        Row(
            "GET /v1/requests?reviewable=true&limit=20",
            db,
            lambda: api.get("/v1/requests", params={"reviewable": "true", "limit": PAGE}),
            _twenty,
        ),
        Row("GET /v1/me (floor)", db, lambda: api.get("/v1/me"), _status_ok),
    ]
    try:
        for row in rows:  # each answered as the bench assumes, else the figures mean nothing
            wrong = row.check(row.fetch())
            if wrong is not None:
                raise RuntimeError(f"{row.label}: {wrong}")
        for _ in range(plan.warmup):
            for row in rows:
                row.fetch()
        settle()
        note(f"  {plan.gets} rounds of {len(rows)} GETs")
        for _ in range(plan.gets):
            for row in rows:
                before = group_cpu_seconds(demo.pid)
                started = time.perf_counter()
                try:
                    response = row.fetch()
                except httpx.RemoteProtocolError:
                    # The server closed the idle keep-alive connection (uvicorn: after 5 s,
                    # reached on a loaded machine) as the GET went out: asked again on a new
                    # one, timed from the new attempt (a GET changes nothing).
                    note(f"    {row.label}: keep-alive connection closed, asked again")
                    started = time.perf_counter()
                    response = row.fetch()
                row.latencies.append(time.perf_counter() - started)
                row.server_cpu += group_cpu_seconds(demo.pid) - before
                if response.status_code != 200:
                    raise RuntimeError(f"{row.label}: {response.status_code}")
        if plan.profile is not None:
            note(f"  {plan.gets} GETs of the inbox under py-spy")
            out = plan.workdir / f"py-spy-{db.lower()}.txt"
            with profiling(plan.profile, demo.pid, out):
                before = group_cpu_seconds(demo.pid)
                for _ in range(plan.gets):
                    rows[0].fetch()
                cpu = group_cpu_seconds(demo.pid) - before
            plan.profiles.append((db, plan.gets, cpu, read_profile(out)))
    finally:
        for client in (reviewer, nobody, api):
            client.close()
    inbox = rows[0]
    note(
        f"    inbox p50 {percentile(inbox.latencies, 0.5) * 1e3:.1f} ms, "
        f"p99 {percentile(inbox.latencies, 0.99) * 1e3:.1f} ms"
    )
    plan.rows.extend(rows)


def bench_database(plan: Plan, database: str, pg_url: str | None) -> None:
    with demo_server(
        plan.workdir,
        database,
        pg_url,
        accounts=vit_accounts(plan.pending, prefix="inbox"),
        workers=plan.workers,
    ) as demo:
        measure(plan, demo, issue_tokens(demo, [REQUESTER, REVIEWER, NOBODY_WAITS]))


def report(plan: Plan, started: str, load_before: str) -> None:
    header(
        "Console inbox (bench/inbox.py)",
        started,
        load_before,
        f"{plan.pending} requests pending for the reviewer; {plan.gets} rounds after "
        f"{plan.warmup} warm-up, the GETs of a round one after another on keep-alive "
        f"connections; server: `foureyes serve --demo` with {plan.workers} serving process(es)",
    )
    print(
        "| GET | database | GETs | p50 ms | p90 ms | p99 ms | max ms | mean ms "
        "| server CPU ms/GET | target p99 < 100 ms |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for row in plan.rows:
        ms = [x * 1e3 for x in row.latencies]
        p99 = percentile(ms, 0.99)
        verdict = "—"
        if row.label == INBOX_200:
            verdict = "met" if p99 < TARGET_P99_MS else "**missed**"
        print(
            f"| {row.label} | {row.database} | {len(ms)} | {percentile(ms, 0.5):.1f} | "
            f"{percentile(ms, 0.9):.1f} | {p99:.1f} | {max(ms):.1f} | {statistics.fmean(ms):.1f} "
            f"| {row.server_cpu * 1e3 / len(ms):.1f} | {verdict} |"
        )
    print(
        "\nLatency: from sending the GET to its whole body read, by one client on the same "
        "machine, one request at a time. Server CPU: user + system time of the server's "
        "processes around each GET, summed per row (clock ticks of 10 ms, so only the mean "
        "is meaningful)."
    )
    for database, gets, cpu, profile in plan.profiles:
        if not profile.samples:
            continue
        per_get = cpu * 1e3 / gets
        print(
            f"\nServer CPU of `{INBOX_200}` on {database} by layer (py-spy, {gets} more GETs, "
            f"{per_get:.1f} ms CPU each, {profile.samples} samples of the thread holding the GIL; "
            f"{profile.worker_thread / profile.samples:.0%} of them in the worker thread):"
        )
        print()
        print("| layer | share | CPU ms/GET |")
        print("|---|--:|--:|")
        for name, count in profile.by_layer.most_common():
            share = count / profile.samples
            print(f"| {name} | {share:.1%} | {share * per_get:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pending", type=int, default=200, help="requests waiting")
    parser.add_argument("--gets", type=int, default=300, help="GETs per row, measured")
    parser.add_argument("--warmup", type=int, default=20, help="rounds first, not counted")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin database")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument(
        "--profile", action="store_true", help="then the inbox's GETs again, under py-spy"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (server logs, py-spy output)"
    )
    args = parser.parse_args()
    if args.pending <= PAGE:
        parser.error(f"--pending must be more than {PAGE} (the inbox's page)")
    if args.gets < 1:
        parser.error("--gets must be ≥ 1")

    started = now_utc()
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="foureyes-bench-inbox-"))
    spy = py_spy() if args.profile else None
    if args.profile and spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy) or uvx")
    plan = Plan(args.pending, args.gets, args.warmup, args.workers, workdir, spy)
    try:
        for database in ("SQLite", "PostgreSQL"):
            if (database == "SQLite" and args.no_sqlite) or (database != "SQLite" and args.no_pg):
                continue
            with maybe_pg(database, args.pg_url) as url:
                bench_database(plan, database, url)
    finally:
        if args.keep:
            note(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(plan, started, load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
