"""The deciding review under load: the approval that completes a request and carries it out.

For each database (SQLite, then PostgreSQL in a database made for the run, as `bench/api.py`)
the bench starts the real server (`foureyes serve --demo --workers 2` on a fresh data
directory, with one extra very important account per request on the chirp demo platform) and
issues tokens with `foureyes staff token`. Then, untimed, the support agent `e-2001` asks
`account.suspend` on each account (rule `vit-suspension`: pending, two approvals by trust &
safety) and one of trust & safety approves it, so that each request waits for one more
approval. Timed: the deciding reviews, `--concurrency` at once (`POST …/reviews`, each by a
second person of trust & safety with the digest read during set-up), each answered
`executed` (the deciding review carries the suspension out in its own transaction: the demo
platform is kept in foureyes' database).

Reported per database: deciding reviews/s, their latency p50, p90 and p99, the server's CPU
per review (user + system of its processes, `bench/api.py`'s measure; PostgreSQL's own
processes not included) and the bench's own CPU per review (an asyncio httpx client: not
`wrk`, because each review has its own request and body). In the same run, the baseline: as
many dry runs of the same action (`POST /v1/decisions`, changes nothing) with the same client
and concurrency, on the same server: the ratio of the two rates is the one `api.py` reports
for submits.

    uv run python bench/review.py                        # both databases, 1,000 reviews each
    uv run python bench/review.py --no-pg --reviews 400

The machine, the settings and a Markdown table go to stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    APPROVERS,
    DEFAULT_PG_URL,
    REQUESTER,
    STORY_ACTION,
    BenchFailed,
    DemoServer,
    People,
    demo_server,
    expect,
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

PEOPLE = (REQUESTER, *APPROVERS)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Waiting:
    """A request waiting for its deciding review: who gives it, with which digest."""

    request_id: str
    reviewer: str
    digest: str


@dataclass
class Timed:
    """One timed series of calls."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu: float = 0.0
    own_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


async def _gated(
    calls: Sequence[Callable[[], Awaitable[None]]], concurrency: int, latencies: list[float]
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    async with asyncio.TaskGroup() as group:
        for call in calls:
            group.create_task(one(call))


async def _prepare(clients: People, accounts: Sequence[str], concurrency: int) -> list[Waiting]:
    """Each account's request asked and approved once (untimed)."""
    draw = random.Random(17)
    waiting: list[Waiting] = []

    async def one(account: str) -> None:
        first, second = draw.sample(APPROVERS, 2)
        body = {"action": STORY_ACTION, "account": f"chirp:{account}", "params": {}}
        asked = expect(
            await clients[REQUESTER].post(
                "/v1/requests", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
            ),
            201,
            "submit",
        )
        if asked["state"] != "pending":
            raise BenchFailed(f"the request is {asked['state']}, not pending")
        shown = expect(await clients[first].get(f"/v1/requests/{asked['id']}"), 200, "show")
        review = {"decision": "approve", "digest": shown["digest"], "comment": ""}
        answer = expect(
            await clients[first].post(f"/v1/requests/{asked['id']}/reviews", json=review),
            200,
            "first review",
        )
        if answer["state"] != "pending":
            raise BenchFailed(f"after one approval the request is {answer['state']}")
        waiting.append(Waiting(asked["id"], second, shown["digest"]))

    await _gated([lambda a=account: one(a) for account in accounts], concurrency, [])
    return waiting


async def _timed(
    demo: DemoServer, calls: Sequence[Callable[[], Awaitable[None]]], concurrency: int
) -> Timed:
    timed = Timed()
    server_before, own_before = group_cpu_seconds(demo.pid), _own_cpu()
    began = time.perf_counter()
    await _gated(calls, concurrency, timed.latencies)
    timed.seconds = time.perf_counter() - began
    timed.server_cpu = group_cpu_seconds(demo.pid) - server_before
    timed.own_cpu = _own_cpu() - own_before
    return timed


async def _measure(
    demo: DemoServer, tokens: Mapping[str, str], accounts: Sequence[str], concurrency: int
) -> tuple[Timed, Timed]:
    clients = People(demo.base, tokens, concurrency)
    try:
        note(f"  {demo.database}: {len(accounts)} requests asked and approved once (untimed)")
        waiting = await _prepare(clients, accounts, concurrency)
        settle()

        def deciding(item: Waiting) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                review = {"decision": "approve", "digest": item.digest, "comment": ""}
                answer = expect(
                    await clients[item.reviewer].post(
                        f"/v1/requests/{item.request_id}/reviews", json=review
                    ),
                    200,
                    "deciding review",
                )
                if answer["state"] != "executed":
                    raise BenchFailed(f"the deciding review left it {answer['state']}")

            return call

        note(f"  {demo.database}: {len(waiting)} deciding reviews, {concurrency} at once")
        reviews = await _timed(demo, [deciding(item) for item in waiting], concurrency)
        settle()

        async def dry_run(account: str) -> None:
            body = {"action": STORY_ACTION, "account": f"chirp:{account}", "params": {}}
            expect(await clients[REQUESTER].post("/v1/decisions", json=body), 200, "dry run")

        note(f"  {demo.database}: {len(waiting)} dry runs (the baseline)")
        dry = await _timed(
            demo, [lambda a=account: dry_run(a) for account in accounts], concurrency
        )
        return reviews, dry
    finally:
        await clients.close()


@dataclass
class Row:
    database: str
    reviews: Timed
    dry: Timed


def report(rows: Sequence[Row], count: int, concurrency: int) -> None:
    print(
        "| database | reviews | concurrency | deciding reviews/s | p50 ms | p90 ms | p99 ms "
        "| server CPU ms/review | bench CPU ms/review | dry runs/s (same client) "
        "| ratio to the dry run |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        r = row.reviews
        n = max(1, len(r.latencies))
        print(
            f"| {row.database} | {count} | {concurrency} | {r.rate:,.0f} "
            f"| {percentile(r.latencies, 0.50) * 1e3:.1f} "
            f"| {percentile(r.latencies, 0.90) * 1e3:.1f} "
            f"| {percentile(r.latencies, 0.99) * 1e3:.1f} "
            f"| {r.server_cpu * 1e3 / n:.2f} | {r.own_cpu * 1e3 / n:.2f} "
            f"| {row.dry.rate:,.0f} | {r.rate / row.dry.rate if row.dry.rate else 0:.2f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=1_000, help="deciding reviews timed")
    parser.add_argument("--concurrency", type=int, default=16, help="reviews in flight")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="an admin database")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    databases = [
        d for d, skip in (("SQLite", args.no_sqlite), ("PostgreSQL", args.no_pg)) if not skip
    ]
    started, load_before = now_utc(), load_average()
    workdir = Path(tempfile.mkdtemp(prefix="foureyes-bench-review-"))
    rows: list[Row] = []
    accounts = vit_accounts(args.reviews)
    try:
        for database in databases:
            with (
                maybe_pg(database, args.pg_url) as pg_url,
                demo_server(
                    workdir, database, pg_url, accounts=accounts, workers=args.workers
                ) as demo,
            ):
                tokens = issue_tokens(demo, PEOPLE)
                reviews, dry = asyncio.run(_measure(demo, tokens, accounts, args.concurrency))
                rows.append(Row(database, reviews, dry))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header(
        "The deciding review (bench/review.py)",
        started,
        load_before,
        f"{args.reviews} reviews, {args.concurrency} at once, {args.workers} server processes",
    )
    report(rows, args.reviews, args.concurrency)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
